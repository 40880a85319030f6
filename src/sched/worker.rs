//! One worker thread: its run loop and local queues; it parks on the
//! driver (`driver.rs`: I/O and its timer heap, `time/heap.rs`).
//!
//! Pick order, each scheduling tick:
//!  1. every 61st tick: own inbox, then the runtime injector, then the oldest
//!     of its own deque (fairness: nothing waits forever behind a busy LIFO);
//!     every 8th tick: the newest of its own deque (spawned coroutines start
//!     soon even while started ones keep `runnext` and `ready` busy);
//!  2. `runnext`, unless it has won 16 times in a row (a ping-ponging pair
//!     must not starve the rest);
//!  3. `ready` (FIFO), then the LIFO `deque`, then `runnext`, then the inbox,
//!     then `yielded`;
//!  4. search: inbox, injector, steal half of a random victim's deque;
//!  5. sleep until woken or the next timer.
//!
//! Invariants:
//!  1. The deque and the injector hold only unstarted coroutines (started
//!     ones never move, whatever `migrate_started` says); runnable started ones live in
//!     `runnext`, `ready` or `yielded`. The inbox holds wake requests from
//!     other threads (a parked coroutine becomes runnable when its request
//!     is popped, `CoInner::accept_inbound`) and unstarted coroutines placed
//!     here by a saturated spawner (`push_new`), which the monitor moves to
//!     the injector if this worker is held by one coroutine
//!     (`monitor::rescue_unstarted`).
//!  2. No `RefCell` borrow is held across `resume`: the coroutine re-enters
//!     this worker (spawn, wake) while it runs.
//!  3. One queue entry per runnable coroutine: a queued coroutine is
//!     RUNNING or NOTIFIED, never PARKED or DONE (`run_co` aborts if it
//!     finds otherwise: the wake protocol would be broken).
//!
//! Published for the monitor (its long-run warning asks whether anything is
//! stuck behind the running coroutine): `WorkerShared::next_timer`, the
//! earliest live deadline, lowered as timers are armed and recomputed after
//! they fire (a disarmed early entry may leave it early until then: a
//! warning too many, never one too few). Runnable coroutines queued here
//! are seen through their park state instead (`runtime::work_stuck_behind`),
//! so the resume path pays nothing.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corosensei::CoroutineResult;
use crossbeam_deque::{Steal, Worker};

use super::driver::Driver;
use super::{Shared, WorkerShared};
use crate::coroutine::{CoInner, CoRef, Code, Resume, Suspend, DONE, F_CANCEL, F_MAIN, NEW, NOTIFIED, PARKED, RUNNING};

