//! The channel core: one lock per channel guarding its buffer and its two
//! wait queues, Go's `hchan` shape.
//!
//! Invariants (as in Go's chan.go):
//!  1. At most one of `sendq` and `recvq` holds live entries: a sender only
//!     queues when no receiver waits, and the other way round. (Stale entries,
//!     whose selector was already won elsewhere, are dropped when met.)
//!  2. Buffered: `buf` non-empty implies no live receiver waits; `sendq`
//!     non-empty implies `buf` is full.
//!  3. Every queued [`Op`] belongs to one [`Selector`] (a single op or the
//!     cases of one select). Its `state` leaves WAITING exactly once, and
//!     that claim decides every race (a sender vs. another sender, a select's
//!     cases against each other, a timeout against a hand-off, a close). A
//!     select's selector is shared by ops on several channels, so it is
//!     claimed by CAS. A single op's own selector is only ever claimed under
//!     its one channel's lock (winners work under it, and its owner aborts
//!     under it too), so there a load and a store decide (`Op::claim`).
//!  4. The party that wins the claim moves the value through the op's
//!     `slot` while holding this channel's lock, then sets `done`; the op's
//!     owner reads the slot only after seeing `done` (Acquire) or after its
//!     own abort won. So exactly one party touches a slot at a time.
//!  5. No lock is held while waking: wakers are collected, the lock dropped,
//!     then each woken (Go's closechan).
//!  6. Queues hold [`OpPtr`]s, not references counted: the `Op` lives in its
//!     owner's frame (a single op: on the parked coroutine's stack, like Go's
//!     sudog pointing at the stack; a select: in its cases), with no
//!     allocation per park. The owner keeps it alive until no queue holds it
//!     and no winner is still at work on it: the winner's last access is the
//!     Release store of `done` (it takes the waker before), and an owner that
//!     returns without seeing `done` (abort, unwinding) first removes its op
//!     under the channel lock, or, if its abort lost, takes the channel lock
//!     once, which waits out the winner (all winners work under that lock).
//!  7. A select may also wait for send *readiness* only (the dynamic
//!     `Select`'s send cases): an [`Observer`] in `observers`, claimed for
//!     its case, under the lock, by whoever makes a send possible (a
//!     receive that frees a slot, a receiver that queues, close, the last
//!     receiver leaving), exactly as an op is claimed (invariants 3, 4, 6),
//!     with no value moved. A select's own queued receive never claims its
//!     own observer.
//!  8. `sendq` and `recvq` are intrusive lists ([`Queue`], on
//!     `crate::list`, which the `goro::sync` queues share): each op carries
//!     its own links, and those links, like the queue's ends, are read and
//!     written only under the channel's lock, through `on_stack` (an op's
//!     neighbours live in other parked parties' frames, perhaps swapped
//!     out: `stack/swap.rs` note 5; the links are objects of this channel,
//!     so editing them there is this lock holder's alone). An op is in at
//!     most one queue, once (`Links::queued`); leaving it, by a pop or by
//!     its owner's `dequeue_locked`, is O(1) and clears its links.
//!
//! Performance rule: a blocking `send`/`recv` parks in its caller's frame.
//! `Chan::send`/`recv`, `Selector::wait`, `park::park_deadline_ref` and
//! `coroutine::park_current` are `#[inline(always)]`, and so are the public
//! `Sender::send`, `Receiver::recv` and the receivers' iterators, so the
//! stack switch lies in the user's loop. A coroutine resumed deeper down
//! first returns through goro's frames, and every return right after a
//! stack switch is mispredicted (the return stack buffer holds the worker's
//! calls): that cost ring 40 % and pingpong 30 % of their time. Keep rare
//! work out of line (`#[cold]`) so the inlined copy stays small, and pass
//! the wait reason and the `Wake` by address: copies of them between stack
//! slots failed store forwarding. The hand-off itself (`try_send_into`,
//! `try_recv_into`) is inlined into `send` and `recv` too, looks up where a
//! queued op lies once (`OpPtr::claim_for`), and calls the waker only when
//! there is somebody to wake (`Wake::wake_any`).

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Weak;
use std::time::Instant;

use super::err::*;
use super::lock::{ChanMutex, ChanMutexGuard};
use crate::list::{Links, List, Node};
use crate::loom::atomic as model;
use crate::park::{self, Wakeup};
use crate::wait::WaitReason;

const WAITING: usize = usize::MAX;
const ABORTED: usize = usize::MAX - 1;
/// Set in a won state when the op completed because the channel closed (or
/// lost its receivers).
pub(crate) const CLOSED_BIT: usize = 1 << (usize::BITS - 2);

/// What sends do when the buffer is full.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// Block (Go's channels).
    Normal,
    /// Discard the new value.
    Dropping,
    /// Discard the oldest buffered value.
    Sliding,
}

/// One waiting party (a single op, or all cases of one select).
///
/// Its atomics come from `crate::loom` (std's, or loom's in the model
/// checker's build: `imp_loom.rs` checks invariants 3, 4 and 6 on it).
#[derive(Debug)]
pub(crate) struct Selector {
    state: model::AtomicUsize,
    done: model::AtomicBool,
    waiter: crate::park::WaiterRef,
}

impl Selector {
    /// A selector for the calling party, to live in its frame (a select's
    /// own, or embedded in a single operation's `Op`).
    #[inline]
    pub(crate) fn new() -> Selector {
        Selector {
            state: model::AtomicUsize::new(WAITING),
            done: model::AtomicBool::new(false),
            waiter: crate::park::WaiterRef::current(),
        }
    }

