//! The vocabulary of waiting: what a parked coroutine (or blocked thread)
//! waits on. A leaf: it names no other goro module, so every layer may name
//! a wait without importing the deadlock detector (`diag/` reads these).
//!
//! Owns: [`WaitReason`] (recorded by `park` on every park), [`LockWait`]
//! (whom a lock wait waits for; the lock rewrites it under its queue lock,
//! `sync/waitq.rs`), [`SelectCase`], the report-object ids
//! ([`next_object_id`]), the owner-wait counters the partial-deadlock search
//! keys on ([`OWNER_WAITS`], [`OWNER_EPOCH`]) and [`PartialDeadlockPolicy`].
//!
//! `WaitReason` is `Copy` so that recording it on every park costs a few
//! stores (Go's `gopark` wait reasons, which live beside the types in
//! `runtime2.go`, not in the detector). Richer detail that is only needed
//! for a report (names) is looked up when the report is made, not when
//! parking. Where the wait was called from (the user's blocking call,
//! `#[track_caller]` down to the park) is kept beside the reason, not in it
//! (`CoInner::wait_at`), and printed after it by [`At`].

use std::fmt;
use std::panic::Location;

/// What a parked coroutine (or blocked thread) is waiting on.
///
/// `Display` gives the text used by [`coroutines()`](crate::coroutines) and the deadlock
/// report, e.g. `recv on chan#7 (cap 0)`.
///
/// ```
/// use goro::WaitReason;
/// goro::run(|| {
///     let wg = goro::sync::WaitGroup::new();
///     wg.add(1);
///     let waiter = {
///         let wg = wg.clone();
///         goro::go(move || wg.wait())
///     };
///     // Wait until it has started and parked.
///     let parked = |id| goro::coroutines().iter().any(|c| c.id == id && c.state == goro::CoroutineState::Parked);
///     while !parked(waiter.id()) {
///         goro::yield_now();
///     }
///     let info = goro::coroutines().into_iter().find(|c| c.id == waiter.id()).unwrap();
///     assert_eq!(info.wait, WaitReason::WaitGroup { counter: 1 });
///     assert_eq!(info.wait.to_string(), "WaitGroup.wait (counter 1)");
///     wg.done();
///     waiter.join().unwrap();
/// });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitReason {
    /// Not waiting (running or runnable).
    None,
    /// `Receiver::recv` on a channel.
    Recv {
        /// Channel id (`chan#N`; 0 for `never()`).
        chan: u64,
        /// Its capacity.
        cap: usize,
        /// Values buffered when the wait began.
        queued: usize,
        /// Live `Sender`s when the wait began.
        senders: usize,
    },
    /// `Sender::send` on a channel.
    Send {
        /// Channel id (`chan#N`).
        chan: u64,
        /// Its capacity.
        cap: usize,
        /// Values buffered when the wait began.
        queued: usize,
        /// Live `Receiver`s when the wait began.
        receivers: usize,
    },
    /// A `select!` or `Select` with `n` cases; the first few are kept.
    Select {
        /// Number of cases.
        n: usize,
        /// Up to four of the cases.
        cases: [Option<SelectCase>; 4],
    },
    /// `JoinHandle::join` of coroutine `id`.
    Join {
        /// The joined coroutine's id.
        id: u64,
    },
    /// `WaitGroup::wait`.
    WaitGroup {
        /// Counter when the wait began.
        counter: isize,
    },
    /// `Mutex::lock`.
    MutexLock {
        /// Lock object id.
        lock: u64,
        /// Whom it waits for.
        wait_for: LockWait,
    },
    /// `RwLock::read`.
    RwLockRead {
        /// Lock object id.
        lock: u64,
        /// Whom it waits for.
        wait_for: LockWait,
    },
    /// `RwLock::write`.
    RwLockWrite {
        /// Lock object id.
        lock: u64,
        /// Whom it waits for.
        wait_for: LockWait,
    },
    /// `Semaphore::acquire`.
    Semaphore,
    /// `Once::call_once` while another party runs the initializer.
    Once,
    /// `time::sleep` or a timer.
    Sleep,
    /// Socket readiness.
    Io {
        /// The file descriptor.
        fd: i32,
        /// Waiting to write (else to read).
        write: bool,
    },
    /// `goro::blocking`: waiting for the blocking pool.
    Blocking,
    /// `goro::block_on`: waiting for the future's waker.
    Future,
    /// Anything else, named.
    Other(&'static str),
}

