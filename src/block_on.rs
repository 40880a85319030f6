// block_on: running a `Future` on a coroutine (or a plain thread).
//
// Owns: [`block_on`] and its waker (`Signal`).
//
// Protocol: `Signal::woken` is set by every wake and cleared by block_on
// just before each poll. After a `Pending`, block_on parks only while
// `woken` is clear, re-checking after each return (spurious returns are
// allowed by park.rs). A waker that finds `woken` already set skips the
// wake: the flag alone tells block_on to poll again, and block_on reads it
// before every park. A waker that sets it wakes the party; a wake that
// lands before the park is kept as a token (park.rs rule 1), so none is
// lost.
//
// Inside a coroutine the wake goes through `Waiter::wake` (the same path as
// a channel's), so it works from any thread. On a plain thread block_on
// parks the thread with `std::thread::park` directly, and stays counted as
// an active thread by the deadlock rule (something outside goro may be the
// one to wake it).
//
// Deadlocks: a coroutine parked here counts as parked (`WaitReason::Future`,
// "block_on of a future"). If its waker has been cloned (someone kept it to
// wake it later, possibly an OS thread the detector cannot see) the park
// also counts as an external wait (`runtime::ExternalWait`), so the global
// rule never reports it; if nobody kept the waker, nothing can ever wake it,
// and a runtime stuck on it is reported as deadlocked.
//
// Lock order: takes no lock.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::park::Waiter;
use crate::wait::WaitReason;

/// Runs a future to completion on the calling coroutine or thread and
/// returns its output.
///
/// Inside a coroutine, `block_on` parks the coroutine while the future is
/// pending: the worker runs other coroutines, and the future's waker (which
/// is `Send + Sync` and may be called from any thread, a goro coroutine or
/// not) wakes it through the same path as a channel. On a plain OS thread it
/// blocks the thread. Futures from executor-agnostic crates (`futures`,
/// `async-channel`, `event-listener`) work; futures that need a tokio
/// reactor need one running elsewhere.
///
/// ```
/// goro::run(|| {
///     let (tx, rx) = futures::channel::oneshot::channel();
///     goro::go(move || tx.send(42).unwrap());
///     assert_eq!(goro::block_on(rx), Ok(42));
///     assert_eq!(goro::block_on(async { 6 * 7 }), 42);
/// });
/// ```
///
/// Polls happen only after a wake (plus the first one): a waker called
/// many times before the next poll causes one poll.
///
/// # Cancellation and deadlocks
///
/// A coroutine cancelled ([`JoinHandle::cancel`](crate::JoinHandle::cancel))
/// while its future is pending unwinds out of `block_on`, dropping the
/// future. While parked here it shows as `block_on of a future` in
/// [`coroutines()`](crate::coroutines) and deadlock reports. A future that
/// kept no waker can never be woken, so a runtime stuck on it is reported as
/// deadlocked; one whose waker is held somewhere (a channel, a timer, another
/// thread) counts as waiting on something outside goro and is never reported.
///
/// # Panics
///
/// A panic in `poll` propagates to the caller.
#[track_caller]
pub fn block_on<F: Future>(f: F) -> F::Output {
    let in_coroutine = crate::coroutine::current_id().is_some();
    // The future lives on this stack and its wakers may write into it from
    // anywhere (foreign crates' waiter nodes): never swapped out meanwhile.
    let _lent = crate::coroutine::StackLent::new();
    let signal = Arc::new(Signal {
        target: if in_coroutine {
            Target::Coroutine(Waiter::current())
        } else {
            Target::Thread(std::thread::current())
        },
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(f);
    loop {
        // Clear before polling: a wake during or after this poll sets it
        // again and we poll once more.
        signal.woken.store(false, Ordering::SeqCst);
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        // Our `signal` and `waker` hold two counts; more means the future
        // kept a waker somewhere.
        let mut _external = None;
        while !signal.woken.load(Ordering::SeqCst) {
            if !in_coroutine {
                std::thread::park();
                continue;
            }
            if _external.is_none() && Arc::strong_count(&signal) > 2 {
                _external = crate::sched::with_worker(|w| crate::sched::ExternalWait::new(w.rt.clone()));
            }
            crate::park::park(WaitReason::Future);
        }
    }
}

/// The waker's state: whom to wake, and whether a wake came since the last
/// poll began.
struct Signal {
    target: Target,
    woken: AtomicBool,
}

enum Target {
    Coroutine(Waiter),
    Thread(std::thread::Thread),
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // SeqCst pairs with block_on's clear and check (module note): if the
        // flag was already set, block_on will see it before it parks.
        if !self.woken.swap(true, Ordering::SeqCst) {
            match &self.target {
                Target::Coroutine(w) => w.wake(),
                Target::Thread(t) => t.unpark(),
            }
        }
    }
}
