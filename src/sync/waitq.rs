//! A FIFO queue of parked parties, each waiting to be *granted* something
//! (a lock, a permit). The granter flips `granted` under the queue lock, then
//! wakes the party after unlocking; the party sees `granted` and owns the
//! thing. A party that leaves the queue early (cancellation unwinding through
//! `park`) removes itself; if it was already granted, it hands the grant back
//! through the `on_abandon` callback so the next one gets it.
//!
//! A party may also be woken *to retry* instead of granted (the `Mutex`'s
//! normal mode, like Go's): it left the queue and competes for the thing
//! again. If it unwinds after such a wake, `on_abandon` runs as well, so the
//! wake passes to the next party.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use crate::diag::WaitReason;
use crate::park::{self, Waiter};

/// One waiting party.
pub(crate) struct Slot {
    waiter: Waiter,
    granted: AtomicBool,
    /// Woken to compete again, not granted (see the module note).
    retry: AtomicBool,
    /// What it wants (a reader or a writer, a number of permits).
    pub(crate) want: usize,
}

impl Slot {
    pub(crate) fn grant(self: &Arc<Self>) -> Waiter {
        // Release: pairs with the Acquire load in `wait`, so the grantee sees
        // the state the granter set up for it.
        self.granted.store(true, Ordering::Release);
        self.waiter.clone()
    }

    /// Takes the party out of line to compete again; returns whom to wake.
    pub(crate) fn wake_to_retry(self: &Arc<Self>) -> Waiter {
        self.retry.store(true, Ordering::Release);
        self.waiter.clone()
    }
}

/// What `on_abandon` gets as `want` when the party leaving had been woken
/// to retry rather than granted.
pub(crate) const ABANDONED_RETRY: usize = usize::MAX;

/// How a wait ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Woken {
    Granted,
    Retry,
}

/// What a granted-then-abandoned waiter calls to pass its grant on: given the
/// locked state and queue and what it wanted, returns whom to wake.
pub(crate) type OnAbandon<'a, S> = &'a dyn Fn(&mut (S, VecDeque<Arc<Slot>>), usize) -> Vec<Waiter>;

/// A FIFO of slots, guarded by the owner's state lock `S`.
pub(crate) struct WaitQueue<S> {
    inner: Mutex<(S, VecDeque<Arc<Slot>>)>,
}

impl<S> WaitQueue<S> {
    pub(crate) const fn new(state: S) -> Self {
        WaitQueue { inner: Mutex::new((state, VecDeque::new())) }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, (S, VecDeque<Arc<Slot>>)> {
        self.inner.lock()
    }

    /// Queues the caller (the queue lock `g` is held and released here), then
    /// parks until granted. `on_abandon` runs (with the lock held) if the
    /// caller unwinds after it was granted, to pass the grant on; it returns
    /// the waiters to wake.
    pub(crate) fn wait(
        &self,
        g: MutexGuard<'_, (S, VecDeque<Arc<Slot>>)>,
        want: usize,
        reason: WaitReason,
        on_abandon: OnAbandon<'_, S>,
    ) {
        let w = self.wait_ex(g, want, false, reason, on_abandon);
        debug_assert_eq!(w, Woken::Granted);
    }

    /// Like `wait`, but the party may also be woken to retry, and may queue
    /// at the front (a retrying party that lost again keeps its place).
    pub(crate) fn wait_ex(
        &self,
        mut g: MutexGuard<'_, (S, VecDeque<Arc<Slot>>)>,
        want: usize,
        front: bool,
        reason: WaitReason,
        on_abandon: OnAbandon<'_, S>,
    ) -> Woken {
        let slot = Arc::new(Slot {
            waiter: Waiter::current(),
            granted: AtomicBool::new(false),
            retry: AtomicBool::new(false),
            want,
        });
        if front {
            g.1.push_front(slot.clone());
        } else {
            g.1.push_back(slot.clone());
        }
        drop(g);
        struct Leave<'a, S> {
            q: &'a WaitQueue<S>,
            slot: Arc<Slot>,
            on_abandon: OnAbandon<'a, S>,
            done: bool,
        }
        impl<S> Drop for Leave<'_, S> {
            fn drop(&mut self) {
                if self.done {
                    return;
                }
                let mut g = self.q.inner.lock();
                if let Some(pos) = g.1.iter().position(|s| Arc::ptr_eq(s, &self.slot)) {
                    g.1.remove(pos);
                    return;
                }
                let granted = self.slot.granted.load(Ordering::Acquire);
                if granted || self.slot.retry.load(Ordering::Acquire) {
                    let want = if granted { self.slot.want } else { ABANDONED_RETRY };
                    let wake = (self.on_abandon)(&mut g, want);
                    drop(g);
                    for w in wake {
                        w.wake();
                    }
                }
            }
        }
        let mut leave = Leave { q: self, slot, on_abandon, done: false };
        let woken = loop {
            if leave.slot.granted.load(Ordering::Acquire) {
                break Woken::Granted;
            }
            if leave.slot.retry.load(Ordering::Acquire) {
                break Woken::Retry;
            }
            park::park(reason);
        };
        leave.done = true;
        woken
    }
}
