// Maintainers' notes. `diag` is a reader on top of the scheduler: it names
// `sched`, `coroutine`, `park`, `stack` and `time` and nothing names it but
// `runtime` (which wires it in) and the public API. What a coroutine waits
// on is vocabulary (`crate::wait`, a leaf); this module owns what is *read*
// from it: `CoroutineInfo` and `coroutines()`, `Stats` and `stats()`,
// `num_coroutines()`, the whole deadlock story (`deadlock.rs`: the global
// rule, partial cycles, the report and the dump), and the panic hook that
// names the coroutine (`panic.rs`).

//! Diagnostics: what each coroutine is doing, runtime counters, and what
//! the deadlock detector reports (Go's goroutine dump, `NumGoroutine` and
//! "all goroutines are asleep").
//!
//! * [`coroutines()`] lists the live coroutines with their [`CoroutineState`],
//!   name, spawn site and, when parked, the [`WaitReason`] and the line of the
//!   blocking call; [`dump()`] formats the same list as text.
//! * [`num_coroutines()`] counts them; [`stats()`] returns [`Stats`]
//!   (spawns, steals, context switches, stack and timer counters).
//! * When every coroutine of a runtime is parked with nothing that could wake
//!   it, [`Runtime::run`](crate::Runtime::run) returns
//!   [`RunError::Deadlock`](crate::RunError::Deadlock) with a
//!   [`DeadlockReport`](crate::DeadlockReport) ([`run`](crate::run) panics with
//!   it). Cycles of coroutines waiting on each other while the rest of the
//!   program runs on are handled by the [`PartialDeadlockPolicy`].
//! * [`RuntimeBuilder::dump_on_sigquit`](crate::RuntimeBuilder::dump_on_sigquit)
//!   prints the dump on `kill -QUIT`, as Go does.
//!
//! ```
//! use goro::diag::{self, CoroutineState, WaitReason};
//!
//! goro::run(|| {
//!     let (tx, rx) = goro::chan::<()>(0);
//!     let h = goro::Builder::new().name("waiter").spawn(move || rx.recv()).unwrap();
//!     while !diag::coroutines().iter().any(|c| c.state == CoroutineState::Parked) {
//!         goro::yield_now();
//!     }
//!     let waiter = diag::coroutines().into_iter().find(|c| c.id == h.id()).unwrap();
//!     assert_eq!(waiter.name.as_deref(), Some("waiter"));
//!     assert!(matches!(waiter.wait, WaitReason::Recv { cap: 0, .. }));
//!     assert!(diag::dump().contains("\"waiter\""));
//!     drop(tx);
//!     assert!(h.join().unwrap().is_err()); // the channel closed
//! });
//! ```

use std::fmt;
use std::panic::Location;

pub(crate) mod deadlock;
pub(crate) mod global;
pub(crate) mod panic;
pub(crate) mod report;

pub(crate) use crate::wait::At;
pub use crate::wait::{LockWait, PartialDeadlockPolicy, SelectCase, WaitReason};
pub use deadlock::dump;

/// What a coroutine is doing, as listed by [`coroutines()`].
///
/// ```
/// use goro::diag::CoroutineState;
/// goro::run(|| {
///     let (tx, rx) = goro::chan::<()>(0);
///     let h = goro::go(move || rx.recv());
///     // Wait until it has started and parked in `recv`.
///     let state = || goro::coroutines().into_iter().find(|c| c.id == h.id()).map(|c| c.state);
///     while state() != Some(CoroutineState::Parked) {
///         goro::yield_now();
///     }
///     drop(tx);
///     h.join().unwrap().unwrap_err();
/// });
/// ```
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
///
/// ```
/// goro::run(|| {
///     let (_tx, rx) = goro::chan::<()>(0);
///     let h = goro::Builder::new().name("idle").spawn(move || rx.recv()).unwrap();
///     // Wait until it has started and parked.
///     let parked = |id| goro::coroutines().iter().any(|c| c.id == id && c.state == goro::CoroutineState::Parked);
///     while !parked(h.id()) {
///         goro::yield_now();
///     }
///     let info: goro::CoroutineInfo = goro::coroutines().into_iter().find(|c| c.id == h.id()).unwrap();
///     assert_eq!(info.name.as_deref(), Some("idle"));
///     assert!(info.spawned_at.contains(".rs:"));
///     // `Display` is one line of the dump, e.g.
///     // coroutine #3 "idle" [recv on chan#1 (cap 0, ...) at src/main.rs:4:55] spawned at src/main.rs:4:39
///     println!("{info}");
///     h.cancel();
/// });
/// ```
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
///
/// ```
/// goro::run(|| {
///     let (tx, rx) = goro::chan::<i32>(0);
///     let workers: Vec<_> = (0..3).map(|_| {
///         let rx = rx.clone();
///         goro::go(move || rx.recv())
///     }).collect();
///     // Wait until all three have started and parked.
///     while goro::coroutines().iter().filter(|c| c.state == goro::CoroutineState::Parked).count() < 3 {
///         goro::yield_now();
///     }
///     let parked = goro::coroutines().iter().filter(|c| c.state == goro::CoroutineState::Parked).count();
///     assert_eq!(parked, 3);
///     drop(tx);
///     for w in workers {
///         assert!(w.join().unwrap().is_err());
///     }
/// });
/// ```
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
///
/// ```
/// let rt = goro::Runtime::builder().workers(1).build().unwrap();
/// rt.run(|| {
///     assert_eq!(goro::num_coroutines(), 1); // main
///     let (tx, rx) = goro::chan::<()>(0);
///     let h = goro::go(move || rx.recv());
///     assert_eq!(goro::num_coroutines(), 2);
///     drop(tx);
///     h.join().unwrap().unwrap_err();
/// })
/// .unwrap();
/// ```
pub fn num_coroutines() -> usize {
    crate::sched::with_runtime(|rt| rt.live.sum() as usize)
}

