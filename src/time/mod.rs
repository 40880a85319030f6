//! Time: `sleep`, `after`, `tick`, [`Timer`], [`Ticker`] (Go's `time`).
//!
//! Owns: the timer driver for channel timers, and the Go 1.23 timer rules.
//!
//! Two engines:
//!  * **Wake timers** (`sleep` in a coroutine, every `*_timeout` and
//!    `default(d)`): a per-worker heap, touched only by its own worker
//!    (`sched/worker.rs`, no lock). A parked coroutine's entry is disarmed
//!    when it wakes for another reason; the idle worker sleeps exactly until
//!    its earliest live entry. Heaps are per worker because a coroutine
//!    never leaves its home worker, so arming and disarming never cross
//!    threads.
//!  * **Channel timers** (`after`, `tick`, `Timer`, `Ticker`): they may be
//!    created, stopped and reset from any thread, so they live in one
//!    driver heap behind a lock, served by a driver thread that sleeps until
//!    the earliest deadline. (A weakness: one lock for all channel timers;
//!    per-worker channel-timer heaps are the planned refinement.)
//!
//! Go 1.23 semantics: every arming of a timer gets a new `seq`; a firing
//! delivers only if its `seq` is still current, and `stop`/`reset` drain a
//! value already buffered, all under the timer's lock. So once `stop` or
//! `reset` returns, no value from the old deadline is received. Timer
//! channels have a buffer of one: a slow ticker reader sees dropped ticks,
//! never a backlog. A dropped `Timer`/`Ticker` is stopped; its heap entry is
//! discarded when it comes up.
//!
//! Durations too large for `Instant` (e.g. `Duration::MAX`) never fire.

#![deny(unsafe_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::diag::WaitReason;
use crate::{chan, Receiver, Sender, TrySendError};

/// Pauses the calling coroutine (or thread) for at least `d`.
///
/// In a coroutine only that coroutine parks; the worker runs others. A
/// duration too large to represent (e.g. `Duration::MAX`) sleeps forever.
///
/// ```
/// let t = std::time::Instant::now();
/// goro::run(|| goro::time::sleep(std::time::Duration::from_millis(5)));
/// assert!(t.elapsed() >= std::time::Duration::from_millis(5));
/// ```
pub fn sleep(d: Duration) {
    let deadline = Instant::now().checked_add(d);
    if crate::coroutine::current_id().is_none() {
        crate::park::note_thread();
        match deadline {
            Some(_) => std::thread::sleep(d),
            None => loop {
                std::thread::park();
            },
        }
        return;
    }
    // Forever is "very far away", so a forever-sleeper counts as waiting on
    // a timer (Go does not call that a deadlock either).
    let deadline = deadline.unwrap_or_else(far_future);
    while Instant::now() < deadline {
        crate::park::park_deadline(WaitReason::Sleep, Some(deadline));
    }
}

fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)).unwrap_or(now)
}

/// A channel that receives the current time once, after `d` (Go's
/// `time.After`).
pub fn after(d: Duration) -> Receiver<Instant> {
    // No handle: the driver's entry keeps the state alive until it fires.
    let (inner, rx) = new_inner(None);
    let mut st = inner.state.lock();
    arm(&inner, &mut st, d);
    drop(st);
    rx
}

/// A channel that receives the time every `d` (Go's `time.Tick`). Ticks
/// are dropped for slow readers. The ticker stops once every receiver is
/// dropped.
///
/// # Panics
///
/// `non-positive interval for NewTicker` if `d` is zero.
pub fn tick(d: Duration) -> Receiver<Instant> {
    assert!(!d.is_zero(), "non-positive interval for NewTicker");
    let (inner, rx) = new_inner(Some(d));
    let mut st = inner.state.lock();
    arm(&inner, &mut st, d);
    drop(st);
    rx
}

struct State {
    seq: u64,
    /// Armed: a firing with the current `seq` will deliver.
    active: bool,
    period: Option<Duration>,
}

struct TimerInner {
    state: Mutex<State>,
    tx: Sender<Instant>,
}

struct Entry {
    when: Instant,
    seq: u64,
    timer: Arc<TimerInner>,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.when == o.when
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.when.cmp(&o.when)
    }
}

struct Driver {
    heap: Mutex<BinaryHeap<Reverse<Entry>>>,
    cv: Condvar,
}

static PENDING: AtomicUsize = AtomicUsize::new(0);

/// Channel timers armed in the driver (the deadlock detector reads it).
pub(crate) fn driver_pending() -> usize {
    PENDING.load(Ordering::SeqCst)
}

fn driver() -> &'static Driver {
    static D: OnceLock<&'static Driver> = OnceLock::new();
    D.get_or_init(|| {
        let d: &'static Driver =
            Box::leak(Box::new(Driver { heap: Mutex::new(BinaryHeap::new()), cv: Condvar::new() }));
        std::thread::Builder::new()
            .name("goro-timers".into())
            .spawn(move || run_driver(d))
            .expect("goro: cannot start the timer thread");
        d
    })
}

fn run_driver(d: &'static Driver) {
    crate::park::mark_internal_thread();
    let mut h = d.heap.lock();
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        while h.peek().is_some_and(|e| e.0.when <= now) {
            due.push(h.pop().expect("peeked").0);
        }
        if !due.is_empty() {
            drop(h);
            for e in due {
                fire(e, now);
                PENDING.fetch_sub(1, Ordering::SeqCst);
            }
            h = d.heap.lock();
            continue;
        }
        match h.peek().map(|e| e.0.when) {
            Some(w) => {
                d.cv.wait_until(&mut h, w);
            }
            None => d.cv.wait(&mut h),
        }
    }
}

