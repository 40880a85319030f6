//! Parking: the only way anything in goro waits.
//!
//! Owns: [`Waiter`], a handle to something that can block (a coroutine or a
//! plain OS thread), every suspend/resume of one, and the registry of plain
//! threads that the deadlock rule reads (`ACTIVE_PLAIN_THREADS`).
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
//! Plain threads (neither a worker nor another goro-internal thread) register
//! on their first goro call (`note_thread`: one thread-local byte test; the
//! coroutine path never reaches it where the call already branches on
//! "coroutine or thread", and pays that one test where it does not). A
//! registered thread counts in `ACTIVE_PLAIN_THREADS` except while it is
//! parked in an untimed goro wait (not `Blocking`, not I/O): the thread takes
//! itself out of the count before parking, and whoever wakes it puts it back
//! (`PlainThread::idle` decides which of the two does, by one swap), so a
//! thread that was woken but has not been scheduled yet already counts.
//! Every such return to activity bumps `PLAIN_WAKEUPS`. A thread-local
//! destructor unregisters the thread when it exits.
//!
//! Wait sites: `park`, `park_recorded` and `park_deadline` are
//! `#[track_caller]`, and so is every function between them and a public
//! blocking call (`recv`, `lock`, `join`, `sleep`, socket reads...), so the
//! park records the user's line (`CoInner::wait_at`) for diagnostics. A
//! caller in that chain without the attribute cuts it: the site recorded is
//! then that caller's line inside goro.
//!
//! Lock order: no goro-internal lock may be held across `park()`; wake after
//! unlocking (collect waiters, drop the lock, then wake).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::wait::WaitReason;

/// Something that can be woken: a parked coroutine or a parked OS thread.
///
/// Cheap to clone (one reference count). Two waiters are the same party when
/// their [`Waiter::id`]s are equal.
#[derive(Clone)]
pub(crate) struct Waiter {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Coroutine(crate::coroutine::CoRef),
    /// A registered plain thread (counted by the deadlock rule).
    Plain(Arc<PlainThread>),
    /// A goro-internal thread, or one that is exiting.
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
            None => thread_waiter(),
        }
    }

    /// The coroutine id behind this waiter, or 0 for a thread (lock holder
    /// and wait-for bookkeeping).
    pub(crate) fn coroutine_id(&self) -> u64 {
        match &self.repr {
            Repr::Coroutine(co) => co.id(),
            _ => 0,
        }
    }

    /// Records what a waiting coroutine waits on (shown by diagnostics, read
    /// by the partial-deadlock search). For the waits that park with
    /// [`park_recorded`], which keeps this record. No-op for threads.
    pub(crate) fn set_wait(&self, reason: WaitReason) {
        if let Repr::Coroutine(co) = &self.repr {
            crate::wait::note_owner_park();
            co.wait.set(reason);
        }
    }

    /// Wakes the party (or leaves a token for its next park).
    pub(crate) fn wake(&self) {
        self.clone().wake_owned();
    }

    /// Like `wake`, consuming the waiter: a coroutine's reference goes
    /// straight into its home's run queue (no extra reference count).
    pub(crate) fn wake_owned(self) {
        match self.repr {
            Repr::Coroutine(co) => co.wake_owned(),
            Repr::Plain(p) => {
                p.set_active();
                p.thread.unpark();
            }
            Repr::Thread(t) => t.unpark(),
        }
    }

    /// The identity of the party behind this waiter.
    pub(crate) fn id(&self) -> WaiterId {
        match &self.repr {
            Repr::Coroutine(co) => WaiterId::Coroutine(co.id()),
            Repr::Plain(p) => WaiterId::Thread(p.thread.id()),
            Repr::Thread(t) => WaiterId::Thread(t.id()),
        }
    }
}

/// The calling party, borrowed: making it takes no reference count. It
/// lives inside a wait record in the party's own frame (a channel op), so
/// the party outlives it; [`WaiterRef::to_waiter`] makes the owned handle a
/// waker needs once it drops its locks.
pub(crate) struct WaiterRef {
    repr: RefRepr,
}

enum RefRepr {
    Coroutine(std::ptr::NonNull<crate::coroutine::CoInner>),
    /// A thread: its owned waiter (threads are rare on the hot path).
    Thread(Waiter),
}