/// Runtime counters, from [`stats()`].
///
/// ```
/// let rt = goro::Runtime::builder().workers(1).build().unwrap();
/// let s: goro::Stats = rt
///     .run(|| {
///         for i in 0..10 {
///             goro::go(move || i).join().unwrap();
///         }
///         goro::stats()
///     })
///     .unwrap();
/// assert!(s.spawned >= 10);
/// assert!(s.live >= 1);
/// assert!(s.context_switches >= 10);
/// ```
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
    /// Wakes sent from a worker to a coroutine homed on another worker: each
    /// is a cross-thread hand-off (inbox push, maybe a futex wake).
    pub remote_wakes: u64,
    /// New coroutines a busy worker placed on a less loaded one.
    pub placed_away: u64,
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
    /// Parked coroutines whose stack is swapped out now (process-wide; see
    /// [`RuntimeBuilder::swap_parked_after`](crate::RuntimeBuilder::swap_parked_after)).
    pub stacks_swapped_out: u64,
    /// Bytes held in the saved copies of those stacks.
    pub stack_bytes_swapped: u64,
    /// Stacks swapped out so far (process-wide).
    pub stack_swap_outs: u64,
    /// Of the swapped stacks, how many were brought back by a touch from
    /// another party (a fault) rather than by their worker before a resume.
    pub stack_swap_faults: u64,
    /// Channel hand-offs (and closes) that reached a swapped-out party by
    /// editing its saved copy, without bringing its stack back.
    pub stack_swap_edits: u64,
    /// Closed windows opened to swap stacks out so far (process-wide):
    /// stacks in adjacent slots share one, so this is at most
    /// `stack_swap_outs`, and far below it when many park at once.
    pub stack_swap_windows: u64,
    /// Closed windows opened to bring swapped stacks back so far
    /// (process-wide): coroutines queued together on a worker (after a mass
    /// wake-up) whose stacks lie in adjacent slots share one, so this is far
    /// below the stacks brought back when many wake at once.
    pub stack_restore_windows: u64,
    /// Wake timers pending on this runtime's workers: coroutines in `sleep`
    /// or in a call with a timeout.
    pub wake_timers: u64,
    /// Channel timers (`after`, `tick`, `Timer`, `Ticker`) armed and not yet
    /// fired, stopped or dropped (process-wide).
    pub chan_timers: u64,
}

/// Counters of the current runtime (inside a coroutine) or of the global
/// default runtime (outside one).
///
/// ```
/// goro::run(|| {
///     let before = goro::stats().context_switches;
///     goro::go(|| ()).join().unwrap();
///     assert!(goro::stats().context_switches > before);
/// });
/// ```
pub fn stats() -> Stats {
    use std::sync::atomic::Ordering::Relaxed;
    crate::sched::with_runtime(|rt| {
        let mut s = Stats::default();
        for w in rt.workers() {
            s.spawned += w.spawned.load(Relaxed);
            s.steals += w.steals.load(Relaxed);
            s.remote_wakes += w.remote_wakes.load(Relaxed);
            s.placed_away += w.placed_away.load(Relaxed);
            s.context_switches += w.resumes.load(Relaxed);
            s.wake_timers += w.timers_pending.load(Relaxed) as u64;
        }
        s.chan_timers = crate::time::armed_chan_timers() as u64;
        s.live = rt.live.sum();
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
        let sw = crate::stack::swap::stats();
        s.stacks_swapped_out = sw.out_now;
        s.stack_bytes_swapped = sw.saved_bytes;
        s.stack_swap_outs = sw.swapped_out;
        s.stack_swap_faults = sw.fault_restores;
        s.stack_swap_edits = sw.edits;
        s.stack_swap_windows = sw.windows;
        s.stack_restore_windows = sw.restore_windows;
        s
    })
}