    /// Invariant 3: the one CAS (a select's selector).
    fn claim(&self, v: usize) -> bool {
        self.state.compare_exchange(WAITING, v, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Invariant 3 for a single op's own selector: every claim of it runs
    /// under its channel's lock, which orders them, so no locked instruction
    /// is needed. Relaxed: the owner reads the state only after `done`
    /// (Acquire, which the winner stores after this) or under the lock.
    #[inline]
    fn claim_locked(&self, v: usize) -> bool {
        if self.state.load(Ordering::Relaxed) != WAITING {
            return false;
        }
        self.state.store(v, Ordering::Relaxed);
        true
    }

    /// The winner finished moving the value (invariant 4). This is the
    /// winner's last access to the op (invariant 6): the owner may free it
    /// as soon as the store is visible, so the store goes through a raw
    /// pointer and nothing follows it (std's `Once` waiter queue does the
    /// same with waiter nodes on their threads' stacks).
    ///
    /// # Safety
    ///
    /// `this` points to a live selector whose CAS the caller won.
    #[inline]
    unsafe fn finish(this: *const Selector) {
        // SAFETY: live per the contract; `done` is an atomic, so the owner's
        // concurrent loads are no data race. Release: pairs with `wait`.
        unsafe { (*std::ptr::addr_of!((*this).done)).store(true, Ordering::Release) }
    }

    /// Who to wake once the channel lock is dropped.
    #[inline]
    fn waker(&self) -> Wakeup {
        self.waiter.wakeup()
    }

    /// Gives up a select (timeout, cancellation). False if someone already
    /// won.
    pub(crate) fn abort(&self) -> bool {
        self.claim(ABORTED)
    }

    /// The won state, once the winner has finished (`done`, Acquire: the
    /// winner's moves through the slot are visible then, invariant 4).
    #[inline]
    fn won(&self) -> Option<usize> {
        if self.done.load(Ordering::Acquire) {
            Some(self.state.load(Ordering::Acquire))
        } else {
            None
        }
    }

    /// Parks until won (returns the won state) or until `deadline` passes and
    /// `abort` (the owner's claim of ABORTED) wins (returns None).
    #[inline(always)]
    #[track_caller]
    pub(crate) fn wait(
        &self,
        reason: WaitReason,
        deadline: Option<Instant>,
        mut abort: impl FnMut() -> bool,
    ) -> Option<usize> {
        loop {
            if let Some(st) = self.won() {
                return Some(st);
            }
            if let Some(d) = deadline {
                if Instant::now() >= d {
                    if abort() {
                        return None;
                    }
                    // Won just now by someone finishing under a lock: the
                    // wake follows at once.
                    if !self.done.load(Ordering::Acquire) {
                        park::park_deadline_ref(&reason, None);
                    }
                    continue;
                }
            }
            park::park_deadline_ref(&reason, deadline);
        }
    }
}

/// The selector of an op: its own (a single send/recv) or shared by the
/// cases of one select.
enum SelRef {
    Own(Selector),
    /// The select's selector, in its frame: it outlives the select's ops
    /// (the select dequeues them all before returning, invariant 6).
    Shared(NonNull<Selector>),
}

/// Where a channel-lock holder accesses a queued party's object (an op or
/// a selector) at `p`: at `p`, unless its stack is swapped out, then in
/// the stack's saved copy (`stack/swap.rs` note 5). One load and branch
/// when swapping is off.
#[inline(always)]
fn on_stack<X>(p: *mut X) -> *mut X {
    if crate::stack::swap::enabled() && std::mem::align_of::<X>() <= 64 {
        crate::stack::swap::redirect(p as usize) as *mut X
    } else {
        p
    }
}

/// No reference into a queued party's object is held any more: the saved
/// stack copies edited so far may go back (`stack/swap.rs` note 5).
#[inline(always)]
fn end_edits() {
    if crate::stack::swap::enabled() {
        crate::stack::swap::end_edits();
    }
}

/// One pending operation on one channel.
pub(crate) struct Op<T> {
    sel: SelRef,
    case: usize,
    slot: UnsafeCell<Option<T>>,
    /// Its place in its channel's `sendq` or `recvq` (a [`Queue`]):
    /// touched only under that channel's lock (invariant 8).
    /// The neighbours are the real addresses of the ops, never those of a
    /// saved stack copy, which `on_stack` gives only for the access at hand.
    links: UnsafeCell<Links<Op<T>>>,
}

// SAFETY: `slot` is accessed by one party at a time (module invariant 4);
// the value is a `T: Send` moving between parties.
unsafe impl<T: Send> Send for Op<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Op<T> {}

/// A queued op (invariant 6): dereferenced only under the lock of the
/// channel whose queue held it.
pub(crate) struct OpPtr<T>(NonNull<Op<T>>);

// SAFETY: an `OpPtr` is a shared reference to an `Op<T>` whose owner keeps
// it alive (invariant 6), and `Op<T>: Sync` for `T: Send`.
unsafe impl<T: Send> Send for OpPtr<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for OpPtr<T> {}

impl<T> OpPtr<T> {
    /// # Safety
    ///
    /// The caller (the op's owner) keeps `op` where it is and alive until
    /// the pointer has left every queue and every winner (invariant 6).
    pub(crate) unsafe fn new(op: &Op<T>) -> OpPtr<T> {
        OpPtr(NonNull::from(op))
    }

    /// Claims this queued op for its own case, with `bits` (`CLOSED_BIT`
    /// or 0) added (invariant 3): `Some` if the caller won it. Looks up
    /// where the op lies once (`on_stack`) for the claim and the whole
    /// completion: under one lock section a stack has one kind of address
    /// (`stack/swap.rs` note 7), so the answer holds until the lock is
    /// released. (Looked up at every access, a hand-off asked five times
    /// whether stacks swap, 5 % of a pingpong round trip.)
    ///
    /// The caller holds the channel lock of the queue the op came from.
    #[inline(always)]
    fn claim_for(self, bits: usize) -> Option<Won<T>> {
        let p = on_stack(self.0.as_ptr()) as *const Op<T>;
        // SAFETY: as in `deref`: invariant 6 keeps the op alive while it is
        // queued or being completed, and we hold the channel lock.
        let op = unsafe { &*p };
        op.claim(op.case | bits).then_some(Won(p))
    }
}

/// An op whose claim the caller just won, at the address `claim_for`
/// looked up; used within that lock section only.
struct Won<T>(*const Op<T>);

impl<T> Won<T> {
    /// Completes the op: puts the waker in `party`, lets `move_value` move
    /// the value through the slot, then makes the final `done` store, the
    /// last touch of the op (invariant 6). Returns `move_value`'s result;
    /// `party` is whom to wake once the lock is dropped.
    ///
    /// # Safety
    ///
    /// The caller still holds the channel lock it claimed the op under, so
    /// `move_value` may use the op's slot (invariant 4).
    ///
    /// Inlined into the hand-off, and the waker written straight into its
    /// final place: a `Wakeup` is two words, stored as two 8-byte halves;
    /// returned by value it was copied on as one 16-byte load before those
    /// stores had left the store buffer, a store-forwarding stall that
    /// `perf annotate` put at a fifth of a pingpong hand-off's samples.
    #[inline(always)]
    unsafe fn complete<R>(self, party: &mut Option<Wakeup>, move_value: impl FnOnce(&Op<T>) -> R) -> R {
        // SAFETY: alive until `finish` below (invariant 6, the contract).
        let op = unsafe { &*self.0 };
        let sel = op.sel();
        *party = Some(sel.waker());
        let sel: *const Selector = sel;
        let r = move_value(op);
        // SAFETY: won; nothing touches the op after this store (`op` is not
        // used again).
        unsafe { Selector::finish(sel) };
        r
    }
}

impl<T> std::ops::Deref for OpPtr<T> {
    type Target = Op<T>;
    #[inline]
    fn deref(&self) -> &Op<T> {
        // SAFETY: invariant 6: the owner keeps the op alive while it is
        // queued or being completed, and we hold the channel lock. If its
        // owner's stack is swapped out, `on_stack` gives the op's place in
        // the saved copy instead, which this thread alone may edit until
        // the lock is released (stack/swap.rs note 5).
        unsafe { &*on_stack(self.0.as_ptr()) }
    }
}

impl<T> Op<T> {
    /// An op that is case `case` of the select owning `sel`.
    ///
    /// # Safety
    ///
    /// `sel` outlives the op (and stays where it is).
    pub(crate) unsafe fn new(sel: &Selector, case: usize, v: Option<T>) -> Op<T> {
        Op {
            sel: SelRef::Shared(NonNull::from(sel)),
            case,
            slot: UnsafeCell::new(v),
            links: UnsafeCell::new(Links::NONE),
        }
    }

    /// A single operation with its own selector, to live in its owner's frame.
    fn single(v: Option<T>) -> Op<T> {
        Op { sel: SelRef::Own(Selector::new()), case: 0, slot: UnsafeCell::new(v), links: UnsafeCell::new(Links::NONE) }
    }

    /// Claims this op for `v` (invariant 3): the caller holds the lock of
    /// the channel whose queue holds it.
    #[inline]
    fn claim(&self, v: usize) -> bool {
        match &self.sel {
            SelRef::Own(s) => s.claim_locked(v),
            // SAFETY: the selector outlives the op (`Op::new`'s contract).
            SelRef::Shared(s) => unsafe { &*on_stack(s.as_ptr()) }.claim(v),
        }
    }

    pub(crate) fn sel(&self) -> &Selector {
        match &self.sel {
            SelRef::Own(s) => s,
            // SAFETY: the selector outlives the op (`Op::new`'s contract).
            SelRef::Shared(s) => unsafe { &*on_stack(s.as_ptr()) },
        }
    }

    /// Takes the slot's value.
    ///
    /// # Safety
    ///
    /// Module invariant 4: the caller won this op's selector (and holds the
    /// channel lock), or owns the op and saw `done` or won the abort CAS.
    pub(crate) unsafe fn take(&self) -> Option<T> {
        // SAFETY: exclusive access per the contract above.
        unsafe { (*self.slot.get()).take() }
    }

    /// # Safety
    ///
    /// As for `take`.
    unsafe fn put(&self, v: T) {
        // SAFETY: exclusive access per `take`'s contract.
        unsafe { *self.slot.get() = Some(v) }
    }
}

/// The state under the channel lock.
pub(crate) struct Inner<T> {
    pub(crate) buf: VecDeque<T>,
    pub(crate) closed: bool,
    /// The last Receiver is gone: sends fail.
    pub(crate) no_receivers: bool,
    pub(crate) recvq: Queue<T>,
    pub(crate) sendq: Queue<T>,
    /// Select cases waiting for send readiness only (the dynamic
    /// `Select`'s send cases): each is claimed like an op (invariant 3)
    /// when a send could proceed (invariant 7).
    pub(crate) observers: Observers,
}

/// A send-readiness case (invariant 7): case `case` of the select owning
/// `sel`, queued on at most one channel at a time. It lives on the heap in
/// the dynamic `Select`'s case, reached through shared references only, so
/// a channel may relink it while its owner holds the case; its fields are
/// read and written only under the lock of the channel it is queued on (or
/// being queued on), like an op's links (invariant 8).
pub(crate) struct Observer {
    sel: UnsafeCell<*const Selector>,
    case: UnsafeCell<usize>,
    links: UnsafeCell<Links<Observer>>,
}

// SAFETY: every field is touched only under a channel lock (above), and
// `sel` points to a `Selector` (all atomics, plus a waiter handle that is
// itself `Send + Sync`) that its owner keeps alive while queued
// (invariant 6).
unsafe impl Send for Observer {}
// SAFETY: as above.
unsafe impl Sync for Observer {}

impl Observer {
    pub(crate) fn new() -> Observer {
        Observer {
            sel: UnsafeCell::new(std::ptr::null()),
            case: UnsafeCell::new(0),
            links: UnsafeCell::new(Links::NONE),
        }
    }
}

// SAFETY: one `Links` per observer, in it; an observer is on the heap and
// stays put while queued (its owner's contract, `Inner::observe`).
unsafe impl Node for Observer {
    #[inline]
    unsafe fn links<'a>(p: *const Observer) -> &'a mut Links<Observer> {
        // SAFETY: `Node::links`'s contract: the caller holds the lock of
        // the channel `p` is queued on, and its owner keeps it alive.
        unsafe { &mut *(*p).links.get() }
    }
}

/// A channel's queued send-readiness cases, first queued first: an
/// intrusive list through the observers' own links, so a select that
/// leaves by another case takes its observer off in O(1) (with a `Vec`, a
/// scan: `n` selects observing one channel, each woken by a channel of its
/// own, paid O(n^2) in all).
pub(crate) struct Observers {
    list: List<Observer>,
}

// SAFETY: pointers to `Observer`s (`Send + Sync`), used only under the
// channel's lock.
unsafe impl Send for Observers {}
// SAFETY: as above.
unsafe impl Sync for Observers {}

impl Observers {
    pub(crate) const fn new() -> Observers {
        Observers { list: List::new() }
    }
}

// Every `unsafe` call of `List` below holds its contract (`Node::links`'s):
// a queued observer is alive and in place (`observe`'s contract), and the
// caller holds the channel lock (`&mut self` of the locked `Inner`).
impl<T> Inner<T> {
    /// A send could now proceed: claims every observer (invariant 7) but
    /// those of the select `except` (its own receive must not make its own
    /// send case ready: a select never pairs with itself). Returns whom to
    /// wake once the lock is dropped; `None` (and no allocation touched)
    /// when nobody observes, as is usual.
    #[inline]
    pub(crate) fn take_observers(&mut self, except: Option<&Selector>) -> Option<Vec<Wakeup>> {
        if self.observers.list.is_empty() {
            return None;
        }
        Some(self.claim_observers(except))
    }

    #[cold]
    fn claim_observers(&mut self, except: Option<&Selector>) -> Vec<Wakeup> {
        let mut wake = Vec::new();
        let list = &mut self.observers.list;
        let mut p = list.head();
        while !p.is_null() {
            // SAFETY: see the `impl`: `p` is queued here.
            let (next, o) = unsafe { (List::next(p), &*p) };
            // SAFETY: as above: read under the lock.
            let (sel, case) = unsafe { (*o.sel.get(), *o.case.get()) };
            if !except.is_some_and(|e| std::ptr::eq(e, sel)) {
                // SAFETY: see the `impl`. Off the list before the claim: a
                // select that lost here still finds it gone (`unobserve`).
                unsafe { list.remove(p) };
                // SAFETY: invariant 6: the owner keeps its selector alive
                // while the observer is queued, and we hold the channel lock.
                // (In the saved copy if its stack is swapped out: `on_stack`.)
                let sel = unsafe { &*on_stack(sel as *mut Selector) };
                if sel.claim(case) {
                    wake.push(sel.waker());
                    // SAFETY: we won the claim just above; this is our last
                    // touch of the selector (invariant 6).
                    unsafe { Selector::finish(sel) };
                }
                end_edits();
            }
            p = next;
        }
        wake
    }

    /// Queues `obs` as case `case` of the select owning `sel`, a
    /// send-readiness observer.
    ///
    /// # Safety
    ///
    /// The caller holds this channel's lock; `obs` is queued nowhere; and
    /// the caller keeps `obs` and `sel` alive and in place until
    /// [`Inner::unobserve`] has taken `obs` off under the lock
    /// (invariant 6).
    pub(crate) unsafe fn observe(&mut self, obs: &Observer, sel: &Selector, case: usize) {
        // SAFETY: the contract: under the lock, and `obs` is in no list,
        // so nobody else reads these.
        unsafe {
            *obs.sel.get() = sel;
            *obs.case.get() = case;
            self.observers.list.push_back(obs);
        }
    }

    /// Takes `obs` off if it is still queued here (a claimer took it off
    /// already otherwise).
    ///
    /// # Safety
    ///
    /// As for `observe`: `obs` was queued here by it, if anywhere.
    pub(crate) unsafe fn unobserve(&mut self, obs: &Observer) {
        // SAFETY: see the `impl`.
        unsafe { self.observers.list.remove(obs) };
    }
}

/// A channel.
pub(crate) struct Chan<T> {
    pub(crate) id: u64,
    pub(crate) cap: usize,
    pub(crate) kind: Kind,
    pub(crate) inner: ChanMutex<Inner<T>>,
    pub(crate) senders: AtomicUsize,
    pub(crate) receivers: AtomicUsize,
    /// Mirror of `inner.closed`, for lock-free `is_closed`.
    pub(crate) closed: AtomicBool,
    /// Readiness hint for select's fast path (`HINT_*`), stored at every
    /// unlock. Racy by design: select only uses it to skip locking a
    /// channel in its optimistic pass, then re-checks everything under the
    /// locks before it parks.
    hint: AtomicU8,
    /// A select has used this channel: from then on every unlock keeps
    /// `hint` current. Channels never selected on skip that work (a stale
    /// hint only sends select the slow way, through every lock).
    hinted: AtomicBool,
    /// Told when the last `Receiver` is gone: a timer's channel (which has
    /// no `Sender`) disarms its timer then (`time/`).
    owner: Option<Weak<dyn ReceiversGone>>,
}

/// Something a channel tells when its last `Receiver` is gone: the timer
/// that feeds a timer channel.
pub(crate) trait ReceiversGone: Send + Sync {
    /// Called once, with no channel lock held.
    fn receivers_gone(&self);
}

/// A receive could complete (buffered values, queued senders, or closed).
pub(crate) const HINT_RECV: u8 = 1;
/// A send could complete (queued receivers, buffer room, closed, or a
/// never-blocking kind).
pub(crate) const HINT_SEND: u8 = 2;

/// The lock of a channel; stores the readiness hint when dropped.
pub(crate) struct ChanGuard<'a, T> {
    chan: &'a Chan<T>,
    g: ChanMutexGuard<'a, Inner<T>>,
}

impl<T> std::ops::Deref for ChanGuard<'_, T> {
    type Target = Inner<T>;
    fn deref(&self) -> &Inner<T> {
        &self.g
    }
}

