//! Loom checks of the selector claim (module invariants 3, 4 and 6 of
//! `imp.rs`), on the real `Selector` (`claim`, `claim_locked`, `abort`,
//! `finish`, `won`) and the real channel lock (`RawLock`, fence mode; see
//! `lock_loom.rs`). The op's slot and "the op is still alive" are loom cells
//! in the harness: a winner's move through the slot that is not ordered
//! before the owner's read, or any touch of the op by a winner or loser
//! that is not ordered before the owner frees it, is a causality violation.
//!
//! Each harness party mirrors a real path, named at its step:
//!  * a winner: `try_send_locked`/`try_recv_locked` (lock, `Op::claim`,
//!    `Won::complete`: move the value, then `Selector::finish` last);
//!  * a closer: `fail_ops` (claim with `CLOSED_BIT`, `complete` moving
//!    nothing);
//!  * the owner of a single op: `Chan::recv` + `Selector::wait` +
//!    `Chan::abort` (abort claimed under the lock; a lost abort has waited
//!    out the winner by taking that lock);
//!  * the owner of a select: `select.rs` (`Selector::wait` with
//!    `Selector::abort`, then every op dequeued under its channel's lock
//!    before the frame, and so the ops and selector, goes away).

use ::loom::cell::UnsafeCell;
use ::loom::sync::Arc;
use ::loom::thread;

use super::{Selector, ABORTED, CLOSED_BIT, WAITING};
use crate::chan::lock::ChanMutex;

/// An op's slot, whether its channel's queue still holds it (only under
/// that channel's lock), and its liveness (read by every party that touches
/// the op or its selector, written once by the owner when its frame goes
/// away).
struct OpCell {
    slot: UnsafeCell<Option<u32>>,
    queued: UnsafeCell<bool>,
    alive: UnsafeCell<bool>,
}

impl OpCell {
    fn new() -> OpCell {
        OpCell { slot: UnsafeCell::new(None), queued: UnsafeCell::new(true), alive: UnsafeCell::new(true) }
    }
    /// `pop_front` of the op from its queue, or `dequeue_locked` (the caller
    /// holds the channel lock): true if it was still there. A waker meets
    /// an op only this way (stale entries included).
    fn pop(&self) -> bool {
        // SAFETY: (model) under the channel lock.
        self.queued.with_mut(|p| unsafe { std::mem::replace(&mut *p, false) })
    }
    /// A touch of the op by a party other than its owner.
    fn touch(&self) {
        // SAFETY: (model) a read; loom checks it against `free`.
        assert!(self.alive.with(|p| unsafe { *p }), "op touched after it was freed");
    }
    /// `Won::complete`'s move of the value (a sender's `put`).
    fn put(&self, v: u32) {
        // SAFETY: (model) invariant 4 says the winner alone.
        self.slot.with_mut(|p| unsafe { *p = Some(v) });
    }
    /// The owner takes the value (`Op::take`).
    fn take(&self) -> Option<u32> {
        // SAFETY: (model) invariant 4 says the owner alone now.
        self.slot.with_mut(|p| unsafe { (*p).take() })
    }
    /// The owner's frame goes away (invariant 6).
    fn free(&self) {
        // SAFETY: (model) loom checks no other party is at work.
        self.alive.with_mut(|p| unsafe { *p = false });
    }
}

/// The model's selector: the real one, shared across the model's threads.
struct Sel(Selector);
// SAFETY: (model) `Selector` is Send + Sync in the real code through
// its `WaiterRef` (`park.rs`); loom's atomics are too.
unsafe impl Send for Sel {}
// SAFETY: as above.
unsafe impl Sync for Sel {}

