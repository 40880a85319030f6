//! The netpoller: socket readiness for parked coroutines, polled by the
//! scheduler's own workers (Go's `netpoll`).
//!
//! Owns: the process's one `mio::Poll` (behind a try-lock: whoever holds it
//! is *the* poller), its `mio::Waker`, and a [`Registration`] per socket
//! with a read and a write slot.
//!
//! Who polls (no thread of its own, no hop on the hot path):
//!  1. The last worker to go idle blocks in `epoll_wait` instead of on its
//!     condition variable, with the timeout of its next timer
//!     (`sched/worker.rs::sleep`). Its `Parker` is then in state `POLLING`,
//!     and `unpark` writes the mio `Waker` instead of signalling.
//!  2. A worker that runs out of local work, and every 61st scheduling tick
//!     of a busy one, polls without blocking, so ready I/O is not starved.
//!  3. The runtime monitor polls without blocking when nobody has polled for
//!     10 ms (workers stuck in long-running coroutines).
//!
//! Polling is skipped entirely while no coroutine waits on a socket.
//!
//! Protocol per direction (edge-triggered readiness is a hint, the OS call
//! decides):
//!  1. Take a snapshot of the direction's event generation `seq`, then try
//!     the non-blocking call (skipped, straight to step 2, if a call at this
//!     same generation found the socket drained and no event has said the
//!     peer closed: `Registration::io_read`).
//!  2. On `WouldBlock`, lock the slot: if `seq` moved since the snapshot (an
//!     edge arrived during the call), retry; else leave a `Waiter` and park.
//!  3. The poller bumps `seq`, then takes and wakes the waiters, for every
//!     event.
//!
//! Each party compares with its own snapshot, so several parties may wait
//! on one direction (coroutines sharing a UDP socket): one party's call
//! never hides an event from another (a shared "ready" bit that each call
//! cleared would).
//!
//! So no edge is lost, and only the parties waiting on that socket and
//! direction are woken. A plain OS thread does not use the poller at all: it
//! blocks in `poll(2)` on its own socket (level-triggered), in slices of
//! `THREAD_SLICE` so that a `close` from elsewhere is noticed.
//!
//! While a coroutine waits here its runtime counts an external wait, so the
//! deadlock detector never mistakes a slow peer for a deadlock.
//!
//! Lock order: poll lock -> sources -> slot. Waiters are woken after the
//! slot locks are released.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Registry, Token};
use parking_lot::Mutex;

use crate::park::{self, Waiter};
use crate::wait::WaitReason;

/// The waker's token (sources use slab keys, far below).
const WAKER: Token = Token(usize::MAX);
/// How long a plain thread blocks in `poll(2)` before re-checking `closed`.
const THREAD_SLICE: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Slot {
    /// Parties parked on this direction (usually one; several coroutines
    /// may share a socket, say readers of one UDP socket).
    waiters: Vec<Waiter>,
}

/// One direction of a socket: its readiness generation (bumped by the
/// poller for every event, before it takes the waiters under the lock) and
/// the parked parties.
struct Dir {
    seq: AtomicU64,
    /// The generation at which an op last found the socket empty (a short
    /// stream read, or `WouldBlock`); `NOT_DRAINED` if the last op did not.
    /// While `seq` still equals it, a new attempt would fail too, so it
    /// parks without the system call.
    drained_at: AtomicU64,
    /// The peer closed this direction (or the socket failed), as an event
    /// said. A short read may leave that end of stream queued behind the
    /// data it took, and no further edge will come for it: from then on
    /// every attempt makes the system call.
    hup: AtomicBool,
    slot: Mutex<Slot>,
}

const NOT_DRAINED: u64 = u64::MAX;

impl Default for Dir {
    fn default() -> Dir {
        Dir {
            seq: AtomicU64::new(0),
            drained_at: AtomicU64::new(NOT_DRAINED),
            hup: AtomicBool::new(false),
            slot: Mutex::default(),
        }
    }
}

/// One registered socket.
pub(crate) struct Registration {
    token: usize,
    fd: i32,
    read: Dir,
    write: Dir,
    /// Closed by us (`TcpListener::close`): waits fail at once.
    pub(crate) closed: AtomicBool,
}

struct PollState {
    poll: Poll,
    events: Events,
}

