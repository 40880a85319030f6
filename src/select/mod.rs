// Select: wait on several channel operations, complete exactly one.
//
// Owns: the algorithm (Go's `select.go`), the `Case` trait every kind of
// case implements, the typed cases used by `select!`, and the dynamic
// `Select` builder.
//
// The algorithm, for a blocking select:
//  1. Lock every distinct channel of the cases, in address order (so two
//     selects over the same channels cannot deadlock).
//  2. Poll the cases in a random order; the first that can complete now
//     completes. Since the order is a uniformly random permutation, each
//     ready case is equally likely to win (Go's rule: no case starves).
//  3. If none is ready (and there is no `default`): enqueue one op per case,
//     all sharing one `Selector`, then unlock everything and park.
//  4. A counterpart claims the selector for one case (the CAS of `imp.rs`),
//     moves the value and wakes us. A timeout instead wins the selector for
//     "aborted".
//  5. Relock and dequeue the losing ops, unlock, collect the winner's result.
//
// Before step 1, an optimistic pass tries each case whose channel's
// readiness hint is set, locking only that channel (most selects in a busy
// program find a case ready; this saves locking the others).
//
// Holding every lock during 2–3 means readiness cannot change between the
// poll and the enqueue, and a select never meets its own ops while polling
// (a send and a receive on one channel in one select never pair up).

mod dynamic;

pub use dynamic::{Select, SelectedOperation};

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::chan::imp::{self, Chan, Inner, Op, Selector, Wake, CLOSED_BIT};
use crate::chan::{Receiver, RecvError, SendError, Sender, TryRecvError, TrySendError};
use crate::park::Wakeup;
use crate::wait::{SelectCase, WaitReason};

/// One case of a select, type-erased. Methods marked "locked" run with the
/// case's channel lock held by the select (step 1).
pub(crate) trait Case {
    /// Address of the channel (the lock order key); `None` for `never()`.
    fn chan_addr(&self) -> Option<usize>;
    /// Locks this case's channel (`None` for `never()`).
    fn lock(&self) -> Option<RawGuard>;
    /// Unlocks this case's channel.
    ///
    /// # Safety
    ///
    /// `g` must come from `lock` on a case of the same channel, in this select.
    unsafe fn unlock(&self, g: RawGuard);
    /// Tries to complete now. `Some(wake)` if it did (result stored).
    ///
    /// # Safety
    ///
    /// The channel is locked by this select.
    unsafe fn poll_locked(&mut self) -> Option<Wake>;
    /// Enqueues an op for `sel` as case `index`. Returns the parties its
    /// arrival made ready (to wake once every lock is dropped).
    ///
    /// # Safety
    ///
    /// The channel is locked by this select.
    unsafe fn enqueue_locked(&mut self, sel: &Selector, index: usize) -> Option<Vec<Wakeup>>;
    /// Removes this case's op, if queued. Drops nothing: a value the op
    /// holds stays in the case until the case itself is dropped, after the
    /// select has released every lock (a value's `Drop` is user code that
    /// may use these very channels).
    ///
    /// # Safety
    ///
    /// The channel is locked by this select.
    unsafe fn dequeue_locked(&mut self);
    /// This case won (`closed`: because the channel closed): take the result.
    fn complete(&mut self, closed: bool);
    /// For reports.
    fn describe(&self) -> SelectCase;
    /// Might this case complete now? A racy hint read without locking (the
    /// optimistic pass); `false` only skips the lone try of this case.
    fn maybe_ready(&self) -> bool {
        true
    }
}

/// Access to the locked state of a channel.
///
/// # Safety
///
/// The caller holds the channel's lock (taken through `raw()` by the select),
/// and no other reference to the locked data is live.
#[allow(clippy::mut_from_ref)]
unsafe fn inner<T>(c: &Chan<T>) -> &mut Inner<T> {
    // SAFETY: per the contract, this select holds the lock, so it has
    // exclusive access to the data.
    unsafe { &mut *c.inner.data_ptr() }
}

/// The state of one raw lock acquisition (a zero-sized marker).
pub(crate) type RawGuard = crate::chan::lock::Held;

