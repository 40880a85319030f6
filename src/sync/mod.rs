// Design notes for maintainers (the user docs are the `//!` block below).
//
// Coroutine-aware synchronization: [`WaitGroup`], [`Mutex`], [`RwLock`],
// [`Once`], [`Semaphore`], and [`Group`] (Go's errgroup).
//
// Owns: the primitives and their FIFO wait queues (`waitq::WaitQueue`).
//
// Every waiting party parks through `park.rs`, so a coroutine never spins
// its worker and a plain OS thread simply blocks; both can wait on one
// object. Hand-off is FIFO: a releasing party grants the lock (or permit)
// to the first waiter directly (Go's starvation mode, always), so nobody
// waits forever and a waiter that was granted something owns it even if it
// has not run yet. A granted waiter that unwinds before taking its grant
// (a coroutine cancelled at shutdown) passes it on (event-listener's rule).
//
// No poisoning: a cancelled coroutine unwinding with a guard releases it
// normally (as parking_lot does).
//
// Lock order: a primitive's internal queue lock is a leaf; it is never held
// across `park` or while waking (collect, unlock, then wake).

//! Synchronization primitives that park a coroutine instead of its worker
//! thread: Go's `sync` package plus a semaphore and errgroup.
//!
//! | goro | Go | use it to |
//! |---|---|---|
//! | [`WaitGroup`] | `sync.WaitGroup` | wait for a set of coroutines to finish |
//! | [`Mutex`] | `sync.Mutex` | guard data shared between coroutines |
//! | [`RwLock`] | `sync.RWMutex` | many readers or one writer |
//! | [`Once`] | `sync.Once` | run an initialisation exactly once |
//! | [`Semaphore`] | `x/sync/semaphore` | cap how many run at once |
//! | [`Group`] | `x/sync/errgroup` | run tasks, stop at the first error |
//!
//! Use these, not `std::sync`'s locks, for anything a coroutine may wait on:
//! a std lock held across a goro park blocks every coroutine of that worker.
//! Each primitive also works from a plain OS thread (it blocks the thread), and
//! both can wait on the same object. Waiters are served first come, first
//! served, and there is no poisoning: a guard dropped by a panic or a
//! cancelled coroutine simply unlocks.
//!
//! ```
//! use std::sync::Arc;
//! use goro::sync::{Mutex, WaitGroup};
//!
//! goro::run(|| {
//!     let total = Arc::new(Mutex::new(0));
//!     let wg = WaitGroup::new();
//!     for i in 1..=10 {
//!         let total = total.clone();
//!         wg.go(move || *total.lock() += i);
//!     }
//!     wg.wait();
//!     assert_eq!(*total.lock(), 55);
//! });
//! ```

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