// SAFETY: the coroutine pointer is only used to take a new reference count
// (atomic, thread-safe) while the coroutine is alive (see `to_waiter`).
unsafe impl Send for WaiterRef {}
// SAFETY: as above; `&WaiterRef` allows nothing more.
unsafe impl Sync for WaiterRef {}

impl WaiterRef {
    /// The calling party. Keep the result in the caller's frame (or in
    /// something the caller keeps until it returns).
    #[inline]
    pub(crate) fn current() -> WaiterRef {
        match crate::sched::current_ptr() {
            Some(p) => {
                // SAFETY: non-null: `current_ptr` filters out null, and is
                // `CoRef::as_ptr` of the running coroutine.
                let p = unsafe { std::ptr::NonNull::new_unchecked(p as *mut _) };
                WaiterRef { repr: RefRepr::Coroutine(p) }
            }
            None => WaiterRef { repr: RefRepr::Thread(thread_waiter()) },
        }
    }

    /// Whom to wake for this party once the caller drops its locks: a
    /// plain pointer if the party is a coroutine that can only run on the
    /// calling thread (see [`Wakeup`]), else an owned waiter.
    #[inline]
    pub(crate) fn wakeup(&self) -> Wakeup {
        if let RefRepr::Coroutine(p) = &self.repr {
            // SAFETY: alive, as argued in `to_waiter`.
            if crate::sched::runs_here(unsafe { p.as_ref() }) {
                return Wakeup(WakeRepr::Home(*p));
            }
        }
        Wakeup(WakeRepr::Waiter(self.to_waiter()))
    }

    /// An owned waiter for the same party.
    pub(crate) fn to_waiter(&self) -> Waiter {
        match &self.repr {
            RefRepr::Coroutine(p) => {
                // SAFETY: `p` came from `CoRef::as_ptr` of a live `CoRef`, and
                // the coroutine is still alive: this `WaiterRef` lives in its
                // frame (or in a record it keeps until it returns), and a
                // started coroutine is also held by its worker's registry
                // until it finishes. So the count is >= 1 and we add one.
                unsafe {
                    crate::coroutine::CoRef::increment_strong_count(p.as_ptr() as *const crate::coroutine::CoInner);
                    Waiter { repr: Repr::Coroutine(crate::coroutine::CoRef::from_raw(p.as_ptr() as *const _)) }
                }
            }
            RefRepr::Thread(w) => w.clone(),
        }
    }
}

impl fmt::Debug for WaiterRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            RefRepr::Coroutine(p) => write!(f, "WaiterRef(coroutine {:p})", p.as_ptr()),
            RefRepr::Thread(w) => write!(f, "WaiterRef({w:?})"),
        }
    }
}

impl fmt::Debug for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Waiter({:?})", self.id())
    }
}

/// Whom a channel winner wakes once it has dropped its locks
/// (`chan/imp.rs`): an owned [`Waiter`], or, for a coroutine that can only
/// run on the calling thread (its home, in a runtime that never moves
/// started coroutines), a plain pointer to it, which costs no reference
/// count (`coroutine.rs`, the parked count).
///
/// Why the pointer stays valid: that coroutine is not running (this thread
/// is), and it can only finish, and so be freed, once this thread resumes
/// it, which happens only after the caller returns to its worker loop. A
/// `Wakeup` is consumed before that: every user completes an op under a
/// channel lock, drops the lock and wakes at once, with no park in between.
/// It holds a raw pointer, so it is neither `Send` nor `Sync` and cannot
/// leave the thread.
pub(crate) struct Wakeup(WakeRepr);

enum WakeRepr {
    Waiter(Waiter),
    Home(std::ptr::NonNull<crate::coroutine::CoInner>),
}

