// Design note: `Group<E>`, Go's `golang.org/x/sync/errgroup`.
//
// Owns: a shared `Inner` (clones of a `Group` share it): a `WaitGroup`
// counting tasks spawned and not yet ended, the first error, the first
// panic payload, the optional limit (`Arc<Semaphore>`, one permit per
// running task) and the `CancelFn` of the context from `with_context`.
//
// Invariants:
//  * A task holds one WaitGroup count (added before the spawn) and, with a
//    limit, one permit (taken, and forgotten, before the spawn); a drop
//    guard in the task gives both back however it ends (return, error,
//    panic, cancel-by-unwind).
//  * `first` keeps only the first error, `panic` only the first panic
//    payload; either one cancels the group's context.
//  * The limit is only changed while no task is running (checked: Go
//    panics too), so a permit is always given back to the semaphore it was
//    taken from.
//
// Lock order: `first`, `panic` and `limit` are goro `Mutex`es, each held
// for a few instructions, never two at once and never across a wait or a
// cancel (the error is stored, the lock released, then the context is
// cancelled). Waiting (for a slot, for the tasks) parks through
// `Semaphore` and `WaitGroup`.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::{Mutex, Semaphore, WaitGroup};
use crate::context::{CancelFn, Context};

struct Inner<E> {
    wg: WaitGroup,
    first: Mutex<Option<E>>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    limit: Mutex<Option<Arc<Semaphore>>>,
    cancel: Option<CancelFn>,
}

/// A group of coroutines working on subtasks of one task, Go's
/// `errgroup.Group`: [`go`](Group::go) runs a fallible task in a new
/// coroutine, [`wait`](Group::wait) waits for all of them and returns the
/// first error. Clones share the group (so a task may add more tasks).
///
/// ```
/// use goro::sync::Group;
///
/// goro::run(|| {
///     let g = Group::new();
///     for i in 0..5 {
///         g.go(move || if i == 3 { Err(format!("task {i} failed")) } else { Ok(()) });
///     }
///     assert_eq!(g.wait(), Err("task 3 failed".to_string()));
/// });
/// ```
///
/// With [`with_context`](Group::with_context), the first error cancels a
/// context the tasks can watch, so the others stop early; with
/// [`set_limit`](Group::set_limit), at most `n` tasks run at once.
///
/// Panics: a panic in a task is caught; it cancels the group's context like
/// an error, and once every task has ended, [`wait`](Group::wait) resumes
/// the first panic (as `goro::scope` and Go's errgroup do). A panic wins
/// over errors. Waiting works from coroutines (they park) and from plain
/// threads (they block); tasks always run as coroutines (on the global
/// default runtime when `go` is called from a plain thread).
pub struct Group<E> {
    inner: Arc<Inner<E>>,
}

/// Gives back a task's count and permit however the task ends.
struct TaskGuard<E> {
    inner: Arc<Inner<E>>,
    permit: Option<Arc<Semaphore>>,
}

impl<E> Drop for TaskGuard<E> {
    fn drop(&mut self) {
        if let Some(sem) = self.permit.take() {
            sem.add_permits(1);
        }
        self.inner.wg.done();
    }
}

