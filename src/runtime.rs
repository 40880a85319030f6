//! Runtimes: `run`, [`Runtime`], [`RuntimeBuilder`], [`RunError`], and the
//! global default runtime.
//!
//! Owns: the worker threads and the monitor thread of each runtime, `run`
//! sessions, and the shutdown protocol.
//!
//! A session (`Runtime::run(f)`):
//!  1. `f` is spawned as the *main* coroutine (8 MiB reservation by default)
//!     and the caller parks (a coroutine parks, a thread blocks).
//!  2. The session ends when main finishes, or when the deadlock detector
//!     finds that nothing can run again (`Outcome::Deadlock`).
//!  3. If main returned with leftovers, one last partial-deadlock search
//!     reports a wait-for cycle still standing among them
//!     (`diag::deadlock::final_check`).
//!     Cancellation: every coroutine still alive gets `F_CANCEL` and a wake;
//!     each unwinds on its home worker from the `park` it sleeps in (so its
//!     destructors run), unstarted ones are dropped unstarted. The pass
//!     repeats until `live == 0`, so coroutines spawned while cancelling are
//!     cancelled too.
//!  4. The result is returned; the workers stay, ready for the next `run`.
//!
//! Sessions on one `Runtime` are serialized (a second concurrent `run` waits).
//! A caller that unwinds out of `run` (a coroutine of another runtime,
//! cancelled there) ends its session first: step 3, then the session is
//! removed (`SessionGuard`).
//!
//! Dropping a `Runtime` cancels every coroutine still alive (step 3: those
//! spawned into it outside a session, e.g. by a `goro::blocking` job), then
//! stops and joins its threads. Coroutines spawned into it after that (by a
//! job still running) never run: their closures are dropped with the
//! runtime's queues, and a `join` of one waits for ever.
//!
//! Nested `run`: calling [`run`] (or another runtime's `run`) from inside a
//! coroutine works: a new runtime runs `f` while the calling coroutine parks.
//! Calling `run` on the runtime the caller itself runs on panics (it would
//! wait for itself).

use std::any::Any;
use std::fmt;
use std::io;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_deque::{Injector, Worker};
use parking_lot::Mutex;

use crate::coroutine::{self, CoRef, F_CANCEL, F_CANCEL_WAKE, F_MAIN};
use crate::diag::report::DeadlockReport;
use crate::park::{self, Waiter};
use crate::sched::{idle, Config, ExternalWait, Lines, Outcome, Session, Shared, Slab, WorkerShared};
use crate::wait::WaitReason;

/// A goro runtime: worker threads, their queues, timers and poller.
///
/// Most programs use [`run`]; build one explicitly to choose the number of
/// workers or stack size, to run several times, or to get errors as values:
///
/// ```
/// let rt = goro::Runtime::builder().workers(2).build().unwrap();
/// assert_eq!(rt.run(|| 1 + 1).unwrap(), 2);
/// assert_eq!(rt.run(|| 2 + 2).unwrap(), 4);
/// ```
///
/// Dropping a `Runtime` first cancels the coroutines still alive in it
/// (those spawned into it outside a `run`, say by a [`blocking`](crate::blocking)
/// job after the session ended): they unwind on their workers, their
/// destructors run and `join` returns `Err` holding [`Cancelled`](crate::Cancelled).
/// Like the end of a session, the drop waits for those unwinds (a destructor
/// that waits for ever makes it wait for ever). Coroutines spawned into the
/// runtime after the drop (by a job still running) never run, and a `join`
/// of one never returns. Dropped on one of its own workers (the last
/// reference dropped inside one of its coroutines), it cancels nothing: it
/// would wait for itself.
pub struct Runtime {
    shared: Arc<Shared>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    run_lock: Mutex<()>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").field("workers", &self.shared.config.workers).finish()
    }
}

