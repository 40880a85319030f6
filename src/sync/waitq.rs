//! A FIFO queue of parked parties, each waiting to be *granted* something
//! (a lock, a permit). The granter flips `granted` under the queue lock, then
//! wakes the party after unlocking; the party sees `granted` and owns the
//! thing. A party that leaves the queue early (cancellation unwinding through
//! `park`) removes itself and calls the owner's `on_leave` under the lock:
//! if it was already granted, the owner passes the grant on; if it was still
//! queued, the owner may let the parties behind it move up.
//!
//! A party may also be woken *to retry* instead of granted (the `Mutex`'s
//! normal mode, like Go's): it leaves the queue and competes for the thing
//! again, and if it loses it queues again at the front. If it unwinds after
//! such a wake, `on_leave` runs with `Left::Retried`, so the owner passes the
//! wake on.
//!
//! Wait records: a queued coroutine's `WaitReason` is written under the
//! queue lock, by the party itself when it queues and afterwards by the
//! owner (`Slot::set_wait`) when whom it waits for changes, and the party
//! parks with `park_recorded`, which keeps it. So the record always reflects
//! the queue as of its last change (locks use this for wait-for edges). A
//! grant, or a wake to retry, clears it (`WaitReason::None`) before the
//! party's flag is raised (`publish`): once the flag is up the record is
//! the party's again, since it may return at once without parking.
//!
//! Where slots live: in the waiting party's own `wait_ex` frame, never on
//! the heap (a park allocates nothing, as on a channel). The queue is a
//! doubly linked list through the slots themselves ([`Queue`], on
//! `crate::list`; its links are touched only under the queue lock), so a party that leaves from
//! anywhere in it (cancellation) does so in O(1), as on a channel; popped
//! slots are handed out as [`SlotRef`]s. (With stack swapping on, linking
//! or unlinking next to a slot whose stack is swapped out brings that stack
//! back through the fault handler, as a grant does: unlike a channel's,
//! these queues do not edit saved copies.) A slot stays alive while it is
//! queued, and after a granter popped it until the granter raises its flag:
//! the party leaves `wait_ex` only once it sees its flag raised, or after
//! its `Leave` took the slot out of the queue under the lock. So a granter
//! takes everything it needs from the slot (the `Waiter` to wake) *before*
//! it raises the flag, and never touches the slot after.
//!
//! Owns: [`Slot`] (one per waiting party) and the queue of them.
//! Invariants: a slot's `granted`/`retry` flag is raised at most once, by
//! a granter holding the queue lock, and is the last access of the granter
//! to the slot and to the party's record; the record is written by others
//! only while the slot is queued or being granted. Lock order: the queue lock, then the
//! record's own spin lock (`ReasonCell`); no lock is held across a park or
//! a wake.

use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use parking_lot::{Mutex, MutexGuard};

use crate::list::{Links, List, Node};
use crate::wait::WaitReason;
// The flags' atomics: std's, or loom's in the model checker's build
// (`waitq_loom.rs` checks `publish`).
use crate::loom::atomic::AtomicBool;
use crate::park::{self, Waiter};

/// One waiting party.
pub(crate) struct Slot {
    waiter: Waiter,
    granted: AtomicBool,
    /// Woken to compete again, not granted (see the module note).
    retry: AtomicBool,
    /// What it wants (a reader or a writer, a number of permits).
    pub(crate) want: usize,
    /// Its place in its queue: touched only under the queue lock.
    links: UnsafeCell<Links<Slot>>,
}

// SAFETY: the flags are atomics and the waiter and record are thread-safe;
// `links` is read and written only by holders of the queue lock (`Queue`'s
// methods take the queue, which lives under that lock).
unsafe impl Sync for Slot {}
// SAFETY: as above; a slot never leaves its party's frame.
unsafe impl Send for Slot {}

// SAFETY: one `Links` per slot, in the slot.
unsafe impl Node for Slot {
    unsafe fn links<'a>(p: *const Slot) -> &'a mut Links<Slot> {
        // SAFETY: `Node::links`'s contract: `p` is alive and its links are
        // ours under the queue lock, with no other reference to them.
        unsafe { &mut *(*p).links.get() }
    }
}

impl Slot {
    /// Grants the party what it waits for; returns whom to wake. The slot
    /// is the party's again (module note): do not touch it after.
    pub(crate) fn grant(&self) -> Waiter {
        self.runnable(&self.granted)
    }

    /// Takes the party out of line to compete again; returns whom to wake.
    /// As with `grant`, the slot is not to be touched after.
    pub(crate) fn wake_to_retry(&self) -> Waiter {
        self.runnable(&self.retry)
    }

    /// The party waits for nobody any more: its record says so at once
    /// (under the queue lock, while the slot is still ours to write). A
    /// coroutine woken from another thread stays parked until its home
    /// applies the wake (coroutine.rs), and the partial-deadlock search
    /// must not read its old lock edge meanwhile. Then `flag` (`granted` or
    /// `retry`) is raised: see [`publish`] for why in that order. Returns
    /// whom to wake, taken before the flag: the flag hands the slot back
    /// to its party (module note).
    fn runnable(&self, flag: &AtomicBool) -> Waiter {
        let w = self.waiter.clone();
        publish(flag, || self.waiter.set_wait(WaitReason::None));
        w
    }

