//! Idle workers: who sleeps, who is woken, and the guarantee that no wake-up
//! is lost.
//!
//! Owns: [`Parker`] (one per worker: where it sleeps) and [`Idle`] (the
//! runtime's count of searching and sleeping workers, and the sleeper list).
//!
//! Rules (Go's `proc.go` "spinning" essay, tokio's `idle.rs`):
//!  1. A worker out of work first *searches* (inbox, injector, stealing) for a
//!     bounded number of rounds, then sleeps. At most half the workers search
//!     at once, so a burst of wakes does not turn into a thundering herd.
//!  2. Whoever makes stealable work (`go`, the injector) calls
//!     `Idle::notify_work` *after* publishing it; it wakes one sleeper only if
//!     nobody is searching (a searcher will find the work).
//!  3. No lost wake-up: a sleeper announces itself (`Parker::state = SLEEPING`,
//!     `num_sleeping += 1`, SeqCst) and then re-checks every queue before it
//!     blocks; a producer publishes, issues a SeqCst fence, then reads those
//!     announcements. One of the two always sees the other (Dekker).
//!  4. A searcher that finds work while it was the last searcher wakes another
//!     worker, so work that arrives in bursts spreads out.
//!  5. Primaries and spares. Only as many workers as the process has cores
//!     (`available_parallelism`: the affinity mask and the cgroup quota)
//!     take *new* work: steal, take from the injector, receive a spawn
//!     placed away, be woken by rule 2. These are the *primaries*, workers
//!     `0..primaries`. The others, *spares*, exist for when a primary is held
//!     by a coroutine that does not park (a blocking call, a long loop): the
//!     monitor *calls* a spare then (`Idle::call_spare`), and a called spare
//!     takes new work like a primary until it next runs dry. A spare always
//!     runs the coroutines homed on it. Why: a started coroutine never moves,
//!     so a pipeline spread over more threads than cores pays, on every hop
//!     between them, for the kernel to schedule a descheduled thread (issue
//!     "more workers must never make a program slower"). With
//!     `workers <= cores` every worker is a primary and nothing changes.
//!     Rule 3 still holds among primaries: rule 2 only ever wakes a primary,
//!     and a sleeping primary re-checks the global queues; a spare that is
//!     not called re-checks only its own queues (else it would spin on work
//!     it may not take).
//!
//! A sleeping worker's timeout is its next timer deadline; while a coroutine
//! waits on a socket, the sleeper that gets the netpoller blocks in
//! `epoll_wait` instead of on its condition variable (state `POLLING`, woken
//! through the driver's `unpark`; see `driver.rs`, `net/poller.rs`). The deadlock detector
//! starts its grace period when the last worker goes to sleep with nothing
//! pending.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

const RUNNING: u8 = 0;
const SLEEPING: u8 = 1;
const NOTIFIED: u8 = 2;
/// Asleep in the netpoller's `epoll_wait` (`net/poller.rs`): woken through
/// the mio `Waker`, not the condition variable.
const POLLING: u8 = 3;