pub(crate) struct Poller {
    registry: Registry,
    state: Mutex<PollState>,
    waker: mio::Waker,
    sources: Mutex<crate::sched::SlabOf<Arc<Registration>>>,
    /// Coroutines parked on a socket, in any runtime, striped by the
    /// worker they parked on (`Waiting`). All zero: nobody polls.
    waiting: [Stripe; STRIPES],
    /// When a poll last finished (ns since `epoch`), for the monitor.
    last_poll: AtomicU64,
    epoch: Instant,
}

thread_local! {
    /// The poll's wake list, kept between polls (`Poller::try_poll`).
    static WAKE: std::cell::Cell<Vec<Waiter>> = const { std::cell::Cell::new(Vec::new()) };
}

static POLLER: OnceLock<Result<&'static Poller, String>> = OnceLock::new();

fn poller() -> io::Result<&'static Poller> {
    let r = POLLER.get_or_init(|| {
        raise_nofile_limit();
        let poll = Poll::new().map_err(|e| e.to_string())?;
        let registry = poll.registry().try_clone().map_err(|e| e.to_string())?;
        let waker = mio::Waker::new(poll.registry(), WAKER).map_err(|e| e.to_string())?;
        let p: &'static Poller = Box::leak(Box::new(Poller {
            registry,
            state: Mutex::new(PollState { poll, events: Events::with_capacity(1024) }),
            waker,
            sources: Mutex::new(Default::default()),
            waiting: [const { Stripe(AtomicUsize::new(0)) }; STRIPES],
            last_poll: AtomicU64::new(0),
            epoch: Instant::now(),
        }));
        Ok(p)
    });
    r.as_ref().map(|p| *p).map_err(|e| io::Error::other(format!("goro: cannot start the poller: {e}")))
}

/// The poller, if it has been started.
pub(crate) fn get() -> Option<&'static Poller> {
    match POLLER.get() {
        Some(Ok(p)) => Some(p),
        _ => None,
    }
}

/// The poller, if some coroutine waits on a socket right now.
#[inline]
pub(crate) fn needed() -> Option<&'static Poller> {
    get().filter(|p| p.waiting.iter().any(|s| s.0.load(Ordering::SeqCst) != 0))
}

/// Polls without blocking, if I/O is awaited and nobody else is polling
/// (rule 2). Returns whether anything was woken.
#[inline]
pub(crate) fn poll_now() -> bool {
    match needed() {
        Some(p) => p.try_poll(Some(Duration::ZERO), || true) == Some(true),
        None => false,
    }
}

/// The monitor's backstop (rule 3): polls if nobody has for `stale`.
pub(crate) fn poll_if_stale(stale: Duration) {
    if let Some(p) = needed() {
        let last = Duration::from_nanos(p.last_poll.load(Ordering::Relaxed));
        if p.epoch.elapsed().saturating_sub(last) >= stale {
            p.try_poll(Some(Duration::ZERO), || true);
        }
    }
}

impl Poller {
    /// Wakes the worker blocked in `poll` (its `Parker` saw `POLLING`).
    pub(crate) fn wake_poller(&self) {
        let _ = self.waker.wake();
    }

    /// Becomes the poller if nobody is, and polls for up to `timeout`
    /// (`None`: until an event or the waker). `enter` runs with the poll
    /// lock held, just before blocking; if it returns false the poll is
    /// skipped (the caller was woken meanwhile). Returns `None` if it did not poll (another party holds the poller, or `enter`
    /// said no), else whether it woke anyone.
    pub(crate) fn try_poll(&self, timeout: Option<Duration>, enter: impl FnOnce() -> bool) -> Option<bool> {
        let mut st = self.state.try_lock()?;
        if !enter() {
            return None;
        }
        let PollState { poll, events } = &mut *st;
        if let Err(e) = poll.poll(events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                eprintln!("goro: epoll_wait failed: {e}");
            }
            return Some(false);
        }
        self.last_poll.store(self.epoch.elapsed().as_nanos() as u64, Ordering::Relaxed);
        // The wake list is reused across polls (one per thread): a poll
        // allocates nothing.
        let mut wake = WAKE.with(|w| w.take());
        {
            let sources = self.sources.lock();
            for ev in events.iter() {
                if ev.token() == WAKER {
                    continue;
                }
                let Some(reg) = sources.get(ev.token().0) else { continue };
                if ev.is_read_closed() || ev.is_error() {
                    reg.read.hup.store(true, Ordering::SeqCst);
                }
                if ev.is_write_closed() || ev.is_error() {
                    reg.write.hup.store(true, Ordering::SeqCst);
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    reg.read.set_ready(&mut wake);
                }
                if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                    reg.write.set_ready(&mut wake);
                }
            }
        }
        drop(st);
        let any = !wake.is_empty();
        for w in wake.drain(..) {
            w.wake_owned();
        }
        WAKE.with(|w| w.set(wake));
        Some(any)
    }
}

