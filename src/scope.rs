// Scoped coroutines: `std::thread::scope` for goro.
//
// Owns: [`scope`], [`Scope`], [`ScopedJoinHandle`], and per scope a
// `ScopeData` (count of children not yet ended, the owner's waiter, the
// first unjoined panic), per child a `Packet` (its result, `done`, its
// joiner).
//
// How a child runs: `Scope::go` boxes a `ChildRun` (the user's closure, a
// `Finish` guard) as a `dyn FnOnce + Send + 'scope`, erases the lifetime to
// `'static` (as std does) and hands it to the ordinary spawn path, so a
// scoped coroutine is an ordinary coroutine. The `JoinHandle<()>` of the
// spawn is kept by the scope, for cancelling only; joining goes through the
// `Packet`, since the scope and the `ScopedJoinHandle` cannot both own the
// `JoinHandle`.
//
// Invariants:
//  1. `ScopeData::running` counts children whose `ChildRun` has not been
//     dropped. It is incremented in `go` before the spawn, by a party that
//     is itself counted (a child) or is the owner before its final wait, so
//     it reaches zero only once every child ever spawned has ended.
//  2. A child *ends* when its `ChildRun` is dropped, whether it ran (the
//     closure and its captures are consumed by the call) or not (cancelled
//     before its first instruction: the spawn path drops the closure
//     unrun). Field order makes the `Finish` guard drop last, after the
//     closure, even if a capture's destructor panics. `Finish` stores the
//     result (or `Cancelled`), marks the packet done, wakes the joiner,
//     drops the child's packet reference, and only then decrements
//     `running`. After the decrement the child touches only `'static`
//     data (`Arc<ScopeData>`).
//  3. Nothing of lifetime `'scope` survives `scope`'s frame except through
//     a leaked `ScopedJoinHandle` (a leak, not a dangling use).
//  4. Once `ScopeData::cancelling` is set (the owner is unwinding), every
//     child already spawned has been cancelled, and `go` cancels any new
//     one itself (the flag and the handle list share one lock).
//
// Lock order: `Scope::children`, `Packet::state` and `ScopeData::{waiter,
// first_panic}` are leaves; none is held across a park or a wake.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe, Location};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::coroutine::{spawn_inner, Cancelled, JoinHandle};
use crate::park::Waiter;
use crate::wait::WaitReason;