impl<T> std::ops::DerefMut for ChanGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut Inner<T> {
        &mut self.g
    }
}

impl<T> Drop for ChanGuard<'_, T> {
    fn drop(&mut self) {
        self.chan.store_hint(&self.g);
    }
}

/// Whom to wake once the channel lock is dropped (invariant 5): the party
/// an operation completed with, and the readiness observers its effect may
/// concern. Both are almost always absent, so a `Wake` is built and used
/// without touching the heap.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    party: Option<Wakeup>,
    observers: Option<Vec<Wakeup>>,
}

impl Wake {
    /// Wakes them all. Call with no lock held.
    #[inline]
    pub(crate) fn wake(mut self) {
        self.wake_now();
    }

    /// Wakes them all, leaving `self` empty. Call with no lock held.
    ///
    /// Not inlined, and by address on purpose: the hot callers (`send`,
    /// `recv`) fill a `Wake` in place and pass it here as it lies. When the
    /// compiler instead copied one between stack slots (16-byte loads over
    /// the 8-byte stores that had just filled it), the failed store
    /// forwarding made a pingpong hand-off some 15 % slower.
    ///
    /// The hot callers call it through `wake_any`, which skips the call
    /// when there is nobody to wake (most operations on a buffered
    /// channel): two loads of words just stored, which forward.
    #[inline(never)]
    pub(crate) fn wake_now(&mut self) {
        if let Some(w) = self.party.take() {
            w.wake();
        }
        if self.observers.is_some() {
            wake_observers(self.observers.take());
        }
    }

