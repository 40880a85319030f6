// The seams through which the scheduler reaches what sits above it, named
// by no module of its own: the driver a worker parks on (I/O and timers)
// and the watch that reads the scheduler (the deadlock detector). The
// runtime composes both (`runtime.rs`) and installs them before any worker
// starts; `sched/` names neither `net` nor `time` nor `diag`.
//
// Model: tokio's `runtime/driver.rs` (one driver composed of the I/O and
// time drivers) and `scheduler/multi_thread/park.rs` (a worker parks on it).
//
// Cost: a trait object, touched when a worker looks at its timers (every
// 8th tick while it has some), runs out of local work, sleeps, or arms a
// timed park; never on the channel or wake paths.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::idle::Parker;
use super::{Shared, WorkerShared};
use crate::coroutine::{CoInner, CoRef};

/// What a worker parks on: poll now, park until a deadline, unpark; and the
/// worker's own timer heap.
pub(crate) trait Driver: Sync {
    /// This thread becomes worker `w` (its timer heap is created).
    fn worker_started(&self, w: &Arc<WorkerShared>);
    /// This worker thread exits (its channel timers are handed off).
    fn worker_exiting(&self);
    /// Whether this worker's heap holds timers (cheap; called every 8th tick).
    fn has_timers(&self) -> bool;
    /// Fires this worker's due timers.
    fn fire_timers(&self);
    /// This worker's earliest live deadline.
    fn next_deadline(&self) -> Option<Instant>;
    /// Arms a wake of `co` (the coroutine running here) at `at`.
    fn add_wake_timer(&self, at: Instant, co: CoRef);
    /// The timed park of `co` returned: its wake no longer counts.
    fn disarm_wake_timer(&self, co: &CoInner);
    /// Polls I/O without blocking; true if it readied anything.
    fn poll_now(&self) -> bool;
    /// Sleeps in the I/O poller until an event, an unpark or `deadline`, if
    /// this worker can be the poller (after `Parker::prepare_sleep` and the
    /// re-check); false, without sleeping, if it cannot.
    fn park(&self, parker: &Parker, deadline: Option<Instant>) -> bool;
    /// Wakes the worker blocked in the poller (`Parker::unpark`, POLLING).
    fn unpark(&self);
    /// The monitor's backstop: nobody polled for `stale`.
    fn maintain(&self, stale: Duration);
}

static DRIVER: OnceLock<&'static dyn Driver> = OnceLock::new();

/// Installs the process's driver (the runtime does, before it starts a
/// worker; the first installation wins, every runtime installs the same).
pub(crate) fn install(d: &'static dyn Driver) {
    let _ = DRIVER.set(d);
}

/// The installed driver. Only workers and their parkers call this, and
/// none exists before a runtime installed it.
#[inline]
pub(crate) fn get() -> &'static dyn Driver {
    *DRIVER.get().expect("goro bug: no driver installed before a worker started")
}

/// The monitor's pass, as the watch reports it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WatchPass {
    /// A verdict is pending (the monitor naps briefly).
    pub(crate) urgent: bool,
    /// The longest the monitor may nap before the next pass.
    pub(crate) nap_at_most: Option<Duration>,
}

/// What reads the scheduler to decide it is stuck (`diag/`, installed per
/// runtime in `Shared::watch`).
pub(crate) trait Watch: Send + Sync {
    /// The last worker went to sleep with nothing queued and no timer.
    fn all_idle(&self, rt: &Shared);
    /// One pass of the monitor.
    fn pass(&self, rt: &Arc<Shared>) -> WatchPass;
}