/// Registers `src` for read and write readiness.
pub(crate) fn register(src: &mut impl mio::event::Source, fd: i32) -> io::Result<Arc<Registration>> {
    let p = poller()?;
    let mut sources = p.sources.lock();
    let token = sources.vacant_key();
    let reg = Arc::new(Registration {
        token,
        fd,
        read: Dir::default(),
        write: Dir::default(),
        closed: AtomicBool::new(false),
    });
    p.registry.register(src, Token(token), Interest::READABLE | Interest::WRITABLE)?;
    sources.insert(reg.clone());
    Ok(reg)
}

/// Deregisters before the socket is closed; wakes anyone still waiting.
pub(crate) fn deregister(src: &mut impl mio::event::Source, reg: &Registration) {
    if let Ok(p) = poller() {
        let _ = p.registry.deregister(src);
        p.sources.lock().remove(reg.token);
    }
    reg.close_waiters();
}

/// Stripes of the waiting count: one cache line each, so that coroutines
/// parking on different workers do not bounce one line between cores
/// (twice per wait: an echo server's every message).
const STRIPES: usize = 8;

#[repr(align(128))]
struct Stripe(AtomicUsize);

/// Counts a coroutine parked on a socket while alive (`Poller::waiting`),
/// in the stripe of the worker it parked on. The decrement goes to the same
/// stripe (the guard remembers it, even if the coroutine migrates), so
/// every stripe stays a true count, never below zero: a reader that finds
/// every stripe at zero found no waiter in any of them. It also counts the
/// coroutine in its worker's `io_waiting`, which spawn placement reads.
struct Waiting {
    stripe: &'static Stripe,
    _worker: crate::sched::IoWaiting,
}
impl Waiting {
    fn new(p: &'static Poller) -> Waiting {
        let worker = crate::sched::IoWaiting::new();
        let s = &p.waiting[worker.worker().unwrap_or(0) % STRIPES];
        // SeqCst: pairs with the loads in `needed` of a worker about to
        // sleep; either it sees us (our stripe is nonzero, and no stripe is
        // ever negative, so it polls), or we see it and it is woken below.
        s.0.fetch_add(1, Ordering::SeqCst);
        Waiting { stripe: s, _worker: worker }
    }
}
impl Drop for Waiting {
    fn drop(&mut self) {
        self.stripe.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Dir {
    /// An event for this direction: bump the generation, then move the
    /// waiters into `out` (module protocol step 3; a waiter checks the
    /// generation under the lock). The slot keeps its vector's capacity, so
    /// parking here again allocates nothing.
    fn set_ready(&self, out: &mut Vec<Waiter>) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        out.append(&mut self.slot.lock().waiters);
    }
}

impl Registration {
    /// Forgets what is known of readiness (after our own `shutdown`, which
    /// changes what the next call returns without an edge being promised):
    /// the next calls go to the OS, and a parked party retries.
    pub(crate) fn kick(&self) {
        let mut wake = Vec::new();
        for d in [&self.read, &self.write] {
            d.set_ready(&mut wake);
        }
        for w in wake {
            w.wake_owned();
        }
    }

    /// Marks closed and wakes every waiter (they see `closed` and fail).
    pub(crate) fn close_waiters(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.kick();
    }

    fn closed_err() -> io::Error {
        io::Error::new(io::ErrorKind::NotConnected, "goro: socket closed")
    }

    /// Runs the non-blocking `op` until it does not return `WouldBlock`,
    /// waiting for readiness in between (module protocol).
    #[track_caller]
    pub(crate) fn io<R>(
        &self,
        write: bool,
        deadline: Option<Instant>,
        op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        self.io_ex(write, deadline, op, |_| false)
    }

