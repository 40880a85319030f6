//! `Once`: runs an initializer exactly once; concurrent callers park until
//! it has finished. As in Go, an initializer that panics still counts as
//! done (later calls return at once); the panic propagates to its caller.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

use super::waitq::WaitQueue;
use crate::wait::WaitReason;

const NEW: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;

/// Go's `sync.Once`.
///
/// ```
/// static INIT: goro::sync::Once = goro::sync::Once::new();
/// let mut n = 0;
/// INIT.call_once(|| n += 1);
/// INIT.call_once(|| n += 1);
/// assert_eq!(n, 1);
/// ```
pub struct Once {
    state: AtomicU8,
    queue: WaitQueue<()>,
}

impl Once {
    /// A fresh `Once`.
    ///
    /// ```
    /// use goro::sync::Once;
    /// static SETUP: Once = Once::new(); // usable in statics
    /// assert!(!SETUP.is_completed());
    /// ```
    pub const fn new() -> Self {
        Once { state: AtomicU8::new(NEW), queue: WaitQueue::new(()) }
    }

    /// Has the initializer finished?
    ///
    /// ```
    /// let once = goro::sync::Once::new();
    /// assert!(!once.is_completed());
    /// once.call_once(|| {});
    /// assert!(once.is_completed());
    /// ```
    pub fn is_completed(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }

    /// Runs `f` if no call has run it yet; otherwise waits until the running
    /// one has finished.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// goro::run(|| {
    ///     let once = Arc::new(goro::sync::Once::new());
    ///     let inits = Arc::new(AtomicUsize::new(0));
    ///     let hs: Vec<_> = (0..8)
    ///         .map(|_| {
    ///             let (once, inits) = (once.clone(), inits.clone());
    ///             goro::go(move || {
    ///                 once.call_once(|| {
    ///                     inits.fetch_add(1, Ordering::Relaxed);
    ///                 });
    ///                 assert!(once.is_completed()); // every caller sees it done
    ///             })
    ///         })
    ///         .collect();
    ///     for h in hs {
    ///         h.join().unwrap();
    ///     }
    ///     assert_eq!(inits.load(Ordering::Relaxed), 1);
    /// });
    /// ```
    #[track_caller]
    pub fn call_once(&self, f: impl FnOnce()) {
        if self.state.load(Ordering::Acquire) == DONE {
            return;
        }
        crate::park::note_thread();
        if self.state.compare_exchange(NEW, RUNNING, Ordering::Acquire, Ordering::Acquire).is_ok() {
            struct Finish<'a>(&'a Once);
            impl Drop for Finish<'_> {
                fn drop(&mut self) {
                    let mut g = self.0.queue.lock();
                    // Release: waiters see what the initializer wrote.
                    self.0.state.store(DONE, Ordering::Release);
                    let wake: Vec<_> = g.1.drain().map(|s| s.grant()).collect();
                    drop(g);
                    for w in wake {
                        w.wake();
                    }
                }
            }
            let _finish = Finish(self);
            f();
            return;
        }
        let g = self.queue.lock();
        if self.state.load(Ordering::Acquire) == DONE {
            return;
        }
        self.queue.wait(g, 0, WaitReason::Once, &|_, _, _| Vec::new());
    }
}

impl Default for Once {
    fn default() -> Self {
        Once::new()
    }
}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Once").field("done", &self.is_completed()).finish()
    }
}

// A panicking initializer leaves the Once completed (Go's rule), never torn.
impl std::panic::UnwindSafe for Once {}
impl std::panic::RefUnwindSafe for Once {}
