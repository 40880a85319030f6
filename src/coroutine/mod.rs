//! Coroutines: the control block, spawning, joining, parking.
//!
//! Owns: [`CoInner`] (one per coroutine: id, name, spawn site, park state,
//! home worker, body), [`JoinHandle`], [`Builder`], [`go`], [`yield_now`].
//!
//! Life of a coroutine:
//!  1. `spawn` reserves its stack *on the spawner*, so a stack that cannot
//!     be reserved is an `Err` from `Builder::spawn`. A recycled (warm) stack
//!     gets its body at once: a corosensei coroutine holding only the `Send`
//!     entry closure. A freshly carved stack is not touched: the closure is
//!     boxed (`Start`) and the worker that first resumes it builds the body
//!     there and installs the slot's guard page, so a burst of spawns does
//!     not pay page faults and system calls on the spawner. State `NEW`.
//!  2. Unstarted, it may move between threads (queues, stealing): its stack
//!     holds nothing but the closure. The first worker to resume it becomes
//!     its *home* for good.
//!  3. Started, it runs only on its home thread. `park` suspends it to the
//!     worker loop; `wake` queues it on its home (locally, or through the
//!     home's inbox from any other thread).
//!  4. It finishes by returning (result stored in `CoInner::result`), by a panic
//!     (payload stored), or by cancellation (a `Cancelled` unwind, run on its
//!     home). Then `DONE`, the joiner is woken and the body (and its stack) is
//!     dropped on the home thread.
//!
//! Park state (`state`), the std token protocol (see `park.rs`):
//!   RUNNING -park-> PARKED (set by the worker *after* the switch-out)
//!   RUNNING -wake-> NOTIFIED (the next park returns at once)
//!   PARKED  -wake-> RUNNING + queued on home
//!
//! Who moves it: started coroutines never move (`RuntimeBuilder::
//! migrate_started` is accepted but ignored, see its doc), so once the
//! coroutine has started only its home thread ever writes `state`, and every
//! transition is a plain load and store, with no locked instruction. There
//! is one wake path:
//!  * a wake on the home thread applies the table above at once
//!    (`park::wake_home`);
//!  * a wake from any other thread does not touch `state`: it queues a *wake
//!    request* (a counted reference) in the home's inbox, and the home
//!    applies the table when it pops it (`accept_inbound`). The home pops
//!    requests only between two resumes, so it never sees the coroutine
//!    mid-run. The inbox hand-off (a Release push, an Acquire pop) orders the
//!    waker's writes (say, a value in a channel slot) before the coroutine
//!    runs again.
//!
//! The parked count: a PARKED coroutine's state owns one reference count.
//! The worker that parks it does not drop its reference but leaves it with
//! the state, and whoever takes the state out of PARKED takes that reference
//! and queues it. So a wake on the home thread needs no count of its own:
//! the coroutine cannot finish while that thread runs something else, so a
//! plain pointer to it stays valid (`park::Wakeup`), and a park-and-wake
//! costs no reference counting at all.
//!
//! Unwinding (`unwinding`): std's `thread::panicking()` counts the panics
//! in flight on the OS thread, and every coroutine of a worker shares it: a
//! coroutine parked in a destructor in the middle of its unwind leaves the
//! count at 1 for all the others. So goro never asks std whether *a
//! coroutine* is unwinding; each coroutine keeps its own record, used to
//! skip a cancel (or a partial-deadlock panic) while its destructors run:
//!  * set where its unwind starts: `cancel_unwind`, the partial-deadlock
//!    panic, goro's own `resume_unwind`s, and a panic hook (installed by the
//!    first `RuntimeBuilder::build`) for every `panic!`;
//!  * at each switch-out (park, yield), `unwinding_now` settles it: if std
//!    says no panic is in flight on the thread, nobody is unwinding (the
//!    record is cleared: a panic caught with `catch_unwind` is over); if
//!    one is and no other coroutine of this worker is suspended mid-unwind
//!    (the worker's `suspended_unwinding`), the unwind is this one's;
//!    otherwise the record stands.
//!
//! The record can be wrong only when another coroutine of the same worker
//! is suspended mid-unwind: one that caught its own panic keeps it (it
//! ignores cancels until that other unwind ends), and an unwind started by
//! the program's own `std::panic::resume_unwind` (no hook sees it) is not
//! seen.
//!
//! std's count cannot be saved and restored across switches: it is private
//! to std (`panicking::panic_count`), only a panic's start raises it and
//! only a `catch_unwind` that catches one lowers it, and corosensei does
//! not touch it. What it still does to user code is documented on [`go`].
//!
//! Invariants:
//!  1. `body` and `start` are touched only by the thread that holds the
//!     coroutine's queue entry while `NEW`, and only by the home thread after
//!     that (or by `Drop`, which has the block to itself).
//!  2. A `CoInner` reachable from a `Waiter` has started (only a running
//!     coroutine can make a waiter for itself), so `home` is set.
//!  3. The body is dropped on the home thread: workers drop it at finish, and
//!     shutdown cancels every started coroutine on its home before the
//!     runtime goes away.

