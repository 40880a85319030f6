//! The poller: socket readiness for parked coroutines (and threads).
//!
//! Owns: one `mio::Poll` per process, served by the `goro-poller` thread,
//! and a [`Registration`] per socket with a read and a write slot.
//!
//! Protocol (edge-triggered readiness is a hint, the OS call decides):
//!  1. Clear the direction's `ready` bit, then try the non-blocking call.
//!  2. On `WouldBlock`, lock the slot: if `ready` was set meanwhile (an edge
//!     arrived during the call), retry; else leave a `Waiter` and park.
//!  3. The poller thread sets `ready` and wakes the waiter for every event.
//!
//! So no edge is lost, and only the parties waiting on that socket and
//! direction are woken.
//!
//! While a coroutine waits here its runtime counts an external wait, so the
//! deadlock detector never mistakes a slow peer for a deadlock.
//!
//! Known gap vs. Go's netpoller: readiness crosses one thread hop (the
//! poller thread) instead of being polled by an idle worker.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use mio::{Events, Interest, Poll, Registry, Token};
use parking_lot::Mutex;

use crate::diag::WaitReason;
use crate::park::{self, Waiter};

#[derive(Default)]
struct Slot {
    ready: bool,
    waiter: Option<Waiter>,
}

/// One registered socket.
pub(crate) struct Registration {
    token: usize,
    fd: i32,
    read: Mutex<Slot>,
    write: Mutex<Slot>,
    /// Closed by us (`TcpListener::close`): waits fail at once.
    pub(crate) closed: AtomicBool,
}

struct Poller {
    registry: Registry,
    sources: Mutex<crate::sched::SlabOf<Arc<Registration>>>,
}

fn poller() -> io::Result<&'static Poller> {
    static P: OnceLock<Result<&'static Poller, String>> = OnceLock::new();
    let r = P.get_or_init(|| {
        raise_nofile_limit();
        let poll = Poll::new().map_err(|e| e.to_string())?;
        let registry = poll.registry().try_clone().map_err(|e| e.to_string())?;
        let p: &'static Poller = Box::leak(Box::new(Poller { registry, sources: Mutex::new(Default::default()) }));
        std::thread::Builder::new()
            .name("goro-poller".into())
            .spawn(move || run(poll, p))
            .map_err(|e| e.to_string())?;
        Ok(p)
    });
    r.as_ref().map(|p| *p).map_err(|e| io::Error::other(format!("goro: cannot start the poller: {e}")))
}

fn run(mut poll: Poll, p: &'static Poller) {
    crate::park::mark_internal_thread();
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            eprintln!("goro: poller failed: {e}");
            return;
        }
        let mut wake = Vec::new();
        {
            let sources = p.sources.lock();
            for ev in events.iter() {
                let Some(reg) = sources.get(ev.token().0) else { continue };
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    let mut s = reg.read.lock();
                    s.ready = true;
                    wake.extend(s.waiter.take());
                }
                if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                    let mut s = reg.write.lock();
                    s.ready = true;
                    wake.extend(s.waiter.take());
                }
            }
        }
        for w in wake {
            w.wake();
        }
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
        read: Mutex::new(Slot::default()),
        write: Mutex::new(Slot::default()),
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

impl Registration {
    /// Marks closed and wakes every waiter (they fail).
    pub(crate) fn close_waiters(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let r = self.read.lock().waiter.take();
        let w = self.write.lock().waiter.take();
        for x in [r, w].into_iter().flatten() {
            x.wake();
        }
    }

    /// Runs the non-blocking `op` until it does not return `WouldBlock`,
    /// parking on readiness in between (module protocol).
    pub(crate) fn io<R>(
        &self,
        write: bool,
        deadline: Option<Instant>,
        mut op: impl FnMut() -> io::Result<R>,
    ) -> io::Result<R> {
        let slot = if write { &self.write } else { &self.read };
        let _external = crate::sched::with_worker(|w| crate::runtime::ExternalWait::new(w.rt.clone()));
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return Err(io::Error::new(io::ErrorKind::NotConnected, "goro: socket closed"));
            }
            slot.lock().ready = false;
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
            loop {
                {
                    let mut s = slot.lock();
                    if s.ready || self.closed.load(Ordering::SeqCst) {
                        break;
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        s.waiter = None;
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "goro: I/O timed out"));
                    }
                    s.waiter = Some(Waiter::current());
                }
                park::park_deadline(WaitReason::Io { fd: self.fd, write }, deadline);
            }
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