/// A wake on the coroutine's home thread (`coroutine/mod.rs`, "Park
/// state"): plain loads and stores. Taking it out of PARKED takes the parked
/// count, which goes straight to this worker's `runnext`. This is the whole
/// same-worker wake: a channel send reaches it from `chan/imp.rs` through
/// [`Wakeup::wake`], and it ends in `sched/worker.rs` (ARCHITECTURE.md, "The
/// one wake path").
///
/// # Safety
///
/// `this` points to a started coroutine (`CoRef::as_ptr` of a `CoRef`) that
/// stays alive until the call returns, and `sched::runs_here` holds for it
/// (this is its home thread).
#[inline]
pub(crate) unsafe fn wake_home(this: *const crate::coroutine::CoInner) {
    use crate::coroutine::{NOTIFIED, PARKED, RUNNING};
    // SAFETY: alive per the contract.
    let co = unsafe { &*this };
    // Relaxed: only this thread writes `state` (coroutine/mod.rs, "Who
    // moves it").
    match co.state.load(Ordering::Relaxed) {
        PARKED => {
            co.state.store(RUNNING, Ordering::Relaxed);
            // SAFETY: we took it out of PARKED, so the parked count is ours;
            // `this` came from `CoRef::as_ptr`.
            let co = unsafe { crate::coroutine::CoRef::from_raw(this) };
            crate::sched::worker::with_worker(move |w| w.push_woken_here(co))
                .expect("goro bug: a home-thread wake off a worker thread");
        }
        RUNNING => co.state.store(NOTIFIED, Ordering::Relaxed),
        _ => {} // NOTIFIED: token already there; DONE: nothing to do
    }
}

impl Wakeup {
    /// Wakes the party (or leaves it a token).
    #[inline]
    pub(crate) fn wake(self) {
        match self.0 {
            WakeRepr::Waiter(w) => w.wake_owned(),
            // SAFETY: alive until this thread next schedules (type doc), and
            // we are still in the caller's slice; `runs_here` held when the
            // `Wakeup` was made, and a home never changes.
            WakeRepr::Home(p) => unsafe { wake_home(p.as_ptr()) },
        }
    }
}

impl fmt::Debug for Wakeup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            WakeRepr::Waiter(w) => write!(f, "Wakeup({w:?})"),
            WakeRepr::Home(p) => write!(f, "Wakeup(coroutine {:p} on this thread)", p.as_ptr()),
        }
    }
}

impl From<Waiter> for Wakeup {
    fn from(w: Waiter) -> Wakeup {
        Wakeup(WakeRepr::Waiter(w))
    }
}

/// Blocks the caller until woken (see the module protocol: may return
/// spuriously, a wake before the park is not lost). `reason` is what
/// diagnostics and the deadlock report show while it waits.
#[inline(always)]
#[track_caller]
pub(crate) fn park(reason: WaitReason) {
    park_deadline_ref(&reason, None);
}

/// Like [`park`], but a coroutine keeps the wait reason recorded with
/// [`Waiter::set_wait`] (which others may refresh while it waits: see
/// `sync/waitq.rs`). `kind` only tells a thread's park what it waits on.
#[track_caller]
pub(crate) fn park_recorded(kind: WaitReason) {
    // Lock waits park here: a wait-for cycle may have just formed.
    crate::wait::note_owner_park();
    if !crate::coroutine::park_current(None, None) {
        park_thread(kind, None);
    }
}

/// Like [`park`], but also returns once `deadline` (if any) has passed.
/// The caller checks the clock itself to tell a timeout from a wake.
#[inline(always)]
#[track_caller]
pub(crate) fn park_deadline(reason: WaitReason, deadline: Option<Instant>) {
    park_deadline_ref(&reason, deadline);
}

/// [`park_deadline`] with the reason borrowed where the caller built it.
/// The hot channel waits park this way: moved by value, the reason (some 80
/// bytes) was copied twice between stack slots on each park, with 16-byte
/// loads over the narrower stores that had just built it (failed store
/// forwarding). Inlined all the way into the caller, with
/// `coroutine::park_current`, so that a resumed coroutine returns through
/// one frame fewer: each return after a stack switch is mispredicted (the
/// CPU's return stack holds the worker's calls, not the coroutine's).
#[inline(always)]
#[track_caller]
pub(crate) fn park_deadline_ref(reason: &WaitReason, deadline: Option<Instant>) {
    if !crate::coroutine::park_current(Some(reason), deadline) {
        park_thread(*reason, deadline);
    }
}

/// The thread side of a park. An untimed wait on goro parties takes a
/// registered plain thread out of the active count for its duration; a
/// timed one, `goro::blocking` and I/O do not (the thread will go on by
/// itself, or something outside goro will wake it).
#[inline(never)]
fn park_thread(reason: WaitReason, deadline: Option<Instant>) {
    let _idle = match (deadline, reason) {
        (None, WaitReason::Blocking | WaitReason::Io { .. }) | (Some(_), _) => None,
        (None, _) => Idle::enter(),
    };
    match deadline {
        None => std::thread::park(),
        Some(d) => {
            let now = Instant::now();
            if d > now {
                std::thread::park_timeout(d - now);
            }
        }
    }
}