mod block;
mod handle;

pub(crate) use block::CoRef;
pub use handle::{go, Builder, JoinHandle};

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe, Location};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};
use std::sync::Arc;

use corosensei::{Coroutine, Yielder};
use parking_lot::Mutex;

use crate::park::Waiter;
use crate::sched::{self, WorkerShared};
use crate::stack::Stack;
use crate::wait::WaitReason;

/// What a worker passes into a coroutine when resuming it.
pub(crate) enum Resume {
    /// Carry on.
    Run,
    /// Unwind now: the runtime is cancelling this coroutine.
    Cancel,
    /// First resume only: its stack's guard page could not be installed, so
    /// its body must not run; it ends with an error payload.
    NoGuard,
}

/// Why a coroutine switched back to its worker.
pub(crate) enum Suspend {
    /// It parked (state protocol above).
    Park,
    /// `yield_now`: runnable again at once, behind the others.
    Yield,
}

pub(crate) type Body = Coroutine<Resume, Suspend, (), Stack>;
pub(crate) type CoYielder = Yielder<Resume, Suspend>;

/// An unstarted coroutine on a fresh stack: the stack, its guard page still
/// to install, and its entry closure. The corosensei coroutine is built from
/// it on the first resume, by the worker that runs it, so `go` never touches
/// the new stack: the first page fault and the guard's system call
/// (`stack/mod.rs`) are paid by that worker, off the spawner's path and in
/// parallel across workers.
pub(crate) struct Start {
    pub(crate) stack: Stack,
    pub(crate) guard: crate::stack::PendingGuard,
    pub(crate) entry: Entry,
}

/// What a coroutine runs, in one field: a `Start` and a `Body` never
/// coexist, so one enum keeps the control block 48 bytes smaller than two
/// `Option`s (`workloads idle` keeps a million of them).
pub(crate) enum Code {
    /// Unstarted on a fresh stack: built on the first resume. Its guard
    /// page is installed by the worker before that resume, or by `Drop` if
    /// it never runs (`stack/mod.rs` invariant 1).
    Start(Start),
    /// The corosensei coroutine: built at spawn on a warm stack, or from
    /// the `Start` on the first resume.
    Body(Body),
    /// It finished (its stack went back with the body).
    Done,
}

impl Code {
    /// The `Start`, if it is one (then `Done` is left in its place).
    pub(crate) fn take_start(&mut self) -> Option<Start> {
        match std::mem::replace(self, Code::Done) {
            Code::Start(st) => Some(st),
            other => {
                *self = other;
                None
            }
        }
    }
}

/// A coroutine's entry closure, boxed until its first resume.
pub(crate) type Entry = Box<dyn FnOnce(&CoYielder, Resume) + Send>;

impl Start {
    /// Installs the guard page, then builds the coroutine (writes its first
    /// frame onto the stack). If the guard cannot be installed the body is
    /// still built, and must be resumed with `Resume::NoGuard` (it then runs
    /// none of the user's code); the error is returned beside it.
    /// (A stack whose guard failed is set aside when the body is dropped,
    /// never recycled: `stack/mod.rs` invariant 2.)
    pub(crate) fn into_body(self) -> (Body, io::Result<()>) {
        let mut stack = self.stack;
        let guarded = self.guard.install(&mut stack);
        let entry = self.entry;
        (Coroutine::with_stack(stack, move |y: &CoYielder, first: Resume| entry(y, first)), guarded)
    }
}

pub(crate) const NEW: u8 = 0;
pub(crate) const RUNNING: u8 = 1;
pub(crate) const NOTIFIED: u8 = 2;
pub(crate) const PARKED: u8 = 3;
pub(crate) const DONE: u8 = 4;

/// `flags` bits.
pub(crate) const F_CANCEL: u8 = 1; // unwind at the next park
pub(crate) const F_MAIN: u8 = 2; // the main coroutine of a `run`
pub(crate) const F_WARNED: u8 = 4; // the long-run warning was printed
pub(crate) const F_PARTIAL: u8 = 8; // found in a partial deadlock (handled)
pub(crate) const F_PARTIAL_PANIC: u8 = 16; // its blocked call must panic with the report
/// Cancelled (woken to unwind) while parked, and not resumed since: its wait
/// record is stale, so the partial-deadlock search leaves it out (a wake
/// from another thread waits for its home to apply it, which may take a
/// while). Cleared at its next park while unwinding (`park_current`).
pub(crate) const F_CANCEL_WAKE: u8 = 32;

/// The panic payload a cancelled coroutine unwinds with; `join` of a
/// coroutine cancelled at shutdown returns `Err` holding it.
///
/// ```
/// goro::run(|| {
///     let h = goro::go(|| goro::never::<()>().recv());
///     h.cancel();
///     let payload = h.join().unwrap_err();
///     assert!(payload.is::<goro::Cancelled>());
/// });
/// ```
#[derive(Debug)]
pub struct Cancelled;