    /// The waiting coroutine's id (0: a plain thread).
    pub(crate) fn coroutine_id(&self) -> u64 {
        self.waiter.coroutine_id()
    }

    /// Rewrites what the waiting party waits on. Only under the queue lock,
    /// and only for a slot still queued (module note).
    pub(crate) fn set_wait(&self, reason: WaitReason) {
        self.waiter.set_wait(reason);
    }
}

/// Clears a party's wait record, then raises its `granted` or `retry` flag:
/// the flag is the publication, and the record write must come before it.
/// The party may see the flag without ever parking (it checks before each
/// park), return, and park elsewhere with its own reason, which reads the
/// record unlocked (`ReasonCell::set_own`, coroutine.rs): a record write
/// after the flag could race that read. Release: pairs with the Acquire
/// loads in `wait_ex` (and in `Leave::drop`), so the party sees the record
/// cleared and the state the granter set up for it. Nothing of the party
/// is touched after the store (the caller keeps the `Slot` alive itself).
/// Checked by `loom_tests::grant_vs_repark`.
#[inline]
fn publish(flag: &AtomicBool, clear_record: impl FnOnce()) {
    clear_record();
    flag.store(true, Ordering::Release);
}

/// A queued party's slot: a pointer into its `wait_ex` frame, valid while
/// the slot is queued and, once popped, until its flag is raised (module
/// note). Not `Clone`: the queue's entry is the one handle.
pub(crate) struct SlotRef(NonNull<Slot>);

// SAFETY: a `SlotRef` is only used by holders of its queue's lock, on any
// thread; the `Slot` it points to is `Sync` (its flags are atomics, its
// waiter and record are thread-safe) and outlives every such use (module
// note).
unsafe impl Send for SlotRef {}

impl std::ops::Deref for SlotRef {
    type Target = Slot;
    fn deref(&self) -> &Slot {
        // SAFETY: module note: the party is still in `wait_ex` with this
        // slot in its frame while the slot is queued, or popped and not yet
        // granted (the caller holds the queue lock, or popped it under it).
        unsafe { self.0.as_ref() }
    }
}

/// The parked parties of one lock, first in line first: an intrusive
/// doubly linked list through the slots' `links` (the slots stay put in
/// their parties' frames while queued), so a party that leaves from the
/// middle (cancellation) does so in O(1), and queueing allocates nothing.
/// Lives under its owner's lock, with the state it guards.
pub(crate) struct Queue {
    list: List<Slot>,
    /// Bumped by every change: a [`Place`] is good only until the next.
    edits: u64,
}

// SAFETY: the queue holds pointers to slots, which are `Sync`, and is only
// touched under its owner's lock (a `Mutex<(S, Queue)>`).
unsafe impl Send for Queue {}

/// Where a party that left from the middle of a queue was: its neighbours
/// then, readable from the queue until the queue next changes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Place {
    ahead: *const Slot,
    behind: *const Slot,
    edits: u64,
}

// Every `unsafe` call below is `List`'s, whose contract (`Node::links`'s)
// holds for a queue: its slots are queued, so alive (module note), and
// `&mut self` stands for the queue lock.
impl Queue {
    pub(crate) const fn new() -> Queue {
        Queue { list: List::new(), edits: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// # Safety
    ///
    /// `p` is null or a slot of this queue (queued, so alive: module note).
    unsafe fn get(&self, p: *const Slot) -> Option<&Slot> {
        // SAFETY: the contract; the borrow of the queue keeps it from
        // changing (and so the slot from leaving) while the result lives.
        unsafe { p.as_ref() }
    }

    pub(crate) fn front(&self) -> Option<&Slot> {
        // SAFETY: the head is null or queued.
        unsafe { self.get(self.list.head()) }
    }

    pub(crate) fn back(&self) -> Option<&Slot> {
        // SAFETY: the tail is null or queued.
        unsafe { self.get(self.list.tail()) }
    }

    pub(crate) fn push_back(&mut self, s: SlotRef) {
        // SAFETY: see the `impl`; `s` is a new party's slot, in no queue.
        unsafe { self.list.push_back(s.0.as_ptr()) };
        self.edits += 1;
    }

    pub(crate) fn push_front(&mut self, s: SlotRef) {
        // SAFETY: as in `push_back`.
        unsafe { self.list.push_front(s.0.as_ptr()) };
        self.edits += 1;
    }

    pub(crate) fn pop_front(&mut self) -> Option<SlotRef> {
        // SAFETY: see the `impl`.
        let p = unsafe { self.list.pop_front() }?;
        self.edits += 1;
        Some(SlotRef(p))
    }

    /// Pops every slot, first in line first.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = SlotRef> + '_ {
        std::iter::from_fn(move || self.pop_front())
    }

    /// Takes `slot` out if it is queued here: where it was, or `None`.
    fn remove(&mut self, slot: &Slot) -> Option<Place> {
        // SAFETY: see the `impl`; `slot` is the caller's own, queued here or
        // nowhere.
        let (ahead, behind) = unsafe { self.list.remove(slot) }?;
        self.edits += 1;
        Some(Place { ahead, behind, edits: self.edits })
    }

    /// The party that was just ahead of the one that left at `at`.
    pub(crate) fn ahead(&self, at: &Place) -> Option<&Slot> {
        assert_eq!(at.edits, self.edits, "goro bug: a stale queue place");
        // SAFETY: the queue has not changed since `at` was taken, so its
        // neighbours are still queued here.
        unsafe { self.get(at.ahead) }
    }

    /// The party that was just behind the one that left at `at`.
    pub(crate) fn behind(&self, at: &Place) -> Option<&Slot> {
        assert_eq!(at.edits, self.edits, "goro bug: a stale queue place");
        // SAFETY: as in `ahead`.
        unsafe { self.get(at.behind) }
    }
}

/// How a party left the queue early.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Left {
    /// It had been granted: the owner must pass the grant on.
    Granted,
    /// It was still queued, there (its neighbours now neighbour each other).
    Queued(Place),
    /// It had been woken to retry (out of the queue, owning nothing): the
    /// owner must pass the wake on.
    Retried,
}