/// Builds a [`Runtime`].
///
/// ```
/// use goro::Runtime;
/// let rt = Runtime::builder()
///     .workers(2)
///     .stack_size(64 * 1024)
///     .name("app")
///     .build()
///     .expect("could not start the runtime");
/// assert_eq!(rt.run(|| goro::go(|| 5).join().unwrap()).unwrap(), 5);
/// ```
#[derive(Debug, Clone)]
pub struct RuntimeBuilder {
    workers: Option<usize>,
    stack_size: usize,
    main_stack_size: usize,
    detect_deadlocks: bool,
    migrate_started: bool,
    name: String,
    partial_policy: crate::wait::PartialDeadlockPolicy,
    dump_on_sigquit: bool,
    /// `None`: from `GORO_SWAP_PARKED_MS` at build; `Some(None)`: off.
    swap_parked_after: Option<Option<Duration>>,
}

/// Why [`Runtime::run`] did not return a value.
///
/// ```
/// use goro::{RunError, Runtime};
/// let rt = Runtime::builder().workers(1).build().unwrap();
/// match rt.run(|| -> i32 { panic!("main failed") }) {
///     Err(RunError::Panic(payload)) => assert_eq!(payload.downcast_ref::<&str>(), Some(&"main failed")),
///     other => panic!("unexpected: {other:?}"),
/// }
/// ```
pub enum RunError {
    /// Nothing could ever run again while main was blocked.
    Deadlock(DeadlockReport),
    /// The main coroutine panicked; the payload.
    Panic(Box<dyn Any + Send>),
}

impl fmt::Debug for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Deadlock(r) => f.debug_tuple("Deadlock").field(r).finish(),
            RunError::Panic(p) => f.debug_tuple("Panic").field(&panic_message(p.as_ref())).finish(),
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Deadlock(r) => write!(f, "{DEADLOCK_HEADLINE}\n{r}"),
            RunError::Panic(p) => write!(f, "main coroutine panicked: {}", panic_message(p.as_ref())),
        }
    }
}

impl std::error::Error for RunError {}

pub(crate) const DEADLOCK_HEADLINE: &str = "all coroutines are asleep - deadlock!";

fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
    }
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder {
            workers: None,
            stack_size: crate::stack::DEFAULT_STACK_SIZE,
            main_stack_size: crate::stack::DEFAULT_MAIN_STACK_SIZE,
            detect_deadlocks: true,
            migrate_started: false,
            name: "goro".into(),
            partial_policy: crate::wait::PartialDeadlockPolicy::Report,
            dump_on_sigquit: false,
            swap_parked_after: None,
        }
    }
}

impl RuntimeBuilder {
    /// Number of worker threads. Default: `GORO_WORKERS` if set, else the
    /// available parallelism. `0` makes [`build`](Self::build) fail.
    ///
    /// ```
    /// let rt = goro::Runtime::builder().workers(1).build().unwrap();
    /// assert_eq!(rt.run(|| goro::stats().live).unwrap(), 1); // just main
    /// assert!(goro::Runtime::builder().workers(0).build().is_err());
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Default stack reservation of spawned coroutines (default 256 KiB).
    /// Rounded up to whole pages and at least [`crate::stack::MIN_STACK_SIZE`].
    /// Only touched pages cost memory.
    ///
    /// ```
    /// // Many small coroutines: reserve 32 KiB each instead of 256 KiB.
    /// let rt = goro::Runtime::builder().workers(1).stack_size(32 * 1024).build().unwrap();
    /// let n = rt.run(|| (0..1000).map(|i| goro::go(move || i)).map(|h| h.join().unwrap()).count());
    /// assert_eq!(n.unwrap(), 1000);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// Stack reservation of the main coroutine of `run` (default 8 MiB).
    ///
    /// ```
    /// let rt = goro::Runtime::builder().workers(1).main_stack_size(1 << 20).build().unwrap();
    /// assert_eq!(rt.run(|| 1).unwrap(), 1);
    /// ```
    pub fn main_stack_size(mut self, bytes: usize) -> Self {
        self.main_stack_size = bytes;
        self
    }

    /// Detect global deadlocks (default on).
    ///
    /// ```
    /// // With detection off, a deadlocked `run` waits for ever instead of failing;
    /// // use it for programs fed by other runtimes or by long-silent threads.
    /// let rt = goro::Runtime::builder().workers(1).detect_deadlocks(false).build().unwrap();
    /// assert_eq!(rt.run(|| 3).unwrap(), 3);
    /// ```
    pub fn detect_deadlocks(mut self, on: bool) -> Self {
        self.detect_deadlocks = on;
        self
    }