/// The control block of one coroutine.
pub(crate) struct CoInner {
    pub(crate) id: u64,
    pub(crate) name: Option<Box<str>>,
    pub(crate) spawned_at: &'static Location<'static>,
    pub(crate) stack_size: usize,
    /// Park state: NEW, RUNNING, NOTIFIED, PARKED, DONE.
    pub(crate) state: AtomicU8,
    /// F_* bits.
    pub(crate) flags: AtomicU8,
    /// The worker it lives on once started (invariant 2).
    pub(crate) home: HomeCell,
    /// Who waits in `join` (at most one: `join` takes the handle).
    pub(crate) joiner: Mutex<Option<Waiter>>,
    /// What it waits on while parked (diagnostics; see `ReasonCell`).
    pub(crate) wait: ReasonCell,
    /// Where its last park was called from (the user's blocking call, via
    /// `#[track_caller]` down to `park_current`); null before the first.
    /// Written only by the coroutine itself as it parks (a Relaxed store, a
    /// plain move); readers on other threads see it once they saw PARKED.
    pub(crate) wait_at: AtomicPtr<Location<'static>>,
    /// What it runs: its corosensei coroutine, or what that is built from
    /// on the first resume (invariant 1).
    pub(crate) code: UnsafeCell<Code>,
    /// Its result, type-erased (the `JoinHandle<T>` knows `T`): a boxed
    /// `T`, or the panic payload. Written once by the coroutine's entry
    /// closure before its state becomes DONE (Release), read only by
    /// `JoinHandle::join` after it saw DONE (Acquire); `join` consumes the
    /// one handle, so there is one reader. In the block, not in an `Arc`
    /// of its own: one allocation fewer per spawn.
    pub(crate) result: UnsafeCell<Option<std::thread::Result<Box<dyn Send>>>>,
    /// Its yielder, set on first resume (home thread only).
    pub(crate) yielder: Cell<*const CoYielder>,
    /// Slot in the home worker's registry (home thread only).
    pub(crate) reg_key: Cell<usize>,
    /// Sequence number of its armed wake timer, 0 if none (home thread only;
    /// see the worker's timer heap).
    pub(crate) timer_seq: Cell<u64>,
    /// This coroutine has an unwind of its own in flight (a panic or its
    /// cancellation): its destructors are running and may park. Home thread
    /// only; see "Unwinding" in the module doc.
    pub(crate) unwinding: Cell<bool>,
    /// How many times its cancellation was raised (home thread only): a
    /// coroutine that catches `Cancelled` and goes on is re-raised at each
    /// park, up to `MAX_CANCEL_RAISES`.
    pub(crate) cancel_raises: Cell<u32>,
    /// Swapping parked stacks (`stack/swap.rs`; home thread only): the
    /// stack pointer at its last park, its parks so far, the count the
    /// worker's sweep saw last (equal: parked since), its stack's saved
    /// copy while swapped out, and how many goro borrows of its stack are
    /// live (`StackLent`: never swapped while any is).
    pub(crate) sp_at_park: Cell<usize>,
    pub(crate) parks: Cell<u32>,
    pub(crate) sweep_seen: Cell<u32>,
    pub(crate) swapped: Cell<Option<crate::stack::swap::Swapped>>,
    pub(crate) no_swap: Cell<u32>,
    /// Against thrashing (`sched/worker.rs::sweep`): the sweeps that saw
    /// this park so far, the sweeps that saw its stack out, and the backoff
    /// (it goes out only once `1 << backoff` sweeps have seen the park).
    pub(crate) swap_counts: Cell<SwapCounts>,
}

/// See `CoInner::swap_counts`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SwapCounts {
    pub(crate) seen: u8,
    pub(crate) out: u8,
    pub(crate) backoff: u8,
}

/// A coroutine's home worker: empty until the coroutine starts, then set
/// once, by the worker that starts it (`start_co`), and read by anyone.
/// What a `OnceLock<Arc<_>>` gives, without its `Once` (3% of skynet: a
/// million starts each went through `Once::call`). Holds one strong count
/// of the `Arc` it was given, dropped with the cell.
pub(crate) struct HomeCell(AtomicPtr<WorkerShared>);

impl HomeCell {
    const fn new() -> HomeCell {
        HomeCell(AtomicPtr::new(std::ptr::null_mut()))
    }

    /// Sets the home. Only the worker starting the coroutine calls this,
    /// once (a coroutine starts once: its queue entry's holder alone may).
    pub(crate) fn set(&self, w: Arc<WorkerShared>) {
        let new = Arc::into_raw(w) as *mut WorkerShared;
        // Release: a reader that sees the pointer sees the worker.
        let old = self.0.swap(new, Ordering::AcqRel);
        debug_assert!(old.is_null(), "goro bug: a coroutine's home set twice");
        if !old.is_null() {
            // SAFETY: a non-null pointer here came from `Arc::into_raw` in
            // an earlier `set`, and its count is ours to drop.
            drop(unsafe { Arc::from_raw(old) });
        }
    }