/// Registered plain threads not parked in an untimed goro wait. A global
/// deadlock needs this to be zero (see `sched::Shared::looks_deadlocked`).
pub(crate) static ACTIVE_PLAIN_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Bumped each time a registered plain thread becomes active again (woken
/// from an untimed goro wait), so the detector sees activity that began and
/// ended between two of its looks.
pub(crate) static PLAIN_WAKEUPS: AtomicU64 = AtomicU64::new(0);

/// `KIND` values: what this thread is to the deadlock rule.
const UNKNOWN: u8 = 0; // has made no goro call yet
const INTERNAL: u8 = 1; // a worker or other goro thread: never counted
const PLAIN: u8 = 2; // registered: counted in ACTIVE_PLAIN_THREADS
const GONE: u8 = 3; // exiting (its registration is dropped): never counted again

thread_local! {
    /// One of the `KIND` values above. `const` and without a destructor, so
    /// reading it is a single load.
    static KIND: Cell<u8> = const { Cell::new(UNKNOWN) };
    /// The registration of a plain thread; its destructor unregisters.
    static RECORD: RefCell<Option<Registration>> = const { RefCell::new(None) };
}

/// A registered plain thread, shared with the waiters it leaves on queues.
pub(crate) struct PlainThread {
    thread: std::thread::Thread,
    /// Parked in an untimed goro wait and taken out of the active count.
    /// Whoever swaps it back to false (a waker, or the thread itself when
    /// its park returns) puts the thread back into the count: exactly once.
    idle: AtomicBool,
}

impl PlainThread {
    fn set_active(&self) {
        // SeqCst on all three: the detector reads the counters with SeqCst
        // together with the workers' sleep count and timer counts.
        if self.idle.swap(false, Ordering::SeqCst) {
            ACTIVE_PLAIN_THREADS.fetch_add(1, Ordering::SeqCst);
            PLAIN_WAKEUPS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

struct Registration(Arc<PlainThread>);

impl Drop for Registration {
    fn drop(&mut self) {
        // The thread is exiting, so it is not parked: it is counted once.
        KIND.with(|k| k.set(GONE));
        ACTIVE_PLAIN_THREADS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Notes that the calling thread makes a goro call: a plain thread's first
/// one registers it. Costs one thread-local byte test afterwards.
#[inline]
pub(crate) fn note_thread() {
    if KIND.with(Cell::get) == UNKNOWN {
        register();
    }
}

#[cold]
fn register() {
    if crate::sched::with_worker(|_| ()).is_some() {
        KIND.with(|k| k.set(INTERNAL));
        return;
    }
    // During thread-local teardown no new registration can be kept.
    let ok = RECORD.try_with(|r| {
        let rec = Arc::new(PlainThread { thread: std::thread::current(), idle: AtomicBool::new(false) });
        ACTIVE_PLAIN_THREADS.fetch_add(1, Ordering::SeqCst);
        *r.borrow_mut() = Some(Registration(rec));
    });
    KIND.with(|k| k.set(if ok.is_ok() { PLAIN } else { GONE }));
}

/// Marks the calling thread as part of goro (workers, the monitor, the timer
/// driver, the blocking pool): never counted as a plain thread.
pub(crate) fn mark_internal_thread() {
    KIND.with(|k| k.set(INTERNAL));
}

fn registered() -> Option<Arc<PlainThread>> {
    if KIND.with(Cell::get) != PLAIN {
        return None;
    }
    RECORD.try_with(|r| r.borrow().as_ref().map(|g| g.0.clone())).ok().flatten()
}

fn thread_waiter() -> Waiter {
    note_thread();
    match registered() {
        Some(p) => Waiter { repr: Repr::Plain(p) },
        None => Waiter { repr: Repr::Thread(std::thread::current()) },
    }
}

/// A registered plain thread parked in an untimed goro wait, out of the
/// active count until it is woken or the park returns.
struct Idle(Arc<PlainThread>);

impl Idle {
    fn enter() -> Option<Idle> {
        note_thread();
        let p = registered()?;
        // Flag first, then leave the count: a waker that swaps the flag in
        // between adds the thread back before it left, never after.
        p.idle.store(true, Ordering::SeqCst);
        ACTIVE_PLAIN_THREADS.fetch_sub(1, Ordering::SeqCst);
        Some(Idle(p))
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        self.0.set_active();
    }
}