fn schedule(when: Instant, seq: u64, timer: Arc<TimerInner>) {
    let d = driver();
    PENDING.fetch_add(1, Ordering::SeqCst);
    let mut h = d.heap.lock();
    let earliest = h.peek().is_none_or(|e| when < e.0.when);
    h.push(Reverse(Entry { when, seq, timer }));
    drop(h);
    if earliest {
        d.cv.notify_one();
    }
}

fn fire(e: Entry, now: Instant) {
    let mut st = e.timer.state.lock();
    if st.seq != e.seq || !st.active {
        return; // stale: stopped or reset since
    }
    match e.timer.tx.try_send(now) {
        Ok(()) | Err(TrySendError::Full(_)) => {} // full: a slow reader drops this tick
        Err(TrySendError::Closed(_)) => {
            st.active = false; // nobody can receive any more
            return;
        }
    }
    match st.period {
        Some(p) => {
            // Next tick; skip ticks already missed (Go drops them too).
            let mut next = e.when + p;
            if next <= now {
                let behind = now.duration_since(e.when).as_nanos() / p.as_nanos().max(1);
                next = e.when + p * (behind as u32 + 1).max(1);
                if next <= now {
                    next = now + p;
                }
            }
            let seq = st.seq;
            drop(st);
            schedule(next, seq, e.timer.clone());
        }
        None => st.active = false,
    }
}

/// Go's `time.Timer`: one value on [`chan`](Timer::chan) after its deadline.
///
/// ```
/// use std::time::Duration;
/// let t = goro::time::Timer::new(Duration::from_millis(5));
/// assert!(t.chan().recv().is_ok());
/// assert!(!t.stop()); // already fired and received
/// ```
pub struct Timer {
    inner: Arc<TimerInner>,
    rx: Receiver<Instant>,
}

/// Go's `time.Ticker`: a value on [`chan`](Ticker::chan) every period.
pub struct Ticker {
    inner: Arc<TimerInner>,
    rx: Receiver<Instant>,
}

fn new_inner(period: Option<Duration>) -> (Arc<TimerInner>, Receiver<Instant>) {
    let (tx, rx) = chan(1);
    (Arc::new(TimerInner { state: Mutex::new(State { seq: 0, active: false, period }), tx }), rx)
}

/// Arms `inner` to fire after `d` (state locked by the caller).
fn arm(inner: &Arc<TimerInner>, st: &mut State, d: Duration) {
    crate::park::note_thread();
    st.seq += 1;
    st.active = true;
    // A deadline beyond `Instant`'s range never fires.
    if let Some(when) = Instant::now().checked_add(d) {
        schedule(when, st.seq, inner.clone());
    }
}

/// Disarms and drains a buffered stale value; was it armed or undelivered?
fn disarm(st: &mut State, rx: &Receiver<Instant>) -> bool {
    let was = st.active;
    st.active = false;
    st.seq += 1;
    let drained = rx.try_recv().is_ok();
    was || drained
}

impl Timer {
    /// A timer that fires once after `d` (a zero duration fires at once).
    pub fn new(d: Duration) -> Timer {
        let (inner, rx) = new_inner(None);
        {
            let mut st = inner.state.lock();
            arm(&inner, &mut st, d);
        }
        Timer { inner, rx }
    }

    /// The channel the time is delivered on.
    pub fn chan(&self) -> &Receiver<Instant> {
        &self.rx
    }

    /// Stops the timer. True if this call stopped it before its value was
    /// received (Go 1.23); false if it had already been stopped or its value
    /// was received. After it returns, no value from the old deadline is
    /// received.
    pub fn stop(&self) -> bool {
        let mut st = self.inner.state.lock();
        disarm(&mut st, &self.rx)
    }

    /// Re-arms the timer to fire after `d`; returns what `stop` would have.
    /// After it returns, no value from the old deadline is received.
    pub fn reset(&self, d: Duration) -> bool {
        let mut st = self.inner.state.lock();
        let was = disarm(&mut st, &self.rx);
        arm(&self.inner, &mut st, d);
        was
    }
}

impl Ticker {
    /// A ticker with period `d`.
    ///
    /// # Panics
    ///
    /// `non-positive interval for NewTicker` if `d` is zero.
    pub fn new(d: Duration) -> Ticker {
        assert!(!d.is_zero(), "non-positive interval for NewTicker");
        let (inner, rx) = new_inner(Some(d));
        {
            let mut st = inner.state.lock();
            arm(&inner, &mut st, d);
        }
        Ticker { inner, rx }
    }

    /// The channel ticks are delivered on.
    pub fn chan(&self) -> &Receiver<Instant> {
        &self.rx
    }

    /// Stops the ticker; no tick from before the call is received after it.
    pub fn stop(&self) {
        let mut st = self.inner.state.lock();
        disarm(&mut st, &self.rx);
    }

    /// Changes the period to `d` and restarts the ticker.
    ///
    /// # Panics
    ///
    /// `non-positive interval for NewTicker` if `d` is zero.
    pub fn reset(&self, d: Duration) {
        assert!(!d.is_zero(), "non-positive interval for NewTicker");
        let mut st = self.inner.state.lock();
        disarm(&mut st, &self.rx);
        st.period = Some(d);
        arm(&self.inner, &mut st, d);
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.inner.state.lock().active = false;
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.inner.state.lock().active = false;
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer").field("active", &self.inner.state.lock().active).finish()
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticker").field("period", &self.inner.state.lock().period).finish()
    }
}