    /// What to do when coroutines wait on each other in a cycle (joins,
    /// `Mutex`es, `RwLock`s) while the rest of the program runs on: report on stderr
    /// (default), make their blocked calls panic with the report, or ignore.
    ///
    /// ```
    /// use goro::diag::PartialDeadlockPolicy;
    /// let rt = goro::Runtime::builder().on_partial_deadlock(PartialDeadlockPolicy::Panic).build().unwrap();
    /// assert_eq!(rt.run(|| 1).unwrap(), 1);
    /// ```
    pub fn on_partial_deadlock(mut self, policy: crate::wait::PartialDeadlockPolicy) -> Self {
        self.partial_policy = policy;
        self
    }

    /// Print a dump of every coroutine on stderr when the process receives
    /// SIGQUIT (Go's habit; `kill -QUIT <pid>`). Default off.
    ///
    /// ```
    /// let rt = goro::Runtime::builder().dump_on_sigquit(true).build().unwrap();
    /// assert_eq!(rt.run(|| 1).unwrap(), 1);
    /// ```
    pub fn dump_on_sigquit(mut self, on: bool) -> Self {
        self.dump_on_sigquit = on;
        self
    }

    /// Swap out the stack of a coroutine that stays parked longer than
    /// `after` (between `after` and twice that), and bring it back when it
    /// is woken: a parked coroutine then costs the live bytes of its stack
    /// (often under 2 KiB) instead of a 4 KiB page. For servers holding
    /// many mostly idle connections. Default off, or `GORO_SWAP_PARKED_MS`
    /// if set (a whole number of milliseconds; `off` or unset: off).
    ///
    /// How: the stack's live bytes are copied out and its pages given back
    /// with guard markers in their place; anything that touches the stack
    /// while it is out (a channel peer handing over a value, the coroutine
    /// being resumed) faults, and goro's fault handler puts the bytes back
    /// and lets the access go on. It needs `MADV_GUARD_INSTALL` (Linux 6.13
    /// or later): elsewhere `build` returns `Unsupported`.
    ///
    /// Why it is off by default: a *system call* made by another thread
    /// into a parked coroutine's stack while it is swapped out (say a
    /// `std::thread::scope` thread doing `file.read(&mut buf)` into a
    /// buffer that lives on the parked coroutine's stack) does not fault
    /// in user mode; it fails with `EFAULT` ("Bad address"). Accesses by
    /// code (safe or not) are always caught. goro never swaps a stack it
    /// lends out itself: inside `goro::scope`, `block_on` or `blocking`.
    /// Leave it off if your coroutines lend their stack memory to threads
    /// that hand it to the kernel; also if another library in the process
    /// replaces goro's SIGSEGV handler.
    ///
    /// Choosing the period: a swap-out and its restore cost tens of
    /// microseconds of system time (two windows, copies, TLB shoot-downs),
    /// so keep it well above how long busy coroutines stay parked between
    /// wake-ups; 50 ms or more suits "mostly idle" servers. A coroutine
    /// that keeps coming back within a few periods of going out waits ever
    /// longer before it goes out again, but a period near a millisecond on
    /// thousands of coroutines that park for a few milliseconds each still
    /// spends most of its time swapping.
    ///
    /// What it costs while on, even with nothing swapped: every channel
    /// operation that touches another party pins that party's stack for
    /// the length of its lock (so it cannot go out mid-hand-off): a
    /// same-worker channel round trip runs about twice the instructions
    /// (`pingpong`: about 2 300 against 1 080 per round trip) and takes
    /// about twice as long.
    ///
    /// ```
    /// use std::time::Duration;
    /// # if goro::stack::FRAMES_PROBED && cfg!(target_os = "linux") {
    /// let rt = goro::Runtime::builder().swap_parked_after(Some(Duration::from_millis(50))).build();
    /// # if let Ok(rt) = rt {
    /// let n = rt
    ///     .run(|| {
    ///         let (tx, rx) = goro::chan::<u64>(0);
    ///         let h = goro::go(move || rx.recv().unwrap() + 1);
    ///         goro::time::sleep(Duration::from_millis(150)); // parked long enough to go out
    ///         tx.send(41).unwrap(); // the handover brings its stack back
    ///         h.join().unwrap()
    ///     })
    ///     .unwrap();
    /// assert_eq!(n, 42);
    /// # }
    /// # }
    /// ```
    pub fn swap_parked_after(mut self, after: Option<Duration>) -> Self {
        self.swap_parked_after = Some(after);
        self
    }

