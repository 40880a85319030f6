// Design notes for maintainers (the user docs are the `//!` block below).
//
// Time: `sleep`, `after`, `tick`, [`Timer`], [`Ticker`] (Go's `time`).
//
// Owns: channel timers (`ChanTimer`, their armed count, the fallback driver
// thread for timers armed off the workers), `after_func`, and the Go 1.23
// timer rules.
// The per-worker heaps themselves live in `sched/worker.rs`.
//
// Two engines:
//  * **Wake timers** (`sleep` in a coroutine, every `*_timeout` and
//    `default(d)`): a per-worker heap, touched only by its own worker
//    (`sched/worker.rs`, no lock). A parked coroutine's entry is disarmed
//    when it wakes for another reason; the idle worker sleeps exactly until
//    its earliest live entry. Heaps are per worker because a coroutine
//    never leaves its home worker, so arming and disarming never cross
//    threads.
//  * **Channel timers** (`after`, `tick`, `Timer`, `Ticker`,
//    `after_func`): an entry
//    goes on the heap of the worker that arms it (creation, `reset`, a
//    ticker's next tick), so arming from a coroutine takes no lock shared
//    with other workers; only the timer's own small lock (stop/reset may
//    come from any thread). Stopping never touches a heap: it bumps the
//    timer's generation (`armed_seq`), and the stale entry is skipped when
//    it comes up or compacted away when the heap has doubled. Timers armed
//    on plain threads, and live ones left on an exiting worker, go to a
//    fallback driver thread.
//
// Why per-worker heaps rather than a wheel: a coroutine never leaves its
// home worker, so its wake timers are armed and disarmed by one thread
// without atomics, insertion and removal of the earliest are O(log n) at
// 100 000+ pending timers, and each idle worker sleeps exactly until its
// own earliest deadline (in `epoll_wait` when it is the netpoller, see
// `net/poller.rs`): no periodic tick, ~0% CPU while everything sleeps.
// A busy worker fires its timers between coroutines (every 8th tick), so a
// coroutine that never parks delays its worker's timers, as it would in
// Go without preemption.
//
// Go 1.23 semantics: every arming of a timer gets a new `seq`; a firing
// delivers only if its `seq` is still current, and `stop`/`reset` drain a
// value already buffered, all under the timer's lock. So once `stop` or
// `reset` returns, no value from the old deadline is received. Timer
// channels have a buffer of one: a slow ticker reader sees dropped ticks,
// never a backlog.
//
// Ownership (Go 1.23: "the channel keeps its timer"): a timer channel has
// no `Sender`, so it is never closed; the timer holds it weakly and its
// receivers own it. The timer is held by its heap entry while armed and
// by its `Timer`/`Ticker` handle. When the last receiver (the handle's
// own included) is dropped, the channel tells the timer
// (`ReceiversGone`), which disarms at once: it stops counting in `ARMED`
// (so it no longer holds off a deadlock verdict) and its heap entry turns
// stale, to be dropped when it comes up or at the next compaction. So an
// abandoned `after(1h)` costs nothing for long, while a handle dropped
// with a receiver clone still alive leaves the timer running.
//
// `after_func` timers run a closure in a new coroutine instead of sending;
// they live through their heap entry, so dropping the handle does not stop
// them (Go's `AfterFunc` result is often ignored).
//
// Durations too large for `Instant` (e.g. `Duration::MAX`) never fire: the
// timer is armed (`stop` returns true) but has no heap entry and is not
// counted in `ARMED`.