    /// `wake_now`, called only if there is somebody to wake.
    #[inline(always)]
    pub(crate) fn wake_any(&mut self) {
        if self.party.is_some() || self.observers.is_some() {
            self.wake_now();
        }
    }
}

impl<T> Chan<T> {
    #[track_caller]
    pub(crate) fn new(cap: usize, kind: Kind) -> Chan<T> {
        let mut buf = VecDeque::new();
        if let Err(e) = buf.try_reserve(cap) {
            panic!("goro::chan: cannot allocate a buffer for capacity {cap}: {e}");
        }
        Chan {
            id: crate::wait::next_object_id(),
            cap,
            kind,
            inner: ChanMutex::new(Inner {
                buf,
                closed: false,
                no_receivers: false,
                recvq: Queue::new(),
                sendq: Queue::new(),
                observers: Observers::new(),
            }),
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
            closed: AtomicBool::new(false),
            hint: AtomicU8::new(if cap > 0 || kind != Kind::Normal { HINT_SEND } else { 0 }),
            hinted: AtomicBool::new(false),
            owner: None,
        }
    }

    /// A channel fed by `owner` instead of by `Sender`s (a timer's): it
    /// counts one sender that never leaves, so it never closes by itself,
    /// and tells `owner` when its last `Receiver` is gone.
    pub(crate) fn owned(cap: usize, owner: Weak<dyn ReceiversGone>) -> Chan<T> {
        Chan { owner: Some(owner), ..Chan::new(cap, Kind::Normal) }
    }

