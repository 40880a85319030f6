//! `RwLock<T>`: many readers or one writer, FIFO fair. State lives under the
//! wait queue's lock: `readers` (count), `writer` (held). A newcomer takes
//! the lock at once only if nobody is queued, so a waiting writer is not
//! starved by a stream of readers; a release grants the longest-waiting
//! writer, or every reader at the front of the queue.
//!
//! Holders, for reports and the partial-deadlock search: the writer's
//! coroutine id, and the ids of up to `LISTED` read holds (a fixed array, no
//! allocation; plain-thread holds and holds beyond `LISTED` are only
//! counted). Listed ids are always a sub-multiset of the real read holds: an
//! entry is added with a read hold and removed with that hold (the guard
//! keeps its id). All of it is touched under the queue lock the lock takes
//! anyway.
//!
//! Whom a waiter waits for (`diag::LockWait`): the first in line waits for
//! the holders (a reader only ever waits there for a writer; a writer for the
//! writer or all readers), refreshed by every release; anyone else waits
//! for the party queued just ahead, which must be granted first. So a reader
//! queued behind a waiting writer waits for that writer: writers are
//! preferred, and a read lock taken again while a writer waits is a real
//! deadlock (Go's RWMutex has the same rule), which the search reports.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};

use super::waitq::{Left, Queue, Slot, WaitQueue};
use crate::park::Waiter;
use crate::wait::{LockWait, WaitReason};

const READ: usize = 0;
const WRITE: usize = 1;

/// Read holds listed by coroutine id; more are only counted.
const LISTED: usize = 4;

struct State {
    /// Read holds, by anyone.
    readers: usize,
    /// Held for writing.
    writer: bool,
    /// The writer's coroutine id (0: no writer, or a plain thread).
    writer_id: u64,
    /// Coroutine ids of up to `LISTED` read holds; 0 marks a free entry. A
    /// coroutine holding twice may appear twice.
    reader_ids: [u64; LISTED],
}

impl State {
    fn add_reader(&mut self, id: u64) {
        self.readers += 1;
        if id != 0 {
            if let Some(e) = self.reader_ids.iter_mut().find(|e| **e == 0) {
                *e = id;
            }
        }
    }

    fn remove_reader(&mut self, id: u64) {
        self.readers -= 1;
        if id != 0 {
            if let Some(e) = self.reader_ids.iter_mut().find(|e| **e == id) {
                *e = 0;
            }
        }
    }

    fn set_writer(&mut self, id: u64) {
        self.writer = true;
        self.writer_id = id;
    }

    /// Whom the first in line waits for: the holders.
    fn holders(&self) -> LockWait {
        if self.writer {
            return LockWait::exclusive(self.writer_id, true);
        }
        let mut w = LockWait { shared: true, ..LockWait::default() };
        let mut n = 0;
        for &id in self.reader_ids.iter().filter(|&&id| id != 0) {
            w.holders[n] = id;
            n += 1;
        }
        w.unlisted = (self.readers - n) as u32;
        w
    }
}

type Locked = (State, Queue);

/// A reader-writer lock whose waits park the coroutine (or block the
/// thread). No poisoning.
///
/// Fair (FIFO): a reader that arrives while a writer waits queues behind
/// that writer. So, as with Go's `RWMutex`, taking a read lock again while
/// holding one deadlocks if a writer has queued in between; the runtime's
/// partial-deadlock search reports such cycles (see
/// [`RuntimeBuilder::on_partial_deadlock`](crate::RuntimeBuilder::on_partial_deadlock)).
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
///
/// ```
/// let l = goro::sync::RwLock::new(1);
/// let a: goro::sync::RwLockReadGuard<'_, i32> = l.read();
/// let b = l.read(); // many readers at once
/// assert_eq!(*a + *b, 2);
/// assert!(l.try_write().is_none()); // no writer while they hold
/// ```
#[must_use = "the lock is released when the guard is dropped"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    /// The holder's coroutine id (0: a plain thread), to unlist it.
    holder: u64,
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Exclusive access to an [`RwLock`]; released on drop.
///
/// ```
/// let l = goro::sync::RwLock::new(vec![1]);
/// {
///     let mut w: goro::sync::RwLockWriteGuard<'_, Vec<i32>> = l.write();
///     w.push(2);
///     assert!(l.try_read().is_none()); // nobody else while it holds
/// }
/// assert_eq!(*l.read(), [1, 2]);
/// ```
#[must_use = "the lock is released when the guard is dropped"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    _not_send: std::marker::PhantomData<*const ()>,
}

