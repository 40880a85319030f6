//! Loom checks of the channel lock's sleep/wake protocol (module doc of
//! `lock.rs`), run on the real `RawLock` in its fence fallback mode (the
//! only mode that is a pure memory-model argument: `membarrier` forces a
//! barrier onto other threads, which loom cannot express; modelling it as a
//! fence on the sleeper side only would be unsound and loom rightly finds
//! the store-buffering outcome then). The futex is `crate::loom::futex`.
//!
//! A lost wake-up shows as loom's deadlock report (every thread blocked);
//! a broken mutual exclusion as a causality violation on `count`.

use ::loom::cell::UnsafeCell;
use ::loom::sync::Arc;
use ::loom::thread;

use super::RawLock;

/// One locked increment of the checked counter.
fn bump(l: &RawLock, count: &UnsafeCell<u32>) {
    let held = l.lock();
    // SAFETY: (model) we hold the lock; loom checks that no other
    // access to `count` is concurrent.
    count.with_mut(|c| unsafe { *c += 1 });
    // SAFETY: `held` is this lock's acquisition.
    unsafe { l.unlock(held) };
}

/// Two lockers: whichever finds the lock held spins once, counts itself a
/// sleeper and waits on the futex; the holder's unlock must wake it (or the
/// sleeper must see the unlock). Covers: unlock before, between and after
/// the sleeper's increment and its look at `state`; the sleeper losing the
/// retake to the other party and sleeping again.
#[test]
fn loom_lock_two_lockers() {
    crate::loom::model(|| {
        let l = Arc::new((RawLock::new(), UnsafeCell::new(0u32)));
        let l2 = l.clone();
        let t = thread::spawn(move || bump(&l2.0, &l2.1));
        bump(&l.0, &l.1);
        t.join().unwrap();
        let held = l.0.lock();
        // SAFETY: (model) under the lock.
        assert_eq!(l.1.with(|c| unsafe { *c }), 2);
        // SAFETY: `held` is this lock's acquisition.
        unsafe { l.0.unlock(held) };
    });
}

/// Three parties, each locking once: two sleepers at once, and an
/// unlocker that must wake one while the other is still counted.
#[test]
fn loom_lock_three_lockers() {
    crate::loom::model(|| {
        let l = Arc::new((RawLock::new(), UnsafeCell::new(0u32)));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let l = l.clone();
                thread::spawn(move || bump(&l.0, &l.1))
            })
            .collect();
        bump(&l.0, &l.1);
        for t in ts {
            t.join().unwrap();
        }
        // SAFETY: (model) every other party has finished.
        assert_eq!(l.1.with(|c| unsafe { *c }), 3);
    });
}
