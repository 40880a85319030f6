//! The M:N scheduler: worker threads, run queues, the home-worker rule.
//!
//! Owns: [`Shared`] (one per runtime), [`WorkerShared`] (the part of a worker
//! other threads may touch), the thread-local worker context, spawning and
//! waking.
//!
//! # The home-worker rule (soundness)
//!
//! A coroutine that has started runs on one worker thread until it ends: its
//! *home*. Its stack may hold thread-bound values (`Rc`s from thread-locals,
//! std `MutexGuard`s, `thread_rng()`), so it must never be resumed by another
//! thread. Only *unstarted* coroutines move (their only state is a `Send`
//! closure): idle workers steal them, and the first resume fixes the home.
//!
//! # Queues of one worker (see `worker.rs` for the pick order)
//!
//! * `runnext` (local): the coroutine most recently spawned or woken by the
//!   running one; it runs as soon as the current one parks (Go's `runnext`).
//!   This keeps producer/consumer pairs on one worker.
//! * `deque` (crossbeam, LIFO, stealable): unstarted coroutines. Thieves take
//!   the oldest half, i.e. the biggest subtrees of a spawn tree, but only
//!   from a *backlog* (two or more queued for 3 ms without a break while the
//!   victim runs other coroutines, 20 ms if it resumed nothing meanwhile) or
//!   a victim stuck in one coroutine for 1 ms: a placement is for life, so a
//!   burst of spawns the victim starts at once stays together. Conversely a
//!   saturated worker with an empty deque hands a new coroutine to a clearly
//!   less loaded worker's inbox (`push_new`): pipelines grown one stage at a
//!   time spread out that way. So does a worker serving many coroutines
//!   parked on sockets (`io_waiting`), for one serving clearly fewer: an
//!   accept loop's connections spread over the workers.
//! * `ready` (local FIFO): started coroutines woken on this worker.
//! * `inbox` (crossbeam `Injector`): wake requests from other threads for
//!   coroutines homed here (the home applies them: `coroutine.rs`, park
//!   state), and unstarted coroutines placed here by `push_new`.
//! * `yielded` (local FIFO): `yield_now` callers, run after everything local.
//!
//! Plus one runtime-wide `injector` for spawns from outside the runtime.
//!
//! # Lock order
//!
//! channel or sync object (several: in address order) -> timer heap ->
//! poller registrations -> worker registry -> idle sleepers -> parker.
//! No goro-internal lock is held across a context switch.

pub(crate) mod blocking;
pub(crate) mod driver;
pub(crate) mod idle;
pub(crate) mod monitor;
pub(crate) mod worker;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use crossbeam_deque::{Injector, Stealer};
use parking_lot::Mutex;

use crate::coroutine::{CoInner, CoRef};
use crate::park::Waiter;

pub(crate) use worker::{runs_here, set_worker, with_worker};

/// Runtime configuration, fixed at build.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) stack_size: usize,
    pub(crate) main_stack_size: usize,
    pub(crate) detect_deadlocks: bool,
    pub(crate) name: String,
    pub(crate) partial_policy: crate::wait::PartialDeadlockPolicy,
    /// Swap out stacks parked longer than this (`stack/swap.rs`); `None`: never.
    pub(crate) swap_parked_after: Option<std::time::Duration>,
}

/// What ended a `run` session.
pub(crate) enum Outcome {
    MainDone,
    /// The watch's verdict: a `diag` report, opaque here.
    Deadlock(Box<dyn std::any::Any + Send>),
}

/// A `Runtime::run` in progress.
pub(crate) struct Session {
    /// Main's id once spawned (0 before), for reports.
    #[allow(dead_code)]
    pub(crate) main: u64,
    pub(crate) caller: Waiter,
    pub(crate) outcome: Option<Outcome>,
}