/// How a wait ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Woken {
    Granted,
    Retry,
}

/// What a party that leaves early makes its owner do: given the locked state
/// and queue, the leaving slot and how it left, returns whom to wake.
pub(crate) type OnLeave<'a, S> = &'a dyn Fn(&mut (S, Queue), &Slot, Left) -> Vec<Waiter>;

/// A FIFO of slots, guarded by the owner's state lock `S`.
pub(crate) struct WaitQueue<S> {
    inner: Mutex<(S, Queue)>,
}

impl<S> WaitQueue<S> {
    pub(crate) const fn new(state: S) -> Self {
        WaitQueue { inner: Mutex::new((state, Queue::new())) }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, (S, Queue)> {
        self.inner.lock()
    }

    /// Queues the caller (the queue lock `g` is held and released here) with
    /// `reason` as its wait record, then parks until granted. `on_leave`
    /// runs (with the lock held) if the caller unwinds before it returns.
    #[track_caller]
    pub(crate) fn wait(
        &self,
        g: MutexGuard<'_, (S, Queue)>,
        want: usize,
        reason: WaitReason,
        on_leave: OnLeave<'_, S>,
    ) {
        let w = self.wait_ex(g, want, false, reason, on_leave);
        debug_assert_eq!(w, Woken::Granted);
    }

    /// Like `wait`, but the party may also be woken to retry, and may queue
    /// at the front (a retrying party that lost again keeps its place).
    #[track_caller]
    pub(crate) fn wait_ex(
        &self,
        mut g: MutexGuard<'_, (S, Queue)>,
        want: usize,
        front: bool,
        reason: WaitReason,
        on_leave: OnLeave<'_, S>,
    ) -> Woken {
        // In this frame, which outlives its queue entry (module note): the
        // `Leave` below, dropped before `slot`, takes it out of the queue on
        // an unwind. Nothing between the push and `leave` can unwind (a
        // push only links the slot: it allocates nothing, so cannot fail).
        let slot = Slot {
            waiter: Waiter::current(),
            granted: AtomicBool::new(false),
            retry: AtomicBool::new(false),
            want,
            links: UnsafeCell::new(Links::NONE),
        };
        slot.set_wait(reason);
        let entry = SlotRef(NonNull::from(&slot));
        if front {
            g.1.push_front(entry);
        } else {
            g.1.push_back(entry);
        }
        drop(g);
        struct Leave<'a, S> {
            q: &'a WaitQueue<S>,
            slot: &'a Slot,
            on_leave: OnLeave<'a, S>,
            done: bool,
        }
        impl<S> Drop for Leave<'_, S> {
            fn drop(&mut self) {
                if self.done {
                    return;
                }
                let mut g = self.q.inner.lock();
                let left = match g.1.remove(self.slot) {
                    Some(at) => Left::Queued(at),
                    None if self.slot.granted.load(Ordering::Acquire) => Left::Granted,
                    None if self.slot.retry.load(Ordering::Acquire) => Left::Retried,
                    None => return,
                };
                let wake = (self.on_leave)(&mut g, self.slot, left);
                drop(g);
                for w in wake {
                    w.wake();
                }
            }
        }
        let mut leave = Leave { q: self, slot: &slot, on_leave, done: false };
        let woken = loop {
            if leave.slot.granted.load(Ordering::Acquire) {
                break Woken::Granted;
            }
            if leave.slot.retry.load(Ordering::Acquire) {
                break Woken::Retry;
            }
            park::park_recorded(reason);
        };
        leave.done = true;
        woken
    }
}

#[cfg(all(test, goro_loom))]
#[path = "waitq_loom.rs"]
mod loom_tests;
