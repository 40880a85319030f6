//! A loom model of the pinned park/wake protocol (`coroutine.rs` module
//! doc): the real code cannot run under loom (corosensei switches, the
//! worker's thread-locals, crossbeam's queues), so this mirrors it step by
//! step, naming the real function (and its line at the time of writing)
//! at each step.
//!
//! Parties: the home thread (its worker loop, the coroutine `co` it runs,
//! and another coroutine on the same home that wakes `co` locally) and a
//! remote waker thread. `co` waits until the remote waker has made two
//! events (`remote` == 2) and the local one has made one (`local`); each
//! event is a Relaxed store followed by a wake, so the wake itself must
//! carry the event to `co` (the inbox hand-off, or program order on the
//! home thread).
//!
//! The inbox is a loom `Mutex` (crossbeam's `Injector` gives a Release push
//! and an Acquire steal; a lock gives at least that), and the worker's
//! sleep is a `Condvar` on it (the `Parker` protocol is not modelled: the
//! worker is woken iff the inbox is non-empty). A lost wake shows as loom's
//! deadlock report: `co` PARKED, the inbox empty, the worker asleep.

use ::loom::sync::atomic::{AtomicU8, AtomicUsize};
use ::loom::sync::{Arc, Condvar, Mutex};
use ::loom::thread;
use std::sync::atomic::Ordering;

const RUNNING: u8 = 1;
const NOTIFIED: u8 = 2;
const PARKED: u8 = 3;
const DONE: u8 = 4;

struct Co {
    /// `CoInner::state`: written by the home thread only (pinned).
    state: AtomicU8,
    /// Events from the remote waker, and from the local coroutine.
    remote: AtomicUsize,
    local: AtomicUsize,
}

struct Home {
    /// `WorkerShared::inbox`: pending wake requests for `co`.
    inbox: Mutex<usize>,
    /// The worker's sleep (`Worker::sleep` / `Parker::unpark_if_sleeping`).
    bell: Condvar,
}

/// How a resume of `co` ended (`Suspend::Park`, or its body returned).
enum Step {
    Parked,
    Finished,
}

/// `co`'s body from its last switch-out to its next: its wait loop
/// (`park.rs` rule 2: check, park, re-check) with `park_current`'s token
/// check inline (coroutine.rs:390-399: a NOTIFIED state is consumed by a
/// plain store and the park returns at once).
fn resume(co: &Co) -> Step {
    loop {
        if co.remote.load(Ordering::Relaxed) == 2 && co.local.load(Ordering::Relaxed) == 1 {
            return Step::Finished;
        }
        // park_current (coroutine.rs:390)
        if co.state.load(Ordering::Relaxed) == NOTIFIED {
            co.state.store(RUNNING, Ordering::Relaxed);
            continue;
        }
        return Step::Parked; // y.suspend(Suspend::Park)
    }
}

/// `CoInner::accept_inbound` (coroutine.rs:279), pinned branch: the home
/// applies a popped wake request. True if `co` is to be queued.
fn accept_inbound(co: &Co) -> bool {
    match co.state.load(Ordering::Relaxed) {
        PARKED => {
            co.state.store(RUNNING, Ordering::Relaxed);
            true
        }
        RUNNING => {
            co.state.store(NOTIFIED, Ordering::Relaxed);
            false
        }
        _ => false,
    }
}

/// `CoInner::wake_local` (coroutine.rs:260): a wake on the home thread.
/// True if `co` is to be queued (`park::wake_home`).
fn wake_local(co: &Co) -> bool {
    match co.state.load(Ordering::Relaxed) {
        PARKED => {
            co.state.store(RUNNING, Ordering::Relaxed);
            true
        }
        RUNNING => {
            co.state.store(NOTIFIED, Ordering::Relaxed);
            false
        }
        _ => false,
    }
}

/// The home thread: `Worker::run_co` and the pick loop, for `co` alone
/// plus one local coroutine that makes the local event once `co` has
/// parked for the first time.
fn home(co: &Co, h: &Home) {
    // `co` starts queued (state RUNNING after `start_co`).
    let mut queued = true;
    let mut local_ran = false;
    loop {
        if queued {
            queued = false;
            // run_co (worker.rs:640): a queue entry is RUNNING or NOTIFIED.
            let s = co.state.load(Ordering::Relaxed);
            assert!(s == RUNNING || s == NOTIFIED, "worker invariant 3: resumed a coroutine in state {s}");
            match resume(co) {
                Step::Finished => {
                    co.state.store(DONE, Ordering::Relaxed); // `finish`
                    return;
                }
                Step::Parked => {
                    // run_co, Suspend::Park, pinned (worker.rs:663-683):
                    // PARKED is set only now, after the switch-out.
                    let parked = co.state.load(Ordering::Relaxed) != NOTIFIED;
                    if parked {
                        co.state.store(PARKED, Ordering::Relaxed);
                    } else {
                        co.state.store(RUNNING, Ordering::Relaxed);
                        queued = true; // `ready`
                    }
                }
            }
            continue;
        }
        if !local_ran {
            // Another coroutine on this home runs: it makes the local
            // event and wakes `co` with a `park::Wakeup` (`WakeRepr::Home`).
            local_ran = true;
            co.local.store(1, Ordering::Relaxed);
            if wake_local(co) {
                assert!(!queued, "worker invariant 3: queued twice");
                queued = true; // `runnext`
            }
            continue;
        }
        // pop_inbox (worker.rs:375), or sleep until the inbox is non-empty.
        let mut n = h.inbox.lock().unwrap();
        while *n == 0 {
            n = h.bell.wait(n).unwrap();
        }
        *n -= 1;
        drop(n);
        if accept_inbound(co) {
            assert!(!queued, "worker invariant 3: queued twice");
            queued = true;
        }
    }
}

/// The remote waker: two events, each followed by a wake request
/// (`CoInner::wake` from another thread: `sched::request_wake`, mod.rs:473,
/// pushes to the home's inbox, then `unpark_if_sleeping`).
fn remote(co: &Co, h: &Home) {
    for _ in 0..2 {
        co.remote.fetch_add(1, Ordering::Relaxed);
        *h.inbox.lock().unwrap() += 1;
        h.bell.notify_one();
    }
}

/// Covers: a remote request arriving while `co` runs, while it is queued
/// (RUNNING: it becomes the token, NOTIFIED), between its check and its
/// switch-out (the worker has not set PARKED yet: the request is popped
/// only after, and finds it PARKED), and after it parked; a local wake of
/// a PARKED `co` while a remote request is pending for it (one queue entry
/// only, the request then becomes a token); and the token consumed by the
/// next park.
#[test]
fn loom_park_pinned_wakes() {
    crate::loom::model(|| {
        let co =
            Arc::new(Co { state: AtomicU8::new(RUNNING), remote: AtomicUsize::new(0), local: AtomicUsize::new(0) });
        let h = Arc::new(Home { inbox: Mutex::new(0), bell: Condvar::new() });
        let (co2, h2) = (co.clone(), h.clone());
        let waker = thread::spawn(move || remote(&co2, &h2));
        home(&co, &h);
        waker.join().unwrap();
        assert_eq!(co.state.load(Ordering::Relaxed), DONE);
    });
}
