//! `Mutex<T>`: one CAS to lock or unlock when uncontended; FIFO hand-off to
//! parked waiters otherwise.
//!
//! `state` bits: LOCKED (someone owns it), QUEUED (the wait queue may be
//! non-empty: unlock must take the slow path). QUEUED is set and cleared only
//! under the queue lock; an unlock that sees it hands the lock to the first
//! waiter without ever clearing LOCKED, so no barging past a granted waiter.
//!
//! Wait records (for reports and the partial-deadlock search): the first
//! waiter in line waits for the holder (`holder` when it queued, then the
//! grantee of each hand-off), every other waiter for the one queued just
//! ahead of it, which must own the lock first (see `diag::LockWait`).

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use super::waitq::{Left, Slot, WaitQueue};
use crate::diag::{LockWait, WaitReason};
use crate::park::Waiter;

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
    queue: WaitQueue<()>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `data` to one party at a time, like
// std's Mutex; T must be Send to move between the parties.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above: `&Mutex` only gives `&mut T` under the lock.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// Proof of holding a [`Mutex`]; unlocks when dropped.
#[must_use = "the mutex unlocks when the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    lock: &'a Mutex<T>,
    _not_send: std::marker::PhantomData<*const ()>,
}

// SAFETY: `&MutexGuard` only gives `&T`, so sharing it needs `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `v`.
    pub fn new(v: T) -> Self {
        Mutex {
            state: AtomicU8::new(0),
            id: crate::diag::next_object_id(),
            holder: AtomicU64::new(0),
            queue: WaitQueue::new(()),
            data: UnsafeCell::new(v),
        }
    }

    /// Consumes the mutex, returning the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, parking until the lock is free.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self.state.compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_slow();
        }
        self.holder.store(super::holder_id(), Ordering::Relaxed);
        MutexGuard { lock: self, _not_send: std::marker::PhantomData }
    }

    #[cold]
    fn lock_slow(&self) {
        // A short bounded spin: the holder may be running on another worker.
        for _ in 0..32 {
            if self.state.compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return;
            }
            std::hint::spin_loop();
        }
        let g = self.queue.lock();
        // Announce a waiter, then check once more under the queue lock.
        let prev = self.state.fetch_or(QUEUED, Ordering::Acquire);
        if prev & LOCKED == 0 {
            // It was free: take it. QUEUED stays set only if others wait.
            let keep = if g.1.is_empty() { 0 } else { QUEUED };
            self.state.store(LOCKED | keep, Ordering::Relaxed);
            return;
        }
        // The holder's id is stored after it locked and cleared before it
        // unlocks, so this is the holder or 0, never a former holder.
        let wait_for = match g.1.back() {
            Some(ahead) => LockWait::behind(ahead.coroutine_id()),
            None => LockWait::exclusive(self.holder.load(Ordering::Relaxed), false),
        };
        let _owner = crate::diag::deadlock::OwnerWait::new();
        self.queue.wait(g, 0, WaitReason::MutexLock { lock: self.id, wait_for }, &|st, _, left| match left {
            Left::Granted => self.release_locked(&mut st.1).into_iter().collect(),
            Left::Queued(at) => {
                if let Some(next) = st.1.get(at) {
                    let wait_for = match at.checked_sub(1).and_then(|i| st.1.get(i)) {
                        Some(ahead) => LockWait::behind(ahead.coroutine_id()),
                        // It was first: its successor now waits for the holder.
                        None => LockWait::exclusive(self.holder.load(Ordering::Relaxed), false),
                    };
                    next.set_wait(WaitReason::MutexLock { lock: self.id, wait_for });
                }
                Vec::new()
            }
        });
        // Granted: LOCKED was never cleared; we own it.
    }

    /// Locks if free, without waiting.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.state.compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed).ok()?;
        self.holder.store(super::holder_id(), Ordering::Relaxed);
        Some(MutexGuard { lock: self, _not_send: std::marker::PhantomData })
    }

    /// Mutable access without locking (the borrow proves exclusivity).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn unlock(&self) {
        self.holder.store(0, Ordering::Relaxed);
        if self.state.compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed).is_ok() {
            return;
        }
        let mut g = self.queue.lock();
        let w = self.release_locked(&mut g.1);
        drop(g);
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Hands the lock to the first waiter (LOCKED stays set), or unlocks.
    /// Called with the queue lock held; returns whom to wake after unlocking.
    fn release_locked(&self, q: &mut std::collections::VecDeque<std::sync::Arc<Slot>>) -> Option<Waiter> {
        match q.pop_front() {
            Some(slot) => {
                match q.front() {
                    None => self.state.store(LOCKED, Ordering::Release),
                    // The next in line now waits for the grantee.
                    Some(next) => next.set_wait(WaitReason::MutexLock {
                        lock: self.id,
                        wait_for: LockWait::exclusive(slot.coroutine_id(), true),
                    }),
                }
                Some(slot.grant())
            }
            None => {
                self.state.store(0, Ordering::Release);
                None
            }
        }
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
