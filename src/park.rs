//! Parking: the only way anything in goro waits.
//!
//! Owns: [`Waiter`], a handle to something that can block (a coroutine or a
//! plain OS thread), and every suspend/resume of one.
//!
//! Protocol (std's `thread::park` token semantics, for coroutines too):
//!  1. `park(reason)` blocks the caller until a `wake()` arrives for it. A wake
//!     that arrives *before* the park is kept as a token and makes the next
//!     park return at once: it is never lost.
//!  2. Wake-ups may be spurious. Every caller therefore parks in a loop around
//!     its own condition: check, register a `Waiter`, check again, park, and
//!     re-check after each return (event-listener's rule). The decision of a
//!     race (who took a value, whether a timeout or a send won) is made by the
//!     caller's own CAS, never by the park itself.
//!  3. `park_deadline` also returns once the deadline has passed.
//!
//! Inside a coroutine, `park` suspends only that coroutine; its worker runs
//! others, and `wake` queues it on its home worker. On an OS thread, `park`
//! blocks the thread (`std::thread::park`). Both kinds of waiter can be mixed
//! freely on one queue.
//!
//! Lock order: no goro-internal lock may be held across `park()`; wake after
//! unlocking (collect waiters, drop the lock, then wake).

use std::fmt;
use std::time::Instant;

use crate::diag::WaitReason;

/// Something that can be woken: a parked coroutine or a parked OS thread.
///
/// Cheap to clone (one reference count). Two waiters are the same party when
/// their [`Waiter::id`]s are equal.
#[derive(Clone)]
#[doc(hidden)]
pub struct Waiter {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Coroutine(crate::coroutine::CoRef),
    Thread(std::thread::Thread),
}

/// Identity of a waiting party: coroutine ids and thread ids never collide.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum WaiterId {
    Coroutine(u64),
    Thread(std::thread::ThreadId),
}

impl Waiter {
    /// The waiter for the calling party: the running coroutine if there is
    /// one, else the calling OS thread.
    pub(crate) fn current() -> Waiter {
        match crate::coroutine::current() {
            Some(co) => Waiter { repr: Repr::Coroutine(co) },
            None => Waiter { repr: Repr::Thread(std::thread::current()) },
        }
    }

    /// Wakes the party (or leaves a token for its next park).
    pub(crate) fn wake(&self) {
        match &self.repr {
            Repr::Coroutine(co) => co.wake(),
            Repr::Thread(t) => t.unpark(),
        }
    }

    /// The identity of the party behind this waiter.
    pub(crate) fn id(&self) -> WaiterId {
        match &self.repr {
            Repr::Coroutine(co) => WaiterId::Coroutine(co.id()),
            Repr::Thread(t) => WaiterId::Thread(t.id()),
        }
    }
}

/// The calling party, borrowed: making it takes no reference count. It
/// lives inside a wait record in the party's own frame (a channel op), so
/// the party outlives it; [`WaiterRef::to_waiter`] makes the owned handle a
/// waker needs once it drops its locks.
#[doc(hidden)]
pub struct WaiterRef {
    repr: RefRepr,
}

enum RefRepr {
    Coroutine(std::ptr::NonNull<crate::coroutine::CoInner>),
    Thread(std::thread::Thread),
}

// SAFETY: the coroutine pointer is only used to take a new reference count
// (atomic, thread-safe) while the coroutine is alive (see `to_waiter`).
unsafe impl Send for WaiterRef {}
// SAFETY: as above; `&WaiterRef` allows nothing more.
unsafe impl Sync for WaiterRef {}

impl WaiterRef {
    /// The calling party. Keep the result in the caller's frame (or in
    /// something the caller keeps until it returns).
    pub(crate) fn current() -> WaiterRef {
        match crate::sched::current_ptr() {
            Some(p) => {
                // SAFETY: non-null: `current_ptr` filters out null, and is
                // `Arc::as_ptr` of the running coroutine.
                let p = unsafe { std::ptr::NonNull::new_unchecked(p as *mut _) };
                WaiterRef { repr: RefRepr::Coroutine(p) }
            }
            None => WaiterRef { repr: RefRepr::Thread(std::thread::current()) },
        }
    }

    /// An owned waiter for the same party.
    pub(crate) fn to_waiter(&self) -> Waiter {
        match &self.repr {
            RefRepr::Coroutine(p) => {
                // SAFETY: `p` came from `Arc::as_ptr` of a live `CoRef`, and
                // the coroutine is still alive: this `WaiterRef` lives in its
                // frame (or in a record it keeps until it returns), and a
                // started coroutine is also held by its worker's registry
                // until it finishes. So the count is >= 1 and we add one.
                unsafe {
                    std::sync::Arc::increment_strong_count(p.as_ptr() as *const crate::coroutine::CoInner);
                    Waiter { repr: Repr::Coroutine(std::sync::Arc::from_raw(p.as_ptr() as *const _)) }
                }
            }
            RefRepr::Thread(t) => Waiter { repr: Repr::Thread(t.clone()) },
        }
    }
}

impl fmt::Debug for WaiterRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            RefRepr::Coroutine(p) => write!(f, "WaiterRef(coroutine {:p})", p.as_ptr()),
            RefRepr::Thread(t) => write!(f, "WaiterRef({:?})", t.id()),
        }
    }
}

impl fmt::Debug for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Waiter({:?})", self.id())
    }
}

/// Blocks the caller until woken (see the module protocol: may return
/// spuriously, a wake before the park is not lost). `reason` is what
/// diagnostics and the deadlock report show while it waits.
pub(crate) fn park(reason: WaitReason) {
    if !crate::coroutine::park_current(reason, None) {
        std::thread::park();
    }
}

/// Like [`park`], but also returns once `deadline` (if any) has passed.
/// The caller checks the clock itself to tell a timeout from a wake.
pub(crate) fn park_deadline(reason: WaitReason, deadline: Option<Instant>) {
    match deadline {
        None => park(reason),
        Some(d) => {
            if !crate::coroutine::park_current(reason, Some(d)) {
                let now = Instant::now();
                if d > now {
                    std::thread::park_timeout(d - now);
                }
            }
        }
    }
}
