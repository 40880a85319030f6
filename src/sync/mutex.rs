//! `Mutex<T>`: one CAS to lock or unlock when uncontended; Go's two modes
//! (`sync/mutex.go`) otherwise.
//!
//! `state` bits: LOCKED (someone owns it), QUEUED (the wait queue may be
//! non-empty: unlock must take the slow path). QUEUED is set and cleared only
//! under the queue lock.
//!
//! * **Normal mode**: unlock clears LOCKED and wakes the first waiter *to
//!   retry*; it competes with newly arriving lockers, which may barge in
//!   (they are running, on a core, with warm caches: much cheaper than
//!   handing the lock to a parked coroutine and waiting for its worker). A
//!   waiter that loses again queues at the front.
//! * **Starvation mode** (the queue state's flag): once a waiter that
//!   retried has waited over 1 ms, unlock hands the lock directly to the
//!   first waiter (LOCKED is never cleared, so nobody barges). The mode ends
//!   when a grantee is the last waiter or waited under 1 ms.
//!
//! Wait records (for reports and the partial-deadlock search): the first
//! waiter in line waits for the holder (`holder` when it queued, then the
//! grantee of each hand-off), every other waiter for the one queued just
//! ahead of it, which must get the lock first (see `diag::LockWait`). While
//! the first waiter is out of line retrying, the next one waits for it.
//!
//! Lock order: the queue lock, then nothing.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use super::waitq::{Left, Queue, WaitQueue, Woken};
use crate::park::Waiter;
use crate::wait::{LockWait, WaitReason};

const LOCKED: u8 = 1;
const QUEUED: u8 = 2;

/// A mutual-exclusion lock whose `lock` parks the calling coroutine (or
/// blocks the calling thread) instead of spinning a worker.
///
/// No poisoning: a guard dropped while unwinding releases the lock.
///
/// ```
/// let m = std::sync::Arc::new(goro::sync::Mutex::new(0));
/// goro::run(move || {
///     let hs: Vec<_> = (0..10).map(|_| { let m = m.clone(); goro::go(move || *m.lock() += 1) }).collect();
///     for h in hs { h.join().unwrap(); }
///     assert_eq!(*m.lock(), 10);
/// });
/// ```
///
/// Go: `sync.Mutex`, holding the data like Rust's `std::sync::Mutex`.
pub struct Mutex<T: ?Sized> {
    state: AtomicU8,
    id: u64,
    /// Coroutine id of the holder (0: a plain thread or unlocked), for
    /// diagnostics.
    holder: AtomicU64,
    /// The wait queue; its state is the starvation flag.
    queue: WaitQueue<bool>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `data` to one party at a time, like
// std's Mutex; T must be Send to move between the parties.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above: `&Mutex` only gives `&mut T` under the lock.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// Proof of holding a [`Mutex`]; unlocks when dropped.
///
/// ```
/// let m = goro::sync::Mutex::new(vec![1]);
/// {
///     let mut guard: goro::sync::MutexGuard<'_, Vec<i32>> = m.lock();
///     guard.push(2); // DerefMut to the data
/// } // unlocked here
/// assert_eq!(*m.lock(), [1, 2]);
/// ```
#[must_use = "the mutex unlocks when the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    lock: &'a Mutex<T>,
    _not_send: std::marker::PhantomData<*const ()>,
}