//! Timers, tickers and sleeping, in Go's `time` shapes.
//!
//! [`sleep`] pauses the calling coroutine (only it: its worker runs others
//! meanwhile); on a plain thread it blocks the thread. [`after`] and [`tick`]
//! return channels that receive the time, for use in a
//! [`select!`](crate::select) next to other channels; [`Timer`] and [`Ticker`]
//! are the same with a handle to [`stop`](Timer::stop) or
//! [`reset`](Timer::reset) them. [`after_func`] runs a closure in a new
//! coroutine after a delay.
//!
//! Timer semantics are Go 1.23's: once `stop` or `reset` returns, no value from
//! the old deadline is received, timer channels are never closed, and a timer
//! whose every receiver is dropped is freed at once (an abandoned `after` in a
//! select costs nothing).
//!
//! Coroutines on one worker whose timers come due together (the worker was
//! busy past several deadlines) run in deadline order.
//!
//! ```
//! use std::time::Duration;
//! use goro::time;
//!
//! goro::run(|| {
//!     let (tx, rx) = goro::chan::<&str>(0);
//!     goro::go(move || {
//!         time::sleep(Duration::from_millis(5));
//!         tx.send("done").unwrap();
//!     });
//!     // Wait for the work, but give up after a second.
//!     let got = goro::select! {
//!         recv(rx) -> v => v.unwrap(),
//!         recv(time::after(Duration::from_secs(1))) -> _ => "timed out",
//!     };
//!     assert_eq!(got, "done");
//! });
//! ```

#![deny(unsafe_code)]

pub(crate) mod heap;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::chan::imp::{Chan, ReceiversGone};
use crate::wait::WaitReason;
use crate::{Receiver, TrySendError};

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
///
/// After its one value the channel stays open and empty, as in Go: a second
/// `recv` waits (for ever), it never fails. The timer lives as long as a
/// clone of the receiver does; once every clone is dropped it is disarmed
/// and freed at once, so an `after` abandoned in a select costs nothing.
/// `after(Duration::MAX)` never fires.
///
/// ```
/// use std::time::Duration;
/// let (_tx, rx) = goro::chan::<i32>(0);
/// let got = goro::select! {
///     recv(rx) -> _ => "value",
///     recv(goro::time::after(Duration::from_millis(10))) -> _ => "timeout",
/// };
/// assert_eq!(got, "timeout");
/// ```
pub fn after(d: Duration) -> Receiver<Instant> {
    let (inner, rx) = new_chan_timer(None);
    inner.arm(d);
    rx
}

/// A channel that receives the time every `d` (Go's `time.Tick`). Ticks
/// are dropped for slow readers. The ticker stops once every receiver is
/// dropped.
///
/// ```
/// use std::time::Duration;
/// let ticks = goro::time::tick(Duration::from_millis(2));
/// let a = ticks.recv().unwrap();
/// let b = ticks.recv().unwrap();
/// assert!(b > a);
/// ```
///
/// # Panics
///
/// `non-positive interval for NewTicker` if `d` is zero.
#[track_caller]
pub fn tick(d: Duration) -> Receiver<Instant> {
    assert!(!d.is_zero(), "non-positive interval for NewTicker");
    let (inner, rx) = new_chan_timer(Some(d));
    inner.arm(d);
    rx
}

/// Go's `time.AfterFunc`: after `d`, `f` runs in a new coroutine of the
/// runtime that armed the timer (the current one inside a coroutine, the
/// global default runtime on a plain thread).
///
/// [`Timer::stop`] before it fires prevents the call (and returns `true`);
/// [`Timer::reset`] before it fires postpones it. `f` is an `FnOnce`, so a
/// reset after it ran arms the timer again but has nothing left to call.
/// Dropping the returned `Timer` does not stop it (as in Go, where the
/// result is often ignored). Its [`Timer::chan`] is never ready.
///
/// ```
/// use std::time::Duration;
/// goro::run(|| {
///     let (tx, rx) = goro::chan(1);
///     goro::time::after_func(Duration::from_millis(5), move || tx.send("fired").unwrap());
///     assert_eq!(rx.recv(), Ok("fired"));
///
///     let t = goro::time::after_func(Duration::from_secs(60), || unreachable!());
///     assert!(t.stop()); // stopped before it fired
/// });
/// ```
#[track_caller]
pub fn after_func<F: FnOnce() + Send + 'static>(d: Duration, f: F) -> Timer {
    let rt = crate::sched::with_runtime(Arc::downgrade);
    let inner = Arc::new(TimerInner::new(
        None,
        Action::Call { f: Mutex::new(Some(Box::new(f))), rt, site: std::panic::Location::caller() },
    ));
    inner.arm(d);
    Timer { inner, rx: crate::never() }
}

struct State {
    seq: u64,
    /// Armed: a firing with the current `seq` will act.
    active: bool,
    /// Counted in `ARMED`: active with a deadline that will come (a timer
    /// armed for `Duration::MAX` is active but never fires, so it must not
    /// hold off a deadlock verdict).
    counted: bool,
    period: Option<Duration>,
}