/// Whom a party waiting for a `Mutex` or `RwLock` waits for, by coroutine id.
///
/// Lock queues are FIFO, so a waiter waits either for the holders (if it is
/// first in line) or for the party just ahead of it, which must have had the
/// lock first. The lock keeps this up to date while the party waits: the
/// first in line is refreshed whenever a holder leaves, and a waiter whose
/// predecessor gives up is pointed at the next one. The partial-deadlock
/// search follows these as wait-for edges.
///
/// ```
/// use std::sync::Arc;
/// use goro::WaitReason;
/// goro::run(|| {
///     let m = Arc::new(goro::sync::Mutex::new(()));
///     let guard = m.lock();
///     let waiter = {
///         let m = m.clone();
///         goro::go(move || drop(m.lock()))
///     };
///     // Wait until it has started and parked.
///     let parked = |id| goro::coroutines().iter().any(|c| c.id == id && c.state == goro::CoroutineState::Parked);
///     while !parked(waiter.id()) {
///         goro::yield_now();
///     }
///     let info = goro::coroutines().into_iter().find(|c| c.id == waiter.id()).unwrap();
///     let WaitReason::MutexLock { wait_for, .. } = info.wait else { panic!("{}", info.wait) };
///     assert_eq!(wait_for.ahead, None); // first in line: waits for the holder (main)
///     assert_ne!(wait_for.holders[0], 0);
///     drop(guard);
///     waiter.join().unwrap();
/// });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockWait {
    /// `None`: first in line, waiting for `holders`. `Some(id)`: queued
    /// behind coroutine `id` (0: behind a plain thread).
    pub ahead: Option<u64>,
    /// First in line only: the holders it waits for. The exclusive holder
    /// (a `Mutex`, or an `RwLock` writer) or up to four read holders; 0
    /// marks an unused entry.
    pub holders: [u64; 4],
    /// First in line only: holds known to exist but not listed (plain
    /// threads, or read holds beyond four).
    pub unlisted: u32,
    /// The holders hold an `RwLock` for reading (else exclusively).
    pub shared: bool,
}

impl LockWait {
    /// Queued behind `id` (0: a plain thread).
    pub(crate) fn behind(id: u64) -> LockWait {
        LockWait { ahead: Some(id), ..LockWait::default() }
    }

    /// First in line, waiting for one exclusive holder (0: not known).
    pub(crate) fn exclusive(holder: u64, zero_is_thread: bool) -> LockWait {
        LockWait { holders: [holder, 0, 0, 0], unlisted: (holder == 0 && zero_is_thread) as u32, ..LockWait::default() }
    }

    /// The coroutines this party waits for.
    pub(crate) fn edges(&self) -> impl Iterator<Item = u64> + '_ {
        let holders: &[u64] = match self.ahead {
            Some(_) => &[],
            None => &self.holders,
        };
        self.ahead.into_iter().chain(holders.iter().copied()).filter(|&id| id != 0)
    }
}

impl WaitReason {
    /// For a lock wait: its label (`Mutex.lock (mutex#5)`) and whom it waits
    /// for (reports show the two together, or group a queue by the label).
    pub(crate) fn lock_wait(&self) -> Option<(LockLabel, LockWait)> {
        match *self {
            WaitReason::MutexLock { lock, wait_for } => Some((LockLabel("Mutex.lock", "mutex", lock), wait_for)),
            WaitReason::RwLockRead { lock, wait_for } => Some((LockLabel("RwLock.read", "rwlock", lock), wait_for)),
            WaitReason::RwLockWrite { lock, wait_for } => Some((LockLabel("RwLock.write", "rwlock", lock), wait_for)),
            _ => None,
        }
    }
}

/// `Mutex.lock (mutex#5)`: the call, and the kind and id of the lock.
pub(crate) struct LockLabel(&'static str, &'static str, u64);

impl fmt::Display for LockLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}#{})", self.0, self.1, self.2)
    }
}