    /// Prefix of worker thread names (default `goro`).
    ///
    /// ```
    /// let rt = goro::Runtime::builder().workers(1).name("db").build().unwrap();
    /// let thread = rt.run(|| std::thread::current().name().map(str::to_string)).unwrap();
    /// assert!(thread.unwrap().starts_with("db"));
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Meant to opt into Go-style migration of *started* coroutines between
    /// workers; **currently a no-op: started coroutines never migrate,
    /// whatever the flag says.** The flag is accepted (and recorded in the
    /// builder's `Debug` output) and every coroutine, once started, stays on
    /// the worker that first ran it, exactly as without the call.
    ///
    /// Why: a migrating mode needed its own wake protocol beside the home
    /// worker's (a compare-and-swap on the park state, and a second path for
    /// every wake), and it was unsound even for programs that kept its
    /// contract: a timed park arms its wake timer in the per-worker state of
    /// the worker it parks on (that worker's timer heap, its pending-timer
    /// count, the coroutine's timer sequence number, none of them
    /// thread-safe), and a coroutine that had moved disarmed it from another
    /// worker, racing the first worker's reads and corrupting its count. So
    /// the mode was removed; there is one wake path. Load balancing still
    /// moves unstarted coroutines (their closure is `Send`).
    ///
    /// The function is kept, `unsafe` and with its contract, for source
    /// compatibility: programs written against it compile and run correctly
    /// (they only lose the migration), and a future migrating mode could
    /// honour it again.
    ///
    /// # Safety
    ///
    /// The contract a migrating mode would need, kept so that callers stay
    /// correct if it returns: with migration on, a coroutine may resume on
    /// another thread after any blocking goro call (channel op, join, sleep,
    /// lock, I/O, yield). The program must not hold across such a call
    /// anything bound to a thread: references into thread-locals,
    /// `Rc`/`RefCell` values shared with thread-locals,
    /// `std::sync::MutexGuard`s or other guards that must be released on the
    /// locking thread, `thread_rng()` handles, or any other `!Send` value.
    /// Nothing migrates today, so breaking it has no effect now; code that
    /// calls this should keep it all the same.
    ///
    /// ```
    /// // SAFETY: nothing bound to a thread is held across a goro call below.
    /// let b = unsafe { goro::Runtime::builder().migrate_started(true) };
    /// assert_eq!(b.workers(1).build().unwrap().run(|| 1).unwrap(), 1);
    /// ```
    pub unsafe fn migrate_started(mut self, on: bool) -> Self {
        self.migrate_started = on;
        self
    }