    /// Locks the channel.
    pub(crate) fn lock(&self) -> ChanGuard<'_, T> {
        ChanGuard { chan: self, g: self.inner.lock() }
    }

    /// Recomputes the readiness hint (with the lock held), if a select
    /// reads it.
    #[inline]
    pub(crate) fn store_hint(&self, g: &Inner<T>) {
        if !self.hinted.load(Ordering::Relaxed) {
            return;
        }
        let mut h = 0;
        if !g.buf.is_empty() || !g.sendq.is_empty() || g.closed {
            h |= HINT_RECV;
        }
        if !g.recvq.is_empty() || g.buf.len() < self.cap || g.closed || g.no_receivers || self.kind != Kind::Normal {
            h |= HINT_SEND;
        }
        // Relaxed: a hint; the lock orders everything that matters.
        self.hint.store(h, Ordering::Relaxed);
    }

    /// Marks the channel as used by a select (see `hinted`); the caller
    /// holds the lock and its unlock stores the first current hint.
    #[inline]
    pub(crate) fn use_hint(&self) {
        if !self.hinted.load(Ordering::Relaxed) {
            self.hinted.store(true, Ordering::Relaxed);
        }
    }

    /// The readiness hint (`HINT_*` bits), without locking.
    #[inline]
    pub(crate) fn hint(&self) -> u8 {
        self.hint.load(Ordering::Relaxed)
    }

    /// Non-blocking send with the lock held. `Ok((wake, discarded))` on
    /// success, where `discarded` is a value a dropping or sliding channel
    /// threw away: the caller drops it after releasing the lock, since its
    /// `Drop` is user code that may block or use this very channel.
    #[inline]
    pub(crate) fn try_send_locked(&self, g: &mut Inner<T>, v: T) -> Result<(Wake, Option<T>), TrySendError<T>> {
        let mut wake = Wake::default();
        let discarded = self.try_send_into(g, v, &mut wake)?;
        Ok((wake, discarded))
    }

    /// `try_send_locked`, filling `wake` in place (see `Wake::wake_now`).
    /// `Ok(discarded)` on success.
    ///
    /// Always inlined, as `try_recv_into`: with two callers each, LLVM
    /// kept them out of line, and the call cost a prologue and epilogue of
    /// some 35 instructions and the result moved through memory; inlined
    /// into `send` and `recv`, a pingpong round trip takes 938 instructions
    /// instead of 1 080, the sieve 35 % fewer, mpmc 24 % fewer
    /// (`GORO_WORKERS=1 valgrind --tool=callgrind`), for 2.6 % more code.
    #[inline(always)]
    fn try_send_into(&self, g: &mut Inner<T>, v: T, wake: &mut Wake) -> Result<Option<T>, TrySendError<T>> {
        if g.closed || g.no_receivers {
            return Err(TrySendError::Closed(v));
        }
        while let Some(r) = g.recvq.pop_front() {
            if let Some(r) = r.claim_for(0) {
                // SAFETY: we won r's selector just above and hold the lock
                // (both `complete`'s contract and `put`'s).
                unsafe { r.complete(&mut wake.party, |r| r.put(v)) };
                return Ok(None);
            }
        }
        if g.buf.len() < self.cap {
            g.buf.push_back(v);
            return Ok(None);
        }
        match self.kind {
            Kind::Normal => Err(TrySendError::Full(v)),
            Kind::Dropping => Ok(Some(v)),
            Kind::Sliding => {
                let oldest = g.buf.pop_front();
                g.buf.push_back(v);
                Ok(oldest)
            }
        }
    }

    /// Non-blocking receive with the lock held. `Ok((v, wake))` on success.
    #[inline]
    pub(crate) fn try_recv_locked(&self, g: &mut Inner<T>) -> Result<(T, Wake), TryRecvError> {
        let mut wake = Wake::default();
        let v = self.try_recv_into(g, &mut wake)?;
        Ok((v, wake))
    }

    /// `try_recv_locked`, filling `wake` in place (see `Wake::wake_now`).
    /// Always inlined (see `try_send_into`).
    #[inline(always)]
    fn try_recv_into(&self, g: &mut Inner<T>, wake: &mut Wake) -> Result<T, TryRecvError> {
        if let Some(v) = g.buf.pop_front() {
            // A slot freed: move a blocked sender's value in (invariant 2).
            while let Some(s) = g.sendq.pop_front() {
                if let Some(s) = s.claim_for(0) {
                    // SAFETY: won just above, lock held (`complete`, `take`).
                    let sv = unsafe { s.complete(&mut wake.party, |s| s.take()) };
                    g.buf.push_back(sv.expect("goro bug: a queued sender without a value"));
                    return Ok(v);
                }
            }
            wake.observers = g.take_observers(None);
            return Ok(v);
        }
        while let Some(s) = g.sendq.pop_front() {
            if let Some(s) = s.claim_for(0) {
                // SAFETY: won just above, lock held (`complete`, `take`).
                let v = unsafe { s.complete(&mut wake.party, |s| s.take()) };
                return Ok(v.expect("goro bug: a queued sender without a value"));
            }
        }
        if g.closed {
            Err(TryRecvError::Closed)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Would a send complete now (dynamic `Select` readiness)?
    pub(crate) fn send_ready_locked(&self, g: &mut Inner<T>) -> bool {
        g.closed
            || g.no_receivers
            || g.buf.len() < self.cap
            || self.kind != Kind::Normal
            || g.recvq.any(|r| r.sel().state.load(Ordering::Acquire) == WAITING)
    }

    /// Inlined into the caller (`Sender::send` and `Receiver::recv` too,
    /// and `Selector::wait` with its park), so that the stack switch of a
    /// park lies in the user's own frame: a resumed coroutine then goes on
    /// without first returning through goro's frames, and each such return
    /// after a switch is mispredicted (the CPU's return stack holds the
    /// worker's calls, not the coroutine's). Measured: pingpong 133 -> 96 ms,
    /// sieve 346 -> 224 ms; the price is some 2.5 KB of code per call site.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn send(&self, v: T, deadline: Option<Instant>) -> Result<(), SendTimeoutError<T>> {
        park::note_thread();
        let mut g = self.lock();
        // Filled only on success, and then emptied by `wake_now`: it never
        // owns anything when it goes out of scope, so it needs no drop (a
        // drop call per operation otherwise).
        let mut wake = std::mem::ManuallyDrop::new(Wake::default());
        let v = match self.try_send_into(&mut g, v, &mut wake) {
            Ok(discarded) => {
                drop(g);
                wake.wake_any();
                drop(discarded);
                return Ok(());
            }
            Err(TrySendError::Closed(v)) => return Err(SendTimeoutError::Closed(v)),
            Err(TrySendError::Full(v)) => v,
        };
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(SendTimeoutError::Timeout(v));
        }
        let reason = WaitReason::Send {
            chan: self.id,
            cap: self.cap,
            queued: g.buf.len(),
            receivers: self.receivers.load(Ordering::Relaxed),
        };
        let op = Op::single(Some(v));
        // SAFETY: `op` stays in this frame, unmoved, until it is off the
        // queue and done with (the `Dequeue` guard and the paths below).
        g.sendq.push_back(unsafe { OpPtr::new(&op) });
        drop(g);
        // The guard first: from here on, unwinding must take the op off the
        // queue before it is freed (invariant 6).
        let guard = Dequeue { chan: self, op: &op, send: true };
        let r = op.sel().wait(reason, deadline, || self.abort(&op, true));
        std::mem::forget(guard);
        match r {
            Some(st) if st & CLOSED_BIT == 0 => Ok(()),
            Some(_) => {
                // SAFETY: invariant 4: we own the op and saw `done`.
                Err(SendTimeoutError::Closed(unsafe { op.take() }.expect("goro bug: closed sender lost its value")))
            }
            None => {
                // SAFETY: invariant 4: our abort won (and dequeued the op).
                Err(SendTimeoutError::Timeout(unsafe { op.take() }.expect("goro bug: timed-out sender lost its value")))
            }
        }
    }

    /// Inlined into the caller: see `send`.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        park::note_thread();
        let mut g = self.lock();
        // Filled only on success, and then emptied by `wake_now`: it never
        // owns anything when it goes out of scope, so it needs no drop (a
        // drop call per operation otherwise).
        let mut wake = std::mem::ManuallyDrop::new(Wake::default());
        match self.try_recv_into(&mut g, &mut wake) {
            Ok(v) => {
                drop(g);
                wake.wake_any();
                return Ok(v);
            }
            Err(TryRecvError::Closed) => return Err(RecvTimeoutError::Closed),
            Err(TryRecvError::Empty) => {}
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(RecvTimeoutError::Timeout);
        }
        let reason = WaitReason::Recv {
            chan: self.id,
            cap: self.cap,
            queued: g.buf.len(),
            senders: self.senders.load(Ordering::Relaxed),
        };
        let op = Op::single(None);
        // SAFETY: as in `send`.
        g.recvq.push_back(unsafe { OpPtr::new(&op) });
        let obs = g.take_observers(None);
        drop(g);
        // The guard first: from here on, unwinding must take the op off the
        // queue before it is freed (invariant 6).
        let guard = Dequeue { chan: self, op: &op, send: false };
        wake_all(obs);
        let r = op.sel().wait(reason, deadline, || self.abort(&op, false));
        std::mem::forget(guard);
        match r {
            Some(st) if st & CLOSED_BIT == 0 => {
                // SAFETY: invariant 4: we own the op and saw `done`.
                Ok(unsafe { op.take() }.expect("goro bug: a won receiver got no value"))
            }
            Some(_) => Err(RecvTimeoutError::Closed),
            None => Err(RecvTimeoutError::Timeout),
        }
    }

    /// The owner of single op `op` gives up: claims it for ABORTED under
    /// the lock (invariant 3) and takes it off its queue. False if someone
    /// won it first; that winner has finished, since it worked under the
    /// lock we now took (invariant 6).
    fn abort(&self, op: &Op<T>, send: bool) -> bool {
        let mut g = self.lock();
        let aborted = op.claim(ABORTED);
        if aborted {
            dequeue_locked(&mut g, op, send);
        }
        aborted
    }

    /// Closes for everyone. True if this call closed it.
    pub(crate) fn close(&self) -> bool {
        park::note_thread();
        let mut g = self.lock();
        if g.closed {
            return false;
        }
        g.closed = true;
        self.closed.store(true, Ordering::Release);
        let Inner { recvq, sendq, .. } = &mut *g;
        let mut wake = fail_ops(recvq.drain().chain(sendq.drain()));
        wake.extend(g.take_observers(None).into_iter().flatten());
        drop(g);
        wake.into_iter().for_each(Wakeup::wake);
        true
    }

    /// The last Receiver is gone: fail blocked and future sends, and tell
    /// the owner (a timer) if there is one.
    pub(crate) fn disconnect_receivers(&self) {
        let mut g = self.lock();
        g.no_receivers = true;
        let mut wake = fail_ops(g.sendq.drain());
        wake.extend(g.take_observers(None).into_iter().flatten());
        drop(g);
        wake.into_iter().for_each(Wakeup::wake);
        if let Some(o) = self.owner.as_ref().and_then(Weak::upgrade) {
            o.receivers_gone();
        }
    }

    /// A send that never waits, without a `Sender` (a timer feeding its
    /// channel); a value a dropping or sliding channel discards is dropped
    /// after the lock is released.
    pub(crate) fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        park::note_thread();
        let mut g = self.lock();
        let (w, discarded) = self.try_send_locked(&mut g, v)?;
        drop(g);
        w.wake();
        drop(discarded);
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().buf.len()
    }
}