fn raw_lock<T>(c: &Chan<T>) -> RawGuard {
    // Every acquisition here is released by `raw_unlock` with its own
    // `Held`, by the same select (`Locks`).
    let held = c.inner.raw().lock();
    c.use_hint();
    held
}

/// # Safety
///
/// `g` is the state of this select's `raw_lock` of `c`.
unsafe fn raw_unlock<T>(c: &Chan<T>, g: RawGuard) {
    // SAFETY: we hold the lock (contract), so reading the state is exclusive.
    c.store_hint(unsafe { inner(c) });
    // SAFETY: per the contract, we hold the lock and hand back its state.
    unsafe { c.inner.raw().unlock(g) };
}

/// A receive case: `recv(rx) -> res`.
pub struct RecvCase<'a, T> {
    rx: &'a Receiver<T>,
    op: Option<Op<T>>,
    out: Option<Result<T, RecvError>>,
}

/// A send case: `send(tx, v) -> res`.
pub struct SendCase<'a, T> {
    tx: &'a Sender<T>,
    value: Option<T>,
    op: Option<Op<T>>,
    out: Option<Result<(), SendError<T>>>,
    /// A value a dropping or sliding channel discarded for this send: kept
    /// here so it is dropped with the case, after the select has released
    /// every channel lock (its `Drop` may be user code that blocks).
    discarded: Option<T>,
}

impl<T> std::fmt::Debug for RecvCase<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvCase").field("rx", self.rx).finish()
    }
}

impl<T> std::fmt::Debug for SendCase<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendCase").field("tx", self.tx).finish()
    }
}

impl<'a, T> RecvCase<'a, T> {
    /// A receive case on `rx`.
    pub(crate) fn new(rx: &'a Receiver<T>) -> Self {
        RecvCase { rx, op: None, out: None }
    }
    /// The result, if this case was chosen.
    pub fn into_output(mut self) -> Option<Result<T, RecvError>> {
        self.out.take()
    }
}

impl<'a, T> RecvCase<'a, T> {
    /// This case as the opaque handle `select!` passes to [`select`].
    pub fn erased(&mut self) -> CaseRef<'_> {
        CaseRef(self)
    }
}

impl<'a, T> SendCase<'a, T> {
    /// This case as the opaque handle `select!` passes to [`select`].
    pub fn erased(&mut self) -> CaseRef<'_> {
        CaseRef(self)
    }
}

impl<'a, T> SendCase<'a, T> {
    /// A send case of `v` on `tx`.
    pub(crate) fn new(tx: &'a Sender<T>, v: T) -> Self {
        SendCase { tx, value: Some(v), op: None, out: None, discarded: None }
    }
    /// The result, if this case was chosen.
    pub fn into_output(mut self) -> Option<Result<(), SendError<T>>> {
        self.out.take()
    }
}

