//! Loom check of a grant's publication (`publish`, module note of
//! `waitq.rs`): the granter clears the party's wait record, then raises its
//! flag; the party, which may see the flag without ever parking, returns at
//! once and parks elsewhere with its own reason, reading the record
//! unlocked. The flag's Release/Acquire must order the granter's record
//! write before that read; the old order (flag, then record) is the race
//! loom reports here as a causality violation on the record.
//!
//! The record is a model of `coroutine.rs`'s `ReasonCell` (that file's
//! real type cannot take loom's cell without touching the scheduler's hot
//! path): `with` mirrors `ReasonCell::with` (swap(true, Acquire) to lock,
//! store(false, Release) to unlock), `set` mirrors `ReasonCell::set`, and
//! `set_own` mirrors `ReasonCell::set_own` (an unlocked compare, then `set`).
//! The publication itself is the real `super::publish`.

use ::loom::cell::UnsafeCell;
use ::loom::sync::atomic::AtomicBool;
use ::loom::sync::Arc;
use ::loom::thread;
use std::sync::atomic::Ordering;

/// `WaitReason` reduced to a number: 0 is `WaitReason::None`.
const NONE: u32 = 0;
const LOCK_EDGE: u32 = 1;
const ELSEWHERE: u32 = 2;

struct Record {
    locked: AtomicBool,
    v: UnsafeCell<u32>,
}

impl Record {
    /// `ReasonCell::with`.
    fn with<R>(&self, f: impl FnOnce(&mut u32) -> R) -> R {
        while self.locked.swap(true, Ordering::Acquire) {
            thread::yield_now();
        }
        // SAFETY: (model) under the record's spin lock.
        let r = self.v.with_mut(|p| f(unsafe { &mut *p }));
        self.locked.store(false, Ordering::Release);
        r
    }

    /// `ReasonCell::set`.
    fn set(&self, r: u32) {
        self.with(|v| *v = r);
    }

    /// `ReasonCell::set_own`: the unlocked read is what races.
    fn set_own(&self, r: u32) {
        // SAFETY: (model) the claim under test: nobody else writes
        // the record now. Loom reports it if somebody does.
        if self.v.with(|p| unsafe { *p }) == r {
            return;
        }
        self.set(r);
    }
}

/// One queued party (its record says it waits for a lock holder) and one
/// granter. Covers the party seeing the flag before, during and after the
/// granter's record write, and parking elsewhere at once; `retry` is the
/// same code with the other flag (`wake_to_retry`).
#[test]
fn loom_waitq_grant_vs_repark() {
    crate::loom::model(|| {
        let rec = Arc::new(Record { locked: AtomicBool::new(false), v: UnsafeCell::new(LOCK_EDGE) });
        let granted = Arc::new(crate::loom::atomic::AtomicBool::new(false));
        let (rec2, granted2) = (rec.clone(), granted.clone());
        // The granter: `Slot::grant` (under the queue lock, which the party
        // does not take on this path).
        let granter = thread::spawn(move || super::publish(&granted2, || rec2.set(NONE)));
        // The party: `WaitQueue::wait_ex`'s loop, then its next wait.
        while !granted.load(Ordering::Acquire) {
            thread::yield_now(); // `park_recorded`: may return spuriously
        }
        rec.set_own(ELSEWHERE);
        granter.join().unwrap();
        assert_eq!(rec.with(|v| *v), ELSEWHERE, "the grant's clear landed after the party's own record");
    });
}
