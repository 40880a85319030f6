//! Coroutine-aware synchronization: [`WaitGroup`], [`Mutex`], [`RwLock`],
//! [`Once`], [`Semaphore`], and [`Group`] (Go's errgroup).
//!
//! Owns: the primitives and their FIFO wait queues ([`waitq::WaitQueue`]).
//!
//! Every waiting party parks through `park.rs`, so a coroutine never spins
//! its worker and a plain OS thread simply blocks; both can wait on one
//! object. Hand-off is FIFO: a releasing party grants the lock (or permit)
//! to the first waiter directly (Go's starvation mode, always), so nobody
//! waits forever and a waiter that was granted something owns it even if it
//! has not run yet. A granted waiter that unwinds before taking its grant
//! (a coroutine cancelled at shutdown) passes it on (event-listener's rule).
//!
//! No poisoning: a cancelled coroutine unwinding with a guard releases it
//! normally (as parking_lot does).
//!
//! Lock order: a primitive's internal queue lock is a leaf; it is never held
//! across `park` or while waking (collect, unlock, then wake).

mod group;
mod mutex;
mod once;
mod rwlock;
mod semaphore;
mod waitgroup;
pub(crate) mod waitq;

pub use group::Group;
pub use mutex::{Mutex, MutexGuard};
pub use once::Once;
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{Semaphore, SemaphorePermit};
pub use waitgroup::WaitGroup;

/// The id diagnostics show for the caller: its coroutine id, or 0 for a
/// plain thread.
/// Being the plain-thread branch, it also registers a plain thread with the
/// deadlock rule (`park::note_thread`).
pub(crate) fn holder_id() -> u64 {
    crate::coroutine::current_id().unwrap_or_else(|| {
        crate::park::note_thread();
        0
    })
}