// SAFETY: the guards only give `&T` through `&self`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T> RwLock<T> {
    /// A new unlocked lock holding `v`.
    ///
    /// ```
    /// let l = goro::sync::RwLock::new("config");
    /// assert_eq!(*l.read(), "config");
    /// ```
    pub fn new(v: T) -> Self {
        RwLock {
            id: crate::wait::next_object_id(),
            queue: WaitQueue::new(State { readers: 0, writer: false, writer_id: 0, reader_ids: [0; LISTED] }),
            data: UnsafeCell::new(v),
        }
    }

    /// Consumes the lock, returning the data.
    ///
    /// ```
    /// let l = goro::sync::RwLock::new(1);
    /// *l.write() = 2;
    /// assert_eq!(l.into_inner(), 2);
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Shared access, parking while a writer holds or waits.
    ///
    /// ```
    /// use std::sync::Arc;
    /// goro::run(|| {
    ///     let table = Arc::new(goro::sync::RwLock::new(vec![1, 2, 3]));
    ///     let readers: Vec<_> = (0..4)
    ///         .map(|_| {
    ///             let t = table.clone();
    ///             goro::go(move || t.read().iter().sum::<i32>())
    ///         })
    ///         .collect();
    ///     for r in readers {
    ///         assert_eq!(r.join().unwrap(), 6);
    ///     }
    /// });
    /// ```
    #[track_caller]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        let id = super::holder_id();
        let mut g = self.queue.lock();
        if !g.0.writer && g.1.is_empty() {
            g.0.add_reader(id);
        } else {
            let wait_for = self.wait_for(&g);
            let _owner = crate::wait::OwnerWait::new();
            self.queue.wait(g, READ, self.reason(READ, wait_for), &|st, slot, left| self.on_leave(st, slot, left));
        }
        RwLockReadGuard { lock: self, holder: id, _not_send: std::marker::PhantomData }
    }

    /// Exclusive access, parking while others hold it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// goro::run(|| {
    ///     let counter = Arc::new(goro::sync::RwLock::new(0));
    ///     let hs: Vec<_> = (0..4)
    ///         .map(|_| {
    ///             let c = counter.clone();
    ///             goro::go(move || *c.write() += 1)
    ///         })
    ///         .collect();
    ///     for h in hs {
    ///         h.join().unwrap();
    ///     }
    ///     assert_eq!(*counter.read(), 4);
    /// });
    /// ```
    #[track_caller]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        let id = super::holder_id();
        let mut g = self.queue.lock();
        if !g.0.writer && g.0.readers == 0 && g.1.is_empty() {
            g.0.set_writer(id);
        } else {
            let wait_for = self.wait_for(&g);
            let _owner = crate::wait::OwnerWait::new();
            self.queue.wait(g, WRITE, self.reason(WRITE, wait_for), &|st, slot, left| self.on_leave(st, slot, left));
        }
        RwLockWriteGuard { lock: self, _not_send: std::marker::PhantomData }
    }

    /// Shared access if available now.
    ///
    /// ```
    /// let l = goro::sync::RwLock::new(0);
    /// assert!(l.try_read().is_some());
    /// let w = l.write();
    /// assert!(l.try_read().is_none());
    /// drop(w);
    /// ```
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        let id = super::holder_id();
        let mut g = self.queue.lock();
        if g.0.writer || !g.1.is_empty() {
            return None;
        }
        g.0.add_reader(id);
        Some(RwLockReadGuard { lock: self, holder: id, _not_send: std::marker::PhantomData })
    }

    /// Exclusive access if available now.
    ///
    /// ```
    /// let l = goro::sync::RwLock::new(0);
    /// let r = l.read();
    /// assert!(l.try_write().is_none());
    /// drop(r);
    /// *l.try_write().unwrap() = 1;
    /// assert_eq!(*l.read(), 1);
    /// ```
    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        let id = super::holder_id();
        let mut g = self.queue.lock();
        if g.0.writer || g.0.readers != 0 || !g.1.is_empty() {
            return None;
        }
        g.0.set_writer(id);
        Some(RwLockWriteGuard { lock: self, _not_send: std::marker::PhantomData })
    }

    /// Mutable access without locking.
    ///
    /// ```
    /// let mut l = goro::sync::RwLock::new(0);
    /// *l.get_mut() += 5;
    /// assert_eq!(*l.read(), 5);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The wait record of a party wanting `want` (READ or WRITE).
    fn reason(&self, want: usize, wait_for: LockWait) -> WaitReason {
        match want {
            WRITE => WaitReason::RwLockWrite { lock: self.id, wait_for },
            _ => WaitReason::RwLockRead { lock: self.id, wait_for },
        }
    }

    /// Whom a party about to queue waits for (the queue is locked).
    fn wait_for(&self, st: &Locked) -> LockWait {
        match st.1.back() {
            Some(ahead) => LockWait::behind(ahead.coroutine_id()),
            None => st.0.holders(),
        }
    }

    /// Grants what can be granted from the front of the queue, and points
    /// the new first in line at the holders; returns whom to wake.
    fn grant(&self, st: &mut Locked) -> Vec<Waiter> {
        let mut wake = Vec::new();
        while let Some(front) = st.1.front() {
            if front.want == WRITE {
                if st.0.readers == 0 && !st.0.writer {
                    st.0.set_writer(front.coroutine_id());
                    wake.push(st.1.pop_front().expect("front exists").grant());
                }
                break;
            }
            if st.0.writer {
                break;
            }
            st.0.add_reader(front.coroutine_id());
            wake.push(st.1.pop_front().expect("front exists").grant());
        }
        if let Some(front) = st.1.front() {
            front.set_wait(self.reason(front.want, st.0.holders()));
        }
        wake
    }

    /// Releases one hold (a read hold of coroutine `id`, or the write hold).
    fn release(&self, st: &mut Locked, want: usize, id: u64) -> Vec<Waiter> {
        if want == WRITE {
            st.0.writer = false;
            st.0.writer_id = 0;
        } else {
            st.0.remove_reader(id);
        }
        self.grant(st)
    }

    /// A waiter unwinds out of `read`/`write` (waitq's `on_leave`).
    fn on_leave(&self, st: &mut Locked, slot: &Slot, left: Left) -> Vec<Waiter> {
        match left {
            Left::Granted => self.release(st, slot.want, slot.coroutine_id()),
            Left::Queued(at) => {
                if let (Some(next), Some(ahead)) = (st.1.behind(&at), st.1.ahead(&at)) {
                    next.set_wait(self.reason(next.want, LockWait::behind(ahead.coroutine_id())));
                }
                // A writer that leaves the front may unblock readers behind it;
                // either way the new first in line waits for the holders.
                self.grant(st)
            }
            Left::Retried => Vec::new(), // never woken to retry: only grants
        }
    }

    fn unlock(&self, want: usize, id: u64) {
        let mut g = self.queue.lock();
        let wake = self.release(&mut g, want, id);
        drop(g);
        for w in wake {
            w.wake();
        }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock(READ, self.holder);
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock(WRITE, 0);
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
