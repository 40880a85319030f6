//! `WaitGroup`: Go's `sync.WaitGroup`. The counter lives under the wait
//! queue's lock; reaching zero wakes every waiter.

use std::fmt;
use std::sync::Arc;

use super::waitq::WaitQueue;
use crate::wait::WaitReason;

/// Waits for a collection of coroutines (or threads) to finish. Clones share
/// the counter.
///
/// ```
/// goro::run(|| {
///     let wg = goro::sync::WaitGroup::new();
///     for _ in 0..4 {
///         wg.add(1);
///         let wg = wg.clone();
///         goro::go(move || wg.done());
///     }
///     wg.wait();
/// });
/// ```
///
/// # Panics
///
/// `add`/`done` panic with `sync: negative WaitGroup counter` if the counter
/// would go below zero (Go's rule).
#[derive(Clone)]
pub struct WaitGroup {
    inner: Arc<WaitQueue<isize>>,
}

impl WaitGroup {
    /// A wait group with counter 0.
    ///
    /// ```
    /// let wg = goro::sync::WaitGroup::new();
    /// assert_eq!(wg.count(), 0);
    /// wg.wait(); // returns at once
    /// ```
    pub fn new() -> Self {
        WaitGroup { inner: Arc::new(WaitQueue::new(0)) }
    }

    /// Adds `n` (may be negative) to the counter.
    ///
    /// # Panics
    ///
    /// `sync: negative WaitGroup counter` if the counter would go below zero.
    ///
    /// ```
    /// goro::run(|| {
    ///     let wg = goro::sync::WaitGroup::new();
    ///     wg.add(2); // before spawning, as in Go
    ///     for _ in 0..2 {
    ///         let wg = wg.clone();
    ///         goro::go(move || wg.done());
    ///     }
    ///     wg.wait();
    ///     assert_eq!(wg.count(), 0);
    /// });
    /// ```
    #[track_caller]
    pub fn add(&self, n: isize) {
        crate::park::note_thread();
        let mut g = self.inner.lock();
        let c = g.0 + n;
        if c < 0 {
            drop(g);
            panic!("sync: negative WaitGroup counter");
        }
        g.0 = c;
        if c != 0 {
            return;
        }
        let wake: Vec<_> = g.1.drain().map(|s| s.grant()).collect();
        drop(g);
        for w in wake {
            w.wake();
        }
    }

    /// Decrements the counter by one.
    ///
    /// # Panics
    ///
    /// `sync: negative WaitGroup counter` if the counter would go below zero.
    ///
    /// ```
    /// let wg = goro::sync::WaitGroup::new();
    /// wg.add(1);
    /// wg.done();
    /// assert_eq!(wg.count(), 0);
    /// ```
    #[track_caller]
    pub fn done(&self) {
        self.add(-1)
    }

    /// Parks until the counter is zero.
    ///
    /// ```
    /// goro::run(|| {
    ///     let wg = goro::sync::WaitGroup::new();
    ///     let (tx, rx) = goro::chan(3);
    ///     for i in 0..3 {
    ///         let tx = tx.clone();
    ///         wg.go(move || tx.send(i).unwrap());
    ///     }
    ///     wg.wait(); // all three have sent
    ///     assert_eq!(rx.len(), 3);
    /// });
    /// ```
    #[track_caller]
    pub fn wait(&self) {
        crate::park::note_thread();
        let g = self.inner.lock();
        if g.0 == 0 {
            return;
        }
        let counter = g.0;
        self.inner.wait(g, 0, WaitReason::WaitGroup { counter }, &|_, _, _| Vec::new());
    }

    /// Go 1.25's `wg.Go(f)`: adds one to the counter, runs `f` in a new
    /// coroutine (spawned at the caller's line, for diagnostics) and
    /// decrements the counter when `f` ends, also if it panics or is
    /// cancelled (a drop guard calls [`done`](WaitGroup::done)). A panic in
    /// `f` does not reach the caller (the coroutine is detached; the runtime
    /// reports it) and [`wait`](WaitGroup::wait) still returns. Works from a
    /// plain thread too (the coroutine then runs on the global default
    /// runtime).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// goro::run(|| {
    ///     let wg = goro::sync::WaitGroup::new();
    ///     let n = Arc::new(AtomicUsize::new(0));
    ///     for _ in 0..8 {
    ///         let n = n.clone();
    ///         wg.go(move || {
    ///             n.fetch_add(1, Ordering::Relaxed);
    ///         });
    ///     }
    ///     wg.wait();
    ///     assert_eq!(n.load(Ordering::Relaxed), 8);
    /// });
    /// ```
    #[track_caller]
    pub fn go<F: FnOnce() + Send + 'static>(&self, f: F) {
        /// Calls `done` however `f` ends.
        struct Done(WaitGroup);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.done();
            }
        }
        self.add(1);
        let guard = Done(self.clone());
        crate::go(move || {
            let _guard = guard;
            f()
        });
    }

    /// The counter now.
    ///
    /// ```
    /// let wg = goro::sync::WaitGroup::new();
    /// wg.add(3);
    /// wg.done();
    /// assert_eq!(wg.count(), 2);
    /// ```
    pub fn count(&self) -> isize {
        self.inner.lock().0
    }
}

impl Default for WaitGroup {
    fn default() -> Self {
        WaitGroup::new()
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup").field("count", &self.count()).finish()
    }
}

// A panic cannot leave the counter half-updated (it is changed under a lock
// in one step), so observing a WaitGroup after a caught panic is fine.
impl std::panic::UnwindSafe for WaitGroup {}
impl std::panic::RefUnwindSafe for WaitGroup {}