/// State shared by all workers of one runtime.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) workers: OnceLock<Box<[Arc<WorkerShared>]>>,
    /// Unstarted coroutines spawned from outside the runtime.
    pub(crate) injector: Injector<CoRef>,
    pub(crate) idle: idle::Idle,
    /// Coroutines spawned and not finished (Go's NumGoroutine).
    pub(crate) live: crate::shard::Counter,
    /// Leftover coroutines are being cancelled (end of a session).
    pub(crate) cancelling: AtomicBool,
    /// The runtime is being dropped: workers exit when idle.
    pub(crate) shutdown: AtomicBool,
    pub(crate) session: Mutex<Option<Session>>,
    /// Pending `goro::blocking` calls (keep the runtime from a deadlock verdict).
    pub(crate) blocking_jobs: AtomicUsize,
    /// Parties parked in external waits the detector cannot see through
    /// (timers on plain threads, I/O): while nonzero, no deadlock verdict.
    pub(crate) external_waits: AtomicUsize,
    /// What reads this runtime to decide it is stuck (`diag/deadlock.rs`,
    /// through `driver::Watch`).
    pub(crate) watch: Box<dyn driver::Watch>,
    /// Cycles seen on the last partial-deadlock pass (member ids, sorted).
    pub(crate) partial_seen: Mutex<Vec<Vec<u64>>>,
    /// Reports for coroutines whose blocked call must panic (policy Panic).
    pub(crate) partial_reports: Mutex<std::collections::HashMap<u64, std::sync::Arc<str>>>,
}

/// Starts the next field of a `#[repr(C)]` struct on a fresh pair of cache
/// lines (x86 fetches lines in adjacent pairs): fields written by different
/// threads never share one.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Lines;

/// The part of a worker other threads may touch, laid out by who writes it
/// (`#[repr(C)]`, each group on cache lines of its own): the fields set at
/// build, those the owner writes at every resume or spawn, the one thieves
/// poll, those other threads write. Left to the compiler, one added field
/// could move `deque_epoch` (polled by every thief) or the parker (written
/// by every waker) onto the line of the owner's per-resume counters.
#[repr(C)]
pub(crate) struct WorkerShared {
    // Set at build; read by every thread.
    pub(crate) index: usize,
    /// Weak: the worker threads hold the strong references, so dropping a
    /// `Runtime` frees it even while stray wakers still hold this worker.
    pub(crate) rt: Weak<Shared>,
    /// Steals unstarted coroutines from this worker's deque.
    pub(crate) stealer: Stealer<CoRef>,
    pub(crate) thread: OnceLock<std::thread::ThreadId>,

    // Written by the owner at every resume, spawn, start, end or park on a
    // socket; read by the monitor, lock spinners (`running`), spawn
    // placement and diagnostics (`registry`).
    pub(crate) _owner: Lines,
    /// Id of the coroutine running now (0: none) and a resume counter, for
    /// the monitor's long-run warning.
    pub(crate) running: AtomicU64,
    pub(crate) resumes: AtomicU64,
    /// Counters, written by the owner only (Relaxed: statistics).
    pub(crate) spawned: AtomicU64,
    pub(crate) steals: AtomicU64,
    /// Wakes this worker sent to coroutines homed on other workers
    /// (`request_wake`), and new coroutines it placed on a lighter worker
    /// (`push_new`): how often communication crosses threads.
    pub(crate) remote_wakes: AtomicU64,
    pub(crate) placed_away: AtomicU64,
    /// Coroutines homed here parked on a socket now (`IoWaiting`; written
    /// by the owner only): how many connections this worker serves (spawn
    /// placement, `WorkerLocal::io_lighter_worker`).
    pub(crate) io_waiting: AtomicUsize,
    /// Pending timers in this worker's heap (deadlock detection).
    pub(crate) timers_pending: AtomicUsize,
    /// The earliest live timer of this worker's heap, in nanoseconds since
    /// `worker::clock_epoch()` (`u64::MAX`: none), published when a timer is
    /// armed and after timers fire, for the same warning: a due timer is
    /// work stuck behind the running coroutine.
    pub(crate) next_timer: AtomicU64,
    /// Started coroutines homed here (for diagnostics and cancellation);
    /// the owner locks it at each start and end.
    pub(crate) registry: Mutex<Slab>,

    // Written by the owner when its deque runs empty; polled by thieves.
    pub(crate) _thieves: Lines,
    /// Bumped each time the worker sees its deque empty after it was not:
    /// a thief that sees the same value twice knows the deque held
    /// coroutines without a break in between (`victim_backlogged`).
    pub(crate) deque_epoch: AtomicU64,