/// Runs `f` with a [`Scope`] whose coroutines may borrow from the caller's
/// stack, and returns only after every coroutine spawned in it has ended.
///
/// This is [`std::thread::scope`] for coroutines. Inside a coroutine,
/// `scope` parks while it waits for its coroutines (the worker runs
/// others); on a plain OS thread it blocks the thread.
///
/// ```
/// let mut counts = vec![0u32; 4];
/// let words = ["go", "rust", "coroutine", "scope"];
/// goro::scope(|s| {
///     for (slot, w) in counts.iter_mut().zip(&words) {
///         s.go(move || *slot = w.len() as u32);
///     }
/// });
/// assert_eq!(counts, [2, 4, 9, 5]);
/// ```
///
/// # Panics
///
/// * If `f` panics, the scope's coroutines are cancelled (as with
///   [`JoinHandle::cancel`]) and waited for, then the panic goes on.
/// * If a coroutine of the scope panicked and its [`ScopedJoinHandle`] was
///   not joined, `scope` waits for all the others and then resumes the
///   panic: the payload of the first such panic that goro saw (where
///   `std::thread::scope` panics with "a scoped thread panicked"; the
///   payload says more). Later ones are dropped. A coroutine that was
///   cancelled and not joined counts as one that panicked with
///   [`goro::Cancelled`](crate::Cancelled).
///
/// # Cancellation
///
/// If the coroutine running `scope` is cancelled ([`JoinHandle::cancel`],
/// or the end of its `run`) while `f` runs or while `scope` waits, the
/// unwind does not leave `scope` until every coroutine of the scope has been
/// cancelled and has ended: they borrow from the frames the unwind is about
/// to pop. A scoped coroutine that never parks (a pure computation loop)
/// delays this until it ends; it can poll [`is_cancelled`](crate::is_cancelled).
///
/// # Soundness
///
/// As with std, the lifetime `'scope` of the scope ends inside `scope`, so
/// neither a [`Scope`] reference nor a [`ScopedJoinHandle`] can escape `f`,
/// and everything a scoped coroutine borrows (`'env`) outlives `scope`'s
/// frame. The closures are handed to the runtime with their lifetime
/// erased; that is sound because no exit from `scope` bypasses the wait for
/// every child: a normal return waits; an unwind (a panic in `f`, a
/// cancellation of the calling coroutine while it runs `f` or waits) runs a
/// drop guard in `scope`'s frame that cancels and waits for every child
/// before the unwind goes on (goro lets a coroutine park while it unwinds).
/// A child counts as ended only once its closure and all its captures have
/// been dropped (after running, or unrun if cancelled before it started),
/// and a child spawned concurrently with the cancellation is cancelled by
/// its spawner. `mem::forget` of a handle leaks its result but cannot skip
/// the wait, which does not depend on any handle.
///
/// A coroutine's borrow cannot outlive the scope:
///
/// ```compile_fail
/// let v = vec![1, 2, 3];
/// let mut leaked = None;
/// goro::scope(|s| {
///     leaked = Some(s.go(|| v.len()));
/// });
/// drop(leaked);
/// ```
///
/// nor can a scoped coroutine borrow something that dies inside the scope:
///
/// ```compile_fail
/// goro::scope(|s| {
///     let local = vec![1, 2, 3];
///     s.go(|| local.len());
/// });
/// ```
#[track_caller]
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    crate::park::note_thread();
    // The children borrow this stack (and may pass it to system calls):
    // never swapped out while the scope lives (stack/swap.rs, note 4).
    let _lent = crate::coroutine::StackLent::new();
    let scope = Scope {
        data: Arc::new(ScopeData {
            running: AtomicUsize::new(0),
            waiter: Mutex::new(None),
            first_panic: Mutex::new(None),
        }),
        children: Mutex::new(Children { handles: Vec::new(), prune_at: PRUNE_MIN, cancelling: false }),
        scope: PhantomData,
        env: PhantomData,
    };
    // Any unwind out of `f` or out of the wait below runs this first.
    let guard = UnwindGuard(&scope);
    let result = f(&scope);
    scope.wait_all();
    std::mem::forget(guard);
    if let Some(p) = scope.data.first_panic.lock().take() {
        crate::coroutine::resume_unwind(p);
    }
    result
}

/// The scope of a [`scope`] call: spawns coroutines that may borrow
/// anything that outlives the call (`'env`).
///
/// ```
/// let data = [1, 2, 3];
/// let sum = goro::scope(|s| s.go(|| data.iter().sum::<i32>()).join().unwrap());
/// assert_eq!(sum, 6);
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    data: Arc<ScopeData>,
    /// The children's handles (cancelling only; invariant 4).
    children: Mutex<Children>,
    /// Invariance over 'scope and 'env, as in std.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

struct Children {
    handles: Vec<JoinHandle<()>>,
    /// Drop finished handles when the list reaches this length (amortised).
    prune_at: usize,
    cancelling: bool,
}

const PRUNE_MIN: usize = 64;

/// What a scope's children share with its owner (`'static`, so a child may
/// touch it after it ended: invariant 2).
struct ScopeData {
    running: AtomicUsize,
    waiter: Mutex<Option<Waiter>>,
    first_panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl ScopeData {
    fn child_ended(&self) {
        // AcqRel: the owner that sees zero sees everything the child did
        // (its result, the panic it recorded).
        if self.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            let w = self.waiter.lock().take();
            if let Some(w) = w {
                w.wake_owned();
            }
        }
    }

