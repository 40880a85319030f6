//! Network I/O that parks a coroutine instead of a thread (Go's `net`, in
//! `std::net`'s shapes).
//!
//! Owns: [`TcpListener`], [`TcpStream`], [`UdpSocket`], [`UnixListener`],
//! [`UnixStream`], and the poller (`poller.rs`).
//!
//! Every socket is non-blocking underneath and registered with the poller;
//! an operation that would block parks the caller until the socket is ready
//! (a plain OS thread simply blocks). No worker thread ever blocks on a
//! socket. Errors are `io::Error`s with the OS cause; timeouts are
//! `ErrorKind::TimedOut`.
//!
//! As in Go: the first use raises the soft open-file limit to the hard limit,
//! `bind` listens with the system's maximum backlog, and `accept` rides out
//! `EMFILE`/`ENFILE` (too many open files) by backing off and retrying.

pub(crate) mod poller;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poller::Registration;

/// A registered non-blocking socket.
struct Io<T: mio::event::Source + AsRawFd> {
    io: T,
    reg: Arc<Registration>,
    read_timeout: TimeoutCell,
    write_timeout: TimeoutCell,
}

/// An `Option<Duration>` read on every I/O call without a lock: nanoseconds,
/// 0 for none (a zero timeout is rejected by the setters, as in std).
#[derive(Default)]
struct TimeoutCell(std::sync::atomic::AtomicU64);

impl TimeoutCell {
    fn get(&self) -> Option<Duration> {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }
    fn set(&self, d: Option<Duration>) {
        let n = d.map_or(0, |d| d.as_nanos().clamp(1, u64::MAX as u128) as u64);
        self.0.store(n, std::sync::atomic::Ordering::Relaxed);
    }
    fn deadline(&self) -> Option<Instant> {
        self.get().and_then(|t| Instant::now().checked_add(t))
    }
}

impl<T: mio::event::Source + AsRawFd> Io<T> {
    fn new(mut io: T) -> io::Result<Io<T>> {
        let fd = io.as_raw_fd();
        let reg = poller::register(&mut io, fd)?;
        Ok(Io { io, reg, read_timeout: TimeoutCell::default(), write_timeout: TimeoutCell::default() })
    }

    #[track_caller]
    fn read_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.with(false, self.read_timeout.deadline(), op)
    }

    /// A stream read into a buffer of `len` bytes: a short read tells the
    /// poller protocol the socket is drained (`Registration::io_read`).
    #[track_caller]
    fn read_stream(&self, len: usize, mut op: impl FnMut(&T) -> io::Result<usize>) -> io::Result<usize> {
        self.reg.io_read(self.read_timeout.deadline(), len, || op(&self.io))
    }

    #[track_caller]
    fn write_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.with(true, self.write_timeout.deadline(), op)
    }

    #[track_caller]
    fn with<R>(
        &self,
        write: bool,
        deadline: Option<Instant>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        self.reg.io(write, deadline, || op(&self.io))
    }
}

impl<T: mio::event::Source + AsRawFd> Io<T> {
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.read_timeout.set(check_timeout(d)?);
        Ok(())
    }

    fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.write_timeout.set(check_timeout(d)?);
        Ok(())
    }

    /// A listener's `close`: shut the socket down so the OS fails later
    /// `accept`s, and wake the coroutines parked in one.
    fn close_listener(&self) -> io::Result<()> {
        // SAFETY: `shutdown` on a socket this `Io` owns; the descriptor stays
        // valid (it is closed only when the `Io` drops).
        unsafe { libc::shutdown(self.io.as_raw_fd(), libc::SHUT_RDWR) };
        self.reg.close_waiters();
        Ok(())
    }
}

/// What a connected byte stream's mio source offers besides `Read`/`Write`
/// on `&S` (required where it is used): the one shared implementation of [`TcpStream`] and
/// [`UnixStream`] (their reads, writes, `shutdown` and connect wait) is
/// written once against it, on `Io<S>`.
trait StreamSource: mio::event::Source + AsRawFd {
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    fn take_error(&self) -> io::Result<Option<io::Error>>;
    /// `Ok` once a non-blocking connect has completed (`WouldBlock` while
    /// it is in flight).
    fn connected(&self) -> io::Result<()>;
}

impl StreamSource for mio::net::TcpStream {
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        mio::net::TcpStream::shutdown(self, how)
    }
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        mio::net::TcpStream::take_error(self)
    }
    fn connected(&self) -> io::Result<()> {
        match self.peer_addr() {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(io::ErrorKind::WouldBlock.into()),
            Err(e) => Err(e),
        }
    }
}