impl<T> Case for RecvCase<'_, T> {
    fn chan_addr(&self) -> Option<usize> {
        self.rx.chan.as_ref().map(|c| Arc::as_ptr(c) as usize)
    }
    fn lock(&self) -> Option<RawGuard> {
        self.rx.chan.as_ref().map(|c| raw_lock(c))
    }
    unsafe fn unlock(&self, g: RawGuard) {
        if let Some(c) = &self.rx.chan {
            // SAFETY: forwarded contract.
            unsafe { raw_unlock(c, g) };
        }
    }
    unsafe fn poll_locked(&mut self) -> Option<Wake> {
        let c = self.rx.chan.as_ref()?;
        // SAFETY: forwarded contract: locked.
        let g = unsafe { inner(c) };
        match c.try_recv_locked(g) {
            Ok((v, w)) => {
                self.out = Some(Ok(v));
                Some(w)
            }
            Err(TryRecvError::Closed) => {
                self.out = Some(Err(RecvError));
                Some(Wake::default())
            }
            Err(TryRecvError::Empty) => None,
        }
    }
    unsafe fn enqueue_locked(&mut self, sel: &Selector, index: usize) -> Option<Vec<Wakeup>> {
        let c = self.rx.chan.as_ref()?;
        // SAFETY: the select's selector outlives its ops (`select_cases`
        // dequeues them all before it returns).
        let op = self.op.insert(unsafe { Op::new(sel, index, None) });
        // SAFETY: forwarded contract: locked.
        let g = unsafe { inner(c) };
        // SAFETY: the op stays in this case, which the select borrows (so it
        // cannot move), until `select_cases` has dequeued it under this
        // channel's lock (step 5 / `Cleanup`): invariant 6.
        g.recvq.push_back(unsafe { imp::OpPtr::new(op) });
        // A waiting receiver makes sends possible; not our own send case.
        g.take_observers(Some(sel))
    }
    unsafe fn dequeue_locked(&mut self) {
        if let (Some(c), Some(op)) = (self.rx.chan.as_ref(), self.op.as_ref()) {
            // SAFETY: forwarded contract: locked.
            imp::dequeue_locked(unsafe { inner(c) }, op, false);
            // The op stays in the case: if this select was won through it
            // (a cancellation racing the hand-off), its slot holds the
            // value, to be dropped with the case, not under our locks.
        }
    }
    fn complete(&mut self, closed: bool) {
        let op = self.op.take().expect("goro bug: a won case has no op");
        self.out = Some(if closed {
            Err(RecvError)
        } else {
            // SAFETY: imp.rs invariant 4: our selector is done.
            Ok(unsafe { op.take() }.expect("goro bug: a won receive got no value"))
        });
    }
    fn describe(&self) -> SelectCase {
        SelectCase { chan: self.rx.chan.as_ref().map_or(0, |c| c.id), send: false }
    }
    fn maybe_ready(&self) -> bool {
        self.rx.chan.as_ref().is_some_and(|c| c.hint() & imp::HINT_RECV != 0)
    }
}

impl<T> Case for SendCase<'_, T> {
    fn chan_addr(&self) -> Option<usize> {
        Some(Arc::as_ptr(&self.tx.chan) as usize)
    }
    fn lock(&self) -> Option<RawGuard> {
        Some(raw_lock(&self.tx.chan))
    }
    unsafe fn unlock(&self, g: RawGuard) {
        // SAFETY: forwarded contract.
        unsafe { raw_unlock(&self.tx.chan, g) };
    }
    unsafe fn poll_locked(&mut self) -> Option<Wake> {
        let c = &self.tx.chan;
        let v = self.value.take()?;
        // SAFETY: forwarded contract: locked.
        match c.try_send_locked(unsafe { inner(c) }, v) {
            Ok((w, discarded)) => {
                self.out = Some(Ok(()));
                self.discarded = discarded;
                Some(w)
            }
            Err(TrySendError::Closed(v)) => {
                self.out = Some(Err(SendError(v)));
                Some(Wake::default())
            }
            Err(TrySendError::Full(v)) => {
                self.value = Some(v);
                None
            }
        }
    }
    unsafe fn enqueue_locked(&mut self, sel: &Selector, index: usize) -> Option<Vec<Wakeup>> {
        let c = &self.tx.chan;
        // SAFETY: as for the receive case.
        let op = self.op.insert(unsafe { Op::new(sel, index, self.value.take()) });
        // SAFETY: forwarded contract: locked.
        let g = unsafe { inner(c) };
        // SAFETY: as for the receive case.
        g.sendq.push_back(unsafe { imp::OpPtr::new(op) });
        None
    }
    unsafe fn dequeue_locked(&mut self) {
        if let Some(op) = self.op.as_ref() {
            // SAFETY: forwarded contract: locked.
            imp::dequeue_locked(unsafe { inner(&self.tx.chan) }, op, true);
            // Our selector is done or aborted: nobody else touches the slot.
            // SAFETY: imp.rs invariant 4.
            self.value = unsafe { op.take() };
            self.op = None;
        }
    }
    fn complete(&mut self, closed: bool) {
        let op = self.op.take().expect("goro bug: a won case has no op");
        self.out = Some(if closed {
            // SAFETY: imp.rs invariant 4: our selector is done.
            Err(SendError(unsafe { op.take() }.expect("goro bug: a closed send lost its value")))
        } else {
            Ok(())
        });
    }
    fn describe(&self) -> SelectCase {
        SelectCase { chan: self.tx.chan.id, send: true }
    }
    fn maybe_ready(&self) -> bool {
        self.value.is_some() && self.tx.chan.hint() & imp::HINT_SEND != 0
    }
}