/// Completes every still-waiting op with CLOSED_BIT (close, or the last
/// receiver gone); returns whom to wake after the lock is dropped.
fn fail_ops<T>(ops: impl Iterator<Item = OpPtr<T>>) -> Vec<Wakeup> {
    let mut wake = Vec::new();
    for op in ops {
        if let Some(op) = op.claim_for(CLOSED_BIT) {
            let mut w = None;
            // SAFETY: won just above; the caller holds the lock. The value
            // stays in the slot: a failed sender takes it back.
            unsafe { op.complete(&mut w, |_| ()) };
            wake.extend(w);
        }
        // Done with this op: a saved stack copy it was in may go (a close
        // meets many parked parties in one lock section).
        end_edits();
    }
    wake
}

/// Takes `op` off its queue in `g` (the send queue if `send`), if it is
/// still there: a select's losing case, or an aborted or unwinding op.
/// O(1) (invariant 8). The caller holds the channel lock.
pub(crate) fn dequeue_locked<T>(g: &mut Inner<T>, op: &Op<T>, send: bool) {
    let q = if send { &mut g.sendq } else { &mut g.recvq };
    q.remove(op);
}

/// A channel's wait queue (`sendq` or `recvq`): a FIFO of ops linked
/// through their own [`Links`], Go's `waitq` of sudogs (invariant 8). So a
/// park allocates nothing, and a select's losing case leaves from the
/// middle in O(1): with a `VecDeque` it was found by a scan, and `n`
/// coroutines each waiting on their own channel and a shared one (a
/// server's connections and its `quit`) paid O(n) per wake-up, O(n^2) in
/// all (`workloads quit 100000`: 12.2 s; see the module invariant).
pub(crate) struct Queue<T> {
    list: List<Op<T>>,
}