/// What a timer does when it fires.
enum Action {
    /// Send the time on its channel (`after`, `tick`, `Timer`, `Ticker`).
    /// Weak: the receivers own the channel, and the channel, once they are
    /// all gone, disarms its timer (`ReceiversGone`).
    Send(Weak<Chan<Instant>>),
    /// Run `f` in a new coroutine of `rt` (`after_func`).
    Call {
        f: Mutex<Option<Box<dyn FnOnce() + Send>>>,
        rt: Weak<crate::sched::Shared>,
        site: &'static std::panic::Location<'static>,
    },
}

struct TimerInner {
    state: Mutex<State>,
    /// `state.seq` while armed, else 0: lets a worker skip a stale heap entry
    /// without taking the lock. Written only under `state`.
    armed_seq: AtomicU64,
    action: Action,
}

/// A channel timer as a worker's heap holds it (`heap.rs`).
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

/// Channel timers armed with a deadline that will come, and not yet fired,
/// stopped or abandoned, in the whole process (the deadlock detector reads
/// it). Exact: it changes only with `State::counted`, under the timer's
/// lock.
static ARMED: AtomicUsize = AtomicUsize::new(0);

/// Armed channel timers (see `ARMED`).
pub(crate) fn armed_chan_timers() -> usize {
    ARMED.load(Ordering::SeqCst)
}

impl TimerInner {
    fn new(period: Option<Duration>, action: Action) -> TimerInner {
        let state = Mutex::new(State { seq: 0, active: false, counted: false, period });
        TimerInner { state, armed_seq: AtomicU64::new(0), action }
    }

    /// Arms the timer to fire after `d` (a new generation).
    fn arm(self: &Arc<Self>, d: Duration) {
        let mut st = self.state.lock();
        self.arm_locked(&mut st, d);
    }

    /// Arms with the state locked by the caller.
    fn arm_locked(self: &Arc<Self>, st: &mut State, d: Duration) {
        crate::park::note_thread();
        st.seq += 1;
        // A deadline beyond `Instant`'s range never fires.
        let when = Instant::now().checked_add(d);
        self.set_active(st, true, when.is_some());
        if let Some(when) = when {
            schedule(when, st.seq, self.clone());
        }
    }

    fn set_active(&self, st: &mut State, on: bool, will_fire: bool) {
        let count = on && will_fire;
        if st.counted != count {
            if count {
                ARMED.fetch_add(1, Ordering::SeqCst);
            } else {
                ARMED.fetch_sub(1, Ordering::SeqCst);
            }
            st.counted = count;
        }
        st.active = on;
        self.armed_seq.store(if on { st.seq } else { 0 }, Ordering::Release);
    }

    /// Disarms; drains a value already buffered on `rx` (Go 1.23: no stale
    /// value after `stop`/`reset`). Was it armed or undelivered?
    fn disarm(&self, st: &mut State, rx: &Receiver<Instant>) -> bool {
        let was = st.active;
        self.set_active(st, false, false);
        st.seq += 1;
        let drained = rx.try_recv().is_ok();
        was || drained
    }
}

impl ReceiversGone for TimerInner {
    /// Nobody can receive any more: disarm at once (the heap entry, if any,
    /// is now stale and is dropped when it comes up or compacted away).
    fn receivers_gone(&self) {
        let mut st = self.state.lock();
        self.set_active(&mut st, false, false);
        st.seq += 1;
    }
}