    fn record_panic(&self, p: Box<dyn Any + Send>) {
        let mut first = self.first_panic.lock();
        if first.is_none() {
            *first = Some(p);
        }
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Spawns a coroutine that may borrow from outside the scope. Like
    /// [`goro::go`](crate::go), it joins the current runtime (the global
    /// default one on a plain thread).
    ///
    /// The coroutine may itself spawn into the scope (`&Scope` is `Sync`).
    /// Dropping the handle does not detach it from the scope: `scope` still
    /// waits for it, and resumes its panic if it panics.
    ///
    /// # Panics
    ///
    /// If its stack cannot be reserved, as [`goro::go`](crate::go).
    ///
    /// ```
    /// let mut halves = [0u64; 2];
    /// let (a, b) = halves.split_at_mut(1);
    /// goro::scope(|s| {
    ///     s.go(|| a[0] = (1..=50).sum());
    ///     s.go(|| b[0] = (51..=100).sum());
    /// });
    /// assert_eq!(halves[0] + halves[1], 5050);
    /// ```
    #[track_caller]
    pub fn go<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let loc = Location::caller();
        let packet = Arc::new(Packet {
            state: Mutex::new(PacketState { result: None, done: false, joiner: None }),
            data: self.data.clone(),
            _scope: PhantomData,
        });
        // Invariant 1: counted before the child can exist.
        self.data.running.fetch_add(1, Ordering::Relaxed);
        let run = ChildRun {
            f: Some(f),
            finish: Finish { result: None, packet: Some(packet.clone()), data: self.data.clone() },
        };
        let main: Box<dyn FnOnce() + Send + 'scope> = Box::new(move || run.run());
        // SAFETY: only the lifetime changes (same layout: a boxed trait
        // object). `scope` does not return, and no unwind leaves its frame,
        // before this closure has been dropped (run or not) and with it
        // every `'scope` borrow it holds: `running` counts it until then
        // (invariants 1 and 2), and the wait on `running` cannot be skipped
        // (the normal path and `UnwindGuard`). This is std's
        // `thread::scope` argument plus the unwind guard.
        let main: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(main) };
        let spawned = crate::sched::with_runtime(|rt| spawn_inner(rt, None, None, 0, loc, main));
        let handle = match spawned {
            Ok(h) => h,
            // The closure was dropped unrun inside `spawn_inner`, which
            // already uncounted it.
            Err(e) => panic!("goro::Scope::go: cannot reserve a coroutine stack: {e}"),
        };
        let id = handle.id();
        let mut ch = self.children.lock();
        if ch.cancelling {
            handle.cancel();
        }
        if ch.handles.len() >= ch.prune_at {
            ch.handles.retain(|h| !h.is_finished());
            ch.prune_at = (ch.handles.len() * 2).max(PRUNE_MIN);
        }
        ch.handles.push(handle);
        drop(ch);
        ScopedJoinHandle { packet, id }
    }

    /// Waits until every child has ended (invariant 1). May unwind with
    /// `Cancelled` if the caller is cancelled (not while it unwinds).
    #[track_caller]
    fn wait_all(&self) {
        let d = &self.data;
        while d.running.load(Ordering::Acquire) != 0 {
            *d.waiter.lock() = Some(Waiter::current());
            if d.running.load(Ordering::Acquire) == 0 {
                break;
            }
            crate::park::park(WaitReason::Other("goro::scope: waiting for its coroutines"));
        }
        *d.waiter.lock() = None;
    }

    /// Cancels every child, now and to come (invariant 4).
    fn cancel_all(&self) {
        let mut ch = self.children.lock();
        ch.cancelling = true;
        for h in &ch.handles {
            h.cancel();
        }
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope").field("running", &self.data.running.load(Ordering::Relaxed)).finish()
    }
}

/// Runs in `scope`'s frame when an unwind (a panic of `f`, a cancellation
/// of the calling coroutine) passes: cancels and waits for every child.
struct UnwindGuard<'a, 'scope, 'env>(&'a Scope<'scope, 'env>);

impl Drop for UnwindGuard<'_, '_, '_> {
    fn drop(&mut self) {
        self.0.cancel_all();
        // The caller is unwinding: its park is not interrupted by its own
        // cancellation (coroutine.rs, "Unwinding").
        self.0.wait_all();
    }
}

/// One child's result and completion.
struct Packet<'scope, T> {
    state: Mutex<PacketState<T>>,
    data: Arc<ScopeData>,
    _scope: PhantomData<&'scope ()>,
}

struct PacketState<T> {
    result: Option<std::thread::Result<T>>,
    /// The child has ended (invariant 2).
    done: bool,
    joiner: Option<Waiter>,
}

