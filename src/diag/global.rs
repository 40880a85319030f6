// The global deadlock rule (Go's `checkdead`) and the watch the runtime
// installs in each `Shared` (`sched::driver::Watch`): the scheduler tells it
// when the last worker went to sleep, the monitor runs a pass every nap.
//
// The rule (documented for users on `Runtime::run`): a session is
// deadlocked when `looks_deadlocked` has held continuously for
// `DEADLOCK_GRACE`, with no coroutine resumed and no registered plain
// thread woken meanwhile. The grace period lets plain OS threads that have
// not called goro yet (and will) show themselves. The monitor also starts a
// stall itself, because the last condition to become true may be a plain
// thread parking, which no worker sees.
//
// A pass also runs the partial-deadlock search (`deadlock.rs`, "When") when
// the owner epoch moved, and once more after; its state lives here.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::deadlock::{check_partial, SEARCH_EVERY};
use super::report::DeadlockReport;
use crate::sched::driver::{Watch, WatchPass};
use crate::sched::{Outcome, Shared};

const DEADLOCK_GRACE: Duration = Duration::from_millis(500);

/// A stretch during which the runtime looked deadlocked.
#[derive(Clone, Copy, Debug)]
struct Stall {
    since: Instant,
    /// `Shared::progress()` then.
    resumes: u64,
    /// `park::PLAIN_WAKEUPS` then.
    wakeups: u64,
}

/// The partial-deadlock search's cadence: the epoch last seen, passes
/// still owed since it moved, a cycle awaiting confirmation, and when the
/// last search ran.
struct Search {
    owner_epoch: u64,
    owed: u8,
    pending: bool,
    last: Instant,
}

/// The deadlock watch of one runtime.
pub(crate) struct Detector {
    /// When everything was last seen asleep, and the resume count and plain
    /// thread wake-ups then (the grace period; see `check_stall`).
    stall: Mutex<Option<Stall>>,
    /// Touched by the monitor only.
    search: Mutex<Search>,
}

impl Detector {
    pub(crate) fn new() -> Detector {
        Detector {
            stall: Mutex::new(None),
            search: Mutex::new(Search { owner_epoch: 0, owed: 0, pending: false, last: Instant::now() }),
        }
    }

    fn start_stall(&self, rt: &Shared) {
        let mut st = self.stall.lock();
        if st.is_none() {
            *st = Some(Stall {
                since: Instant::now(),
                resumes: rt.progress(),
                wakeups: crate::park::PLAIN_WAKEUPS.load(Ordering::SeqCst),
            });
        }
    }

    /// Called by the monitor: the rule above.
    fn check_stall(&self, rt: &Shared) {
        let Some(stall) = *self.stall.lock() else {
            if looks_deadlocked(rt) {
                self.start_stall(rt);
            }
            return;
        };
        if !looks_deadlocked(rt)
            || rt.progress() != stall.resumes
            || crate::park::PLAIN_WAKEUPS.load(Ordering::SeqCst) != stall.wakeups
        {
            *self.stall.lock() = None;
            return;
        }
        if stall.since.elapsed() < DEADLOCK_GRACE {
            return;
        }
        *self.stall.lock() = None;
        let mut s = rt.session.lock();
        let Some(sess) = s.as_mut() else { return };
        if sess.outcome.is_some() {
            return;
        }
        let report = DeadlockReport::collect(rt);
        if report.is_empty() {
            return;
        }
        rt.cancelling.store(true, Ordering::SeqCst);
        sess.outcome = Some(Outcome::Deadlock(Box::new(report)));
        let w = sess.caller.clone();
        drop(s);
        w.wake();
    }
}

impl Watch for Detector {
    /// The last worker went to sleep with nothing queued: start the grace
    /// period (the monitor confirms it, see `check_stall`).
    fn all_idle(&self, rt: &Shared) {
        if looks_deadlocked(rt) {
            self.start_stall(rt);
        }
    }

    fn pass(&self, rt: &Arc<Shared>) -> WatchPass {
        self.check_stall(rt);
        let mut s = self.search.lock();
        let e = crate::wait::OWNER_EPOCH.sum();
        if e != s.owner_epoch {
            s.owner_epoch = e;
            s.owed = 2;
        }
        if (s.owed > 0 || s.pending) && s.last.elapsed() >= SEARCH_EVERY {
            s.owed = s.owed.saturating_sub(1);
            s.pending = check_partial(rt);
            s.last = Instant::now();
        }
        WatchPass {
            urgent: self.stall.lock().is_some(),
            nap_at_most: (s.owed > 0 || s.pending).then_some(SEARCH_EVERY),
        }
    }
}

/// Are all the conditions of a global deadlock true right now? Every
/// worker asleep with nothing queued, no timer pending, no
/// `goro::blocking` job or external wait (I/O, another runtime) in
/// flight, no registered plain thread active (outside an untimed goro
/// wait; see `park.rs`), a session running and not yet decided.
fn looks_deadlocked(rt: &Shared) -> bool {
    rt.config.detect_deadlocks
        && !rt.cancelling.load(Ordering::Acquire)
        && crate::park::ACTIVE_PLAIN_THREADS.load(Ordering::SeqCst) == 0
        && rt.blocking_jobs.load(Ordering::SeqCst) == 0
        && rt.external_waits.load(Ordering::SeqCst) == 0
        && rt.workers().iter().all(|w| w.timers_pending.load(Ordering::SeqCst) == 0)
        && crate::time::armed_chan_timers() == 0
        && rt.idle.num_sleeping.load(Ordering::SeqCst) == rt.workers().len()
        && rt.injector.is_empty()
        && rt.session.lock().as_ref().is_some_and(|s| s.outcome.is_none())
}