    /// The home, once set.
    #[inline]
    pub(crate) fn get(&self) -> Option<&WorkerShared> {
        let p = self.0.load(Ordering::Acquire);
        // SAFETY: set once from `Arc::into_raw` and never cleared while the
        // cell lives; the cell holds a strong count, so the worker outlives
        // the borrow of `self`.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    /// The home as a counted reference of its own (for use after the
    /// coroutine may be gone).
    pub(crate) fn get_arc(&self) -> Option<Arc<WorkerShared>> {
        let p = self.0.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: as in `get`; the count taken here is released by the
        // returned `Arc`.
        unsafe {
            Arc::increment_strong_count(p);
            Some(Arc::from_raw(p))
        }
    }
}

impl Drop for HomeCell {
    fn drop(&mut self) {
        let p = *self.0.get_mut();
        if !p.is_null() {
            // SAFETY: from `Arc::into_raw` in `set`; the cell's count.
            drop(unsafe { Arc::from_raw(p) });
        }
    }
}

// SAFETY: the fields that are not thread-safe (`body`, `start`, `yielder`,
// `reg_key`, `timer_seq`, `unwinding`, `cancel_raises`) are touched only by the one thread allowed to run the coroutine
// at that moment (module invariant 1): the holder of its queue entry before
// it starts, its home thread after. Everything else is atomic or locked. The
// code (body or start) moves between threads only while NEW, when the stack
// holds nothing but the `Send` entry closure.
unsafe impl Send for CoInner {}
// SAFETY: as for Send: shared access from other threads reads only the
// atomic and locked fields.
unsafe impl Sync for CoInner {}

impl Drop for CoInner {
    fn drop(&mut self) {
        // Never ran: its fresh stack still lacks a guard, and must not reach
        // a free list without one (stack/mod.rs invariant 1).
        if let Some(Start { mut stack, guard, entry }) = self.code.get_mut().take_start() {
            drop(entry);
            // If the install fails, dropping the stack sets the slot aside
            // rather than recycle it unguarded (stack/mod.rs invariant 2).
            let _ = guard.install(&mut stack);
            drop(stack);
        }
    }
}

impl CoInner {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl CoRef {
    /// Wakes the coroutine, or leaves a token if it is not parked.
    pub(crate) fn wake(&self) {
        if !self.wake_in_place() {
            sched::request_wake(self.clone());
        }
    }

    /// `wake`, consuming a reference (which a wake request then carries).
    pub(crate) fn wake_owned(self) {
        if !self.wake_in_place() {
            sched::request_wake(self);
        }
    }

    /// Applies a wake at once if this is the coroutine's home thread
    /// (plain stores). False if it must go to the home as a wake request
    /// (module doc).
    #[inline]
    fn wake_in_place(&self) -> bool {
        if sched::runs_here(self) {
            // SAFETY: `self` keeps it alive for the call; `runs_here` holds.
            unsafe { crate::park::wake_home(CoRef::as_ptr(self)) };
            true
        } else {
            false
        }
    }

    /// The home worker pops `self` from its inbox: an unstarted coroutine
    /// placed there, or a wake request for a started one (module doc),
    /// which it now applies. Returns the coroutine if it is to run now.
    pub(crate) fn accept_inbound(self) -> Option<CoRef> {
        // Relaxed: only this (home) thread writes `state` once started.
        match self.state.load(Ordering::Relaxed) {
            NEW => Some(self),
            PARKED => {
                self.state.store(RUNNING, Ordering::Relaxed);
                // SAFETY: taking it out of PARKED gives us the parked count;
                // `self` (the request's count) keeps it alive, so this
                // never drops the last one.
                unsafe { CoRef::decrement_strong_count(CoRef::as_ptr(&self)) };
                Some(self)
            }
            RUNNING => {
                // Queued or yielded already: the wake becomes its token.
                self.state.store(NOTIFIED, Ordering::Relaxed);
                None
            }
            _ => None,
        }
    }
}

impl CoInner {
    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }

    #[inline]
    pub(crate) fn has_flag(&self, f: u8) -> bool {
        self.flags.load(Ordering::Acquire) & f != 0
    }

    pub(crate) fn set_flag(&self, f: u8) {
        self.flags.fetch_or(f, Ordering::AcqRel);
    }

    pub(crate) fn clear_flag(&self, f: u8) {
        self.flags.fetch_and(!f, Ordering::AcqRel);
    }

    /// Where its last park was called from (see `wait_at`).
    pub(crate) fn wait_site(&self) -> Option<&'static Location<'static>> {
        let p = self.wait_at.load(Ordering::Relaxed);
        // SAFETY: null or made from a `&'static Location<'static>`.
        unsafe { p.cast_const().as_ref() }
    }

    /// Human-readable `#id "name"`.
    pub(crate) fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("#{} \"{}\"", self.id, n),
            None => format!("#{}", self.id),
        }
    }
}

impl fmt::Debug for CoInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coroutine").field("id", &self.id).field("name", &self.name).finish()
    }
}