impl<T> Drop for Packet<'_, T> {
    fn drop(&mut self) {
        // Not joined: a panic goes to the scope (resumed at its end).
        if let Some(Err(p)) = self.state.get_mut().result.take() {
            self.data.record_panic(p);
        }
    }
}

/// The boxed entry of a scoped child. Fields drop in order: the closure
/// (if it never ran), then `finish` (invariant 2).
struct ChildRun<'scope, F, T> {
    f: Option<F>,
    finish: Finish<'scope, T>,
}

impl<F: FnOnce() -> T, T> ChildRun<'_, F, T> {
    fn run(mut self) {
        let f = self.f.take().expect("goro bug: a scoped coroutine ran twice");
        // Catches `Cancelled` too: the child then ends here.
        let r = panic::catch_unwind(AssertUnwindSafe(f));
        self.finish.result = Some(r);
    }
}

/// Ends a child (invariant 2) when dropped.
struct Finish<'scope, T> {
    /// The child's result, once its closure has run.
    result: Option<std::thread::Result<T>>,
    packet: Option<Arc<Packet<'scope, T>>>,
    data: Arc<ScopeData>,
}

impl<T> Drop for Finish<'_, T> {
    fn drop(&mut self) {
        let Some(packet) = self.packet.take() else { return };
        let joiner = {
            let mut st = packet.state.lock();
            // Never ran: it was cancelled before its first instruction.
            st.result = Some(self.result.take().unwrap_or_else(|| Err(Box::new(Cancelled))));
            st.done = true;
            st.joiner.take()
        };
        if let Some(j) = joiner {
            j.wake_owned();
        }
        // Our packet reference (the last one if the handle is gone: an
        // unjoined panic is recorded now, before the count drops).
        drop(packet);
        self.data.child_ended();
    }
}

/// An owned permission to join a scoped coroutine (`std::thread::
/// ScopedJoinHandle`'s shape). Dropping it does not detach the coroutine
/// from its scope.
///
/// ```
/// let name = String::from("goro");
/// goro::scope(|s| {
///     let h = s.go(|| name.len());
///     assert_eq!(h.join().unwrap(), 4);
/// });
/// ```
pub struct ScopedJoinHandle<'scope, T> {
    packet: Arc<Packet<'scope, T>>,
    id: u64,
}

impl<'scope, T> ScopedJoinHandle<'scope, T> {
    /// Waits for the coroutine to end and returns its result, or
    /// `Err(payload)` if it panicked (payload [`goro::Cancelled`](crate::Cancelled)
    /// if it was cancelled). A joined panic is not resumed again by
    /// [`scope`].
    ///
    /// Parks the calling coroutine, or blocks the calling OS thread.
    ///
    /// # Errors
    ///
    /// `Err(payload)` if the coroutine panicked, or was cancelled (a payload
    /// that `is::<goro::Cancelled>()`).
    ///
    /// ```
    /// goro::scope(|s| {
    ///     let h = s.go(|| panic!("boom"));
    ///     assert!(h.join().is_err());
    /// });
    /// ```
    #[track_caller]
    pub fn join(self) -> std::thread::Result<T> {
        crate::park::note_thread();
        let mut st = self.packet.state.lock();
        if !st.done {
            let _owner = crate::wait::OwnerWait::new();
            while !st.done {
                st.joiner = Some(Waiter::current());
                drop(st);
                crate::wait::note_owner_park();
                crate::park::park(WaitReason::Join { id: self.id });
                st = self.packet.state.lock();
            }
        }
        st.result.take().expect("goro bug: a finished scoped coroutine left no result")
    }

    /// Has the coroutine ended (returned, panicked or been cancelled)?
    ///
    /// ```
    /// goro::scope(|s| {
    ///     let (tx, rx) = goro::chan::<()>(0);
    ///     let h = s.go(move || rx.recv().unwrap());
    ///     assert!(!h.is_finished());
    ///     tx.send(()).unwrap();
    ///     h.join().unwrap();
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.packet.state.lock().done
    }

    /// The coroutine's id (as in `goro::coroutines()` and reports).
    ///
    /// ```
    /// goro::scope(|s| assert!(s.go(|| ()).id() > 0));
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle").field("id", &self.id).finish()
    }
}