/// How a select waits when nothing is ready.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Park until a case is ready.
    Block,
    /// Return at once (`default`).
    Try,
    /// Park until the deadline (`default(timeout)`); `None`: never.
    Until(Option<Instant>),
}

impl Mode {
    /// `default(d)`.
    pub fn timeout(d: Duration) -> Mode {
        Mode::Until(Instant::now().checked_add(d))
    }
}

fn rand_u64() -> u64 {
    use std::cell::Cell;
    thread_local!(static RNG: Cell<u64> = Cell::new({
        let x = &RNG as *const _ as u64 ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        x | 1
    }));
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// A short list kept on the stack (selects rarely have more than 8 cases),
/// spilling to the heap beyond that.
enum Small<T> {
    Inline([Option<T>; 8], usize),
    Heap(Vec<T>),
}

impl<T> Small<T> {
    fn new(n: usize) -> Small<T> {
        if n <= 8 {
            Small::Inline([const { None }; 8], 0)
        } else {
            Small::Heap(Vec::with_capacity(n))
        }
    }
    fn push(&mut self, v: T) {
        match self {
            Small::Inline(a, n) => {
                a[*n] = Some(v);
                *n += 1;
            }
            Small::Heap(h) => h.push(v),
        }
    }
    fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        let (a, h): (&mut [Option<T>], Option<&mut Vec<T>>) = match self {
            Small::Inline(a, n) => (&mut a[..*n], None),
            Small::Heap(h) => (&mut [], Some(h)),
        };
        a.iter_mut().filter_map(Option::take).chain(h.into_iter().flat_map(|h| h.drain(..)))
    }
}

/// Up to 8 small values on the stack (case indices, lock-order entries),
/// spilling to the heap beyond that.
struct Idx<T = usize> {
    inline: [T; 8],
    heap: Vec<T>,
    len: usize,
}

impl<T: Copy + Default> Idx<T> {
    fn new(n: usize) -> Idx<T> {
        Idx { inline: [T::default(); 8], heap: if n > 8 { Vec::with_capacity(n) } else { Vec::new() }, len: 0 }
    }
    fn push(&mut self, v: T) {
        if self.heap.capacity() > 0 {
            self.heap.push(v);
        } else {
            self.inline[self.len] = v;
        }
        self.len += 1;
    }
    fn as_mut(&mut self) -> &mut [T] {
        if self.heap.capacity() > 0 {
            &mut self.heap
        } else {
            &mut self.inline[..self.len]
        }
    }
}