impl StreamSource for mio::net::UnixStream {
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        mio::net::UnixStream::shutdown(self, how)
    }
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        mio::net::UnixStream::take_error(self)
    }
    fn connected(&self) -> io::Result<()> {
        // A Unix-domain connect completes (or fails) at once, or its
        // writability says so; `take_error` has the failure.
        Ok(())
    }
}

impl<S: StreamSource> Io<S>
where
    for<'a> &'a S: Read + Write,
{
    /// Registers a freshly started non-blocking connect and parks until it
    /// completes, fails, or `deadline` passes.
    #[track_caller]
    fn connect(s: S, deadline: Option<Instant>) -> io::Result<Io<S>> {
        let io = Io::new(s)?;
        io.with(true, deadline, |s| {
            if let Some(e) = s.take_error()? {
                return Err(e);
            }
            s.connected()
        })?;
        Ok(io)
    }

    #[track_caller]
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        self.read_stream(len, |mut s| s.read(buf))
    }

    #[track_caller]
    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.write_with(|mut s| s.write(buf))
    }

    /// Shuts down one or both directions, then kicks the poller so that
    /// coroutines parked on this socket see the new state.
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let r = self.io.shutdown(how);
        self.reg.kick();
        r
    }
}

impl<T: mio::event::Source + AsRawFd> Drop for Io<T> {
    fn drop(&mut self) {
        poller::deregister(&mut self.io, &self.reg);
    }
}

fn check_timeout(d: Option<Duration>) -> io::Result<Option<Duration>> {
    if d == Some(Duration::ZERO) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot set a 0 duration timeout"));
    }
    Ok(d)
}

fn first_addr(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    let v: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    if v.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any addresses"));
    }
    Ok(v)
}

/// The first success of `f` over the resolved addresses, else the last
/// error (std's `each_addr`).
fn each_addr<T>(addr: impl ToSocketAddrs, mut f: impl FnMut(SocketAddr) -> io::Result<T>) -> io::Result<T> {
    let mut last = None;
    for a in first_addr(addr)? {
        match f(a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("first_addr returns at least one address"))
}

/// A TCP listener (`std::net::TcpListener`'s shape, Go's `net.Listener`).
///
/// ```no_run
/// goro::run(|| {
///     let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let (stream, peer) = ln.accept().unwrap();
///     goro::go(move || std::io::copy(&mut &stream, &mut &stream));
/// });
/// ```
pub struct TcpListener {
    inner: Io<mio::net::TcpListener>,
}

/// A TCP connection. `Read`/`Write` are implemented for the value and for
/// `&TcpStream`, so `io::copy(&mut &s, &mut &s)` echoes.
pub struct TcpStream {
    inner: Io<mio::net::TcpStream>,
}

impl TcpListener {
    /// Binds and listens with the system's maximum backlog.
    ///
    /// # Errors
    ///
    /// The OS error (address in use, permission, ...).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let l = each_addr(addr, mio::net::TcpListener::bind)?;
        // SAFETY: `listen` on a socket we own, already bound and listening;
        // it only raises the backlog.
        unsafe { libc::listen(l.as_raw_fd(), poller::max_backlog()) };
        Ok(TcpListener { inner: Io::new(l)? })
    }

    /// Waits for a connection.
    ///
    /// # Errors
    ///
    /// After [`close`](Self::close), an error; OS errors other than running
    /// out of file descriptors (which are retried with back-off).
    #[track_caller]
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let mut backoff = Duration::from_millis(5);
        loop {
            match self.inner.read_with(|l| l.accept()) {
                Ok((s, a)) => return Ok((TcpStream { inner: Io::new(s)? }, a)),
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                    crate::time::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// An endless iterator of accepted connections.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io.local_addr()
    }

    /// Stops listening: coroutines blocked in `accept` wake with an error,
    /// and later `accept`s fail (Go's `ln.Close()`). The descriptor itself is
    /// released when the listener is dropped.
    pub fn close(&self) -> io::Result<()> {
        self.inner.close_listener()
    }
}

/// Iterator of [`TcpListener::accept`] results.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    #[track_caller]
    fn next(&mut self) -> Option<Self::Item> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

impl TcpStream {
    /// Connects, parking until the connection is established.
    ///
    /// # Errors
    ///
    /// The OS error of the last address tried.
    #[track_caller]
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        Self::connect_deadline(addr, None)
    }

    /// Connects, giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut`, or the OS error.
    #[track_caller]
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        Self::connect_deadline(addr, Instant::now().checked_add(check_timeout(Some(timeout))?.unwrap_or_default()))
    }

    #[track_caller]
    fn connect_deadline(addr: impl ToSocketAddrs, deadline: Option<Instant>) -> io::Result<TcpStream> {
        let mut last = None;
        for a in first_addr(addr)? {
            let s = match mio::net::TcpStream::connect(a) {
                Ok(s) => s,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match Io::connect(s, deadline) {
                Ok(inner) => return Ok(TcpStream { inner }),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")))
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io.peer_addr()
    }
    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io.local_addr()
    }
    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }
    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.io.set_nodelay(on)
    }
    /// Reads `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.io.nodelay()
    }
    /// Read timeout (`None`: wait forever). A zero duration is an error, as
    /// in std.
    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(d)
    }
    /// Write timeout (`None`: wait forever).
    pub fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.inner.set_write_timeout(d)
    }
    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.inner.read_timeout.get())
    }
    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.inner.write_timeout.get())
    }
}