// SAFETY: a `Queue` holds pointers to ops, each an `OpPtr` in all but name
// (shared references to `Op<T>: Sync` for `T: Send`, kept alive by their
// owners, invariant 6), and is only used under its channel's lock.
unsafe impl<T: Send> Send for Queue<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Queue<T> {}

// SAFETY: one `Links` per op, in the op; reached wherever the op is now
// (`on_stack`: in its stack's saved copy while that stack is swapped out).
unsafe impl<T> Node for Op<T> {
    #[inline(always)]
    unsafe fn links<'a>(p: *const Op<T>) -> &'a mut Links<Op<T>> {
        // SAFETY: `Node::links`'s contract: `p` is an op in a queue whose
        // channel lock the caller holds (or the caller's own op, about to be
        // queued there): nobody else touches its links (invariant 8), and its
        // owner keeps it alive (invariant 6).
        unsafe { &mut *(*on_stack(p as *mut Op<T>)).links.get() }
    }
}

// Every `unsafe` call below is `List`'s, whose contract (`Node::links`'s)
// holds for a queue: its ops are alive while queued (invariant 6), and the
// caller holds the channel lock (`&mut self` of the locked `Inner`).
impl<T> Queue<T> {
    pub(crate) const fn new() -> Queue<T> {
        Queue { list: List::new() }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Queues `op` last. The caller holds the channel lock.
    #[inline]
    pub(crate) fn push_back(&mut self, op: OpPtr<T>) {
        // SAFETY: see the `impl`; `op` is the caller's, in no queue
        // (`OpPtr::new`'s contract keeps it in place and alive).
        unsafe { self.list.push_back(op.0.as_ptr()) }
    }

    /// Takes the first op off the queue.
    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<OpPtr<T>> {
        // SAFETY: see the `impl`. The op was queued by `push_back` from an
        // `OpPtr`, whose contract (invariant 6) still holds: the owner
        // removes it only under the lock we hold.
        unsafe { self.list.pop_front() }.map(OpPtr)
    }

    /// Pops every op, front to back, one per `next` (so a caller may end
    /// its edits between them, as `fail_ops` does).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = OpPtr<T>> + '_ {
        std::iter::from_fn(|| self.pop_front())
    }