/// The running coroutine on this thread, if any.
pub(crate) fn current() -> Option<CoRef> {
    sched::with_current(|co| co.clone())
}

/// The id of the running coroutine on this thread, if any.
pub(crate) fn current_id() -> Option<u64> {
    sched::with_current(|co| co.id)
}

/// Parks the running coroutine (see `park.rs`), recording `reason` unless it
/// is `None` (keep the reason recorded before), and the caller's location
/// (`#[track_caller]` all the way from the public blocking call). Returns
/// `false` if the caller is not a coroutine (then the caller blocks its
/// thread instead).
#[inline(always)]
#[track_caller]
pub(crate) fn park_current(reason: Option<&WaitReason>, deadline: Option<std::time::Instant>) -> bool {
    let Some(co) = sched::current_ptr() else { return false };
    // SAFETY: `current_ptr` is the coroutine running on this thread; the
    // worker keeps a reference to it for as long as it runs.
    let co = unsafe { &*co };
    // Its own unwind, not std's per-thread count (module doc, "Unwinding"):
    // it cannot change while the coroutine is suspended, so it also decides
    // after the switch.
    let unwinding = unwinding_now(co);
    if co.has_flag(F_CANCEL) {
        if !unwinding {
            cancel_unwind(co);
        }
        // It parks again while unwinding (a destructor waits): this wait
        // is real, and its record with it (see F_CANCEL_WAKE).
        if co.has_flag(F_CANCEL_WAKE) {
            co.clear_flag(F_CANCEL_WAKE);
        }
    }
    // Only this (home) thread writes `state`, so a plain store consumes the
    // token (a wake that came first).
    if co.state.load(Ordering::Relaxed) == NOTIFIED {
        co.state.store(RUNNING, Ordering::Relaxed);
        return true;
    }
    if let Some(reason) = reason {
        co.wait.set_own(reason);
    }
    // Relaxed: only this coroutine writes it; readers look once PARKED.
    co.wait_at.store(Location::caller() as *const Location<'static> as *mut _, Ordering::Relaxed);
    if let Some(d) = deadline {
        sched::add_wake_timer(d, co);
    }
    // For the worker's sweep (stack/swap.rs): where this stack ends while
    // parked, and that it parked again.
    co.sp_at_park.set(stack_pointer());
    co.parks.set(co.parks.get().wrapping_add(1));
    // SAFETY: the yielder pointer was set on this coroutine's first resume and
    // points into its own stack, which is the stack we are running on.
    let y = unsafe { &*co.yielder.get() };
    let r = y.suspend(Suspend::Park);
    if deadline.is_some() {
        sched::disarm_wake_timer(co);
    }
    if co.has_flag(F_PARTIAL_PANIC) && !unwinding {
        partial_deadlock_panic(co);
    }
    match r {
        Resume::Run | Resume::NoGuard => {}
        Resume::Cancel => {
            if !unwinding {
                cancel_unwind(co)
            }
        }
    }
    true
}

/// How many bytes a park's switch writes below the stack pointer that
/// `park_current` records (`sp_at_park`): corosensei's `suspend` and the
/// context switch beneath it. A swap-out must keep them (`stack/swap.rs`,
/// `enable`'s margin). They depend on the build: under 256 bytes
/// optimised, several hundred more in a debug build, where a fixed 256-byte
/// margin lost the switch's saved return address and a resumed coroutine
/// jumped to address 0 (`cargo test --test swap` without `--release`).
///
/// Measured once, the way `park_current` parks (the same read of the
/// stack pointer, then `suspend(Suspend::Park)` on a `CoYielder`), on a
/// fresh stack whose memory is all zeros until written: after the
/// suspension, the lowest non-zero word lies at or above where the switch
/// wrote deepest, so the distance from the recorded pointer, plus 64 bytes
/// for zero words saved at the very bottom, bounds it.
pub(crate) fn suspend_depth() -> io::Result<usize> {
    static DEPTH: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    if let Some(&d) = DEPTH.get() {
        return Ok(d);
    }
    let stack = corosensei::stack::DefaultStack::new(64 * 1024)?;
    // Scan the top 32 KiB: usable whatever the page size (corosensei's
    // `limit` is the bottom of the guard page below the 64 KiB), and far
    // more than a switch uses.
    let (lo, base) = {
        use corosensei::stack::Stack as _;
        (stack.base().get() - 32 * 1024, stack.base().get())
    };
    let sp = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sp2 = sp.clone();
    let mut co: Coroutine<Resume, Suspend, (), corosensei::stack::DefaultStack> =
        Coroutine::with_stack(stack, move |y: &CoYielder, _: Resume| {
            sp2.store(stack_pointer(), Ordering::Relaxed);
            y.suspend(Suspend::Park);
        });
    let _ = co.resume(Resume::Run); // runs up to the suspension
    let at = sp.load(Ordering::Relaxed);
    assert!(at > lo && at <= base, "goro bug: the calibration coroutine's stack pointer is off its stack");
    let mut low = at;
    let mut a = lo;
    while a < at {
        // SAFETY: `[lo, base)` lies in the usable range of the stack
        // `co` owns, mapped read-write (zero-filled by the kernel until
        // written); `co` is suspended, so nothing writes it now, and no
        // Rust reference covers these bytes: a volatile read of mapped
        // memory through a raw address returns its bytes.
        if unsafe { std::ptr::read_volatile(a as *const usize) } != 0 {
            low = a;
            break;
        }
        a += std::mem::size_of::<usize>();
    }
    let _ = co.resume(Resume::Run); // returns: the coroutine is done
    Ok(*DEPTH.get_or_init(|| at - low + 64))
}

/// The caller's stack pointer (roughly: the frame of the caller; the
/// swap-out keeps `suspend_depth` bytes below it).
#[inline(always)]
fn stack_pointer() -> usize {
    let sp: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads a register, touches no memory.
    unsafe {
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reads a register, touches no memory.
    unsafe {
        std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let marker = 0u8;
        sp = std::hint::black_box(&marker) as *const u8 as usize;
    }
    sp
}

/// While alive, the running coroutine's stack is lent to others that goro
/// cannot make fault-tolerant (a scope's children, the blocking pool, a
/// future's wakers), so it is never swapped out (`stack/swap.rs`, note 4).
pub(crate) struct StackLent(Option<*const CoInner>);

impl StackLent {
    pub(crate) fn new() -> StackLent {
        let co = sched::current_ptr();
        if let Some(co) = co {
            // SAFETY: the running coroutine, kept alive by its worker while
            // it runs, and by the caller's frame (on its stack) after.
            let co = unsafe { &*co };
            co.no_swap.set(co.no_swap.get() + 1);
        }
        StackLent(co)
    }
}

impl Drop for StackLent {
    fn drop(&mut self) {
        if let Some(co) = self.0 {
            // SAFETY: dropped on the same coroutine (it lives in its frame),
            // which is alive while it runs; `no_swap` is home-thread only.
            let co = unsafe { &*co };
            co.no_swap.set(co.no_swap.get() - 1);
        }
    }
}

/// The running coroutine `co` was found in a partial deadlock: its blocked
/// call panics with the report. Out of line: `park_current` is hot.
#[cold]
#[inline(never)]
#[track_caller]
fn partial_deadlock_panic(co: &CoInner) -> ! {
    co.flags.fetch_and(!F_PARTIAL_PANIC, Ordering::AcqRel);
    co.unwinding.set(true);
    let report = co.home.get().and_then(|h| h.rt.upgrade()).and_then(|rt| rt.partial_reports.lock().remove(&co.id));
    panic!("{}", report.as_deref().unwrap_or("goro: partial deadlock"));
}

/// A coroutine's wait reason: written by the coroutine as it parks (and by
/// a lock refreshing its waiters' records, see `sync/waitq.rs`), read by
/// diagnostics on any thread. A one-instruction spin lock (an exchange to
/// lock, a plain store to unlock) guards it: every holder only copies a
/// small `Copy` value, so nobody spins for long, and the park path pays one
/// locked instruction instead of a mutex's two.
pub(crate) struct ReasonCell {
    locked: AtomicBool,
    v: UnsafeCell<WaitReason>,
}

// SAFETY: `v` is only read or written with `locked` held; `WaitReason` is
// plain `Copy` data.
unsafe impl Sync for ReasonCell {}

impl ReasonCell {
    fn new() -> ReasonCell {
        ReasonCell { locked: AtomicBool::new(false), v: UnsafeCell::new(WaitReason::None) }
    }

    fn with<R>(&self, f: impl FnOnce(&mut WaitReason) -> R) -> R {
        while self.locked.swap(true, Ordering::Acquire) {
            std::hint::spin_loop();
        }
        // SAFETY: under the lock: exclusive access.
        let r = f(unsafe { &mut *self.v.get() });
        self.locked.store(false, Ordering::Release);
        r
    }

    /// Records `r`.
    pub(crate) fn set(&self, r: WaitReason) {
        self.with(|v| *v = r);
    }

    /// Records `r` for the coroutine's own park (`park_current` with a
    /// reason), skipping the lock when the record already says `r` (a
    /// coroutine looping on one channel parks with the same reason again
    /// and again).
    ///
    /// The unlocked read is race-free: besides the coroutine itself, only a
    /// lock's wait queue writes this record (`waitq::Slot::set_wait`, and
    /// `Slot::grant` clearing it), and only while the coroutine's slot is
    /// queued there or is being granted, before the party is woken; a
    /// coroutine parking with its own reason is in no such queue (a queued
    /// party parks with `park_recorded`, and leaves the queue before it
    /// returns). Readers on other threads only read, under the lock.
    #[inline(always)]
    fn set_own(&self, r: &WaitReason) {
        // SAFETY: see above: no concurrent write is possible. Compared in
        // place: a reason is some 80 bytes.
        let cur = unsafe { &*self.v.get() };
        // A channel wait, the hot case, compared inline (the derived `==`
        // is a call through a jump table on the variant).
        if let (
            WaitReason::Send { chan: a, cap: b, queued: c, receivers: d },
            WaitReason::Send { chan: e, cap: f, queued: g, receivers: h },
        )
        | (
            WaitReason::Recv { chan: a, cap: b, queued: c, senders: d },
            WaitReason::Recv { chan: e, cap: f, queued: g, senders: h },
        ) = (cur, r)
        {
            if a == e && b == f && c == g && d == h {
                return;
            }
        }
        self.set_own_slow(r);
    }

    /// `set_own` but for an unchanged channel wait.
    #[inline(never)]
    fn set_own_slow(&self, r: &WaitReason) {
        // SAFETY: as in `set_own`.
        if unsafe { &*self.v.get() } == r {
            return;
        }
        self.set(*r);
    }

    /// The current reason.
    pub(crate) fn get(&self) -> WaitReason {
        self.with(|v| *v)
    }
}

/// Whether the running coroutine `co` has an unwind of its own in flight,
/// updating its record (module doc, "Unwinding"). Called on its stack.
#[inline]
fn unwinding_now(co: &CoInner) -> bool {
    if !std::thread::panicking() {
        // Nothing on this thread is unwinding, so neither are we (a panic
        // we caught and went on from is over).
        co.unwinding.set(false);
        return false;
    }
    unwinding_now_slow(co)
}

/// `unwinding_now` while some panic is in flight on this thread.
#[cold]
#[inline(never)]
fn unwinding_now_slow(co: &CoInner) -> bool {
    if co.unwinding.get() {
        return true;
    }
    // The thread's count is nonzero. If no other coroutine of this worker
    // is suspended mid-unwind, the unwind can only be ours (one our marks
    // missed: a `resume_unwind` of the user's).
    if sched::others_unwinding() == 0 {
        co.unwinding.set(true);
        return true;
    }
    false
}

/// Marks the running coroutine (if any) as unwinding: called where an
/// unwind of its own starts (the panic hook, goro's own `resume_unwind`s).
pub(crate) fn mark_unwinding() {
    if let Some(co) = sched::current_ptr() {
        // SAFETY: as in `park_current`; `unwinding` is home-thread only and
        // this is the home thread (the coroutine runs here).
        unsafe { (*co).unwinding.set(true) };
    }
}

/// `std::panic::resume_unwind`, marking the running coroutine as unwinding
/// first (goro's own re-raises: `blocking`, `run`).
pub(crate) fn resume_unwind(payload: Box<dyn Any + Send>) -> ! {
    mark_unwinding();
    panic::resume_unwind(payload)
}

/// How many times a coroutine's cancellation is raised before the runtime
/// gives up on it (it keeps catching `Cancelled`).
const MAX_CANCEL_RAISES: u32 = 1000;

#[cold]
#[inline(never)]
fn cancel_unwind(co: &CoInner) -> ! {
    let n = co.cancel_raises.get() + 1;
    co.cancel_raises.set(n);
    if n > MAX_CANCEL_RAISES {
        fatal_catches_cancelled(co);
    }
    co.unwinding.set(true);
    panic::resume_unwind(Box::new(Cancelled))
}

/// A coroutine caught its cancellation `MAX_CANCEL_RAISES` times and went
/// on each time: the runtime can never finish cancelling it (its worker
/// would spin on it for ever and `run` would never return), so the process
/// stops with a message naming it.
#[cold]
#[inline(never)]
fn fatal_catches_cancelled(co: &CoInner) -> ! {
    eprintln!(
        "goro: coroutine {} (spawned at {}) catches goro::Cancelled and keeps running: its cancellation at \
         shutdown was raised {MAX_CANCEL_RAISES} times and caught each time, so the runtime can never finish \
         shutting down; aborting. A catch_unwind that may see goro::Cancelled must resume it \
         (std::panic::resume_unwind(payload) when payload.is::<goro::Cancelled>()).",
        co.label(),
        co.spawned_at
    );
    std::process::abort()
}

/// Has the running coroutine been asked to stop ([`JoinHandle::cancel`],
/// or the end of its `run`)? It will unwind from its next park; a long
/// computation that does not park can poll this and return early. False on
/// a plain thread.
///
/// ```
/// goro::run(|| {
///     assert!(!goro::is_cancelled());
/// });
/// ```
pub fn is_cancelled() -> bool {
    sched::with_current(|co| co.has_flag(F_CANCEL)).unwrap_or(false)
}

/// Cooperatively gives up the worker: other runnable coroutines run before
/// this one resumes. On a plain thread, `std::thread::yield_now`.
///
/// Go: `runtime.Gosched()`.
///
/// ```
/// goro::run(|| {
///     let (tx, rx) = goro::chan(1);
///     goro::go(move || tx.send("other ran").unwrap());
///     // A long loop that never parks should yield now and then.
///     while rx.is_empty() {
///         goro::yield_now();
///     }
///     assert_eq!(rx.recv(), Ok("other ran"));
/// });
/// ```
pub fn yield_now() {
    let Some(co) = sched::current_ptr() else {
        std::thread::yield_now();
        return;
    };
    // SAFETY: as in `park_current`.
    let co = unsafe { &*co };
    let unwinding = unwinding_now(co);
    // SAFETY: as in `park_current`.
    let y = unsafe { &*co.yielder.get() };
    if let Resume::Cancel = y.suspend(Suspend::Yield) {
        if !unwinding {
            cancel_unwind(co)
        }
    }
}

pub(crate) fn spawn_inner<F, T>(
    rt: &Arc<sched::Shared>,
    name: Option<String>,
    stack_size: Option<usize>,
    flags: u8,
    loc: &'static Location<'static>,
    f: F,
) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    crate::park::note_thread();
    let size = stack_size.unwrap_or(if flags & F_MAIN != 0 { rt.config.main_stack_size } else { rt.config.stack_size });
    let (stack, guard) = Stack::new(size)?;
    let stack_size = stack.size();
    let entry = move |y: &CoYielder, first: Resume| {
        let co = sched::current_ptr().expect("goro bug: coroutine resumed outside a worker");
        // SAFETY: the worker that resumed us holds a reference to our block.
        let co = unsafe { &*co };
        co.yielder.set(y as *const CoYielder);
        let result: std::thread::Result<T> = match first {
            Resume::Cancel => Err(Box::new(Cancelled) as Box<dyn Any + Send>),
            Resume::NoGuard => Err(Box::new(crate::stack::NO_GUARD_HELP) as Box<dyn Any + Send>),
            Resume::Run => panic::catch_unwind(AssertUnwindSafe(f)),
        };
        // SAFETY: `CoInner::result` invariant: written once, here, before
        // DONE; nobody reads it before DONE. A `T` that is zero-sized (the
        // usual `()`) boxes without allocating.
        unsafe { *co.result.get() = Some(result.map(|t| Box::new(t) as Box<dyn Send>)) };
    };
    // A recycled stack is warm (its top pages are resident): build the body
    // now, with no allocation. A fresh one waits for its first worker
    // (module note, step 1).
    let code = match guard {
        None => Code::Body(Coroutine::with_stack(stack, entry)),
        Some(guard) => Code::Start(Start { stack, guard, entry: Box::new(entry) }),
    };
    let co = CoRef::new(CoInner {
        id: sched::next_coroutine_id(),
        name: name.map(String::into_boxed_str),
        spawned_at: loc,
        stack_size,
        state: AtomicU8::new(NEW),
        flags: AtomicU8::new(flags),
        home: HomeCell::new(),
        joiner: Mutex::new(None),
        wait: ReasonCell::new(),
        wait_at: AtomicPtr::new(std::ptr::null_mut()),
        code: UnsafeCell::new(code),
        result: UnsafeCell::new(None),
        yielder: Cell::new(std::ptr::null()),
        reg_key: Cell::new(usize::MAX),
        timer_seq: Cell::new(0),
        unwinding: Cell::new(false),
        cancel_raises: Cell::new(0),
        sp_at_park: Cell::new(0),
        parks: Cell::new(0),
        sweep_seen: Cell::new(0),
        swapped: Cell::new(None),
        no_swap: Cell::new(0),
        swap_counts: Cell::new(SwapCounts::default()),
    });
    rt.submit_new(co.clone());
    Ok(JoinHandle { co, result: PhantomData })
}

/// Marker making a type `!Send` and `!Sync`.
#[allow(dead_code)]
pub(crate) type NotSend = PhantomData<*const ()>;

fn _assert_send_sync() {
    fn ok<T: Send + Sync>() {}
    ok::<JoinHandle<u32>>();
}

#[cfg(test)]
mod tests {
    /// A million idle coroutines keep a million control blocks: one enum
    /// for the body and its start (not two `Option`s) and the result in
    /// the block (not in an `Arc` of its own, 48 bytes of heap) keep a
    /// coroutine at one allocation of 328 bytes on 64-bit targets (344
    /// with the `Arc`'s counts), plus the entry closure's box on a fresh
    /// stack.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn the_control_block_stays_small() {
        use super::{CoInner, Code};
        assert!(std::mem::size_of::<Code>() <= 56, "Code is {} bytes", std::mem::size_of::<Code>());
        assert!(std::mem::size_of::<CoInner>() <= 328, "CoInner is {} bytes", std::mem::size_of::<CoInner>());
    }

    /// The calibration finds the switch's frames below the recorded stack
    /// pointer (some, and within reason), and measures once.
    #[test]
    fn a_parks_switch_depth_is_measured() {
        let d = super::suspend_depth().unwrap();
        // At least the switch's saved registers and return address, plus
        // the 64-byte slack; less than a page in any build seen (88 bytes
        // optimised, 696 in a debug build, before the slack).
        assert!((64 + 16..4096).contains(&d), "suspend depth {d}");
        assert_eq!(super::suspend_depth().unwrap(), d);
    }
}