impl fmt::Display for LockWait {
    /// The tail of a lock wait's text: ` held by #9`, ` held by readers #3,
    /// #5 and 1 more`, ` queued behind #12`, or nothing if no holder is known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ahead {
            Some(0) => return f.write_str(" queued behind a plain thread"),
            Some(id) => return write!(f, " queued behind #{id}"),
            None => {}
        }
        let listed = || self.holders.iter().filter(|&&id| id != 0);
        match (self.shared, listed().next()) {
            (false, Some(id)) => write!(f, " held by #{id}"),
            (false, None) if self.unlisted > 0 => f.write_str(" held by a plain thread"),
            (false, None) => Ok(()),
            (true, None) if self.unlisted > 0 => write!(f, " held by {} unlisted readers", self.unlisted),
            (true, None) => Ok(()),
            (true, Some(_)) => {
                f.write_str(" held by readers ")?;
                for (i, id) in listed().enumerate() {
                    write!(f, "{}#{id}", if i == 0 { "" } else { ", " })?;
                }
                if self.unlisted > 0 {
                    write!(f, " and {} more", self.unlisted)?;
                }
                Ok(())
            }
        }
    }
}

/// One case of a select, as shown in a report.
///
/// ```
/// use goro::WaitReason;
/// goro::run(|| {
///     let (_tx1, rx1) = goro::chan::<i32>(0);
///     let (tx2, _rx2) = goro::chan::<i32>(0);
///     let h = goro::go(move || {
///         goro::select! {
///             recv(rx1) -> _ => {},
///             send(tx2, 1) -> _ => {},
///         }
///     });
///     // Wait until it has started and parked.
///     let parked = |id| goro::coroutines().iter().any(|c| c.id == id && c.state == goro::CoroutineState::Parked);
///     while !parked(h.id()) {
///         goro::yield_now();
///     }
///     let info = goro::coroutines().into_iter().find(|c| c.id == h.id()).unwrap();
///     let WaitReason::Select { n, cases } = info.wait else { panic!("{}", info.wait) };
///     assert_eq!(n, 2);
///     let sends = cases.iter().flatten().filter(|c: &&goro::diag::SelectCase| c.send).count();
///     assert_eq!(sends, 1);
///     h.cancel();
/// });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectCase {
    /// Channel id.
    pub chan: u64,
    /// A send case (else a receive).
    pub send: bool,
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WaitReason::None => f.write_str("running"),
            WaitReason::Recv { chan: 0, .. } => f.write_str("recv on a never() channel"),
            WaitReason::Recv { chan, cap, queued, senders } => {
                write!(f, "recv on chan#{chan} (cap {cap}, {queued} queued, {senders} senders alive)")
            }
            WaitReason::Send { chan, cap, queued, receivers } => {
                write!(f, "send on chan#{chan} (cap {cap}, {queued} queued, {receivers} receivers alive)")
            }
            WaitReason::Select { n, cases } => {
                write!(f, "select over {n} channels [")?;
                let mut first = true;
                for c in cases.iter().flatten() {
                    if !first {
                        f.write_str(", ")?;
                    }
                    first = false;
                    let op = if c.send { "send" } else { "recv" };
                    write!(f, "{op} chan#{}", c.chan)?;
                }
                if n > 4 {
                    f.write_str(", ...")?;
                }
                f.write_str("]")
            }
            WaitReason::Join { id } => write!(f, "join of #{id}"),
            WaitReason::WaitGroup { counter } => write!(f, "WaitGroup.wait (counter {counter})"),
            WaitReason::MutexLock { .. } | WaitReason::RwLockRead { .. } | WaitReason::RwLockWrite { .. } => {
                let (label, wait_for) = self.lock_wait().expect("a lock wait");
                write!(f, "{label}{wait_for}")
            }
            WaitReason::Semaphore => f.write_str("Semaphore.acquire"),
            WaitReason::Once => f.write_str("Once.call_once"),
            WaitReason::Sleep => f.write_str("sleep"),
            WaitReason::Io { fd, write } => {
                write!(f, "I/O {} on fd {fd}", if write { "write" } else { "read" })
            }
            WaitReason::Blocking => f.write_str("goro::blocking"),
            WaitReason::Future => f.write_str("block_on of a future"),
            WaitReason::Other(s) => f.write_str(s),
        }
    }
}