/// Where one worker sleeps.
#[derive(Debug, Default)]
pub(crate) struct Parker {
    /// RUNNING, SLEEPING or NOTIFIED.
    state: AtomicU8,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Parker {
    /// Announces that the worker is about to sleep. The caller must re-check
    /// its queues after this and call `cancel_sleep` if it found work.
    pub(crate) fn prepare_sleep(&self) {
        // SeqCst: rule 3, pairs with the fence in `unpark_if_sleeping`.
        self.state.store(SLEEPING, Ordering::SeqCst);
    }

    pub(crate) fn cancel_sleep(&self) {
        self.state.store(RUNNING, Ordering::SeqCst);
    }

    /// Blocks in the netpoller until an event, `unpark` or `deadline`, if
    /// this worker can become the poller; returns false (without sleeping)
    /// if it cannot. Call after `prepare_sleep` and the re-check.
    /// `poll(timeout, enter)` is the driver's blocking poll: it calls
    /// `enter` with its poll lock held and blocks only if that returns true;
    /// it returns whether it polled.
    pub(crate) fn sleep_polling(
        &self,
        deadline: Option<Instant>,
        poll: impl FnOnce(Option<std::time::Duration>, &dyn Fn() -> bool) -> bool,
    ) -> bool {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        // Entered with the poll lock held: SLEEPING -> POLLING, unless an
        // `unpark` already made it NOTIFIED (then do not block at all).
        let enter = || self.state.compare_exchange(SLEEPING, POLLING, Ordering::SeqCst, Ordering::SeqCst).is_ok();
        let polled = poll(timeout, &enter);
        if polled || self.state.load(Ordering::SeqCst) != SLEEPING {
            self.state.store(RUNNING, Ordering::SeqCst);
            true
        } else {
            false
        }
    }

    /// Blocks until `unpark` or `deadline`.
    pub(crate) fn sleep(&self, deadline: Option<Instant>) {
        let mut g = self.lock.lock();
        while self.state.load(Ordering::SeqCst) == SLEEPING {
            match deadline {
                Some(d) => {
                    if self.cv.wait_until(&mut g, d).timed_out() {
                        break;
                    }
                }
                None => self.cv.wait(&mut g),
            }
        }
        self.state.store(RUNNING, Ordering::SeqCst);
    }

    /// Wakes the worker if it sleeps (or is about to). Returns whether it did.
    ///
    /// A loop over the state, not one try per sleeping kind: the sleeper
    /// may move SLEEPING -> POLLING (it became the netpoller) between our
    /// look and our CAS, and a wake lost then would leave it blocked in
    /// `epoll_wait` with work queued for it.
    pub(crate) fn unpark(&self) -> bool {
        let mut s = self.state.load(Ordering::SeqCst);
        loop {
            let now = match s {
                POLLING => match self.state.compare_exchange(POLLING, NOTIFIED, Ordering::SeqCst, Ordering::SeqCst) {
                    Ok(_) => {
                        super::driver::get().unpark();
                        return true;
                    }
                    Err(now) => now,
                },
                SLEEPING => match self.state.compare_exchange(SLEEPING, NOTIFIED, Ordering::SeqCst, Ordering::SeqCst) {
                    Ok(_) => {
                        // Lock so the notify cannot fall between the
                        // sleeper's check and its wait.
                        let _g = self.lock.lock();
                        self.cv.notify_one();
                        return true;
                    }
                    Err(now) => now,
                },
                _ => return false, // running, or already notified
            };
            s = now;
        }
    }

    /// Whether the worker is asleep (on its condition variable or in the
    /// poller), for the monitor's backstop.
    pub(crate) fn is_asleep(&self) -> bool {
        matches!(self.state.load(Ordering::SeqCst), SLEEPING | POLLING)
    }

    /// Rule 3, producer side: call after publishing work for this worker.
    pub(crate) fn unpark_if_sleeping(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        if matches!(self.state.load(Ordering::Relaxed), SLEEPING | POLLING) {
            self.unpark();
        }
    }
}

/// The runtime's idle bookkeeping.
#[derive(Debug)]
pub(crate) struct Idle {
    /// Workers `0..primaries` take new work (rule 5).
    pub(crate) primaries: usize,
    /// Workers searching for work (rule 1).
    pub(crate) num_searching: AtomicUsize,
    /// Workers asleep or about to sleep.
    pub(crate) num_sleeping: AtomicUsize,
    /// Indexes of sleeping workers, most recent last.
    pub(crate) sleepers: Mutex<Vec<usize>>,
}

impl Idle {
    /// `workers` workers, of which as many as the process has cores are
    /// primaries (rule 5).
    pub(crate) fn new(workers: usize) -> Idle {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Idle::with_primaries(workers.min(cores).max(1))
    }

    pub(crate) fn with_primaries(primaries: usize) -> Idle {
        Idle {
            primaries,
            num_searching: AtomicUsize::new(0),
            num_sleeping: AtomicUsize::new(0),
            sleepers: Mutex::new(Vec::new()),
        }
    }

    /// Whether worker `index` is a primary (rule 5).
    #[inline]
    pub(crate) fn is_primary(&self, index: usize) -> bool {
        index < self.primaries
    }

    /// Try to become a searcher; false if half the primaries already search.
    pub(crate) fn try_search(&self) -> bool {
        let n = self.num_searching.load(Ordering::SeqCst);
        if 2 * n >= self.primaries.max(2) {
            return false;
        }
        self.num_searching.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Stop searching; returns true if this was the last searcher.
    pub(crate) fn end_search(&self) -> bool {
        self.num_searching.fetch_sub(1, Ordering::SeqCst) == 1
    }

    /// Registers `index` as a sleeper (call before the final re-check).
    pub(crate) fn add_sleeper(&self, index: usize) -> usize {
        let mut s = self.sleepers.lock();
        s.push(index);
        // SeqCst: rule 3.
        self.num_sleeping.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Removes `index` from the sleepers, if a waker has not already.
    pub(crate) fn remove_sleeper(&self, index: usize) {
        let mut s = self.sleepers.lock();
        if let Some(pos) = s.iter().position(|&i| i == index) {
            s.swap_remove(pos);
            self.num_sleeping.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Takes one sleeping primary to wake (rules 2 and 5), if nobody
    /// searches.
    pub(crate) fn pop_sleeper_for_work(&self) -> Option<usize> {
        // SeqCst fence: rule 3, producer side; the work is already published.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.num_searching.load(Ordering::Relaxed) != 0 || self.num_sleeping.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.pop_sleeper(|i| self.is_primary(i))
    }

    /// Takes a sleeping spare for the monitor to call (rule 5): a primary
    /// is held by one coroutine while work waits.
    pub(crate) fn call_spare(&self) -> Option<usize> {
        if self.num_sleeping.load(Ordering::SeqCst) == 0 {
            return None;
        }
        self.pop_sleeper(|i| !self.is_primary(i))
    }

    /// The most recent sleeper that `pick` accepts, taken off the list.
    fn pop_sleeper(&self, pick: impl Fn(usize) -> bool) -> Option<usize> {
        let mut s = self.sleepers.lock();
        let pos = s.iter().rposition(|&i| pick(i))?;
        let i = s.remove(pos);
        self.num_sleeping.fetch_sub(1, Ordering::SeqCst);
        Some(i)
    }

    /// All current sleepers (for shutdown and cancellation).
    pub(crate) fn take_all(&self) -> Vec<usize> {
        let mut s = self.sleepers.lock();
        let v: Vec<usize> = s.drain(..).collect();
        self.num_sleeping.fetch_sub(v.len(), Ordering::SeqCst);
        v
    }
}