impl<E: Send + 'static> Group<E> {
    /// An empty group with no limit and no context.
    ///
    /// ```
    /// let g = goro::sync::Group::<std::io::Error>::new();
    /// assert!(g.wait().is_ok()); // nothing to wait for
    /// ```
    pub fn new() -> Self {
        Self::make(None)
    }

    /// A group and a child of `parent` that is cancelled when a task
    /// returns an error (or panics), and when [`wait`](Group::wait) returns
    /// (Go's `errgroup.WithContext`). It is also cancelled when the group
    /// and all its clones are gone.
    ///
    /// ```
    /// use goro::context::{self, ContextError};
    /// use goro::sync::Group;
    ///
    /// goro::run(|| {
    ///     let (g, ctx) = Group::with_context(&context::background());
    ///     let c = ctx.clone();
    ///     g.go(move || {
    ///         c.done().recv().ok(); // waits until another task fails
    ///         Ok(())
    ///     });
    ///     g.go(|| Err("boom"));
    ///     assert_eq!(g.wait(), Err("boom"));
    ///     assert_eq!(ctx.err(), Some(ContextError::Canceled));
    /// });
    /// ```
    pub fn with_context(parent: &Context) -> (Self, Context) {
        let (ctx, cancel) = parent.with_cancel();
        (Self::make(Some(cancel)), ctx)
    }

    fn make(cancel: Option<CancelFn>) -> Self {
        Group {
            inner: Arc::new(Inner {
                wg: WaitGroup::new(),
                first: Mutex::new(None),
                panic: Mutex::new(None),
                limit: Mutex::new(None),
                cancel,
            }),
        }
    }

    /// Lets at most `n` tasks of this group run at once: from then on,
    /// [`go`](Group::go) waits (parks) until a running task ends when `n`
    /// are running. `usize::MAX` removes the limit; `0` makes every later
    /// `go` wait for ever (as in Go).
    ///
    /// Beware (as in Go): a task that calls `go` on its own group while the
    /// limit is reached waits for a slot that it holds itself.
    ///
    /// # Panics
    ///
    /// If tasks of the group are still running (Go's rule: `errgroup:
    /// modify limit while N goroutines in the group are still active`).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// goro::run(|| {
    ///     let g = goro::sync::Group::<()>::new();
    ///     g.set_limit(2);
    ///     let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    ///     for _ in 0..6 {
    ///         let (now, max) = (now.clone(), max.clone());
    ///         g.go(move || {
    ///             max.fetch_max(now.fetch_add(1, SeqCst) + 1, SeqCst);
    ///             goro::time::sleep(Duration::from_millis(2));
    ///             now.fetch_sub(1, SeqCst);
    ///             Ok(())
    ///         });
    ///     }
    ///     g.wait().unwrap();
    ///     assert!(max.load(SeqCst) <= 2);
    /// });
    /// ```
    pub fn set_limit(&self, n: usize) {
        let active = self.inner.wg.count();
        if active != 0 {
            panic!("errgroup: modify limit while {active} goroutines in the group are still active");
        }
        *self.inner.limit.lock() = (n != usize::MAX).then(|| Arc::new(Semaphore::new(n)));
    }

    /// Runs `f` in a new coroutine. With a limit, first waits (parks) for
    /// a free slot. The first error returned by a task is kept for
    /// [`wait`](Group::wait) and cancels the group's context.
    ///
    /// ```
    /// let g = goro::sync::Group::<String>::new();
    /// let (tx, rx) = goro::chan(3);
    /// for i in 0..3 {
    ///     let tx = tx.clone();
    ///     g.go(move || tx.send(i).map_err(|e| e.to_string()));
    /// }
    /// g.wait().unwrap();
    /// drop(tx);
    /// let mut got: Vec<i32> = rx.iter().collect();
    /// got.sort();
    /// assert_eq!(got, [0, 1, 2]);
    /// ```
    #[track_caller]
    pub fn go<F: FnOnce() -> Result<(), E> + Send + 'static>(&self, f: F) {
        let sem = self.inner.limit.lock().clone();
        if let Some(sem) = &sem {
            sem.acquire().forget();
        }
        self.spawn(sem, f);
    }

    /// Like [`go`](Group::go), but if the limit is reached it does not
    /// wait: it returns `false` and does not run `f` (Go's `TryGo`).
    ///
    /// ```
    /// goro::run(|| {
    ///     let g = goro::sync::Group::<()>::new();
    ///     g.set_limit(1);
    ///     let (tx, rx) = goro::chan::<()>(0);
    ///     assert!(g.try_go(move || { rx.recv().ok(); Ok(()) }));
    ///     assert!(!g.try_go(|| Ok(()))); // the one slot is taken
    ///     tx.send(()).unwrap();
    ///     g.wait().unwrap();
    /// });
    /// ```
    #[track_caller]
    pub fn try_go<F: FnOnce() -> Result<(), E> + Send + 'static>(&self, f: F) -> bool {
        let sem = self.inner.limit.lock().clone();
        if let Some(sem) = &sem {
            match sem.try_acquire() {
                Some(p) => p.forget(),
                None => return false,
            }
        }
        self.spawn(sem, f);
        true
    }

    #[track_caller]
    fn spawn<F: FnOnce() -> Result<(), E> + Send + 'static>(&self, permit: Option<Arc<Semaphore>>, f: F) {
        self.inner.wg.add(1);
        let guard = TaskGuard { inner: self.inner.clone(), permit };
        crate::go(move || {
            let guard = guard;
            match catch_unwind(AssertUnwindSafe(f)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let mut first = guard.inner.first.lock();
                    if first.is_none() {
                        *first = Some(e);
                        drop(first);
                        guard.inner.cancel_ctx();
                    }
                }
                // Cancel-by-unwind (runtime shutdown, `JoinHandle::cancel`)
                // is not the task's panic: keep unwinding.
                Err(p) if p.is::<crate::Cancelled>() => resume_unwind(p),
                Err(p) => {
                    let mut slot = guard.inner.panic.lock();
                    if slot.is_none() {
                        *slot = Some(p);
                    }
                    drop(slot);
                    guard.inner.cancel_ctx();
                }
            }
        });
    }

    /// Waits (parks) until every task started with [`go`](Group::go) has
    /// ended, cancels the group's context, and returns the first error.
    /// The error is handed out once: a second `wait` (with no new failing
    /// task) returns `Ok(())`.
    ///
    /// # Panics
    ///
    /// Resumes the first panic of a task, after all tasks have ended.
    ///
    /// # Errors
    ///
    /// The first error a task returned (later ones are dropped).
    ///
    /// ```
    /// let g = goro::sync::Group::<&str>::new();
    /// g.go(|| panic!("task panicked"));
    /// let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.wait()));
    /// assert_eq!(*r.unwrap_err().downcast::<&str>().unwrap(), "task panicked");
    /// ```
    #[track_caller]
    pub fn wait(&self) -> Result<(), E> {
        self.inner.wg.wait();
        self.inner.cancel_ctx();
        let panic = self.inner.panic.lock().take();
        if let Some(p) = panic {
            resume_unwind(p);
        }
        let first = self.inner.first.lock().take();
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl<E> Inner<E> {
    fn cancel_ctx(&self) {
        if let Some(c) = &self.cancel {
            c.cancel();
        }
    }
}

impl<E> Clone for Group<E> {
    /// Another handle to the same group.
    fn clone(&self) -> Self {
        Group { inner: self.inner.clone() }
    }
}

impl<E: Send + 'static> Default for Group<E> {
    fn default() -> Self {
        Group::new()
    }
}

impl<E> fmt::Debug for Group<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("running", &self.inner.wg.count())
            .field("failed", &self.inner.first.lock().is_some())
            .field("limited", &self.inner.limit.lock().is_some())
            .finish()
    }
}
