//! `Semaphore`: a count of permits, FIFO granted. State (`permits` free)
//! lives under the wait queue's lock; a newcomer takes a permit at once only
//! if nobody is queued.

use std::fmt;

use super::waitq::{Left, Queue, WaitQueue};
use crate::park::Waiter;
use crate::wait::WaitReason;

/// A counting semaphore whose `acquire` parks the coroutine (or blocks the
/// thread).
///
/// ```
/// let s = goro::sync::Semaphore::new(2);
/// let a = s.acquire();
/// let _b = s.acquire();
/// assert!(s.try_acquire().is_none());
/// drop(a);
/// assert!(s.try_acquire().is_some());
/// ```
///
/// Go: `golang.org/x/sync/semaphore` with weight 1, or a buffered channel.
pub struct Semaphore {
    queue: WaitQueue<usize>,
}

/// One permit of a [`Semaphore`]; released on drop.
///
/// ```
/// let s = goro::sync::Semaphore::new(1);
/// {
///     let _permit: goro::sync::SemaphorePermit<'_> = s.acquire();
///     assert_eq!(s.available_permits(), 0);
/// }
/// assert_eq!(s.available_permits(), 1); // given back on drop
/// ```
#[must_use = "the permit is released when dropped"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
}

fn grant(st: &mut (usize, Queue)) -> Vec<Waiter> {
    let mut wake = Vec::new();
    while st.0 > 0 {
        let Some(s) = st.1.pop_front() else { break };
        st.0 -= 1;
        wake.push(s.grant());
    }
    wake
}

fn release(st: &mut (usize, Queue), _: usize) -> Vec<Waiter> {
    st.0 += 1;
    grant(st)
}

impl Semaphore {
    /// A semaphore with `permits` free permits.
    ///
    /// ```
    /// let s = goro::sync::Semaphore::new(3);
    /// assert_eq!(s.available_permits(), 3);
    /// ```
    pub fn new(permits: usize) -> Self {
        Semaphore { queue: WaitQueue::new(permits) }
    }

    /// Takes a permit, parking until one is free.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// goro::run(|| {
    ///     // At most 2 of the 10 jobs run at once.
    ///     let sem = Arc::new(goro::sync::Semaphore::new(2));
    ///     let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    ///     let hs: Vec<_> = (0..10)
    ///         .map(|_| {
    ///             let (sem, running, peak) = (sem.clone(), running.clone(), peak.clone());
    ///             goro::go(move || {
    ///                 let _permit = sem.acquire();
    ///                 let now = running.fetch_add(1, Ordering::SeqCst) + 1;
    ///                 peak.fetch_max(now, Ordering::SeqCst);
    ///                 goro::time::sleep(std::time::Duration::from_millis(1));
    ///                 running.fetch_sub(1, Ordering::SeqCst);
    ///             })
    ///         })
    ///         .collect();
    ///     for h in hs {
    ///         h.join().unwrap();
    ///     }
    ///     assert!(peak.load(Ordering::SeqCst) <= 2);
    /// });
    /// ```
    #[track_caller]
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        crate::park::note_thread();
        let mut g = self.queue.lock();
        if g.0 > 0 && g.1.is_empty() {
            g.0 -= 1;
        } else {
            self.queue.wait(g, 1, WaitReason::Semaphore, &|st, _, left| match left {
                Left::Granted => release(st, 1),
                Left::Queued(_) | Left::Retried => Vec::new(),
            });
        }
        SemaphorePermit { sem: self }
    }

    /// Takes a permit if one is free now.
    ///
    /// ```
    /// let s = goro::sync::Semaphore::new(1);
    /// let p = s.try_acquire();
    /// assert!(p.is_some());
    /// assert!(s.try_acquire().is_none());
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        crate::park::note_thread();
        let mut g = self.queue.lock();
        if g.0 > 0 && g.1.is_empty() {
            g.0 -= 1;
            Some(SemaphorePermit { sem: self })
        } else {
            None
        }
    }

    /// Free permits now.
    ///
    /// ```
    /// let s = goro::sync::Semaphore::new(2);
    /// let _p = s.acquire();
    /// assert_eq!(s.available_permits(), 1);
    /// ```
    pub fn available_permits(&self) -> usize {
        self.queue.lock().0
    }

    /// Adds `n` permits.
    ///
    /// ```
    /// let s = goro::sync::Semaphore::new(0);
    /// assert!(s.try_acquire().is_none());
    /// s.add_permits(2);
    /// assert_eq!(s.available_permits(), 2);
    /// ```
    pub fn add_permits(&self, n: usize) {
        crate::park::note_thread();
        let mut g = self.queue.lock();
        g.0 += n;
        let wake = grant(&mut g);
        drop(g);
        for w in wake {
            w.wake();
        }
    }
}

impl SemaphorePermit<'_> {
    /// Keeps the permit taken for good (the count stays one lower).
    ///
    /// ```
    /// let s = goro::sync::Semaphore::new(2);
    /// s.acquire().forget();
    /// assert_eq!(s.available_permits(), 1);
    /// ```
    pub fn forget(self) {
        std::mem::forget(self)
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.add_permits(1);
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore").field("available", &self.available_permits()).finish()
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SemaphorePermit")
    }
}

// The permit count changes in one step under a lock.
impl std::panic::UnwindSafe for Semaphore {}
impl std::panic::RefUnwindSafe for Semaphore {}