/// The tail of a wait's text naming where it was called from:
/// ` at src/main.rs:42:17`, or nothing if not known.
pub(crate) struct At(pub(crate) Option<&'static Location<'static>>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(l) => write!(f, " at {l}"),
            None => Ok(()),
        }
    }
}

/// Ids are taken from a global counter this many at a time per thread.
pub(crate) const ID_BATCH: u64 = 16;

/// The next id from a thread's cached batch `(next, end)`, refilled from
/// `global` `ID_BATCH` at a time: ids stay unique (and never 0 when
/// `global` starts at 1) without a shared write per id.
pub(crate) fn take_id(cache: &std::cell::Cell<(u64, u64)>, global: &std::sync::atomic::AtomicU64) -> u64 {
    let (mut next, mut end) = cache.get();
    if next == end {
        // Relaxed: ids only need to be unique, not ordered with anything.
        next = global.fetch_add(ID_BATCH, std::sync::atomic::Ordering::Relaxed);
        end = next + ID_BATCH;
    }
    cache.set((next + 1, end));
    next
}

/// A fresh id for a goro object shown in reports (`chan#N`, `mutex#N`).
pub(crate) fn next_object_id() -> u64 {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static CACHE: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) });
    CACHE.with(|c| take_id(c, &NEXT))
}

/// Parties parked right now on a wait whose owner is known (`join`,
/// `Mutex::lock`, `RwLock::{read, write}`), process-wide. The monitor skips
/// the cycle search while it is zero, so programs that never block on those
/// pay nothing.
/// Sharded (`shard.rs`): every contended lock park on every worker changes it.
pub(crate) static OWNER_WAITS: crate::shard::Counter = crate::shard::Counter::new();

/// Bumped whenever a party parks on an owner-known wait or a lock rewrites
/// a waiter's record: the monitor searches only when it moved.
/// Only ever grows, so a changed sum means it moved; sharded like
/// `OWNER_WAITS`.
pub(crate) static OWNER_EPOCH: crate::shard::Counter = crate::shard::Counter::new();

/// Notes a park on (or a change of) an owner-known wait.
#[inline]
pub(crate) fn note_owner_park() {
    OWNER_EPOCH.add(1);
}

/// Counts one owner-known wait while alive (also when unwinding).
pub(crate) struct OwnerWait;

impl OwnerWait {
    pub(crate) fn new() -> OwnerWait {
        OWNER_WAITS.add(1);
        OwnerWait
    }
}

impl Drop for OwnerWait {
    fn drop(&mut self) {
        OWNER_WAITS.add(-1);
    }
}
/// What the runtime does when it finds a partial deadlock.
///
/// ```
/// use goro::diag::PartialDeadlockPolicy;
/// use goro::sync::Mutex;
/// use std::sync::Arc;
///
/// // Two coroutines take two locks in opposite orders: a cycle, while main runs on.
/// let rt = goro::Runtime::builder().on_partial_deadlock(PartialDeadlockPolicy::Panic).build().unwrap();
/// rt.run(|| {
///     let (m1, m2) = (Arc::new(Mutex::new(())), Arc::new(Mutex::new(())));
///     let (a_tx, a_rx) = goro::chan::<()>(1);
///     let (b_tx, b_rx) = goro::chan::<()>(1);
///     let a = {
///         let (m1, m2) = (m1.clone(), m2.clone());
///         goro::go(move || {
///             let _g1 = m1.lock();
///             a_tx.send(()).unwrap();
///             b_rx.recv().unwrap();
///             let _g2 = m2.lock(); // waits for b
///         })
///     };
///     let b = goro::go(move || {
///         let _g2 = m2.lock();
///         b_tx.send(()).unwrap();
///         a_rx.recv().unwrap();
///         let _g1 = m1.lock(); // waits for a
///     });
///     // With `Panic`, the blocked `lock` calls panic with the report.
///     assert!(a.join().is_err());
///     assert!(b.join().is_err());
/// })
/// .unwrap();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PartialDeadlockPolicy {
    /// Print the cycle on stderr once (the default).
    #[default]
    Report,
    /// Make the blocked calls of the cycle panic with the report, so `join`
    /// of a member surfaces it as `Err`.
    Panic,
    /// Do nothing.
    Ignore,
}
