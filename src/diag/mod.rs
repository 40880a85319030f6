//! Diagnostics: what each coroutine is doing, and runtime counters.
//!
//! Owns: [`WaitReason`] (what a parked coroutine waits on, recorded by
//! `park`), [`CoroutineInfo`] and [`coroutines()`], [`Stats`] and [`stats()`],
//! [`num_coroutines()`]; the panic hook that names the coroutine (`panic.rs`).
//!
//! `WaitReason` is `Copy` so that recording it on every park costs a few
//! stores (Go's `gopark` wait reasons: unique and descriptive). Richer detail
//! that is only needed for a report (names) is looked up when the report is
//! made, not when parking. Where the wait was called from (the user's
//! blocking call, `#[track_caller]` down to the park) is kept beside the
//! reason, not in it (`CoInner::wait_at`), and printed after it by [`At`].
//! Lock waits carry whom they wait for
//! ([`LockWait`]); the lock rewrites that record under its queue lock while
//! the party waits (`sync/waitq.rs`).

use std::fmt;
use std::panic::Location;

pub(crate) mod deadlock;
pub(crate) mod panic;

pub use deadlock::{dump, PartialDeadlockPolicy};

/// What a parked coroutine (or blocked thread) is waiting on.
///
/// `Display` gives the text used by [`coroutines()`] and the deadlock
/// report, e.g. `recv on chan#7 (cap 0)`.
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

/// A fresh id for a goro object shown in reports (`chan#N`, `mutex#N`).
pub(crate) fn next_object_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    // Relaxed: ids only need to be unique, not ordered with anything.
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What a coroutine is doing, as listed by [`coroutines()`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoroutineState {
    /// Spawned, not yet run.
    New,
    /// Running or queued to run.
    Runnable,
    /// Parked; see `wait`.
    Parked,
    /// Finished.
    Done,
}

/// One live coroutine, from [`coroutines()`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CoroutineInfo {
    /// Its id.
    pub id: u64,
    /// Its name, if any.
    pub name: Option<String>,
    /// Its state.
    pub state: CoroutineState,
    /// Where it was spawned (`file:line:col`).
    pub spawned_at: String,
    /// What it waits on (meaningful while `Parked`).
    pub wait: WaitReason,
    /// Where it called the blocking operation it waits in (meaningful while
    /// `Parked`): the user's `recv`, `lock`, `join`... (`#[track_caller]`),
    /// as Go's traceback shows the blocking line.
    pub wait_at: Option<&'static Location<'static>>,
    /// Its stack reservation in bytes.
    pub stack_size: usize,
}

impl fmt::Display for CoroutineInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "coroutine #{}", self.id)?;
        if let Some(n) = &self.name {
            write!(f, " \"{n}\"")?;
        }
        match self.state {
            CoroutineState::Parked => write!(f, " [{}{}]", self.wait, At(self.wait_at))?,
            s => write!(f, " [{s:?}]")?,
        }
        write!(f, " spawned at {}", self.spawned_at)
    }
}

/// Lists the started, live coroutines of the current runtime (inside a
/// coroutine) or of the global default runtime (outside one). Coroutines not
/// yet started are counted by [`num_coroutines`] but not listed.
pub fn coroutines() -> Vec<CoroutineInfo> {
    crate::sched::with_runtime(|rt| {
        let mut v: Vec<CoroutineInfo> = rt
            .all_coroutines()
            .iter()
            .map(|c| {
                use crate::coroutine::{DONE, NEW, PARKED};
                let state = match c.state.load(std::sync::atomic::Ordering::Acquire) {
                    NEW => CoroutineState::New,
                    PARKED => CoroutineState::Parked,
                    DONE => CoroutineState::Done,
                    _ => CoroutineState::Runnable,
                };
                CoroutineInfo {
                    id: c.id,
                    name: c.name.as_deref().map(str::to_string),
                    state,
                    spawned_at: c.spawned_at.to_string(),
                    wait: c.wait.get(),
                    wait_at: if state == CoroutineState::Parked { c.wait_site() } else { None },
                    stack_size: c.stack_size,
                }
            })
            .collect();
        v.sort_by_key(|c| c.id);
        v
    })
}

/// Live coroutines of the current runtime, main and unstarted ones included
/// (Go's `runtime.NumGoroutine()`).
pub fn num_coroutines() -> usize {
    crate::sched::with_runtime(|rt| rt.live.load(std::sync::atomic::Ordering::Relaxed))
}

/// Runtime counters, from [`stats()`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Coroutines spawned on this runtime's workers (spawns from outside go
    /// through the injector and count where they start).
    pub spawned: u64,
    /// Coroutines alive now.
    pub live: u64,
    /// Of those, parked now.
    pub parked: u64,
    /// Of those, runnable or running now.
    pub runnable: u64,
    /// Successful steals of unstarted coroutines between workers.
    pub steals: u64,
    /// Context switches (resumes) so far.
    pub context_switches: u64,
    /// Coroutine stacks in use (process-wide).
    pub stacks_in_use: u64,
    /// Bytes of address space reserved for stacks (process-wide).
    pub stack_bytes_reserved: u64,
    /// Bytes of stack memory touched and not given back (process-wide estimate).
    pub stack_bytes_committed: u64,
    /// `maybe_grow` segments in use (process-wide).
    pub stack_segments: u64,
    /// Wake timers pending on this runtime's workers: coroutines in `sleep`
    /// or in a call with a timeout.
    pub wake_timers: u64,
    /// Channel timers (`after`, `tick`, `Timer`, `Ticker`) armed and not yet
    /// fired, stopped or dropped (process-wide).
    pub chan_timers: u64,
}

/// Counters of the current runtime (inside a coroutine) or of the global
/// default runtime (outside one).
pub fn stats() -> Stats {
    use std::sync::atomic::Ordering::Relaxed;
    crate::sched::with_runtime(|rt| {
        let mut s = Stats::default();
        for w in rt.workers() {
            s.spawned += w.spawned.load(Relaxed);
            s.steals += w.steals.load(Relaxed);
            s.context_switches += w.resumes.load(Relaxed);
            s.wake_timers += w.timers_pending.load(Relaxed) as u64;
        }
        s.chan_timers = crate::time::armed_chan_timers() as u64;
        s.live = rt.live.load(Relaxed) as u64;
        let parked = rt
            .all_coroutines()
            .iter()
            .filter(|c| c.state.load(std::sync::atomic::Ordering::Acquire) == crate::coroutine::PARKED)
            .count() as u64;
        s.parked = parked;
        s.runnable = s.live.saturating_sub(parked);
        let st = crate::stack::stats();
        s.stacks_in_use = st.in_use;
        s.stack_bytes_reserved = st.reserved;
        s.stack_bytes_committed = st.committed;
        s.stack_segments = st.segments;
        s
    })
}