// SAFETY: `&MutexGuard` only gives `&T`, so sharing it needs `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `v`.
    ///
    /// ```
    /// let m = goro::sync::Mutex::new(String::from("hi"));
    /// assert_eq!(*m.lock(), "hi");
    /// ```
    pub fn new(v: T) -> Self {
        Mutex {
            state: AtomicU8::new(0),
            id: crate::wait::next_object_id(),
            holder: AtomicU64::new(0),
            queue: WaitQueue::new(false),
            data: UnsafeCell::new(v),
        }
    }

    /// Consumes the mutex, returning the data.
    ///
    /// ```
    /// let m = goro::sync::Mutex::new(3);
    /// *m.lock() += 1;
    /// assert_eq!(m.into_inner(), 4);
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, parking until the lock is free.
    ///
    /// ```
    /// use std::sync::Arc;
    /// goro::run(|| {
    ///     let log = Arc::new(goro::sync::Mutex::new(Vec::new()));
    ///     let hs: Vec<_> = (0..3)
    ///         .map(|i| {
    ///             let log = log.clone();
    ///             goro::go(move || {
    ///                 let mut g = log.lock();
    ///                 g.push(i);
    ///                 goro::time::sleep(std::time::Duration::from_millis(1)); // parks holding the lock: fine
    ///             })
    ///         })
    ///         .collect();
    ///     for h in hs {
    ///         h.join().unwrap();
    ///     }
    ///     assert_eq!(log.lock().len(), 3);
    /// });
    /// ```
    #[track_caller]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self.state.compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_slow();
        }
        self.holder.store(super::holder_id(), Ordering::Relaxed);
        MutexGuard { lock: self, _not_send: std::marker::PhantomData }
    }

    /// One attempt to take the lock, keeping the QUEUED bit as it is.
    #[inline]
    fn try_acquire(&self) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        s & LOCKED == 0 && self.state.compare_exchange(s, s | LOCKED, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    fn reason(&self, wait_for: LockWait) -> WaitReason {
        WaitReason::MutexLock { lock: self.id, wait_for }
    }

    /// The record of a waiter that is first in line: the holder. The
    /// holder's id is stored after it locked and cleared before it unlocks,
    /// so this is the holder or 0, never a former holder.
    fn first_in_line(&self) -> LockWait {
        LockWait::exclusive(self.holder.load(Ordering::Relaxed), false)
    }

    #[cold]
    #[track_caller]
    fn lock_slow(&self) {
        const STARVE_AFTER: std::time::Duration = std::time::Duration::from_millis(1);
        let mut since: Option<std::time::Instant> = None;
        let mut retried = false;
        let _owner = crate::wait::OwnerWait::new();
        loop {
            // A short bounded spin, only where it can pay: the holder is
            // running on another worker (or is a plain thread, or unknown:
            // its id is stored just after it locked). Spinning against a
            // holder that cannot run cost 0.8 us of a 1.1 us contended
            // round on one worker (`benches/sync.rs`).
            let holder = self.holder.load(Ordering::Relaxed);
            if holder == 0 || crate::sched::may_run_elsewhere(holder) {
                for _ in 0..32 {
                    if self.try_acquire() {
                        return;
                    }
                    std::hint::spin_loop();
                }
            }
            let mut g = self.queue.lock();
            // Announce a waiter (QUEUED), or take the lock if it is free.
            loop {
                let s = self.state.load(Ordering::Relaxed);
                if s & LOCKED == 0 {
                    let keep = if g.1.is_empty() { 0 } else { QUEUED };
                    if self.state.compare_exchange(s, LOCKED | keep, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                        return;
                    }
                } else if self.state.compare_exchange(s, s | QUEUED, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                    break;
                }
            }
            let start = *since.get_or_insert_with(std::time::Instant::now);
            if retried && start.elapsed() >= STARVE_AFTER {
                g.0 = true; // starvation mode: the next unlock hands off
            }
            // A retrying party that lost goes back to the front; the old
            // first in line now waits for it.
            let wait_for = if retried {
                if let Some(next) = g.1.front() {
                    next.set_wait(self.reason(LockWait::behind(super::holder_id())));
                }
                self.first_in_line()
            } else {
                match g.1.back() {
                    Some(ahead) => LockWait::behind(ahead.coroutine_id()),
                    None => self.first_in_line(),
                }
            };
            let woken = self.queue.wait_ex(g, 0, retried, self.reason(wait_for), &|st, _, left| match left {
                Left::Granted => self.release_locked(st).into_iter().collect(),
                Left::Retried => self.wake_next_if_free(st).into_iter().collect(),
                Left::Queued(at) => {
                    if let Some(next) = st.1.behind(&at) {
                        let wait_for = match st.1.ahead(&at) {
                            Some(ahead) => LockWait::behind(ahead.coroutine_id()),
                            // It was first: its successor now waits for the holder.
                            None => self.first_in_line(),
                        };
                        next.set_wait(self.reason(wait_for));
                    }
                    Vec::new()
                }
            });
            match woken {
                Woken::Granted => {
                    // Handed over in starvation mode: LOCKED was never
                    // cleared, we own it. Leave the mode if it is no longer
                    // needed (Go's rule; the last waiter also ends it).
                    if start.elapsed() < STARVE_AFTER {
                        self.queue.lock().0 = false;
                    }
                    return;
                }
                Woken::Retry => retried = true,
            }
        }
    }

    /// Locks if free, without waiting.
    ///
    /// ```
    /// let m = goro::sync::Mutex::new(0);
    /// let held = m.lock();
    /// assert!(m.try_lock().is_none());
    /// drop(held);
    /// assert!(m.try_lock().is_some());
    /// ```
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        // Like Go's TryLock: may take a free lock even with waiters queued
        // (normal mode); in starvation mode LOCKED never drops, so it fails.
        if !self.try_acquire() {
            return None;
        }
        self.holder.store(super::holder_id(), Ordering::Relaxed);
        Some(MutexGuard { lock: self, _not_send: std::marker::PhantomData })
    }

    /// Mutable access without locking (the borrow proves exclusivity).
    ///
    /// ```
    /// let mut m = goro::sync::Mutex::new(0);
    /// *m.get_mut() = 10;
    /// assert_eq!(*m.lock(), 10);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn unlock(&self) {
        self.holder.store(0, Ordering::Relaxed);
        if self.state.compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed).is_ok() {
            return;
        }
        let mut g = self.queue.lock();
        let w = self.release_locked(&mut g);
        drop(g);
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Unlocks with waiters queued (queue lock held; we own LOCKED). Normal
    /// mode: unlock and wake the first waiter to retry. Starvation mode:
    /// hand the lock to the first waiter (LOCKED stays set). Returns whom to
    /// wake after unlocking.
    fn release_locked(&self, st: &mut (bool, Queue)) -> Option<Waiter> {
        let (starving, q) = st;
        let Some(slot) = q.pop_front() else {
            *starving = false;
            self.state.store(0, Ordering::Release);
            return None;
        };
        let queued = if q.is_empty() { 0 } else { QUEUED };
        if *starving {
            match q.front() {
                None => *starving = false,
                // The next in line now waits for the grantee.
                Some(next) => next.set_wait(self.reason(LockWait::exclusive(slot.coroutine_id(), true))),
            }
            self.state.store(LOCKED | queued, Ordering::Release);
            Some(slot.grant())
        } else {
            // The next in line waits for the one retrying (it goes first if
            // it wins, and back to the front if it loses).
            if let Some(next) = q.front() {
                next.set_wait(self.reason(LockWait::behind(slot.coroutine_id())));
            }
            // Only we can change the state while LOCKED is set and we hold
            // the queue lock, so a plain store is exact.
            self.state.store(queued, Ordering::Release);
            Some(slot.wake_to_retry())
        }
    }

    /// A party woken to retry left without retrying: if the lock is free,
    /// wake the next waiter in its place.
    fn wake_next_if_free(&self, st: &mut (bool, Queue)) -> Option<Waiter> {
        if self.state.load(Ordering::Acquire) & LOCKED != 0 {
            return None; // whoever holds it will wake the next one
        }
        let slot = st.1.pop_front()?;
        if st.1.is_empty() {
            // Nobody left in line: clear QUEUED (an RMW: a barger may hold it).
            self.state.fetch_and(!QUEUED, Ordering::Relaxed);
        }
        Some(slot.wake_to_retry())
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves this party holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves this party holds the lock exclusively.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        d.field("id", &self.id);
        match self.try_lock() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