    /// Starts the worker threads.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `workers(0)` or a `GORO_WORKERS` that is not a
    /// positive integer; the OS error if a thread cannot be started.
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// let rt = goro::Runtime::builder().workers(2).build().unwrap();
    /// assert_eq!(rt.run(|| "ok").unwrap(), "ok");
    /// let err = goro::Runtime::builder().workers(0).build().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidInput);
    /// ```
    pub fn build(self) -> io::Result<Runtime> {
        let workers = match self.workers {
            Some(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "goro: workers(0): a runtime needs at least one worker thread",
                ))
            }
            Some(n) => n,
            None => workers_from_env()?,
        };
        let swap_parked_after = match self.swap_parked_after {
            Some(v) => v,
            None => swap_from_env()?,
        };
        if swap_parked_after.is_some() {
            crate::stack::swap::enable(crate::coroutine::suspend_depth()?)?;
        }
        let config = Config {
            swap_parked_after,
            workers,
            stack_size: self.stack_size,
            main_stack_size: self.main_stack_size,
            detect_deadlocks: self.detect_deadlocks,
            name: self.name,
            partial_policy: self.partial_policy,
        };
        crate::diag::panic::install_hook();
        crate::sched::driver::install(&IoAndTimers);
        let dump_on_quit = self.dump_on_sigquit;
        let shared = Arc::new(Shared {
            config,
            workers: OnceLock::new(),
            injector: Injector::new(),
            idle: idle::Idle::new(workers),
            live: crate::shard::Counter::new(),
            cancelling: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            session: Mutex::new(None),
            blocking_jobs: AtomicUsize::new(0),
            external_waits: AtomicUsize::new(0),
            watch: Box::new(crate::diag::global::Detector::new()),
            partial_seen: Mutex::new(Vec::new()),
            partial_reports: Mutex::new(Default::default()),
        });
        if dump_on_quit {
            crate::diag::deadlock::dump_on_sigquit(&shared);
        }
        let mut deques = Vec::new();
        let mut ws = Vec::new();
        for index in 0..workers {
            let d: Worker<CoRef> = Worker::new_lifo();
            ws.push(Arc::new(WorkerShared {
                index,
                rt: Arc::downgrade(&shared),
                _owner: Lines,
                _thieves: Lines,
                _others: Lines,
                inbox: Injector::new(),
                stealer: d.stealer(),
                parker: idle::Parker::default(),
                registry: Mutex::new(Slab::default()),
                thread: OnceLock::new(),
                spawned: AtomicU64::new(0),
                steals: AtomicU64::new(0),
                remote_wakes: AtomicU64::new(0),
                placed_away: AtomicU64::new(0),
                called: AtomicBool::new(false),
                held: AtomicBool::new(false),
                timers_pending: AtomicUsize::new(0),
                running: AtomicU64::new(0),
                deque_epoch: AtomicU64::new(0),
                load: AtomicU64::new(0),
                io_waiting: AtomicUsize::new(0),
                next_timer: AtomicU64::new(u64::MAX),
                resumes: AtomicU64::new(0),
            }));
            deques.push(d);
        }
        let _ = shared.workers.set(ws.into_boxed_slice());
        let rt = Runtime { shared: shared.clone(), threads: Mutex::new(Vec::new()), run_lock: Mutex::new(()) };
        for (index, d) in deques.into_iter().enumerate() {
            let w = shared.workers()[index].clone();
            let s = shared.clone();
            let t = std::thread::Builder::new()
                .name(format!("{}-worker-{index}", shared.config.name))
                .spawn(move || crate::sched::worker::run(w, s, d));
            match t {
                Ok(t) => rt.threads.lock().push(t),
                Err(e) => {
                    // `rt` drops here and stops the threads already started.
                    return Err(io::Error::new(e.kind(), format!("goro: cannot start worker thread: {e}")));
                }
            }
        }
        let weak = Arc::downgrade(&shared);
        let t = std::thread::Builder::new()
            .name(format!("{}-monitor", shared.config.name))
            .spawn(move || crate::sched::monitor::run(weak))
            .map_err(|e| io::Error::new(e.kind(), format!("goro: cannot start monitor thread: {e}")))?;
        rt.threads.lock().push(t);
        Ok(rt)
    }
}

/// `GORO_SWAP_PARKED_MS`: unset, empty or `off` is off; else milliseconds.
fn swap_from_env() -> io::Result<Option<Duration>> {
    match std::env::var("GORO_SWAP_PARKED_MS") {
        Err(_) => Ok(None),
        Ok(v) if v.is_empty() || v == "off" => Ok(None),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(ms) => Ok(Some(Duration::from_millis(ms))),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("goro: GORO_SWAP_PARKED_MS={v:?} is not a number of milliseconds (unset it, or e.g. GORO_SWAP_PARKED_MS=1000)"),
            )),
        },
    }
}

fn workers_from_env() -> io::Result<usize> {
    match std::env::var("GORO_WORKERS") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("goro: GORO_WORKERS={v:?} is not a positive integer (unset it or give a number of worker threads, e.g. GORO_WORKERS=4)"),
            )),
        },
        Err(_) => Ok(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
    }
}

