//! Time: `sleep`, `after`, `tick`, [`Timer`], [`Ticker`] (Go's `time`).
//!
//! Owns: channel timers (`ChanTimer`, their armed count, the fallback driver
//! thread for timers armed off the workers), and the Go 1.23 timer rules.
//! The per-worker heaps themselves live in `sched/worker.rs`.
//!
//! Two engines:
//!  * **Wake timers** (`sleep` in a coroutine, every `*_timeout` and
//!    `default(d)`): a per-worker heap, touched only by its own worker
//!    (`sched/worker.rs`, no lock). A parked coroutine's entry is disarmed
//!    when it wakes for another reason; the idle worker sleeps exactly until
//!    its earliest live entry. Heaps are per worker because a coroutine
//!    never leaves its home worker, so arming and disarming never cross
//!    threads.
//!  * **Channel timers** (`after`, `tick`, `Timer`, `Ticker`): an entry
//!    goes on the heap of the worker that arms it (creation, `reset`, a
//!    ticker's next tick), so arming from a coroutine takes no lock shared
//!    with other workers; only the timer's own small lock (stop/reset may
//!    come from any thread). Stopping never touches a heap: it bumps the
//!    timer's generation (`armed_seq`), and the stale entry is skipped when
//!    it comes up or compacted away when the heap has doubled. Timers armed
//!    on plain threads, and live ones left on an exiting worker, go to a
//!    fallback driver thread.
//!
//! Why per-worker heaps rather than a wheel: a coroutine never leaves its
//! home worker, so its wake timers are armed and disarmed by one thread
//! without atomics, insertion and removal of the earliest are O(log n) at
//! 100 000+ pending timers, and each idle worker sleeps exactly until its
//! own earliest deadline (in `epoll_wait` when it is the netpoller, see
//! `net/poller.rs`): no periodic tick, ~0% CPU while everything sleeps.
//! A busy worker fires its timers between coroutines (every 8th tick), so a
//! coroutine that never parks delays its worker's timers, as it would in
//! Go without preemption.
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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
#[track_caller]
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
#[track_caller]
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
    /// `state.seq` while armed, else 0: lets a worker skip a stale heap entry
    /// without taking the lock. Written only under `state`.
    armed_seq: AtomicU64,
    tx: Sender<Instant>,
}

/// A channel timer as a worker's heap holds it (`sched/worker.rs`).
pub(crate) struct ChanTimer(Arc<TimerInner>);

impl ChanTimer {
    /// The generation a heap entry must carry to be live (0: disarmed).
    #[inline]
    pub(crate) fn armed_seq(&self) -> u64 {
        self.0.armed_seq.load(Ordering::Acquire)
    }

    /// The entry `(when, seq)` came due at `now`.
    pub(crate) fn fire(self, when: Instant, seq: u64, now: Instant) {
        fire(Entry { when, seq, timer: self.0 }, now);
    }
}

/// Channel timers armed and not yet fired, stopped or dropped, in the whole
/// process (the deadlock detector reads it). Exact: it changes only with
/// `State::active`, under the timer's lock.
static ARMED: AtomicUsize = AtomicUsize::new(0);

/// Armed channel timers (see `ARMED`).
pub(crate) fn armed_chan_timers() -> usize {
    ARMED.load(Ordering::SeqCst)
}

fn set_active(inner: &TimerInner, st: &mut State, on: bool) {
    if st.active != on {
        if on {
            ARMED.fetch_add(1, Ordering::SeqCst);
        } else {
            ARMED.fetch_sub(1, Ordering::SeqCst);
        }
    }
    st.active = on;
    inner.armed_seq.store(if on { st.seq } else { 0 }, Ordering::Release);
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

/// The fallback engine for timers armed off the workers.
struct Driver {
    heap: Mutex<BinaryHeap<Reverse<Entry>>>,
    cv: Condvar,
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

/// Queues generation `seq` of `timer` to fire at `when`: on the calling
/// worker's own heap if there is one (no shared lock), else on the driver.
fn schedule(when: Instant, seq: u64, timer: Arc<TimerInner>) {
    let mut timer = Some(timer);
    crate::sched::with_worker(|w| w.add_chan_timer(when, seq, ChanTimer(timer.take().expect("once"))));
    if let Some(t) = timer {
        schedule_on_driver(when, seq, ChanTimer(t));
    }
}

/// Queues a timer on the driver thread (plain threads, exiting workers).
pub(crate) fn schedule_on_driver(when: Instant, seq: u64, timer: ChanTimer) {
    let d = driver();
    let mut h = d.heap.lock();
    let earliest = h.peek().is_none_or(|e| when < e.0.when);
    h.push(Reverse(Entry { when, seq, timer: timer.0 }));
    drop(h);
    if earliest {
        d.cv.notify_one();
    }
}

fn fire(e: Entry, now: Instant) {
    let inner = &*e.timer;
    let mut st = inner.state.lock();
    if st.seq != e.seq || !st.active {
        return; // stale: stopped or reset since
    }
    if st.period.is_none() {
        // A one-shot timer stops counting as armed before its value can be
        // received: whoever receives it then sees the count without it.
        set_active(inner, &mut st, false);
    }
    match inner.tx.try_send(now) {
        Ok(()) | Err(TrySendError::Full(_)) => {} // full: a slow reader drops this tick
        Err(TrySendError::Closed(_)) => {
            set_active(inner, &mut st, false); // nobody can receive any more
            return;
        }
    }
    // A one-shot timer was disarmed above; a ticker arms its next tick.
    if let Some(p) = st.period {
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
    let state = Mutex::new(State { seq: 0, active: false, period });
    (Arc::new(TimerInner { state, armed_seq: AtomicU64::new(0), tx }), rx)
}

/// Arms `inner` to fire after `d` (state locked by the caller).
fn arm(inner: &Arc<TimerInner>, st: &mut State, d: Duration) {
    crate::park::note_thread();
    st.seq += 1;
    set_active(inner, st, true);
    // A deadline beyond `Instant`'s range never fires.
    if let Some(when) = Instant::now().checked_add(d) {
        schedule(when, st.seq, inner.clone());
    }
}

/// Disarms and drains a buffered stale value; was it armed or undelivered?
fn disarm(inner: &TimerInner, st: &mut State, rx: &Receiver<Instant>) -> bool {
    let was = st.active;
    set_active(inner, st, false);
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
        disarm(&self.inner, &mut st, &self.rx)
    }

    /// Re-arms the timer to fire after `d`; returns what `stop` would have.
    /// After it returns, no value from the old deadline is received.
    pub fn reset(&self, d: Duration) -> bool {
        let mut st = self.inner.state.lock();
        let was = disarm(&self.inner, &mut st, &self.rx);
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
    #[track_caller]
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
        disarm(&self.inner, &mut st, &self.rx);
    }

    /// Changes the period to `d` and restarts the ticker.
    ///
    /// # Panics
    ///
    /// `non-positive interval for NewTicker` if `d` is zero.
    #[track_caller]
    pub fn reset(&self, d: Duration) {
        assert!(!d.is_zero(), "non-positive interval for NewTicker");
        let mut st = self.inner.state.lock();
        disarm(&self.inner, &mut st, &self.rx);
        st.period = Some(d);
        arm(&self.inner, &mut st, d);
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let mut st = self.inner.state.lock();
        set_active(&self.inner, &mut st, false);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        let mut st = self.inner.state.lock();
        set_active(&self.inner, &mut st, false);
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