thread_local! {
    /// The worker this thread is, if any. Set for the whole life of a worker
    /// thread; points into that thread's stack frame of `run`.
    static WORKER: Cell<*const WorkerLocal> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` with this thread's worker context, if it is a worker.
#[inline]
pub(crate) fn with_worker<R>(f: impl FnOnce(&WorkerLocal) -> R) -> Option<R> {
    let p = WORKER.with(|w| w.get());
    if p.is_null() {
        None
    } else {
        // SAFETY: WORKER is set by `worker::run` to a WorkerLocal living on
        // this thread's stack for as long as the pointer is set, and only this
        // thread reads it.
        Some(f(unsafe { &*p }))
    }
}

/// Whether the started coroutine `co` can only run on this thread: its home
/// is this worker (started coroutines never move). While this thread runs
/// something else, such a coroutine is suspended and cannot finish (`park::Wakeup`), and this thread is the one
/// that moves its park state (coroutine.rs).
#[inline]
pub(crate) fn runs_here(co: &CoInner) -> bool {
    with_worker(|w| co.home.get().is_some_and(|h| std::ptr::eq(h, Arc::as_ptr(&w.shared)))).unwrap_or(false)
}

pub(crate) fn set_worker(p: *const WorkerLocal) {
    WORKER.with(|w| w.set(p));
}

/// The stack-overflow handler's view of the running coroutine
/// (`stack::overflow::LabelHook`): async-signal-safe, it reads this
/// thread's worker pointer and the running coroutine's control block.
fn running_label(f: &mut dyn FnMut(crate::stack::overflow::Running<'_>)) {
    if let Some(co) = super::current_ptr() {
        // SAFETY: the running coroutine's control block is kept alive by its
        // worker while it runs (it is running now: it faulted).
        let co = unsafe { &*co };
        f(crate::stack::overflow::Running { id: co.id, name: co.name.as_deref(), stack_size: co.stack_size });
    }
}

/// Every how many ticks the fairness pass runs (pick order step 1).
const FAIR_EVERY: u32 = 61;

/// How long a worker searches for work (pure spinning: a `yield` could
/// give the core away for milliseconds on a busy machine) before sleeping.
const SEARCH_FOR: std::time::Duration = std::time::Duration::from_micros(200);
/// How long a worker that may not search watches its own inbox before it
/// sleeps: a coroutine homed here, parked on a partner that runs on another
/// worker, is usually woken within microseconds, and a futex wake costs more.
const INBOX_WATCH: std::time::Duration = std::time::Duration::from_micros(100);

/// The worker-thread-only part of a worker.
pub(crate) struct WorkerLocal {
    pub(crate) shared: Arc<WorkerShared>,
    pub(crate) rt: Arc<Shared>,
    deque: Worker<CoRef>,
    runnext: Cell<Option<CoRef>>,
    ready: RefCell<VecDeque<CoRef>>,
    yielded: RefCell<VecDeque<CoRef>>,
    /// The running coroutine (null between coroutines).
    pub(crate) current: Cell<*const CoInner>,
    /// The reference to the running coroutine, moved here while it runs.
    pub(crate) current_arc: Cell<Option<CoRef>>,
    tick: Cell<u32>,
    /// Ticks left until the next fairness pass (pick order step 1).
    fair_in: Cell<u32>,
    streak: Cell<u32>,
    /// Timers are firing (`fire_timers`): wakes keep the order they are made.
    firing: Cell<bool>,
    rng: Cell<u64>,
    /// What this worker parks on (I/O and its timer heap; `driver.rs`).
    driver: &'static dyn Driver,
    /// Victims' resume counters at our last look (`victim_stuck`).
    seen_resumes: RefCell<Vec<(u64, Option<Instant>)>>,
    /// Victims' deque epochs at our first look, when, and their resumes
    /// plus spawns then (`victim_backlogged`).
    seen_backlog: RefCell<Vec<(u64, Option<Instant>, u64)>>,
    /// Whether our deque was empty at the last look (`deque_epoch`).
    deque_was_empty: Cell<bool>,
    /// How many coroutines homed here are suspended with `unwinding` set
    /// (std's per-thread panic count is theirs: `coroutine::unwinding_now`).
    pub(crate) suspended_unwinding: Cell<usize>,
    /// Since when this worker has had work without a break (`None`: it is
    /// searching or asleep); see `push_new`.
    busy_since: Cell<Option<Instant>>,
    /// A spare called by the monitor (idle.rs rule 5): it takes new work
    /// until it next runs dry. Always true on a primary.
    takes_new: Cell<bool>,
    /// Swapping parked stacks (`sweep`): after how long, when next, the
    /// resume count at the last sweep, and whether it left coroutines seen
    /// parked for the first time (to look at again even if nothing ran).
    swap_after: Option<Duration>,
    next_sweep: Cell<Instant>,
    sweep_resumes: Cell<u64>,
    sweep_again: Cell<bool>,
}

/// The body of a worker thread.
pub(crate) fn run(shared: Arc<WorkerShared>, rt: Arc<Shared>, deque: Worker<CoRef>) {
    let swap_after = rt.config.swap_parked_after;
    let _ = shared.thread.set(std::thread::current().id());
    let local = WorkerLocal {
        rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ (shared.index as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D)),
        shared,
        rt,
        deque,
        runnext: Cell::new(None),
        ready: RefCell::new(VecDeque::new()),
        yielded: RefCell::new(VecDeque::new()),
        current: Cell::new(std::ptr::null()),
        current_arc: Cell::new(None),
        tick: Cell::new(0),
        fair_in: Cell::new(FAIR_EVERY),
        streak: Cell::new(0),
        firing: Cell::new(false),
        driver: super::driver::get(),
        seen_resumes: RefCell::new(Vec::new()),
        seen_backlog: RefCell::new(Vec::new()),
        deque_was_empty: Cell::new(true),
        busy_since: Cell::new(None),
        suspended_unwinding: Cell::new(0),
        takes_new: Cell::new(false),
        swap_after,
        next_sweep: Cell::new(Instant::now()),
        sweep_resumes: Cell::new(u64::MAX),
        sweep_again: Cell::new(false),
    };
    local.takes_new.set(local.is_primary());
    super::set_worker(&local);
    crate::park::mark_internal_thread();
    // Timer slack: Linux rounds a sleeping thread's timeout up by 50 us by
    // default; a worker sleeps exactly until its next timer.
    #[cfg(goro_linux)]
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
    crate::stack::overflow::set_label_hook(running_label);
    crate::stack::worker_started();
    local.driver.worker_started(&local.shared);
    local.main_loop();
    local.driver.worker_exiting();
    super::set_worker(std::ptr::null());
    crate::stack::worker_exiting();
}

impl WorkerLocal {
    /// Idle.rs rule 5: primaries take new work; spares only when called.
    fn is_primary(&self) -> bool {
        self.rt.idle.is_primary(self.shared.index)
    }

    fn main_loop(&self) {
        loop {
            if self.tick.get() & 7 == 0 && self.driver.has_timers() {
                self.fire_timers();
            }
            if self.swap_after.is_some() && self.tick.get() & 63 == 0 {
                self.maybe_sweep();
            }
            if let Some(co) = self.next_local() {
                self.run_co(co);
                continue;
            }
            if self.driver.has_timers() {
                self.fire_timers();
                if let Some(co) = self.next_local() {
                    self.run_co(co);
                    continue;
                }
            }
            // Out of local work: ready sockets before stealing (Go's
            // findrunnable does the same).
            if self.driver.poll_now() {
                if let Some(co) = self.next_local() {
                    self.run_co(co);
                    continue;
                }
            }
            if let Some(co) = self.search() {
                self.run_co(co);
                continue;
            }
            if self.rt.shutdown.load(Ordering::Acquire) {
                return;
            }
            // Out of work: freed stacks' deferred give-back (stack
            // invariant 4), off the path of what runs next.
            crate::stack::flush_idle();
            self.sleep();
        }
    }

    fn next_rand(&self) -> u64 {
        let mut x = self.rng.get();
        let r = xorshift64star(&mut x);
        self.rng.set(x);
        r
    }

    #[inline]
    fn next_local(&self) -> Option<CoRef> {
        // The common tick, kept short: `runnext` (a coroutine just woken
        // here, e.g. the partner of a hand-off) on a tick with no periodic
        // duty (the 61st and 8th ticks of step 1 take the full path).
        let t = self.tick.get().wrapping_add(1);
        let streak = self.streak.get();
        if t & 7 != 0 && self.fair_in.get() > 1 && streak < 16 {
            // SAFETY: `runnext` is only touched on this thread, and no
            // reference into it is held across this read.
            if unsafe { (*self.runnext.as_ptr()).is_some() } {
                self.tick.set(t);
                self.fair_in.set(self.fair_in.get() - 1);
                self.streak.set(streak + 1);
                return self.runnext.take();
            }
        }
        self.next_local_slow()
    }

    #[inline(never)]
    fn next_local_slow(&self) -> Option<CoRef> {
        let co = self.next_local_inner();
        // A backlog ends whenever the deque is seen empty, however it emptied
        // (popped, the fairness pass, thieves): a new epoch. (Looked at on
        // this path only: at least every 8th tick, and whenever `runnext` is
        // empty.)
        let empty = self.deque.is_empty();
        if empty != self.deque_was_empty.get() {
            self.deque_was_empty.set(empty);
            if empty {
                bump(&self.shared.deque_epoch);
            }
        }
        co
    }

    fn next_local_inner(&self) -> Option<CoRef> {
        let t = self.tick.get().wrapping_add(1);
        self.tick.set(t);
        let fair_in = self.fair_in.get() - 1;
        self.fair_in.set(if fair_in == 0 { FAIR_EVERY } else { fair_in });
        if fair_in == 0 {
            if let Some(co) = self.poll_global() {
                return Some(co);
            }
        }
        // Every 8th tick an unstarted coroutine goes first: a busy worker
        // still starts what it spawned soon, rather than leaving it for a
        // thief while started coroutines take turns (`victim_backlogged`).
        if t.is_multiple_of(8) && !self.deque.is_empty() {
            if let Some(co) = self.deque.pop() {
                return Some(co);
            }
        }
        if self.streak.get() < 16 {
            if let Some(co) = self.runnext.take() {
                self.streak.set(self.streak.get() + 1);
                return Some(co);
            }
        }
        self.streak.set(0);
        if let Some(co) = self.ready.borrow_mut().pop_front() {
            return Some(co);
        }
        if !self.deque.is_empty() {
            if let Some(co) = self.deque.pop() {
                return Some(co);
            }
        }
        if let Some(co) = self.runnext.take() {
            return Some(co);
        }
        if let Some(co) = self.pop_inbox() {
            return Some(co);
        }
        self.yielded.borrow_mut().pop_front()
    }

    /// Fairness pass (pick order step 1).
    fn poll_global(&self) -> Option<CoRef> {
        // Rule 2 of net/poller.rs: a busy worker still polls I/O now and then.
        self.driver.poll_now();
        if let Some(co) = self.pop_inbox() {
            return Some(co);
        }
        if self.takes_new.get() {
            if let Some(co) = steal_one(&self.rt.injector) {
                return Some(co);
            }
        }
        steal_one(&self.shared.stealer)
    }

    /// Looks for work elsewhere (pick order step 4).
    fn search(&self) -> Option<CoRef> {
        if !self.takes_new.get() {
            // An uncalled spare (idle.rs rule 5): its own inbox only.
            return self.watch_inbox();
        }
        if !self.rt.idle.try_search() {
            // Not allowed to search (enough searchers): still watch our own
            // inbox a little before sleeping, so a coroutine homed here that
            // is woken from another worker an instant later (a ping-pong
            // across workers) does not cost a futex wake.
            if let Some(co) = self.steal_round() {
                return Some(co);
            }
            return self.watch_inbox();
        }
        let mut found = None;
        let start = Instant::now();
        let mut round = 0u32;
        self.busy_since.set(None);
        loop {
            if let Some(co) = self.steal_round() {
                found = Some(co);
                break;
            }
            if self.rt.shutdown.load(Ordering::Relaxed) {
                break;
            }
            round += 1;
            if round.is_multiple_of(8) {
                // Bounded by time, not rounds, and never past a due timer.
                let now = Instant::now();
                if now.duration_since(start) >= SEARCH_FOR || self.driver.next_deadline().is_some_and(|d| d <= now) {
                    break;
                }
            }
            for _ in 0..32 {
                std::hint::spin_loop();
            }
        }
        let last = self.rt.idle.end_search();
        if found.is_some() {
            self.busy_since.set(Some(Instant::now()));
        }
        if found.is_some() && last {
            // Rule 4 of idle.rs: keep a searcher around while work flows.
            if !self.deque.is_empty() || !self.rt.injector.is_empty() {
                self.rt.notify_work();
            }
        }
        found
    }

    /// Watches our own inbox a little before sleeping (`INBOX_WATCH`).
    fn watch_inbox(&self) -> Option<CoRef> {
        let start = Instant::now();
        loop {
            for _ in 0..64 {
                if !self.shared.inbox.is_empty() {
                    if let Some(co) = self.pop_inbox() {
                        return Some(co);
                    }
                }
                std::hint::spin_loop();
            }
            if start.elapsed() >= INBOX_WATCH
                || self.rt.shutdown.load(Ordering::Relaxed)
                || self.driver.next_deadline().is_some_and(|d| d <= Instant::now())
            {
                return None;
            }
        }
    }

    /// The next coroutine to run from this worker's inbox: unstarted ones
    /// placed here, and wake requests for coroutines homed here, which
    /// `accept_inbound` applies (a request for one not parked is used up
    /// as its token, and the next entry is looked at).
    fn pop_inbox(&self) -> Option<CoRef> {
        while let Some(co) = steal_one(&self.shared.inbox) {
            if let Some(co) = co.accept_inbound() {
                return Some(co);
            }
        }
        None
    }

    fn steal_round(&self) -> Option<CoRef> {
        if let Some(co) = self.pop_inbox() {
            return Some(co);
        }
        if !self.takes_new.get() {
            return None;
        }
        loop {
            match self.rt.injector.steal_batch_and_pop(&self.deque) {
                Steal::Success(co) => return Some(co),
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
        let ws = self.rt.workers();
        let n = ws.len();
        if n > 1 {
            let start = (self.next_rand() % n as u64) as usize;
            for i in 0..n {
                let v = (start + i) % n;
                if v == self.shared.index {
                    continue;
                }
                let ok = match ws[v].stealer.len() {
                    0 => false,
                    1 => self.victim_stuck(v),
                    _ => self.victim_backlogged(v),
                };
                if !ok {
                    continue;
                }
                loop {
                    match ws[v].stealer.steal_batch_and_pop(&self.deque) {
                        Steal::Success(co) => {
                            bump(&self.shared.steals);
                            return Some(co);
                        }
                        Steal::Retry => continue,
                        Steal::Empty => break,
                    }
                }
            }
        }
        None
    }

    /// Has victim `v`'s deque held unstarted coroutines, without a break,
    /// for at least `BACKLOG` (as far as we can tell: the same deque epoch
    /// since we first saw it, that long ago)? Then it has more than it starts
    /// soon, and thieves may take half. A burst of spawns that the victim
    /// starts at once (say producers and consumers spawned before a `wait`)
    /// stays on one worker: a started coroutine never moves, and
    /// communicating coroutines split across workers pay a cross-core
    /// hand-off per message where one worker pays a context switch. Spawn
    /// trees (skynet) keep a backlog and spread out after a few milliseconds.
    ///
    /// A victim that has neither resumed nor spawned anything since our
    /// first look is not busy: its thread is descheduled (or one coroutine
    /// holds it without spawning). Its backlog is taken only after
    /// `FROZEN`, longer than an OS time slice, so a worker preempted in the
    /// microseconds between a burst of spawns and their start does not lose
    /// them for good. A victim still spawning is busy (a spawn loop holds
    /// its worker until it ends or parks): its backlog, growing, is taken
    /// after `BACKLOG` like any other, so a loop spawning 10 000 coroutines
    /// shares them out while it runs instead of 20 ms later.
    fn victim_backlogged(&self, v: usize) -> bool {
        const BACKLOG: std::time::Duration = std::time::Duration::from_millis(3);
        const FROZEN: std::time::Duration = std::time::Duration::from_millis(20);
        let w = &self.rt.workers()[v];
        let ep = w.deque_epoch.load(Ordering::Relaxed);
        let activity = w.resumes.load(Ordering::Relaxed).wrapping_add(w.spawned.load(Ordering::Relaxed));
        let mut seen = self.seen_backlog.borrow_mut();
        if seen.len() <= v {
            seen.resize(v + 1, (u64::MAX, None, 0));
        }
        let e = &mut seen[v];
        if e.0 != ep {
            *e = (ep, Some(Instant::now()), activity);
            return false;
        }
        let wait = if activity != e.2 { BACKLOG } else { FROZEN };
        e.1.is_some_and(|t| t.elapsed() >= wait)
    }

    /// Has victim `v` been running one coroutine for at least `STUCK`?
    /// Then its last queued coroutine may be taken: nobody else will run it
    /// soon. (Shorter, and a spawn-then-park pair would be split across
    /// workers while the spawner is still, say, faulting in its stack.) See
    /// also `victim_backlogged`.
    fn victim_stuck(&self, v: usize) -> bool {
        const STUCK: std::time::Duration = std::time::Duration::from_millis(1);
        let w = &self.rt.workers()[v];
        let now = w.resumes.load(Ordering::Relaxed);
        let mut seen = self.seen_resumes.borrow_mut();
        if seen.len() <= v {
            seen.resize(v + 1, (u64::MAX, None));
        }
        let e = &mut seen[v];
        if e.0 == now && w.running.load(Ordering::Relaxed) != 0 {
            let since = *e.1.get_or_insert_with(Instant::now);
            since.elapsed() >= STUCK
        } else {
            *e = (now, None);
            false
        }
    }

    fn has_work_anywhere(&self) -> bool {
        // Local queues first: nothing should have landed there since the
        // loop found them empty, but a worker must never sleep on work of
        // its own.
        // SAFETY: `runnext` is only touched on this thread, and no
        // reference into it is held across this read.
        let runnext = unsafe { (*self.runnext.as_ptr()).is_some() };
        runnext
            || !self.ready.borrow().is_empty()
            || !self.yielded.borrow().is_empty()
            || !self.shared.inbox.is_empty()
            || !self.deque.is_empty()
            // Idle.rs rule 5: work we may not take is not ours to wait for.
            || (self.takes_new.get()
                && (!self.rt.injector.is_empty() || self.rt.workers().iter().any(|w| !w.stealer.is_empty())))
    }

    fn sleep(&self) {
        let idx = self.shared.index;
        let parker = &self.shared.parker;
        // A called spare ran dry: it is a spare again (idle.rs rule 5).
        if !self.is_primary() {
            self.takes_new.set(false);
        }
        parker.prepare_sleep();
        let n = self.rt.idle.add_sleeper(idx);
        if self.has_work_anywhere() || self.rt.shutdown.load(Ordering::SeqCst) {
            self.rt.idle.remove_sleeper(idx);
            parker.cancel_sleep();
            return;
        }
        let mut deadline = self.driver.next_deadline();
        // Parked coroutines not swapped out yet: wake for the next sweep.
        if self.swap_after.is_some() {
            self.maybe_sweep();
            if self.sweep_pending() {
                let at = self.next_sweep.get();
                deadline = Some(deadline.map_or(at, |d| d.min(at)));
            }
        }
        if n == self.rt.workers().len() && deadline.is_none() {
            self.rt.watch.all_idle(&self.rt);
        }
        // Rule 1 of net/poller.rs: if a coroutine waits on a socket, the
        // sleeper that can take the poller blocks in it.
        self.busy_since.set(None);
        // A spare does not take the poller (idle.rs rule 5): the poller
        // wakes what it finds, and from a spare every such wake would cross
        // to a primary's inbox. Busy primaries still poll (rule 2 of
        // net/poller.rs), and a primary that sleeps takes it.
        let slept = self.is_primary() && self.driver.park(parker, deadline);
        if !slept {
            parker.sleep(deadline);
        }
        self.rt.idle.remove_sleeper(idx);
        if !self.is_primary() && self.shared.called.swap(false, Ordering::AcqRel) {
            self.takes_new.set(true);
        }
        self.busy_since.set(Some(Instant::now()));
    }

    /// A coroutine spawned by the running one: on top of the LIFO deque, so
    /// it runs next here unless a thief takes it. Thieves take from a
    /// backlog only (`victim_backlogged`), and a victim's last item only if
    /// the victim looks stuck (Go's `runnext` rule), so a spawn-then-wait
    /// pair, or a set spawned before a wait, stays on one worker.
    pub(crate) fn push_new(&self, co: CoRef) {
        bump(&self.shared.spawned);
        if let Some(w) = self.io_lighter_worker().or_else(|| self.lighter_worker()) {
            bump(&self.shared.placed_away);
            w.inbox.push(co);
            w.parker.unpark_if_sleeping();
            return;
        }
        self.deque.push(co);
        // A lone queued coroutine is not stealable (see `victim_stuck`); one
        // stuck behind a busy coroutine is handed out by the monitor. Two or
        // more wake a searcher, which takes them once they are a backlog.
        if self.deque.len() >= 2 {
            self.rt.notify_work();
        }
    }

    /// Where a new coroutine should start instead of here: a worker doing
    /// less (under 9/10 of our resumes in the monitor's last window)
    /// while this one has been busy without a break for `SATURATED` and has
    /// no backlog of its own (a backlog is the thieves' business).
    ///
    /// This is how a pipeline grown one stage at a time by one spawner (the
    /// prime sieve: main spawns each new filter, which starts at once, so
    /// there is never anything to steal) spreads over the workers: stages
    /// spawned while another worker has room start there, and the chain
    /// crosses between workers at a few points. A started coroutine still
    /// never moves; only where a new one starts is chosen.
    fn lighter_worker(&self) -> Option<&Arc<WorkerShared>> {
        const SATURATED: std::time::Duration = std::time::Duration::from_millis(1);
        // A backlog here is the thieves' business (spawn trees), and a
        // quiet worker has no reason to give work away.
        if !self.deque.is_empty() {
            return None;
        }
        let mine = self.shared.load.load(Ordering::Relaxed);
        if mine < 1000 {
            return None;
        }
        let (w, theirs) = self
            .rt
            .workers()
            .iter()
            .filter(|w| self.may_place_on(w))
            .map(|w| (w, w.load.load(Ordering::Relaxed)))
            .min_by_key(|&(_, load)| load)?;
        if theirs * 10 >= mine * 9 {
            return None;
        }
        if self.busy_since.get().is_none_or(|t| t.elapsed() < SATURATED) {
            return None;
        }
        Some(w)
    }

    /// Whether a new coroutine spawned here may be placed on `w` (both
    /// placement rules): another worker, a primary (idle.rs rule 5), and not
    /// held by one coroutine (`held`: it could not start it).
    fn may_place_on(&self, w: &WorkerShared) -> bool {
        w.index != self.shared.index && self.rt.idle.is_primary(w.index) && !w.held.load(Ordering::Relaxed)
    }

    /// Where a new coroutine should start instead of here when this worker
    /// serves many connections: a primary with fewer coroutines parked on
    /// sockets or waiting to start, if this worker has clearly more (over
    /// 5/4 of theirs, plus a margin).
    ///
    /// A server's accept loop spawns each connection's coroutine, which
    /// starts on the loop's worker (nothing is left to steal: the loop
    /// parks in `accept` and the new one runs at once), and then lives
    /// there: every connection piled onto one worker while the others
    /// idled (`echo` took 1.2-1.6 s instead of 0.8 when `main`'s clients
    /// and the accept loop shared a worker; `tests/placement.rs`). A
    /// program with no socket waits (`io_waiting` 0 here) pays one load.
    ///
    /// Up to 4 primaries it compares them all; beyond, two picked at random
    /// (the "power of two choices", which balances nearly as well): each
    /// look reads three lines another core writes, and a 64-worker scan per
    /// accepted connection would cost microseconds.
    fn io_lighter_worker(&self) -> Option<&Arc<WorkerShared>> {
        const MANY: usize = 16;
        let waiting = self.shared.io_waiting.load(Ordering::Relaxed);
        if waiting < MANY {
            return None;
        }
        let mine = waiting + self.deque.len();
        // Only primaries (`0..primaries`) may receive it: draw among them.
        let ws = self.rt.workers();
        let n = self.rt.idle.primaries.min(ws.len());
        let load = |i: usize| {
            let w = &ws[i];
            self.may_place_on(w).then(|| w.io_waiting.load(Ordering::Relaxed) + w.stealer.len() + w.inbox.len())
        };
        let (i, theirs) = lighter_of(n, self.shared.index, || self.next_rand(), load)?;
        (theirs + theirs / 4 + MANY / 2 < mine).then_some(&ws[i])
    }

    /// Fires this worker's due timers. The coroutines they wake (sleepers,
    /// receivers of timer channels) run in deadline order, the order the
    /// heap fires them: the first takes `runnext` if it is free, the others
    /// queue behind it (`displaced`). Each taking `runnext` in turn, each
    /// wake pushed the one before back, and the last deadline ran first
    /// (three sleeps due together while a coroutine held the worker ran
    /// 30, 10, 20 ms; `tests/time.rs`).
    fn fire_timers(&self) {
        self.firing.set(true);
        self.driver.fire_timers();
        self.firing.set(false);
    }

    /// A started coroutine homed here was woken on this thread: it runs next
    /// (or, woken by a timer while another waits to run next, after those
    /// woken before it: `fire_timers`).
    #[inline]
    pub(crate) fn push_woken_here(&self, co: CoRef) {
        if let Some(old) = self.runnext.replace(Some(co)) {
            self.displaced(old);
        }
    }

    /// `old` was to run next, and a new wake took its place.
    fn displaced(&self, old: CoRef) {
        if self.firing.get() {
            // Timers fire in deadline order: the earlier wake keeps its
            // place, the new one queues behind.
            if let Some(new) = self.runnext.replace(Some(old)) {
                self.ready.borrow_mut().push_back(new);
            }
            return;
        }
        self.demote(old);
    }

    fn demote(&self, co: CoRef) {
        if co.state.load(Ordering::Relaxed) == NEW {
            self.deque.push(co);
            self.rt.notify_work();
        } else {
            self.ready.borrow_mut().push_back(co);
        }
    }

    /// A coroutine's first resume: it becomes homed here, and its body is
    /// built if its stack is fresh. Returns how to resume it.
    #[cold]
    fn start_co(&self, co: &CoRef) -> Resume {
        co.state.store(RUNNING, Ordering::Relaxed);
        co.home.set(self.shared.clone());
        // Pairs with the fence in `JoinHandle::cancel` (Dekker): either
        // the canceller sees the home and wakes through it, or we see its
        // flag just below.
        std::sync::atomic::fence(Ordering::SeqCst);
        let key = self.shared.registry.lock().insert(co.clone());
        co.reg_key.set(key);
        let cancel = co.flags.load(Ordering::Acquire) & F_CANCEL != 0 || self.rt.cancelling.load(Ordering::Acquire);
        let mut resume = if cancel { Resume::Cancel } else { Resume::Run };
        // SAFETY: coroutine.rs invariant 1: we hold its queue entry, so no
        // other thread touches its `code`.
        let code = unsafe { &mut *co.code.get() };
        if let Some(st) = code.take_start() {
            let (body, guarded) = st.into_body();
            if let Err(e) = guarded {
                eprintln!("goro: coroutine {}: {e}", co.label());
                resume = Resume::NoGuard;
            }
            *code = Code::Body(body);
        }
        resume
    }

    fn run_co(&self, co: CoRef) {
        let state = co.state.load(Ordering::Relaxed);
        // A queue entry is RUNNING (or NOTIFIED: woken again since). A
        // parked or finished one means two entries for one coroutine: a
        // broken wake protocol, caught here before it resumes anything.
        if state == PARKED || state == DONE {
            fatal_queued_twice(&co, state);
        }
        let resume = if state == NEW {
            self.start_co(&co)
        } else if co.flags.load(Ordering::Acquire) & F_CANCEL != 0 {
            Resume::Cancel
        } else {
            Resume::Run
        };
        if co.unwinding.get() {
            self.suspended_unwinding.set(self.suspended_unwinding.get() - 1);
        }
        // Only this worker's sweep swaps its coroutines out, and it sweeps
        // only with `swap_after` set: skip the take (a store) otherwise.
        if self.swap_after.is_some() {
            if let Some(s) = co.swapped.take() {
                back_off(&co);
                self.swap_in(s);
            }
        }
        self.shared.running.store(co.id, Ordering::Relaxed);
        bump(&self.shared.resumes);
        let code = co.code.get();
        self.current.set(CoRef::as_ptr(&co));
        self.current_arc.set(Some(co));
        // SAFETY: coroutine.rs invariant 1: we hold its queue entry (or are
        // its home), so no other thread touches its code; the code is a
        // `Body` from the first resume until `finish` takes it, and a
        // finished coroutine is never queued.
        let Code::Body(body) = (unsafe { &mut *code }) else { panic!("goro bug: resumed a finished coroutine") };
        let r = body.resume(resume);
        let co = self.current_arc.take().expect("goro bug: lost the running coroutine");
        self.current.set(std::ptr::null());
        self.shared.running.store(0, Ordering::Relaxed);
        if co.unwinding.get() && matches!(r, CoroutineResult::Yield(_)) {
            self.suspended_unwinding.set(self.suspended_unwinding.get() + 1);
        }
        match r {
            CoroutineResult::Yield(Suspend::Park) => {
                // Only this (home) thread writes a started coroutine's state
                // (coroutine.rs): plain loads and stores.
                let parked = co.state.load(Ordering::Relaxed) != NOTIFIED;
                if parked {
                    co.state.store(PARKED, Ordering::Relaxed);
                }
                if parked {
                    // Our reference becomes the parked count: whoever takes
                    // the state out of PARKED queues it (coroutine.rs).
                    std::mem::forget(co);
                } else {
                    // A wake came while it ran (NOTIFIED): it goes on at once.
                    co.state.store(RUNNING, Ordering::Relaxed);
                    self.ready.borrow_mut().push_back(co);
                }
            }
            CoroutineResult::Yield(Suspend::Yield) => self.yielded.borrow_mut().push_back(co),
            CoroutineResult::Return(()) => self.finish(co),
        }
    }

    /// Brings back the stack of the coroutine about to run, and with it
    /// those of the next ones queued here that are swapped out too, so that
    /// stacks in adjacent slots share a closed window (`stack/swap.rs`
    /// note 8: after a mass wake each restore took its own, and the two
    /// `mprotect`s of each were most of the time).
    #[cold]
    fn swap_in(&self, first: crate::stack::swap::Swapped) {
        /// Looked at, and brought back, at most: what a wake-up queued here
        /// next, run soon anyway.
        const AHEAD: usize = 64;
        // Wake requests from other workers wait in the inbox: queue them
        // (in their order) so that they are looked at too.
        for _ in 0..AHEAD {
            let Some(co) = self.pop_inbox() else { break };
            self.demote(co);
        }
        let ready = self.ready.borrow();
        let mut list = vec![first];
        // `swapped` is a home-only Cell, and every coroutine in `ready` is
        // homed here and not running; taking it means it is back when it runs.
        list.extend(ready.iter().take(AHEAD).filter_map(|co| {
            let s = co.swapped.take()?;
            back_off(co);
            Some(s)
        }));
        drop(ready);
        crate::stack::swap::swap_in_all(&mut list);
    }

    fn finish(&self, co: CoRef) {
        // SAFETY: as in run_co; the coroutine has returned, we are its home.
        let code = unsafe { std::mem::replace(&mut *co.code.get(), Code::Done) };
        drop(code); // frees the stack to this thread's cache
        if let Some(home) = co.home.get() {
            home.registry.lock().remove(co.reg_key.get());
        }
        // Release: publishes the Packet's result to `join`.
        co.state.store(DONE, Ordering::Release);
        let joiner = co.joiner.lock().take();
        if let Some(w) = joiner {
            w.wake();
        }
        self.rt.coroutine_finished(&co);
    }

    /// Runs a sweep if one is due (`swap_after` is set).
    #[inline(never)]
    fn maybe_sweep(&self) {
        let now = Instant::now();
        if now < self.next_sweep.get() {
            return;
        }
        let Some(after) = self.swap_after else { return };
        self.next_sweep.set(now + after);
        if !self.sweep_pending() {
            return; // nothing ran and nobody is waiting for a second look
        }
        self.sweep_resumes.set(self.shared.resumes.load(Ordering::Relaxed));
        self.sweep_again.set(self.sweep());
    }

    /// Something ran since the last sweep, or it saw coroutines parked for
    /// the first time: the next sweep has work.
    fn sweep_pending(&self) -> bool {
        self.sweep_again.get() || self.shared.resumes.load(Ordering::Relaxed) != self.sweep_resumes.get()
    }

    /// Swaps out the stacks of this worker's coroutines parked since the
    /// last sweep (`stack/swap.rs`): a coroutine parked at both of two
    /// sweeps `swap_after` apart, without a resume between (its `parks`
    /// count unchanged), in a wait that lends its stack to no one. Home
    /// thread, between resumes: none of them can run meanwhile. Returns
    /// whether some were seen parked for the first time.
    #[cold]
    fn sweep(&self) -> bool {
        const CHUNK: usize = 1024;
        let mut again = false;
        let mut batch: Vec<CoRef> = Vec::new();
        let mut from = 0;
        loop {
            let end = {
                let reg = self.shared.registry.lock();
                let end = (from + CHUNK).min(reg.key_bound());
                for k in from..end {
                    let Some(co) = reg.get(k) else { continue };
                    // Only this (home) thread writes a started coroutine's state.
                    if co.state.load(Ordering::Relaxed) != PARKED || co.no_swap.get() != 0 {
                        continue;
                    }
                    // `swapped` and the counts are home-only Cells.
                    let mut n = co.swap_counts.get();
                    if co.swapped.get().is_some() {
                        n.out = n.out.saturating_add(1);
                        co.swap_counts.set(n);
                        continue;
                    }
                    if co.has_flag(F_MAIN) {
                        continue;
                    }
                    if co.sweep_seen.get() != co.parks.get() {
                        co.sweep_seen.set(co.parks.get());
                        n.seen = 0;
                        co.swap_counts.set(n);
                        again = true;
                        continue;
                    }
                    // Seen parked by a second sweep at least: out, unless
                    // its backoff asks for more of them (`swap_in`).
                    n.seen = n.seen.saturating_add(1);
                    co.swap_counts.set(n);
                    if u32::from(n.seen) < 1 << n.backoff {
                        again = true;
                        continue;
                    }
                    if swappable(&co.wait.get()) {
                        batch.push(co.clone());
                    }
                }
                if end == reg.key_bound() {
                    usize::MAX
                } else {
                    end
                }
            };
            // Still parked: nothing ran on this thread since the check.
            // One call, so that adjacent stacks share a window (swap.rs
            // note 6).
            let sps: Vec<usize> = batch.iter().map(|co| co.sp_at_park.get()).collect();
            let mut out = vec![None; batch.len()];
            crate::stack::swap::swap_out(&sps, &mut out);
            for (co, s) in batch.drain(..).zip(out) {
                if s.is_some() {
                    co.swapped.set(s);
                }
            }
            if end == usize::MAX {
                return again;
            }
            from = end;
        }
    }

    /// Arms a wake of the running coroutine at `at` (park_deadline), on
    /// this worker's timer heap (`time/heap.rs`, through the driver).
    pub(crate) fn add_wake_timer(&self, at: Instant, _co: &CoInner) {
        // SAFETY: only this thread reads `current_arc`.
        let Some(co) = (unsafe { &*self.current_arc.as_ptr() }).clone() else { return };
        self.driver.add_wake_timer(at, co);
    }

    pub(crate) fn disarm_wake_timer(&self, co: &CoInner) {
        self.driver.disarm_wake_timer(co);
    }
}

/// Waits whose stack no one but goro's own (fault-tolerant) wakers touches:
/// a coroutine parked in one may be swapped out (`stack/swap.rs`, note 4).
/// Not `blocking` (the pool thread may be handed stack memory), `block_on`
/// (foreign wakers), or anything unnamed.
fn swappable(r: &crate::wait::WaitReason) -> bool {
    use crate::wait::WaitReason as W;
    matches!(
        r,
        W::Recv { .. }
            | W::Send { .. }
            | W::Select { .. }
            | W::Join { .. }
            | W::WaitGroup { .. }
            | W::MutexLock { .. }
            | W::RwLockRead { .. }
            | W::RwLockWrite { .. }
            | W::Semaphore
            | W::Once
            | W::Sleep
            | W::Io { .. }
    )
}

/// A swapped coroutine is about to be resumed (home thread): if fewer than
/// four sweeps saw its stack out, it came back within a few periods of
/// going out, and a round trip (two windows, copies, a TLB shoot-down each)
/// bought little, so it waits twice as many sweeps before it goes out
/// again (up to 32). One that stayed out for 16 sweeps or more starts again
/// from the rule of two. Without this, `GORO_SWAP_PARKED_MS=1` on a
/// prime-sieve chain of 700 coroutines, each parked a few milliseconds at a
/// time, spent its time swapping: 50 ms, or up to 9 s once the swapping
/// began (it slows the chain, so its parks grow longer, so more of them go
/// out).
fn back_off(co: &CoInner) {
    let mut n = co.swap_counts.get();
    if n.out < 4 {
        n.backoff = (n.backoff + 1).min(5);
    } else if n.out >= 16 {
        n.backoff = 0;
    }
    n.out = 0;
    co.swap_counts.set(n);
}

/// A queue held a coroutine that is parked or finished: the wake protocol
/// is broken (a goro bug). Resuming it could run one coroutine twice at
/// once, so the process stops here, as Go's runtime `throw`s.
#[cold]
#[inline(never)]
fn fatal_queued_twice(co: &CoInner, state: u8) -> ! {
    eprintln!("goro bug: coroutine {} was queued while parked or finished (state {state}); aborting", co.label());
    std::process::abort()
}

/// Of workers `0..n` other than `me`, the one with the lowest `load` and
/// that load: among all of them up to 4, else among two drawn with `rand`
/// (`io_lighter_worker`). A `load` of `None` rules a worker out.
fn lighter_of(
    n: usize,
    me: usize,
    mut rand: impl FnMut() -> u64,
    load: impl Fn(usize) -> Option<usize>,
) -> Option<(usize, usize)> {
    const SCAN_ALL: usize = 4;
    let tries = if n <= SCAN_ALL { n } else { 2 };
    let mut best: Option<(usize, usize)> = None;
    for k in 0..tries {
        let i = if n <= SCAN_ALL { k } else { (rand() % n as u64) as usize };
        if i == me {
            continue;
        }
        let Some(l) = load(i) else { continue };
        if best.is_none_or(|(_, b)| l < b) {
            best = Some((i, l));
        }
    }
    best
}

/// Adds `d` (`usize::MAX`: takes 1) to a count only this worker writes,
/// as `bump` does.
#[inline]
pub(crate) fn add(c: &std::sync::atomic::AtomicUsize, d: usize) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(d), Ordering::Relaxed);
}

/// xorshift64*: advances the state `x` and returns the next number.
fn xorshift64star(x: &mut u64) -> u64 {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Increments a counter only this worker writes: a plain load and store (no
/// locked read-modify-write on the hot path). Readers only need a recent value.
#[inline]
pub(crate) fn bump(c: &std::sync::atomic::AtomicU64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

fn steal_one<S: StealOne>(s: &S) -> Option<CoRef> {
    // `is_empty` is plain loads; `steal` on an empty queue costs a SeqCst fence.
    if s.is_empty() {
        return None;
    }
    loop {
        match s.steal_one() {
            Steal::Success(co) => return Some(co),
            Steal::Retry => continue,
            Steal::Empty => return None,
        }
    }
}

trait StealOne {
    fn steal_one(&self) -> Steal<CoRef>;
    fn is_empty(&self) -> bool;
}
impl StealOne for crossbeam_deque::Injector<CoRef> {
    fn steal_one(&self) -> Steal<CoRef> {
        self.steal()
    }
    fn is_empty(&self) -> bool {
        crossbeam_deque::Injector::is_empty(self)
    }
}
impl StealOne for crossbeam_deque::Stealer<CoRef> {
    fn steal_one(&self) -> Steal<CoRef> {
        self.steal()
    }
    fn is_empty(&self) -> bool {
        crossbeam_deque::Stealer::is_empty(self)
    }
}

#[allow(dead_code)]
fn _unused(_: u8) -> u8 {
    PARKED
}

#[cfg(test)]
mod tests {
    use super::{lighter_of, xorshift64star};

    /// Up to 4 workers: the least loaded other one, exactly; never `me`.
    #[test]
    fn few_workers_are_all_compared() {
        let loads = [Some(5), Some(0), Some(7), Some(3)];
        assert_eq!(lighter_of(4, 1, || unreachable!(), |i| loads[i]), Some((3, 3)));
        assert_eq!(lighter_of(4, 3, || unreachable!(), |i| loads[i]), Some((1, 0)));
        assert_eq!(lighter_of(1, 0, || unreachable!(), |i| loads[i]), None);
        // A held worker (`None`) is never picked, however light.
        let loads = [Some(5), None, Some(7), None];
        assert_eq!(lighter_of(4, 0, || unreachable!(), |i| loads[i]), Some((2, 7)));
        assert_eq!(lighter_of(2, 0, || unreachable!(), |i| loads[i]), None);
    }

    /// Beyond 4: two draws, the lighter of them, never `me`; over many
    /// calls a lone idle worker among 64 busy ones is found about as often
    /// as two draws find it (1 - (63/64)^2, about 3 %).
    #[test]
    fn many_workers_are_sampled_two_at_a_time() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut rand = || xorshift64star(&mut x);
        let load = |i: usize| Some(if i == 17 { 0 } else { 100 + i });
        let (mut found, mut calls) = (0, 0);
        for _ in 0..20_000 {
            if let Some((i, l)) = lighter_of(64, 5, &mut rand, load) {
                calls += 1;
                assert_ne!(i, 5);
                assert_eq!(Some(l), load(i));
                found += usize::from(i == 17);
            }
        }
        assert!(calls > 19_900, "{calls}");
        let share = found as f64 / calls as f64;
        assert!((0.02..0.045).contains(&share), "the idle worker was picked {share:.3} of the time");
    }
}