impl Runtime {
    /// A builder with the defaults.
    ///
    /// ```
    /// let rt = goro::Runtime::builder().build().unwrap();
    /// assert_eq!(rt.run(|| 2 + 2).unwrap(), 4);
    /// ```
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Runs `f` as the main coroutine and returns its value once it returns
    /// and every other coroutine of the session has been cancelled (their
    /// stacks unwind, so destructors run).
    ///
    /// # Errors
    ///
    /// [`RunError::Panic`] if main panicked, [`RunError::Deadlock`] if the
    /// detector found that nothing could run again while main was blocked
    /// (the rule below).
    ///
    /// # The deadlock rule
    ///
    /// With [`RuntimeBuilder::detect_deadlocks`] on (the default), the session
    /// ends with [`RunError::Deadlock`] once all of these have held without a
    /// break for the *grace period* of 500 ms, during which no coroutine of
    /// this runtime was resumed and no registered plain thread (below) was
    /// woken from a goro wait:
    ///
    /// 1. every worker of this runtime is asleep with nothing queued (so main
    ///    and every other started coroutine is parked);
    /// 2. no timer is pending: no coroutine of this runtime in `sleep` or a
    ///    `*_timeout` call, and no channel timer (`after`, `tick`, `Timer`,
    ///    `Ticker`) armed anywhere in the process;
    /// 3. no `goro::blocking` job of this runtime is running, and none of its
    ///    coroutines waits on a socket or on another runtime's `run`;
    /// 4. no *active* plain thread exists.
    ///
    /// A *plain thread* is any OS thread that is not a goro thread (workers of
    /// any runtime, the blocking pool, goro's timer, poller and monitor
    /// threads). It is *registered* from its first goro call: a channel
    /// operation (`send`, `recv`, their `try_` and `_timeout` forms, `close`,
    /// `select!`, `Select`), a `goro::sync` lock, wait or acquire,
    /// `WaitGroup::add`/`done`, a `call_once` that finds its `Once` not yet
    /// complete, `JoinHandle::join`, `goro::time::{sleep, after, tick}`,
    /// starting or resetting a `Timer` or `Ticker`, `go`/`spawn`, or `run`. A registered thread is active at all times except while it
    /// is parked inside an untimed goro wait: a blocking `send`, `recv` or
    /// select without timeout, `lock`, `read`, `write`, `acquire`,
    /// `WaitGroup::wait`, `Once::call_once`, `join`, or `run` itself. Waits
    /// with a timeout, `goro::time::sleep`, `goro::blocking` and socket waits
    /// keep it active (it will go on by itself). It is unregistered when it
    /// exits. The thread that calls `run` is parked in `run` for the whole
    /// session, so it never holds off its own runtime's verdict.
    ///
    /// What a program that feeds channels from plain threads must know:
    ///
    /// * Once a feeder thread has made one goro call, it holds off the verdict
    ///   for as long as it runs outside goro: between two sends it may
    ///   compute, sleep or block on std I/O for as long as it likes.
    /// * A thread that has not made any goro call yet is covered only by the
    ///   grace period: if all coroutines wait on it and it makes its first
    ///   goro call more than 500 ms later, the session is reported as
    ///   deadlocked. Make a goro call first (e.g. send early, or start the
    ///   thread from code that already did), or let the waiting coroutine use
    ///   a timeout.
    /// * A registered thread that then blocks elsewhere for ever (a std
    ///   `Mutex`, a std channel, `std::thread::JoinHandle::join`, stdin)
    ///   keeps every runtime of the process from a verdict. This is a false
    ///   negative by design: the detector never reports a deadlock while a
    ///   thread that has used goro could still act.
    /// * Runtimes do not see into each other. Another runtime's coroutines
    ///   feeding this one are covered only by the grace period, like threads
    ///   that have not called goro yet; and a plain thread parked in a goro
    ///   wait that only another runtime can end (e.g. in that runtime's
    ///   `run`) counts as not active. Programs that make runtimes talk to
    ///   each other should turn detection off or use timeouts.
    ///
    /// # Panics
    ///
    /// If called from a coroutine of this same runtime (it would wait for
    /// itself): use `go` and `join` there.
    ///
    /// ```
    /// use goro::{RunError, Runtime};
    /// let rt = Runtime::builder().workers(2).build().unwrap();
    /// let total = rt.run(|| (1..=4).map(|i| goro::go(move || i * 10)).map(|h| h.join().unwrap()).sum::<i32>());
    /// assert_eq!(total.unwrap(), 100);
    ///
    /// // main waits on a channel nobody else can send to: after the detector's
    /// // grace period (500 ms) the session ends with the report instead of hanging.
    /// let (tx, rx) = goro::chan::<()>(0);
    /// match rt.run(move || rx.recv()) {
    ///     Err(RunError::Deadlock(report)) => assert!(report.blocked[0].is_main),
    ///     other => panic!("unexpected: {other:?}"),
    /// }
    /// drop(tx);
    /// ```
    #[track_caller]
    pub fn run<F, T>(&self, f: F) -> Result<T, RunError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let own = crate::sched::with_worker(|w| Arc::ptr_eq(&w.rt, &self.shared)).unwrap_or(false);
        assert!(
            !own,
            "goro: Runtime::run called from a coroutine of the same runtime; spawn with goro::go and join instead"
        );
        let loc = Location::caller();
        // A coroutine of another runtime waiting for this session is an
        // external wait for *its* runtime's deadlock detector.
        let _external = crate::sched::with_worker(|w| ExternalWait::new(w.rt.clone()));
        let _serial = self.run_lock.lock();
        let shared = &self.shared;
        let caller = Waiter::current();
        // The session exists before main does: main may finish before
        // `spawn_inner` even returns (it is recognised by its F_MAIN flag).
        *shared.session.lock() = Some(Session { main: 0, caller, outcome: None });
        let mut session = SessionGuard { rt: self, armed: true };
        let handle = match coroutine::spawn_inner(shared, Some("main".into()), None, F_MAIN, loc, f) {
            Ok(h) => h,
            Err(e) => {
                session.armed = false;
                *shared.session.lock() = None;
                return Err(RunError::Panic(Box::new(format!("goro: cannot start the main coroutine: {e}"))));
            }
        };
        if let Some(s) = shared.session.lock().as_mut() {
            s.main = handle.id();
        }
        // Step 1: wait for main or a deadlock verdict.
        let outcome = loop {
            if let Some(o) = shared.session.lock().as_mut().and_then(|s| s.outcome.take()) {
                break o;
            }
            park::park(WaitReason::Join { id: handle.id() });
        };
        // A cycle still standing among the leftovers is reported before
        // they are cancelled (diag/deadlock.rs).
        if matches!(outcome, Outcome::MainDone) && shared.live.sum() > 0 {
            crate::diag::deadlock::final_check(shared);
        }
        // Step 3: cancel the rest.
        session.armed = false;
        self.cancel_all();
        *shared.session.lock() = None;
        match outcome {
            Outcome::MainDone => handle.join().map_err(RunError::Panic),
            Outcome::Deadlock(r) => Err(RunError::Deadlock(
                *r.downcast::<DeadlockReport>().expect("goro bug: the watch's verdict is a DeadlockReport"),
            )),
        }
    }

    fn cancel_all(&self) {
        let shared = &self.shared;
        shared.cancelling.store(true, Ordering::SeqCst);
        loop {
            if shared.live.sum() == 0 {
                break;
            }
            for co in shared.all_coroutines() {
                co.set_flag(F_CANCEL | F_CANCEL_WAKE);
                co.wake();
            }
            shared.wake_all();
            park::park_deadline(
                WaitReason::Other("cancelling leftover coroutines"),
                Some(Instant::now() + Duration::from_millis(5)),
            );
        }
        shared.cancelling.store(false, Ordering::SeqCst);
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

/// Ends the session of a `run` whose caller unwinds out of it (a coroutine
/// of another runtime, cancelled or made to panic while parked in `run`):
/// the session's coroutines, main included, are cancelled and waited for,
/// then the session is removed. Without it the old main would run on with
/// no session of its own, and its end would end the *next* session (a
/// finishing `F_MAIN` coroutine ends whatever session is installed).
struct SessionGuard<'a> {
    rt: &'a Runtime,
    armed: bool,
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            // The caller is unwinding: its parks here do not re-raise its
            // cancellation (coroutine.rs, "Unwinding").
            self.rt.cancel_all();
            *self.rt.shared.session.lock() = None;
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Coroutines still alive outside any session (spawned into this
        // runtime by a `goro::blocking` job or a plain thread after its last
        // `run`) are cancelled on their homes first, as at the end of a
        // session: their destructors run and their joiners get `Cancelled`.
        // (A parked one would otherwise leak: it holds its home worker,
        // whose registry holds it.) Not when dropped on one of its own
        // workers: that would wait for the caller itself.
        let on_own_worker = crate::sched::with_worker(|w| Arc::ptr_eq(&w.rt, &self.shared)).unwrap_or(false);
        if !on_own_worker {
            self.cancel_all();
        }
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.wake_all();
        let me = std::thread::current().id();
        for t in self.threads.lock().drain(..) {
            t.thread().unpark();
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

/// Starts a runtime with the default configuration, runs `f` as its main
/// coroutine and returns `f`'s value (Go's `main`).
///
/// When `f` returns, coroutines still alive are cancelled (their stacks unwind
/// and destructors run) before `run` returns.
///
/// # Panics
///
/// * A panic in `f` is resumed in the caller.
/// * A deadlock panics with a message whose first line is
///   `all coroutines are asleep - deadlock!`, followed by the report. The
///   rule is [`Runtime::run`]'s: every coroutine parked, no timer, blocking
///   job or socket wait pending, and no *active* plain thread, for a grace
///   period of 500 ms. A plain thread that has made a goro call counts as
///   active until it exits, except while it is parked in an untimed goro
///   wait (the thread calling `run` is, for the whole session); one that has
///   not made any goro call yet is covered only by the grace period.
/// * A bad `GORO_WORKERS` panics with the reason.
///
/// ```
/// let v = goro::run(|| {
///     let h = goro::go(|| 21);
///     h.join().unwrap() * 2
/// });
/// assert_eq!(v, 42);
/// ```
#[track_caller]
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let rt = match Runtime::builder().build() {
        Ok(rt) => rt,
        Err(e) => panic!("{e}"),
    };
    match rt.run(f) {
        Ok(v) => v,
        Err(RunError::Panic(p)) => coroutine::resume_unwind(p),
        Err(RunError::Deadlock(r)) => panic!("{DEADLOCK_HEADLINE}\n{r}"),
    }
}

static GLOBAL: OnceLock<Runtime> = OnceLock::new();

/// The global default runtime, for `go` outside any runtime.
pub(crate) fn global_shared() -> &'static Arc<Shared> {
    GLOBAL
        .get_or_init(|| match Runtime::builder().name("goro-global").detect_deadlocks(false).build() {
            Ok(rt) => rt,
            Err(e) => panic!("{e}"),
        })
        .shared()
}

/// The driver every worker parks on (`sched/driver.rs`): the I/O poller
/// (`net/poller.rs`, process-wide) composed with the worker's timer heap
/// (`time/heap.rs`, one per worker thread).
struct IoAndTimers;

impl crate::sched::driver::Driver for IoAndTimers {
    fn worker_started(&self, w: &Arc<WorkerShared>) {
        crate::time::heap::install(w);
    }
    fn worker_exiting(&self) {
        crate::time::heap::hand_off();
    }
    #[inline]
    fn has_timers(&self) -> bool {
        crate::time::heap::has_timers()
    }
    fn fire_timers(&self) {
        crate::time::heap::fire();
    }
    fn next_deadline(&self) -> Option<Instant> {
        crate::time::heap::next_deadline()
    }
    fn add_wake_timer(&self, at: Instant, co: CoRef) {
        crate::time::heap::add_wake(at, co);
    }
    fn disarm_wake_timer(&self, co: &coroutine::CoInner) {
        crate::time::heap::disarm_wake(co);
    }
    fn poll_now(&self) -> bool {
        crate::net::poller::poll_now()
    }
    fn park(&self, parker: &idle::Parker, deadline: Option<Instant>) -> bool {
        // Rule 1 of net/poller.rs: if a coroutine waits on a socket, the
        // sleeper that can take the poller blocks in it.
        crate::net::poller::needed()
            .is_some_and(|p| parker.sleep_polling(deadline, |timeout, enter| p.try_poll(timeout, enter).is_some()))
    }
    fn unpark(&self) {
        if let Some(p) = crate::net::poller::get() {
            p.wake_poller();
        }
    }
    fn maintain(&self, stale: Duration) {
        crate::net::poller::poll_if_stale(stale);
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn ok<T: Send + Sync>() {}
    ok::<Runtime>();
}