/// The lock order of step 1: `(channel address, case index)` for every
/// case with a channel (`never` cases left out), by address. Computed once
/// per blocking select, with one virtual call per case.
fn lock_order(cases: &[&mut (dyn Case + '_)], order: &mut Idx<(usize, usize)>) {
    for (i, c) in cases.iter().enumerate() {
        if let Some(a) = c.chan_addr() {
            order.push((a, i));
        }
    }
    // Insertion sort: a select has a handful of cases.
    let o = order.as_mut();
    for k in 1..o.len() {
        let mut j = k;
        while j > 0 && o[j - 1].0 > o[j].0 {
            o.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Locks the distinct channels of a select in address order (step 1).
/// The acquisitions go to `held` (empty on entry), which `unlock_all`
/// gives back: passed by reference, as it is a few hundred bytes.
fn lock_all(cases: &[&mut (dyn Case + '_)], order: &[(usize, usize)], held: &mut Small<(usize, RawGuard)>) {
    let mut last = None;
    for &(a, i) in order {
        if Some(a) != last {
            if let Some(g) = cases[i].lock() {
                held.push((i, g));
            }
            last = Some(a);
        }
    }
}

fn unlock_all(cases: &[&mut (dyn Case + '_)], held: &mut Small<(usize, RawGuard)>) {
    for (i, g) in held.drain() {
        // SAFETY: `lock_all` took this lock through case `i`, with state `g`.
        unsafe { cases[i].unlock(g) };
    }
}

fn dequeue_all(cases: &mut [&mut (dyn Case + '_)], order: &[(usize, usize)], winner: Option<usize>) {
    let mut held = Small::new(order.len());
    lock_all(cases, order, &mut held);
    for (i, c) in cases.iter_mut().enumerate() {
        if Some(i) != winner {
            // SAFETY: every channel is locked just above.
            unsafe { c.dequeue_locked() };
        }
    }
    unlock_all(cases, &mut held);
}

/// Runs a select over `cases`. Returns the index of the case that completed
/// (its result is stored in it), or `None` if `mode` gave up.
#[track_caller]
pub(crate) fn select_cases(cases: &mut [&mut (dyn Case + '_)], mode: Mode) -> Option<usize> {
    crate::park::note_thread();
    let n = cases.len();
    // Poll order: a uniformly random permutation.
    let mut poll_buf = Idx::new(n);
    (0..n).for_each(|i| poll_buf.push(i));
    let poll = poll_buf.as_mut();
    // Fisher-Yates; `j` from the high half of a 64x64-bit product (Lemire's
    // reduction: no division, bias below 2^-56 for any select's size).
    for i in (1..n).rev() {
        let j = ((rand_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
        poll.swap(i, j);
    }
    let poll: &[usize] = poll;
    // Optimistic pass: try the cases whose hint says ready, one channel lock
    // at a time, in the same random order. The first ready case in a random
    // order is uniformly chosen, as in step 2; a case that looked ready and
    // was not costs one lock. Only if none completes do we lock everything.
    if n > 1 {
        for &i in poll {
            if !cases[i].maybe_ready() {
                continue;
            }
            let Some(g) = cases[i].lock() else { continue };
            // SAFETY: case i's channel is locked just above, by this select.
            let r = unsafe { cases[i].poll_locked() };
            // SAFETY: `g` is that acquisition.
            unsafe { cases[i].unlock(g) };
            if let Some(w) = r {
                w.wake();
                return Some(i);
            }
        }
    }
    // Lock order: by channel address (step 1).
    let mut order_buf = Idx::new(n);
    lock_order(cases, &mut order_buf);
    let order: &[(usize, usize)] = order_buf.as_mut();
    let mut held = Small::new(order.len());
    lock_all(cases, order, &mut held);
    for &i in poll {
        // SAFETY: every channel is locked (step 1).
        if let Some(w) = unsafe { cases[i].poll_locked() } {
            unlock_all(cases, &mut held);
            w.wake();
            return Some(i);
        }
    }
    let deadline = match mode {
        Mode::Try => {
            unlock_all(cases, &mut held);
            return None;
        }
        Mode::Block => None,
        Mode::Until(d) => d,
    };
    if deadline.is_some_and(|d| Instant::now() >= d) {
        unlock_all(cases, &mut held);
        return None;
    }
    let sel = Selector::new();
    // Enqueue in the random poll order: a partner that arrives later and
    // could complete several of our cases (two sends on one channel) takes
    // the first it meets in its queue, so that one must be random too (Go
    // enqueues in its random order as well).
    let mut woken: Option<Vec<Wakeup>> = None;
    for &i in poll {
        // SAFETY: every channel is locked.
        if let Some(w) = unsafe { cases[i].enqueue_locked(&sel, i) } {
            woken.get_or_insert_with(Vec::new).extend(w);
        }
    }
    unlock_all(cases, &mut held);
    imp::wake_all(woken);

    // Filled in place: built aside and moved in, the array's 9-byte
    // entries were reread as 16-byte words straight after their stores (a
    // store-forwarding stall on every parking select).
    let mut reason = WaitReason::Select { n, cases: [None; 4] };
    if let WaitReason::Select { cases: descr, .. } = &mut reason {
        for (d, c) in descr.iter_mut().zip(cases.iter()) {
            *d = Some(c.describe());
        }
    }
    // Unwinding out of the park (cancellation) must still dequeue.
    struct Cleanup<'c, 'x, 'a> {
        cases: &'c mut [&'x mut (dyn Case + 'a)],
        order: &'c [(usize, usize)],
        sel: &'c Selector,
        armed: bool,
    }
    impl Drop for Cleanup<'_, '_, '_> {
        fn drop(&mut self) {
            if self.armed {
                self.sel.abort();
                dequeue_all(self.cases, self.order, None);
            }
        }
    }
    let mut guard = Cleanup { cases, order, sel: &sel, armed: true };
    let won = sel.wait(reason, deadline, || sel.abort());
    guard.armed = false;
    let cases = &mut *guard.cases;
    // Step 5: dequeue every op (the winner's was already popped).
    dequeue_all(cases, order, won.map(|st| st & !CLOSED_BIT));
    let st = won?;
    let i = st & !CLOSED_BIT;
    cases[i].complete(st & CLOSED_BIT != 0);
    Some(i)
}

/// Helpers for the `select!` macro: a case's channel may be a `Receiver`,
/// or any number of references to one (`&rx`, `&&rx`, a method returning
/// `&Receiver`), exactly as the expression gives it.
pub trait AsReceiver<T> {
    fn as_receiver(&self) -> &Receiver<T>;
}
impl<T> AsReceiver<T> for Receiver<T> {
    fn as_receiver(&self) -> &Receiver<T> {
        self
    }
}
impl<T, R: AsReceiver<T> + ?Sized> AsReceiver<T> for &R {
    fn as_receiver(&self) -> &Receiver<T> {
        (**self).as_receiver()
    }
}
impl<T, R: AsReceiver<T> + ?Sized> AsReceiver<T> for &mut R {
    fn as_receiver(&self) -> &Receiver<T> {
        (**self).as_receiver()
    }
}

/// Helpers for the `select!` macro: `tx`, `&tx`, `&&tx`, ... alike.
pub trait AsSender<T> {
    fn as_sender(&self) -> &Sender<T>;
}
impl<T> AsSender<T> for Sender<T> {
    fn as_sender(&self) -> &Sender<T> {
        self
    }
}
impl<T, S: AsSender<T> + ?Sized> AsSender<T> for &S {
    fn as_sender(&self) -> &Sender<T> {
        (**self).as_sender()
    }
}
impl<T, S: AsSender<T> + ?Sized> AsSender<T> for &mut S {
    fn as_sender(&self) -> &Sender<T> {
        (**self).as_sender()
    }
}

/// `recv(r)`: a receive case on whatever `r` refers to.
pub fn recv_case<'a, T, R: AsReceiver<T> + ?Sized>(r: &'a R) -> RecvCase<'a, T> {
    RecvCase::new(r.as_receiver())
}

/// `send(s, v)`: a send case of `v` on whatever `s` refers to.
pub fn send_case<'a, T, S: AsSender<T> + ?Sized>(s: &'a S, v: T) -> SendCase<'a, T> {
    SendCase::new(s.as_sender(), v)
}

/// One `select!` case, type-erased: all the macro holds of a case while the
/// select runs. Opaque, so the `Case` trait (and the lock, selector and
/// wake types in its signatures) stays inside the crate.
#[repr(transparent)]
pub struct CaseRef<'c>(&'c mut (dyn Case + 'c));

impl std::fmt::Debug for CaseRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaseRef").finish_non_exhaustive()
    }
}

/// The `select!` entry point: `select_cases` over the macro's cases.
#[track_caller]
#[inline]
pub fn select<'c>(cases: &mut [CaseRef<'c>], mode: Mode) -> Option<usize> {
    let cases: *mut [CaseRef<'c>] = cases;
    // SAFETY: `CaseRef<'c>` is `repr(transparent)` over `&'c mut (dyn Case +
    // 'c)`, so the two slices have the same layout and length; the new
    // reference reborrows the old one exclusively for its lifetime.
    let cases = unsafe { &mut *(cases as *mut [&'c mut (dyn Case + 'c)]) };
    select_cases(cases, mode)
}

#[allow(dead_code)]
fn _unused(_: &Chan<u8>) {}