/// A UDP socket.
pub struct UdpSocket {
    inner: Io<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr`.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        Ok(UdpSocket { inner: Io::new(each_addr(addr, mio::net::UdpSocket::bind)?)? })
    }
    /// Sends a datagram to `addr`.
    #[track_caller]
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let a = first_addr(addr)?[0];
        self.inner.write_with(|s| s.send_to(buf, a))
    }
    /// Receives a datagram and its sender.
    #[track_caller]
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.read_with(|s| s.recv_from(buf))
    }
    /// Sets the default peer for `send`/`recv`.
    #[track_caller]
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        self.inner.io.connect(first_addr(addr)?[0])
    }
    /// Sends to the connected peer.
    #[track_caller]
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_with(|s| s.send(buf))
    }
    /// Receives from the connected peer.
    #[track_caller]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| s.recv(buf))
    }
    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io.local_addr()
    }
    /// The connected peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io.peer_addr()
    }
    /// Read timeout for `recv`/`recv_from`.
    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(d)
    }
    /// Write timeout for `send`/`send_to`.
    pub fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.inner.set_write_timeout(d)
    }
}

/// A Unix-domain stream listener.
pub struct UnixListener {
    inner: Io<mio::net::UnixListener>,
}

/// A Unix-domain stream; `Read`/`Write` for the value and for `&`.
pub struct UnixStream {
    inner: Io<mio::net::UnixStream>,
}

impl UnixListener {
    /// Binds to the socket path `p`.
    pub fn bind(p: impl AsRef<Path>) -> io::Result<UnixListener> {
        Ok(UnixListener { inner: Io::new(mio::net::UnixListener::bind(p)?)? })
    }
    /// Waits for a connection.
    #[track_caller]
    pub fn accept(&self) -> io::Result<(UnixStream, std::os::unix::net::SocketAddr)> {
        let (s, a) = self.inner.read_with(|l| l.accept())?;
        Ok((UnixStream { inner: Io::new(s)? }, a))
    }
    /// Wakes blocked `accept`s with an error; later ones fail.
    pub fn close(&self) -> io::Result<()> {
        self.inner.close_listener()
    }
}

impl UnixStream {
    /// Connects to the socket path `p`.
    #[track_caller]
    pub fn connect(p: impl AsRef<Path>) -> io::Result<UnixStream> {
        Ok(UnixStream { inner: Io::connect(mio::net::UnixStream::connect(p)?, None)? })
    }
    /// A connected pair.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((UnixStream { inner: Io::new(a)? }, UnixStream { inner: Io::new(b)? }))
    }
    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }
    /// Read timeout.
    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(d)
    }
    /// Write timeout.
    pub fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.inner.set_write_timeout(d)
    }
}

macro_rules! fd_impls {
    ($($t:ty),*) => {$(
        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.inner.io.as_raw_fd()
            }
        }
        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.inner.io.as_fd()
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t)).field("fd", &self.inner.io.as_raw_fd()).finish()
            }
        }
    )*};
}
fd_impls!(TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream);

/// `Read`/`Write` for a stream type and for a shared reference to it, all
/// forwarding to the one implementation on `Io<S: StreamSource>`. (A macro
/// because the trait impls must name each public type: a blanket impl over
/// `&T` for a foreign trait is not allowed.)
macro_rules! stream_impls {
    ($($t:ty),*) => {$(
        impl Read for &$t {
            #[track_caller]
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.inner.read(buf)
            }
        }
        impl Write for &$t {
            #[track_caller]
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.inner.write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl Read for $t {
            #[track_caller]
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.inner.read(buf)
            }
        }
        impl Write for $t {
            #[track_caller]
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.inner.write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
    )*};
}
stream_impls!(TcpStream, UnixStream);

#[allow(dead_code)]
fn _assert_send_sync() {
    fn ok<T: Send + Sync>() {}
    ok::<TcpListener>();
    ok::<TcpStream>();
    ok::<UdpSocket>();
    ok::<UnixListener>();
    ok::<UnixStream>();
}