    // Written by other threads.
    pub(crate) _others: Lines,
    pub(crate) parker: idle::Parker,
    /// Set by the monitor before it wakes this spare to take new work
    /// (idle.rs rule 5; read by the spare when it wakes).
    pub(crate) called: AtomicBool,
    /// Resumes in the monitor's last window: how loaded the worker is
    /// (spawn placement, `WorkerLocal::push_new`).
    pub(crate) load: AtomicU64,
    /// The monitor found one coroutine running here for a whole nap
    /// without a break: spawn placement sends it nothing, since only this
    /// worker could start what it is given (`WorkerLocal::lighter_worker`,
    /// `io_lighter_worker`).
    pub(crate) held: AtomicBool,
    /// Wake requests for coroutines homed here, from other threads, and
    /// unstarted coroutines placed here (`WorkerLocal::pop_inbox`). Its
    /// ends are cache-padded of their own.
    pub(crate) inbox: Injector<CoRef>,
}

/// A minimal slab.
pub(crate) struct SlabOf<T> {
    slots: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Default for SlabOf<T> {
    fn default() -> Self {
        SlabOf { slots: Vec::new(), free: Vec::new() }
    }
}

impl<T> SlabOf<T> {
    pub(crate) fn vacant_key(&self) -> usize {
        self.free.last().copied().unwrap_or(self.slots.len())
    }
    pub(crate) fn insert(&mut self, v: T) -> usize {
        match self.free.pop() {
            Some(k) => {
                self.slots[k] = Some(v);
                k
            }
            None => {
                self.slots.push(Some(v));
                self.slots.len() - 1
            }
        }
    }
    pub(crate) fn remove(&mut self, k: usize) -> Option<T> {
        let v = self.slots.get_mut(k)?.take();
        if v.is_some() {
            self.free.push(k);
        }
        v
    }
    pub(crate) fn get(&self, k: usize) -> Option<&T> {
        self.slots.get(k)?.as_ref()
    }
    /// One past the highest key in use or free.
    pub(crate) fn key_bound(&self) -> usize {
        self.slots.len()
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
    }
}

/// The per-worker registry of started coroutines.
pub(crate) type Slab = SlabOf<CoRef>;

/// The origin of `clock_nanos`.
fn clock_epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `at` as nanoseconds since a process-wide origin (0 before it), for
/// deadlines published in atomics.
pub(crate) fn clock_nanos(at: Instant) -> u64 {
    at.saturating_duration_since(clock_epoch()).as_nanos().min(u64::MAX as u128 - 1) as u64
}

thread_local! {
    /// The runtime a non-worker thread works for (blocking pool threads,
    /// while they run a job), so `go` there stays in that runtime.
    static AMBIENT: std::cell::RefCell<Option<Arc<Shared>>> = const { std::cell::RefCell::new(None) };
}

pub(crate) fn set_ambient(rt: Option<Arc<Shared>>) {
    AMBIENT.with(|a| *a.borrow_mut() = rt);
}

/// The coroutine running on this thread, as a raw pointer (the worker holds a
/// reference to it while it runs).
#[inline]
pub(crate) fn current_ptr() -> Option<*const CoInner> {
    with_worker(|w| w.current.get()).filter(|p| !p.is_null())
}

/// How many coroutines of this worker are suspended in the middle of an
/// unwind of their own (`coroutine.rs`, "Unwinding"); 0 off a worker.
#[inline]
pub(crate) fn others_unwinding() -> usize {
    with_worker(|w| w.suspended_unwinding.get()).unwrap_or(0)
}

/// Whether coroutine `id` may be running right now on another thread: on
/// another worker of this thread's runtime, or anywhere if this is not a
/// worker thread (we cannot tell). A lock's waiter spins only then (Go's
/// `sync_runtime_canSpin`): a holder homed on our own worker cannot run
/// while we spin, and a parked one will not release the lock meanwhile.
pub(crate) fn may_run_elsewhere(id: u64) -> bool {
    with_worker(|w| {
        let me = w.shared.index;
        w.rt.workers().iter().any(|o| o.index != me && o.running.load(Ordering::Relaxed) == id)
    })
    .unwrap_or(true)
}

/// Runs `f` on the coroutine running on this thread, if any.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&CoRef) -> R) -> Option<R> {
    with_worker(|w| {
        // SAFETY: `current_arc` is only read on this thread.
        let cur = unsafe { &*w.current_arc.as_ptr() };
        cur.as_ref().map(f)
    })
    .flatten()
}