    /// A stream read into `len` bytes. A short read (not end-of-stream,
    /// which repeats without an edge) drains the socket (a
    /// stream read returns all it has, up to `len`), so the next read parks
    /// at once unless an edge has arrived since: it saves the `EAGAIN` read
    /// of every request/response exchange. Edge-triggered readiness reports
    /// every arrival after the read, so nothing is missed. The exception is
    /// an end of stream that arrived with the data, in the same edge: the
    /// short read leaves it queued and no edge follows, so once an event
    /// has said the peer closed (`Dir::hup`) every read is tried.
    #[track_caller]
    pub(crate) fn io_read(
        &self,
        deadline: Option<Instant>,
        len: usize,
        op: impl FnMut() -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.io_ex(false, deadline, op, |&n| n > 0 && n < len)
    }

    #[track_caller]
    fn io_ex<R>(
        &self,
        write: bool,
        deadline: Option<Instant>,
        mut op: impl FnMut() -> io::Result<R>,
        drains: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        if crate::coroutine::current_id().is_none() {
            return self.io_thread(write, deadline, op);
        }
        let dir = if write { &self.write } else { &self.read };
        // Taken only once the op would block: a call that completes at once
        // touches no shared counter.
        let mut external = None;
        let mut waiting = None;
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return Err(Self::closed_err());
            }
            // SeqCst: the snapshot is ordered before the OS call reads the
            // socket, so data arriving after that read bumps `seq` after it.
            let snap = dir.seq.load(Ordering::SeqCst);
            // `hup` is set before the generation moves, so a snapshot taken
            // after that edge sees it.
            if dir.drained_at.load(Ordering::Relaxed) != snap || dir.hup.load(Ordering::SeqCst) {
                match op() {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => dir.drained_at.store(snap, Ordering::Relaxed),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Ok(r) => {
                        dir.drained_at.store(if drains(&r) { snap } else { NOT_DRAINED }, Ordering::Relaxed);
                        return Ok(r);
                    }
                    Err(e) => {
                        dir.drained_at.store(NOT_DRAINED, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
            let p = poller()?;
            waiting.get_or_insert_with(|| Waiting::new(p));
            if external.is_none() {
                external = crate::sched::with_worker(|w| crate::sched::ExternalWait::new(w.rt.clone()));
            }
            loop {
                {
                    let mut s = dir.slot.lock();
                    // An event since our snapshot: retry (each party compares
                    // with its own snapshot, so one party's call never hides
                    // an event from another).
                    if dir.seq.load(Ordering::SeqCst) != snap || self.closed.load(Ordering::SeqCst) {
                        break;
                    }
                    let me = Waiter::current();
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        let id = me.id();
                        s.waiters.retain(|w| w.id() != id);
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "goro: I/O timed out"));
                    }
                    if !s.waiters.iter().any(|w| w.id() == me.id()) {
                        s.waiters.push(me);
                    }
                }
                park::park_deadline(WaitReason::Io { fd: self.fd, write }, deadline);
            }
        }
    }

    /// A plain thread's wait: `poll(2)` on the socket itself.
    fn io_thread<R>(
        &self,
        write: bool,
        deadline: Option<Instant>,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return Err(Self::closed_err());
            }
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
            let mut slice = THREAD_SLICE;
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "goro: I/O timed out"));
                }
                slice = slice.min(d - now);
            }
            let mut pfd =
                libc::pollfd { fd: self.fd, events: if write { libc::POLLOUT } else { libc::POLLIN }, revents: 0 };
            let ms = slice.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd on our stack, count 1; the fd stays
            // open while `self` (its registration) is borrowed.
            unsafe { libc::poll(&mut pfd, 1, ms) };
        }
    }
}
/// Go 1.19+ raises the soft open-file limit to the hard one at start-up;
/// goro does it on first use of `goro::net`.
fn raise_nofile_limit() {
    // SAFETY: getrlimit/setrlimit on a stack-allocated struct; no memory is
    // shared with anything else.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// The system's maximum listen backlog (Go reads the same file).
pub(crate) fn max_backlog() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n: &i32| n > 0)
        .unwrap_or(4096)
}