/// A single op (own selector, `claim_locked`) on one channel: a sender
/// that completes it, a closer that fails it, and its owner who times out
/// and aborts. Covers every order of the three claims under the lock, the
/// owner seeing `done` before or after its abort, and a lost abort
/// followed at once by the owner's read and free.
#[test]
fn loom_single_op_claim() {
    crate::loom::model(|| {
        let st = Arc::new((ChanMutex::new(()), Sel(Selector::new()), OpCell::new()));
        let s1 = st.clone();
        let sender = thread::spawn(move || {
            let (lock, sel, op) = &*s1;
            let held = lock.raw().lock();
            if op.pop() && {
                op.touch();
                sel.0.claim_locked(0)
            } {
                op.put(7);
                op.touch();
                // SAFETY: won the claim just above, lock held.
                unsafe { Selector::finish(&sel.0) };
            }
            // SAFETY: `held` is this lock's acquisition.
            unsafe { lock.raw().unlock(held) };
        });
        let s2 = st.clone();
        let closer = thread::spawn(move || {
            let (lock, sel, op) = &*s2;
            let held = lock.raw().lock();
            if op.pop() && {
                op.touch();
                sel.0.claim_locked(CLOSED_BIT)
            } {
                // SAFETY: as for the sender.
                unsafe { Selector::finish(&sel.0) };
            }
            // SAFETY: `held` is this lock's acquisition.
            unsafe { lock.raw().unlock(held) };
        });
        let (lock, sel, op) = &*st;
        // `Selector::wait` with the deadline passed: one look at `done`,
        // then the abort closure (`Chan::abort`).
        let won = match sel.0.won() {
            Some(s) => Some(s),
            None => {
                let held = lock.raw().lock();
                let aborted = sel.0.claim_locked(ABORTED);
                if aborted {
                    op.pop(); // `dequeue_locked`
                }
                // SAFETY: `held` is this lock's acquisition.
                unsafe { lock.raw().unlock(held) };
                if aborted {
                    None
                } else {
                    // The winner worked under the lock we just took.
                    Some(sel.0.won().expect("a lost abort must find the winner done"))
                }
            }
        };
        match won {
            Some(0) => assert_eq!(op.take(), Some(7)),
            Some(s) => {
                assert_eq!(s, CLOSED_BIT);
                assert_eq!(op.take(), None);
            }
            None => assert_eq!(op.take(), None),
        }
        assert_ne!(sel.0.state.load(std::sync::atomic::Ordering::Relaxed), WAITING);
        op.free();
        sender.join().unwrap();
        closer.join().unwrap();
    });
}

/// A select with a receive case on each of two channels: a sender on each
/// races to claim the shared selector by CAS, and the owner times out and
/// aborts by CAS. Covers: either sender winning (the other's CAS failing),
/// the abort winning (no slot touched), the abort losing to a winner still
/// at work (the owner waits for `done`), and the owner's dequeue under
/// each lock waiting out a loser before the frame goes away.
#[test]
fn loom_select_claim() {
    crate::loom::model(|| {
        let st =
            Arc::new((Sel(Selector::new()), [ChanMutex::new(()), ChanMutex::new(())], [OpCell::new(), OpCell::new()]));
        let senders: Vec<_> = (0..2)
            .map(|i| {
                let st = st.clone();
                thread::spawn(move || {
                    let (sel, locks, ops) = &*st;
                    let held = locks[i].raw().lock();
                    if ops[i].pop() && {
                        ops[i].touch();
                        sel.0.claim(i)
                    } {
                        ops[i].put(10 + i as u32);
                        ops[i].touch();
                        // SAFETY: won the CAS just above, lock held.
                        unsafe { Selector::finish(&sel.0) };
                    }
                    // SAFETY: `held` is this lock's acquisition.
                    unsafe { locks[i].raw().unlock(held) };
                })
            })
            .collect();
        let (sel, locks, ops) = &*st;
        // `Selector::wait` with the deadline passed, `abort` = the CAS.
        let won = loop {
            if let Some(s) = sel.0.won() {
                break Some(s);
            }
            if sel.0.abort() {
                break None;
            }
            // Lost the abort: the winner's wake follows; `park` until then.
            thread::yield_now();
        };
        match won {
            Some(i) => assert_eq!(ops[i].take(), Some(10 + i as u32)),
            None => {
                assert_eq!(ops[0].take(), None);
                assert_eq!(ops[1].take(), None);
            }
        }
        // select.rs: every case's op is dequeued under its channel's lock
        // before the select returns (invariant 6).
        for (l, op) in locks.iter().zip(ops) {
            let held = l.raw().lock();
            op.pop(); // `dequeue_locked`
                      // SAFETY: `held` is this lock's acquisition.
            unsafe { l.raw().unlock(held) };
        }
        ops[0].free();
        ops[1].free();
        for t in senders {
            t.join().unwrap();
        }
    });
}
