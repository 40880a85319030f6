//! `RwLock<T>`: many readers or one writer, FIFO fair. State lives under the
//! wait queue's lock: `readers` (count), `writer` (held). A newcomer takes
//! the lock at once only if nobody is queued, so a waiting writer is not
//! starved by a stream of readers; a release grants the longest-waiting
//! writer, or every reader at the front of the queue.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use super::waitq::{Left, Slot, WaitQueue};
use crate::diag::{LockWait, WaitReason};
use crate::park::Waiter;

const READ: usize = 0;
const WRITE: usize = 1;

struct State {
    readers: usize,
    writer: bool,
}

/// A reader-writer lock whose waits park the coroutine (or block the
/// thread). No poisoning.
///
/// ```
/// let l = goro::sync::RwLock::new(5);
/// { let a = l.read(); let b = l.read(); assert_eq!(*a + *b, 10); }
/// *l.write() += 1;
/// assert_eq!(*l.read(), 6);
/// ```
///
/// Go: `sync.RWMutex`.
pub struct RwLock<T: ?Sized> {
    id: u64,
    queue: WaitQueue<State>,
    data: UnsafeCell<T>,
}

// SAFETY: like std's RwLock: readers share `&T` (needs Sync), a writer gets
// `&mut T` (needs Send).
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// Shared access to an [`RwLock`]; released on drop.
#[must_use = "the lock is released when the guard is dropped"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Exclusive access to an [`RwLock`]; released on drop.
#[must_use = "the lock is released when the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: std::marker::PhantomData<*const ()>,
}

// SAFETY: the guards only give `&T` through `&self`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

/// Grants what can be granted from the front of the queue; returns whom to
/// wake.
fn grant(st: &mut (State, VecDeque<Arc<Slot>>)) -> Vec<Waiter> {
    let mut wake = Vec::new();
    while let Some(front) = st.1.front() {
        if front.want == WRITE {
            if st.0.readers == 0 && !st.0.writer {
                st.0.writer = true;
                wake.push(st.1.pop_front().expect("front exists").grant());
            }
            break;
        }
        if st.0.writer {
            break;
        }
        st.0.readers += 1;
        wake.push(st.1.pop_front().expect("front exists").grant());
    }
    wake
}

fn release(st: &mut (State, VecDeque<Arc<Slot>>), want: usize) -> Vec<Waiter> {
    if want == WRITE {
        st.0.writer = false;
    } else {
        st.0.readers -= 1;
    }
    grant(st)
}

/// A waiter unwinds out of `read`/`write` (waitq's `on_leave`).
fn on_leave(st: &mut (State, VecDeque<Arc<Slot>>), slot: &Slot, left: Left) -> Vec<Waiter> {
    match left {
        Left::Granted => release(st, slot.want),
        // A writer that leaves the front may unblock readers behind it.
        Left::Queued(_) => grant(st),
    }
}

impl<T> RwLock<T> {
    /// A new unlocked lock holding `v`.
    pub fn new(v: T) -> Self {
        RwLock {
            id: crate::diag::next_object_id(),
            queue: WaitQueue::new(State { readers: 0, writer: false }),
            data: UnsafeCell::new(v),
        }
    }

    /// Consumes the lock, returning the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Shared access, parking while a writer holds or waits.
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        crate::park::note_thread();
        let mut g = self.queue.lock();
        if !g.0.writer && g.1.is_empty() {
            g.0.readers += 1;
        } else {
            let wait_for = LockWait::default();
            self.queue.wait(g, READ, WaitReason::RwLockRead { lock: self.id, wait_for }, &on_leave);
        }
        RwLockReadGuard { lock: self, _not_send: std::marker::PhantomData }
    }

    /// Exclusive access, parking while others hold it.
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        crate::park::note_thread();
        let mut g = self.queue.lock();
        if !g.0.writer && g.0.readers == 0 && g.1.is_empty() {
            g.0.writer = true;
        } else {
            let wait_for = LockWait::default();
            self.queue.wait(g, WRITE, WaitReason::RwLockWrite { lock: self.id, wait_for }, &on_leave);
        }
        RwLockWriteGuard { lock: self, _not_send: std::marker::PhantomData }
    }

    /// Shared access if available now.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        crate::park::note_thread();
        let mut g = self.queue.lock();
        if g.0.writer || !g.1.is_empty() {
            return None;
        }
        g.0.readers += 1;
        Some(RwLockReadGuard { lock: self, _not_send: std::marker::PhantomData })
    }

    /// Exclusive access if available now.
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        crate::park::note_thread();
        let mut g = self.queue.lock();
        if g.0.writer || g.0.readers != 0 || !g.1.is_empty() {
            return None;
        }
        g.0.writer = true;
        Some(RwLockWriteGuard { lock: self, _not_send: std::marker::PhantomData })
    }

    /// Mutable access without locking.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn unlock(&self, want: usize) {
        let mut g = self.queue.lock();
        let wake = release(&mut g, want);
        drop(g);
        for w in wake {
            w.wake();
        }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock(READ);
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock(WRITE);
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read guard means no writer holds the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a write guard means exclusive access.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: a write guard means exclusive access.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        d.field("id", &self.id);
        match self.try_read() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