/// Runs `f` with the runtime `go` should use here: the worker's, the ambient
/// one, or the global default runtime.
pub(crate) fn with_runtime<R>(f: impl FnOnce(&Arc<Shared>) -> R) -> R {
    let mut f = Some(f);
    if let Some(r) = with_worker(|w| (f.take().unwrap())(&w.rt)) {
        return r;
    }
    let amb = AMBIENT.with(|a| a.borrow().clone());
    let f = f.take().unwrap();
    match amb {
        Some(rt) => f(&rt),
        // The one late-bound edge: the default runtime is built by the
        // composition root (lib.rs), which sees every layer.
        None => f(crate::default_runtime()),
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh coroutine id (never 0). Each thread takes ids from the global
/// counter in batches of `crate::wait::ID_BATCH` (Go's `goidcache`), so
/// spawning on many cores does not contend on one cache line.
pub(crate) fn next_coroutine_id() -> u64 {
    thread_local!(static CACHE: Cell<(u64, u64)> = const { Cell::new((0, 0)) });
    CACHE.with(|c| crate::wait::take_id(c, &NEXT_ID))
}

/// Arms a one-shot wake of the running coroutine at `deadline`.
pub(crate) fn add_wake_timer(deadline: Instant, co: &CoInner) {
    with_worker(|w| w.add_wake_timer(deadline, co));
}

/// The park that armed a wake timer returned: the timer no longer counts.
pub(crate) fn disarm_wake_timer(co: &CoInner) {
    with_worker(|w| w.disarm_wake_timer(co));
}

impl Shared {
    pub(crate) fn workers(&self) -> &[Arc<WorkerShared>] {
        self.workers.get().map(|w| &w[..]).unwrap_or(&[])
    }

    /// Queues a new (unstarted) coroutine: on the current worker if it belongs
    /// to this runtime, else on the injector.
    pub(crate) fn submit_new(self: &Arc<Self>, co: CoRef) {
        self.live.add(1);
        let mut co = Some(co);
        let local = with_worker(|w| {
            if Arc::ptr_eq(&w.rt, self) {
                w.push_new(co.take().unwrap());
                true
            } else {
                false
            }
        });
        if local != Some(true) {
            self.injector.push(co.take().unwrap());
            self.notify_work();
        }
    }

    /// Rule 2 of `idle.rs`: wake a sleeper for newly published stealable work.
    pub(crate) fn notify_work(&self) {
        if let Some(i) = self.idle.pop_sleeper_for_work() {
            self.workers()[i].parker.unpark();
        }
    }

    /// The monitor's remedy when a worker has been held by one coroutine
    /// for a whole nap while new work waits (idle.rs rule 5): wake a
    /// sleeping primary, else call a spare.
    pub(crate) fn notify_work_or_call_spare(&self) {
        if let Some(i) = self.idle.pop_sleeper_for_work() {
            self.workers()[i].parker.unpark();
        } else if let Some(i) = self.idle.call_spare() {
            let w = &self.workers()[i];
            w.called.store(true, Ordering::Release);
            w.parker.unpark();
        }
    }

    /// Wakes every worker (shutdown, cancellation).
    pub(crate) fn wake_all(&self) {
        for i in self.idle.take_all() {
            self.workers()[i].parker.unpark();
        }
        for w in self.workers() {
            w.parker.unpark();
        }
    }

    /// Called when a coroutine finished (on its home worker).
    pub(crate) fn coroutine_finished(&self, co: &CoInner) {
        if co.has_flag(crate::coroutine::F_MAIN) {
            let mut s = self.session.lock();
            if let Some(sess) = s.as_mut() {
                // Sessions are serialized, so the one F_MAIN coroutine alive
                // is this session's main (its id may not be recorded yet).
                if sess.outcome.is_none() {
                    // From now on nothing new starts: unstarted coroutines are
                    // dropped unstarted, parked ones unwind (Go: main's return
                    // ends the program).
                    self.cancelling.store(true, Ordering::SeqCst);
                    sess.outcome = Some(Outcome::MainDone);
                    let w = sess.caller.clone();
                    drop(s);
                    w.wake();
                }
            }
        }
        // SeqCst (shard.rs): the session waiter that sees the count reach
        // zero sees the coroutine's effects. Sharded, so the decrement does
        // not tell whether it was the last: while cancelling (rare), sum.
        // Of two last decrements racing, the later one's sum sees both
        // (shard.rs invariant 3), and `cancel_all` re-reads every 5 ms.
        self.live.add(-1);
        if self.cancelling.load(Ordering::Acquire) && self.live.sum() == 0 {
            let s = self.session.lock();
            if let Some(sess) = s.as_ref() {
                sess.caller.wake();
            }
        }
    }

    /// Total resumes so far: any change means something ran.
    pub(crate) fn progress(&self) -> u64 {
        self.workers().iter().map(|w| w.resumes.load(Ordering::Relaxed)).sum()
    }

    /// Every started coroutine of this runtime (diagnostics).
    pub(crate) fn all_coroutines(&self) -> Vec<CoRef> {
        let mut v = Vec::new();
        for w in self.workers() {
            v.extend(w.registry.lock().iter().cloned());
        }
        v
    }
}

/// Counts a wait the deadlock detector of `rt` cannot see through, for as
/// long as it lives (also when unwinding).
pub(crate) struct ExternalWait(Arc<Shared>);

impl ExternalWait {
    pub(crate) fn new(rt: Arc<Shared>) -> ExternalWait {
        rt.external_waits.fetch_add(1, Ordering::SeqCst);
        ExternalWait(rt)
    }
}

impl Drop for ExternalWait {
    fn drop(&mut self) {
        self.0.external_waits.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts the running coroutine in its worker's `io_waiting` for as long
/// as it lives (`net`: across a wait for a socket). A started coroutine
/// never changes thread (the home-worker rule; `migrate_started` is a
/// no-op), so the decrement runs on the worker of the increment, the
/// count's only writer: a plain load and store each way, no locked
/// instruction on the path of every blocking socket call.
pub(crate) struct IoWaiting(Option<usize>);

impl IoWaiting {
    pub(crate) fn new() -> IoWaiting {
        IoWaiting(with_worker(|w| {
            worker::add(&w.shared.io_waiting, 1);
            w.shared.index
        }))
    }

    /// The index of the worker it counts on (`None` off a worker).
    pub(crate) fn worker(&self) -> Option<usize> {
        self.0
    }
}

impl Drop for IoWaiting {
    fn drop(&mut self) {
        if let Some(counted_on) = self.0 {
            with_worker(|w| {
                debug_assert_eq!(w.shared.index, counted_on, "goro bug: a socket wait ended on another worker");
                worker::add(&w.shared.io_waiting, usize::MAX);
            });
        }
    }
}

/// A wake of a started coroutine from a thread other than its home
/// (coroutine.rs): the request, this counted reference, goes to the home's
/// inbox, and the home is woken if it sleeps.
pub(crate) fn request_wake(co: CoRef) {
    let home = co.home.get_arc().expect("goro bug: a started coroutine has no home");
    with_worker(|w| worker::bump(&w.shared.remote_wakes));
    home.inbox.push(co);
    home.parker.unpark_if_sleeping();
}
#[cfg(test)]
mod tests {
    /// The groups of `WorkerShared` sit on distinct pairs of cache lines.
    #[test]
    fn worker_fields_written_by_different_threads_share_no_line() {
        use super::WorkerShared as W;
        use std::mem::offset_of;
        let block = |off: usize| off / 128;
        let build = [offset_of!(W, index), offset_of!(W, rt), offset_of!(W, stealer), offset_of!(W, thread)];
        let owner =
            [offset_of!(W, running), offset_of!(W, resumes), offset_of!(W, io_waiting), offset_of!(W, registry)];
        let thieves = [offset_of!(W, deque_epoch)];
        let others = [offset_of!(W, parker), offset_of!(W, called), offset_of!(W, load), offset_of!(W, held)];
        let groups = [&build[..], &owner[..], &thieves[..], &others[..]];
        for (i, g) in groups.iter().enumerate() {
            for (j, h) in groups.iter().enumerate().filter(|&(j, _)| j != i) {
                for &a in g.iter() {
                    assert!(h.iter().all(|&b| block(a) != block(b)), "groups {i} and {j} share a line pair");
                }
            }
        }
        assert_eq!(offset_of!(W, inbox) % 128, 0);
    }
}