    /// Takes `op` off the queue wherever it is; nothing if it is not queued
    /// (a winner or a close popped it already).
    #[inline]
    pub(crate) fn remove(&mut self, op: &Op<T>) {
        // SAFETY: see the `impl`; `op` is the caller's own (alive), queued
        // here if at all.
        unsafe { self.list.remove(op) };
    }

    /// Whether some queued op satisfies `f` (front to back).
    pub(crate) fn any(&self, mut f: impl FnMut(&Op<T>) -> bool) -> bool {
        let mut p = self.list.head();
        while !p.is_null() {
            // SAFETY: queued here, the caller holds the lock (invariant 6).
            let op = unsafe { &*on_stack(p as *mut Op<T>) };
            if f(op) {
                return true;
            }
            // SAFETY: as above (`Node::links`'s contract).
            p = unsafe { List::next(p) };
        }
        false
    }
}

/// Wakes readiness observers taken with `Inner::take_observers`.
#[inline]
pub(crate) fn wake_all(ws: Option<Vec<Wakeup>>) {
    if let Some(ws) = ws {
        ws.into_iter().for_each(Wakeup::wake);
    }
}

/// `wake_all` out of line, for the rare case that there are observers.
#[cold]
#[inline(never)]
fn wake_observers(ws: Option<Vec<Wakeup>>) {
    wake_all(ws);
}

/// Unwind guard of a blocking op: a coroutine cancelled while parked in
/// `send`/`recv` takes its op back off the queue (or, if it was already
/// won, lets the winner's hand-off stand).
struct Dequeue<'a, T> {
    chan: &'a Chan<T>,
    op: &'a Op<T>,
    send: bool,
}

impl<T> Drop for Dequeue<'_, T> {
    fn drop(&mut self) {
        // Either way, taking the lock waits out a winner that may still be
        // at work on the op (invariant 6).
        self.chan.abort(self.op, self.send);
    }
}

#[cfg(all(test, goro_loom))]
#[path = "imp_loom.rs"]
mod loom_tests;