impl Drop for TimerInner {
    fn drop(&mut self) {
        // Unreachable while counted (a counted timer has a heap entry that
        // holds it), but keep the count exact whatever happens.
        let st = self.state.get_mut();
        if st.counted {
            ARMED.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A timer feeding a fresh channel of one slot, and the channel's first
/// receiver (which, with its clones, keeps the channel alive).
fn new_chan_timer(period: Option<Duration>) -> (Arc<TimerInner>, Receiver<Instant>) {
    let mut rx = None;
    let inner = Arc::new_cyclic(|me: &Weak<TimerInner>| {
        let owner: Weak<dyn ReceiversGone> = me.clone();
        let c = Arc::new(Chan::owned(1, owner));
        let weak = Arc::downgrade(&c);
        rx = Some(Receiver { chan: Some(c) });
        TimerInner::new(period, Action::Send(weak))
    });
    (inner, rx.expect("set by new_cyclic"))
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
    let mut compact_at = 1024;
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
        // Entries of stopped and abandoned timers are stale: drop them each
        // time the heap has doubled (amortised O(1), as on the workers), so
        // they cost no memory for long.
        if h.len() >= compact_at {
            h.retain(|e| e.0.timer.armed_seq.load(Ordering::Acquire) == e.0.seq);
            compact_at = (2 * h.len()).max(1024);
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
    if let Err(t) = heap::add_chan(when, seq, ChanTimer(timer)) {
        schedule_on_driver(when, seq, t);
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
        return; // stale: stopped, reset or abandoned since
    }
    if st.period.is_none() {
        // A one-shot timer stops counting as armed before its value can be
        // received: whoever receives it then sees the count without it.
        inner.set_active(&mut st, false, false);
    }
    match &inner.action {
        Action::Send(chan) => {
            let Some(chan) = chan.upgrade() else {
                inner.set_active(&mut st, false, false); // nobody can receive any more
                return;
            };
            match chan.try_send(now) {
                Ok(()) | Err(TrySendError::Full(_)) => {} // full: a slow reader drops this tick
                Err(TrySendError::Closed(_)) => {
                    inner.set_active(&mut st, false, false); // closed by a receiver
                    return;
                }
            }
        }
        Action::Call { f, rt, site } => {
            let f = f.lock().take();
            drop(st);
            if let (Some(f), Some(rt)) = (f, rt.upgrade()) {
                if let Err(err) = crate::coroutine::spawn_inner(&rt, None, None, 0, site, f) {
                    eprintln!("goro: time::after_func (armed at {site}) could not start its coroutine: {err}");
                }
            }
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
/// Go 1.23 rules: after [`stop`](Timer::stop) or [`reset`](Timer::reset)
/// returns, no value from the old deadline is received; the channel is
/// never closed. Dropping the `Timer` does not cancel a value that a clone
/// of its channel's receiver can still take; once the `Timer` and every
/// clone are gone, the timer is disarmed and freed.
///
/// ```
/// use std::time::Duration;
/// let t = goro::time::Timer::new(Duration::from_millis(5));
/// assert!(t.chan().recv().is_ok());
/// assert!(!t.stop()); // already fired and received
/// assert!(!t.reset(Duration::from_millis(1))); // stopped already: re-armed
/// assert!(t.chan().recv().is_ok());
/// ```
pub struct Timer {
    inner: Arc<TimerInner>,
    rx: Receiver<Instant>,
}

/// Go's `time.Ticker`: a value on [`chan`](Ticker::chan) every period.
///
/// ```
/// use std::time::Duration;
/// let t = goro::time::Ticker::new(Duration::from_millis(2));
/// for _ in 0..3 {
///     t.chan().recv().unwrap();
/// }
/// t.stop();
/// assert!(t.chan().recv_timeout(Duration::from_millis(20)).is_err());
/// ```
pub struct Ticker {
    inner: Arc<TimerInner>,
    rx: Receiver<Instant>,
}

impl Timer {
    /// A timer that fires once after `d` (a zero duration fires at once;
    /// `Duration::MAX` never fires).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let start = Instant::now();
    /// let t = goro::time::Timer::new(Duration::from_millis(2));
    /// let fired_at: Instant = t.chan().recv().unwrap();
    /// assert!(fired_at >= start + Duration::from_millis(2));
    /// ```
    pub fn new(d: Duration) -> Timer {
        let (inner, rx) = new_chan_timer(None);
        inner.arm(d);
        Timer { inner, rx }
    }

    /// The channel the time is delivered on.
    ///
    /// ```
    /// use std::time::Duration;
    /// goro::run(|| {
    ///     let (_tx, work) = goro::chan::<i32>(0);
    ///     let t = goro::time::Timer::new(Duration::from_millis(2));
    ///     let got = goro::select! {
    ///         recv(work) -> _ => "work",
    ///         recv(t.chan()) -> _ => "timer",
    ///     };
    ///     assert_eq!(got, "timer");
    /// });
    /// ```
    pub fn chan(&self) -> &Receiver<Instant> {
        &self.rx
    }

    /// Stops the timer. True if this call stopped it before its value was
    /// received (Go 1.23); false if it had already been stopped or its value
    /// was received. After it returns, no value from the old deadline is
    /// received.
    ///
    /// ```
    /// use std::time::Duration;
    /// let t = goro::time::Timer::new(Duration::from_secs(60));
    /// assert!(t.stop()); // stopped before it fired
    /// assert!(!t.stop()); // already stopped
    /// assert!(t.chan().try_recv().is_err()); // and nothing will arrive
    /// ```
    pub fn stop(&self) -> bool {
        let mut st = self.inner.state.lock();
        self.inner.disarm(&mut st, &self.rx)
    }

    /// Re-arms the timer to fire after `d`; returns what `stop` would have.
    /// After it returns, no value from the old deadline is received.
    ///
    /// ```
    /// use std::time::Duration;
    /// // A deadline that moves each time there is activity.
    /// let idle = goro::time::Timer::new(Duration::from_secs(60));
    /// assert!(idle.reset(Duration::from_millis(1))); // was still armed
    /// assert!(idle.chan().recv().is_ok()); // fires after the new delay
    /// ```
    pub fn reset(&self, d: Duration) -> bool {
        let mut st = self.inner.state.lock();
        let was = self.inner.disarm(&mut st, &self.rx);
        self.inner.arm_locked(&mut st, d);
        was
    }
}

impl Ticker {
    /// A ticker with period `d`.
    ///
    /// # Panics
    ///
    /// `non-positive interval for NewTicker` if `d` is zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// let t = goro::time::Ticker::new(Duration::from_millis(1));
    /// let first = t.chan().recv().unwrap();
    /// let second = t.chan().recv().unwrap();
    /// assert!(second > first);
    /// ```
    #[track_caller]
    pub fn new(d: Duration) -> Ticker {
        assert!(!d.is_zero(), "non-positive interval for NewTicker");
        let (inner, rx) = new_chan_timer(Some(d));
        inner.arm(d);
        Ticker { inner, rx }
    }

    /// The channel ticks are delivered on.
    ///
    /// ```
    /// use std::time::Duration;
    /// goro::run(|| {
    ///     let heartbeat = goro::time::Ticker::new(Duration::from_millis(1));
    ///     let (_tx, jobs) = goro::chan::<u32>(0); // nobody sends here
    ///     let mut beats = 0;
    ///     while beats < 3 {
    ///         goro::select! {
    ///             recv(jobs) -> _ => unreachable!(),
    ///             recv(heartbeat.chan()) -> _ => beats += 1, // e.g. report liveness
    ///         }
    ///     }
    ///     heartbeat.stop();
    /// });
    /// ```
    pub fn chan(&self) -> &Receiver<Instant> {
        &self.rx
    }

    /// Stops the ticker; no tick from before the call is received after it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let t = goro::time::Ticker::new(Duration::from_millis(1));
    /// t.chan().recv().unwrap();
    /// t.stop();
    /// assert!(t.chan().recv_timeout(Duration::from_millis(10)).is_err());
    /// ```
    pub fn stop(&self) {
        let mut st = self.inner.state.lock();
        self.inner.disarm(&mut st, &self.rx);
    }

    /// Changes the period to `d` and restarts the ticker.
    ///
    /// # Panics
    ///
    /// `non-positive interval for NewTicker` if `d` is zero.
    ///
    /// ```
    /// use std::time::Duration;
    /// let t = goro::time::Ticker::new(Duration::from_secs(60));
    /// t.reset(Duration::from_millis(1)); // tick much faster from now on
    /// assert!(t.chan().recv_timeout(Duration::from_secs(5)).is_ok());
    /// ```
    #[track_caller]
    pub fn reset(&self, d: Duration) {
        assert!(!d.is_zero(), "non-positive interval for NewTicker");
        let mut st = self.inner.state.lock();
        self.inner.disarm(&mut st, &self.rx);
        st.period = Some(d);
        self.inner.arm_locked(&mut st, d);
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
