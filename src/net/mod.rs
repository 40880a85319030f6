// Design notes for maintainers (the user docs are the `//!` block below).
//
// Network I/O that parks a coroutine instead of a thread (Go's `net`, in
// `std::net`'s shapes).
//
// Owns: [`TcpListener`], [`TcpStream`], [`UdpSocket`], [`UnixListener`],
// [`UnixStream`], and the poller (`poller.rs`).
//
// Every socket is non-blocking underneath and registered with the poller;
// an operation that would block parks the caller until the socket is ready
// (a plain OS thread simply blocks). No worker thread ever blocks on a
// socket. Errors are `io::Error`s with the OS cause; timeouts are
// `ErrorKind::TimedOut`.
//
// As in Go: the first use raises the soft open-file limit to the hard limit,
// `bind` listens with the system's maximum backlog, and `accept` rides out
// `EMFILE`/`ENFILE` (too many open files) by backing off and retrying.

//! TCP, UDP and Unix-domain sockets that park the calling coroutine instead
//! of its worker thread (Go's `net`, in `std::net`'s shapes).
//!
//! [`TcpListener`], [`TcpStream`], [`UdpSocket`], [`UnixListener`] and
//! [`UnixStream`] have the methods of their `std::net` namesakes and implement
//! `std::io::Read`/`Write` (also on `&TcpStream` and `&UnixStream`, so one
//! coroutine can read while another writes). An operation that would block
//! parks the caller until the socket is ready, so a server can run one
//! coroutine per connection, as in Go; on a plain OS thread it simply blocks.
//! Errors are `io::Error`s with the OS cause; a timeout is
//! `io::ErrorKind::TimedOut`.
//!
//! As in Go, the first use raises the soft open-file limit to the hard limit,
//! [`TcpListener::bind`] listens with the system's maximum backlog, and
//! `accept` rides out "too many open files" by backing off and retrying.
//!
//! ```
//! use std::io::{Read, Write};
//! use goro::net::{TcpListener, TcpStream};
//!
//! goro::run(|| {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     // An echo server: one coroutine per connection.
//!     goro::go(move || {
//!         for conn in listener.incoming() {
//!             let mut conn = conn.unwrap();
//!             goro::go(move || {
//!                 let mut buf = [0; 64];
//!                 let n = conn.read(&mut buf).unwrap();
//!                 conn.write_all(&buf[..n]).unwrap();
//!             });
//!         }
//!     });
//!     let mut c = TcpStream::connect(addr).unwrap();
//!     c.write_all(b"hello").unwrap();
//!     let mut buf = [0; 5];
//!     c.read_exact(&mut buf).unwrap();
//!     assert_eq!(&buf, b"hello");
//! });
//! ```

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
/// ```
/// use std::io::{Read, Write};
/// goro::run(|| {
///     let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = ln.local_addr().unwrap();
///     goro::go(move || goro::net::TcpStream::connect(addr).unwrap().write_all(b"hi"));
///     let (mut stream, _peer) = ln.accept().unwrap();
///     let mut got = String::new();
///     stream.read_to_string(&mut got).unwrap(); // until the client hangs up
///     assert_eq!(got, "hi");
/// });
/// ```
pub struct TcpListener {
    inner: Io<mio::net::TcpListener>,
}

/// A TCP connection. `Read`/`Write` are implemented for the value and for
/// `&TcpStream`, so `io::copy(&mut &s, &mut &s)` echoes.
///
/// ```
/// use std::io::{BufRead, BufReader, Write};
/// use goro::net::{TcpListener, TcpStream};
/// goro::run(|| {
///     let ln = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = ln.local_addr().unwrap();
///     goro::go(move || {
///         let (s, _) = ln.accept().unwrap();
///         std::io::copy(&mut &s, &mut &s).unwrap(); // echo until EOF
///     });
///     let mut s = TcpStream::connect(addr).unwrap();
///     s.write_all(b"ping\n").unwrap();
///     let mut line = String::new();
///     BufReader::new(&s).read_line(&mut line).unwrap();
///     assert_eq!(line, "ping\n");
/// });
/// ```
pub struct TcpStream {
    inner: Io<mio::net::TcpStream>,
}

impl TcpListener {
    /// Binds and listens with the system's maximum backlog.
    ///
    /// # Errors
    ///
    /// The OS error (address in use, permission, ...).
    ///
    /// ```
    /// let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap(); // port 0: any free port
    /// let addr = ln.local_addr().unwrap();
    /// // The same address cannot be bound twice.
    /// assert!(goro::net::TcpListener::bind(addr).is_err());
    /// ```
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
    ///
    /// ```
    /// goro::run(|| {
    ///     let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = ln.local_addr().unwrap();
    ///     let client = goro::go(move || goro::net::TcpStream::connect(addr).unwrap().local_addr().unwrap());
    ///     let (_stream, peer) = ln.accept().unwrap(); // parks until the client connects
    ///     assert_eq!(peer, client.join().unwrap());
    /// });
    /// ```
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
    ///
    /// ```
    /// use std::io::Write;
    /// goro::run(|| {
    ///     let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = ln.local_addr().unwrap();
    ///     goro::go(move || {
    ///         for (i, conn) in ln.incoming().enumerate() {
    ///             let mut conn = conn.unwrap();
    ///             goro::go(move || write!(conn, "you are client {i}").unwrap());
    ///         }
    ///     });
    ///     for _ in 0..2 {
    ///         let mut s = String::new();
    ///         std::io::Read::read_to_string(&mut goro::net::TcpStream::connect(addr).unwrap(), &mut s).unwrap();
    ///         assert!(s.starts_with("you are client"));
    ///     }
    /// });
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The bound address.
    ///
    /// # Errors
    ///
    /// The OS error from `getsockname` (rare: the socket is always bound).
    ///
    /// ```
    /// let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = ln.local_addr().unwrap();
    /// assert!(addr.ip().is_loopback());
    /// assert_ne!(addr.port(), 0); // the port the OS picked
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io.local_addr()
    }

    /// Stops listening: coroutines blocked in `accept` wake with an error,
    /// and later `accept`s fail (Go's `ln.Close()`). The descriptor itself is
    /// released when the listener is dropped.
    ///
    /// # Errors
    ///
    /// Never fails today (closing twice is fine); the `io::Result` leaves
    /// room to report an OS error.
    ///
    /// ```
    /// use std::sync::Arc;
    /// goro::run(|| {
    ///     let ln = Arc::new(goro::net::TcpListener::bind("127.0.0.1:0").unwrap());
    ///     let server = {
    ///         let ln = ln.clone();
    ///         goro::go(move || ln.accept().map(|_| ()))
    ///     };
    ///     goro::time::sleep(std::time::Duration::from_millis(5));
    ///     ln.close().unwrap(); // shut the server down
    ///     assert!(server.join().unwrap().is_err());
    /// });
    /// ```
    pub fn close(&self) -> io::Result<()> {
        self.inner.close_listener()
    }
}

/// Iterator of [`TcpListener::accept`] results.
///
/// ```
/// goro::run(|| {
///     let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = ln.local_addr().unwrap();
///     let _client = goro::net::TcpStream::connect(addr).unwrap();
///     let mut incoming: goro::net::Incoming<'_> = ln.incoming();
///     assert!(incoming.next().unwrap().is_ok());
/// });
/// ```
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
    ///
    /// ```
    /// goro::run(|| {
    ///     let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = ln.local_addr().unwrap();
    ///     let s = goro::net::TcpStream::connect(addr).unwrap();
    ///     assert_eq!(s.peer_addr().unwrap(), addr);
    ///     drop(ln);
    ///     // Nobody listens there any more.
    ///     assert!(goro::net::TcpStream::connect(addr).is_err());
    /// });
    /// ```
    #[track_caller]
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        Self::connect_deadline(addr, None)
    }

    /// Connects, giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut`, or the OS error.
    ///
    /// ```
    /// use std::time::Duration;
    /// goro::run(|| {
    ///     let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = ln.local_addr().unwrap();
    ///     let s = goro::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    ///     assert_eq!(s.peer_addr().unwrap(), addr);
    /// });
    /// ```
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
    ///
    /// # Errors
    ///
    /// `NotConnected` if the peer has gone away, or another OS error.
    ///
    /// ```
    /// let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = goro::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// assert_eq!(s.peer_addr().unwrap(), ln.local_addr().unwrap());
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io.peer_addr()
    }
    /// The local address.
    ///
    /// # Errors
    ///
    /// The OS error from `getsockname`.
    ///
    /// ```
    /// let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = goro::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// let (_server_side, peer) = ln.accept().unwrap();
    /// assert_eq!(s.local_addr().unwrap(), peer);
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io.local_addr()
    }
    /// Shuts down one or both directions.
    ///
    /// # Errors
    ///
    /// `NotConnected` if the connection is already gone, or another OS error.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::net::Shutdown;
    /// let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let client = goro::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// let (mut server, _) = ln.accept().unwrap();
    /// client.shutdown(Shutdown::Write).unwrap(); // "no more requests"
    /// let mut rest = Vec::new();
    /// assert_eq!(server.read_to_end(&mut rest).unwrap(), 0); // the server sees EOF
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }
    /// Sets `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// The OS error from `setsockopt`.
    ///
    /// ```
    /// let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = goro::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// s.set_nodelay(true).unwrap(); // send small writes at once
    /// assert!(s.nodelay().unwrap());
    /// ```
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.io.set_nodelay(on)
    }
    /// Reads `TCP_NODELAY`.
    ///
    /// # Errors
    ///
    /// The OS error from `getsockopt`.
    ///
    /// ```
    /// let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = goro::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// s.set_nodelay(false).unwrap();
    /// assert!(!s.nodelay().unwrap());
    /// ```
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.io.nodelay()
    }
    /// Read timeout (`None`: wait forever). A zero duration is an error, as
    /// in std.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as in std.
    ///
    /// ```
    /// use std::io::{ErrorKind, Read};
    /// use std::time::Duration;
    /// goro::run(|| {
    ///     let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let mut s = goro::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    ///     let (_quiet_server, _) = ln.accept().unwrap();
    ///     s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    ///     let err = s.read(&mut [0; 16]).unwrap_err(); // the server never writes
    ///     assert_eq!(err.kind(), ErrorKind::TimedOut);
    ///     assert!(s.set_read_timeout(Some(Duration::ZERO)).is_err());
    /// });
    /// ```
    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(d)
    }
    /// Write timeout (`None`: wait forever).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as in std.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = goro::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    /// assert_eq!(s.write_timeout().unwrap(), Some(Duration::from_secs(1)));
    /// ```
    pub fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.inner.set_write_timeout(d)
    }
    /// The read timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = goro::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// assert_eq!(s.read_timeout().unwrap(), None); // the default: wait forever
    /// s.set_read_timeout(Some(Duration::from_millis(250))).unwrap();
    /// assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(250)));
    /// ```
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.inner.read_timeout.get())
    }
    /// The write timeout.
    ///
    /// ```
    /// let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = goro::net::TcpStream::connect(ln.local_addr().unwrap()).unwrap();
    /// assert_eq!(s.write_timeout().unwrap(), None);
    /// ```
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.inner.write_timeout.get())
    }
}

/// A UDP socket.
///
/// ```
/// goro::run(|| {
///     let server = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
///     let addr = server.local_addr().unwrap();
///     goro::go(move || {
///         let mut buf = [0; 64];
///         let (n, from) = server.recv_from(&mut buf).unwrap();
///         server.send_to(&buf[..n], from).unwrap(); // echo it back
///     });
///     let client = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
///     client.connect(addr).unwrap();
///     client.send(b"marco").unwrap();
///     let mut buf = [0; 64];
///     let n = client.recv(&mut buf).unwrap();
///     assert_eq!(&buf[..n], b"marco");
/// });
/// ```
pub struct UdpSocket {
    inner: Io<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr`.
    ///
    /// # Errors
    ///
    /// The OS error of the last address tried (address in use, permission,
    /// ...), or `InvalidInput` if `addr` resolves to no address.
    ///
    /// ```
    /// let s = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert!(s.local_addr().unwrap().port() != 0);
    /// ```
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        Ok(UdpSocket { inner: Io::new(each_addr(addr, mio::net::UdpSocket::bind)?)? })
    }
    /// Sends a datagram to `addr`.
    ///
    /// # Errors
    ///
    /// The OS error (e.g. a message too long for a datagram); a write timeout
    /// gives `TimedOut`.
    ///
    /// ```
    /// let a = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert_eq!(a.send_to(b"hello", b.local_addr().unwrap()).unwrap(), 5);
    /// let mut buf = [0; 16];
    /// assert_eq!(b.recv_from(&mut buf).unwrap(), (5, a.local_addr().unwrap()));
    /// ```
    #[track_caller]
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let a = first_addr(addr)?[0];
        self.inner.write_with(|s| s.send_to(buf, a))
    }
    /// Receives a datagram and its sender.
    ///
    /// # Errors
    ///
    /// `TimedOut` after the read timeout, or the OS error.
    ///
    /// ```
    /// goro::run(|| {
    ///     let a = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let b = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let b_addr = b.local_addr().unwrap();
    ///     let receiver = goro::go(move || {
    ///         let mut buf = [0; 16];
    ///         let (n, from) = b.recv_from(&mut buf).unwrap(); // parks until a datagram arrives
    ///         (buf[..n].to_vec(), from)
    ///     });
    ///     a.send_to(b"x", b_addr).unwrap();
    ///     assert_eq!(receiver.join().unwrap(), (b"x".to_vec(), a.local_addr().unwrap()));
    /// });
    /// ```
    #[track_caller]
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.read_with(|s| s.recv_from(buf))
    }
    /// Sets the default peer for `send`/`recv`.
    ///
    /// # Errors
    ///
    /// The OS error, or `InvalidInput` if `addr` resolves to no address.
    ///
    /// ```
    /// let a = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// a.connect(b.local_addr().unwrap()).unwrap();
    /// assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
    /// ```
    #[track_caller]
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        self.inner.io.connect(first_addr(addr)?[0])
    }
    /// Sends to the connected peer.
    ///
    /// # Errors
    ///
    /// `NotConnected` without a prior `connect`, `ConnectionRefused` if an
    /// earlier datagram bounced, `TimedOut` after the write timeout, or another
    /// OS error.
    ///
    /// ```
    /// let a = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// a.connect(b.local_addr().unwrap()).unwrap();
    /// a.send(b"hi").unwrap();
    /// let mut buf = [0; 8];
    /// assert_eq!(b.recv_from(&mut buf).unwrap().0, 2);
    /// ```
    #[track_caller]
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_with(|s| s.send(buf))
    }
    /// Receives from the connected peer.
    ///
    /// # Errors
    ///
    /// `TimedOut` after the read timeout, `ConnectionRefused` if an earlier
    /// datagram bounced, or another OS error.
    ///
    /// ```
    /// let a = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// b.connect(a.local_addr().unwrap()).unwrap();
    /// a.send_to(b"yo", b.local_addr().unwrap()).unwrap();
    /// let mut buf = [0; 8];
    /// assert_eq!(b.recv(&mut buf).unwrap(), 2);
    /// assert_eq!(&buf[..2], b"yo");
    /// ```
    #[track_caller]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| s.recv(buf))
    }
    /// The local address.
    ///
    /// # Errors
    ///
    /// The OS error from `getsockname`.
    ///
    /// ```
    /// let s = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert!(s.local_addr().unwrap().ip().is_loopback());
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io.local_addr()
    }
    /// The connected peer.
    ///
    /// # Errors
    ///
    /// `NotConnected` if `connect` was not called.
    ///
    /// ```
    /// let a = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert!(a.peer_addr().is_err()); // not connected yet
    /// a.connect("127.0.0.1:9").unwrap();
    /// assert_eq!(a.peer_addr().unwrap().port(), 9);
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.io.peer_addr()
    }
    /// Read timeout for `recv`/`recv_from`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as in std.
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use std::time::Duration;
    /// let s = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// s.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    /// let err = s.recv_from(&mut [0; 8]).unwrap_err(); // nobody sends
    /// assert_eq!(err.kind(), ErrorKind::TimedOut);
    /// ```
    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(d)
    }
    /// Write timeout for `send`/`send_to`.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as in std.
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = goro::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    /// assert_eq!(s.send_to(b"x", s.local_addr().unwrap()).unwrap(), 1);
    /// ```
    pub fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.inner.set_write_timeout(d)
    }
}

/// A Unix-domain stream listener.
///
/// ```
/// use std::io::{Read, Write};
/// let path = std::env::temp_dir().join(format!("goro-doc-{}.sock", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// let sock = path.clone();
/// goro::run(move || {
///     let ln = goro::net::UnixListener::bind(&sock).unwrap();
///     let p = sock.clone();
///     goro::go(move || goro::net::UnixStream::connect(p).unwrap().write_all(b"over unix"));
///     let (mut conn, _) = ln.accept().unwrap();
///     let mut got = String::new();
///     conn.read_to_string(&mut got).unwrap();
///     assert_eq!(got, "over unix");
/// });
/// std::fs::remove_file(&path).unwrap();
/// ```
pub struct UnixListener {
    inner: Io<mio::net::UnixListener>,
}

/// A Unix-domain stream; `Read`/`Write` for the value and for `&`.
///
/// ```
/// use std::io::{Read, Write};
/// let (mut a, mut b) = goro::net::UnixStream::pair().unwrap();
/// a.write_all(b"ping").unwrap();
/// let mut buf = [0; 4];
/// b.read_exact(&mut buf).unwrap();
/// assert_eq!(&buf, b"ping");
/// ```
pub struct UnixStream {
    inner: Io<mio::net::UnixStream>,
}

impl UnixListener {
    /// Binds to the socket path `p`.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if the path exists (remove a stale socket file first), or
    /// another OS error.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("goro-doc-bind-{}.sock", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let ln = goro::net::UnixListener::bind(&path).unwrap();
    /// assert!(goro::net::UnixListener::bind(&path).is_err()); // the path exists now
    /// drop(ln);
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn bind(p: impl AsRef<Path>) -> io::Result<UnixListener> {
        Ok(UnixListener { inner: Io::new(mio::net::UnixListener::bind(p)?)? })
    }
    /// Waits for a connection.
    ///
    /// # Errors
    ///
    /// After `close`, an error; OS errors other than running out of file
    /// descriptors (which are retried with back-off).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("goro-doc-accept-{}.sock", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let sock = path.clone();
    /// goro::run(move || {
    ///     let ln = goro::net::UnixListener::bind(&sock).unwrap();
    ///     let p = sock.clone();
    ///     let client = goro::go(move || goro::net::UnixStream::connect(p).map(|_| ()));
    ///     let (_conn, _addr) = ln.accept().unwrap(); // parks until the client connects
    ///     client.join().unwrap().unwrap();
    /// });
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    #[track_caller]
    pub fn accept(&self) -> io::Result<(UnixStream, std::os::unix::net::SocketAddr)> {
        let (s, a) = self.inner.read_with(|l| l.accept())?;
        Ok((UnixStream { inner: Io::new(s)? }, a))
    }
    /// Wakes blocked `accept`s with an error; later ones fail.
    ///
    /// # Errors
    ///
    /// Never fails today (closing twice is fine); the `io::Result` leaves
    /// room to report an OS error.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let path = std::env::temp_dir().join(format!("goro-doc-close-{}.sock", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let sock = path.clone();
    /// goro::run(move || {
    ///     let ln = Arc::new(goro::net::UnixListener::bind(&sock).unwrap());
    ///     let l2 = ln.clone();
    ///     let server = goro::go(move || l2.accept().map(|_| ()));
    ///     goro::time::sleep(std::time::Duration::from_millis(5));
    ///     ln.close().unwrap();
    ///     assert!(server.join().unwrap().is_err());
    /// });
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn close(&self) -> io::Result<()> {
        self.inner.close_listener()
    }
}

impl UnixStream {
    /// Connects to the socket path `p`.
    ///
    /// # Errors
    ///
    /// `NotFound` if nothing exists at the path, `ConnectionRefused` if nobody
    /// listens there, or another OS error.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("goro-doc-connect-{}.sock", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let ln = goro::net::UnixListener::bind(&path).unwrap();
    /// let _client = goro::net::UnixStream::connect(&path).unwrap();
    /// assert!(ln.accept().is_ok());
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    #[track_caller]
    pub fn connect(p: impl AsRef<Path>) -> io::Result<UnixStream> {
        Ok(UnixStream { inner: Io::connect(mio::net::UnixStream::connect(p)?, None)? })
    }
    /// A connected pair.
    ///
    /// # Errors
    ///
    /// The OS error from `socketpair` (e.g. out of file descriptors).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// goro::run(|| {
    ///     let (a, mut b) = goro::net::UnixStream::pair().unwrap();
    ///     goro::go(move || (&a).write_all(b"from a"));
    ///     let mut got = String::new();
    ///     b.read_to_string(&mut got).unwrap(); // ends when `a` is dropped
    ///     assert_eq!(got, "from a");
    /// });
    /// ```
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((UnixStream { inner: Io::new(a)? }, UnixStream { inner: Io::new(b)? }))
    }
    /// Shuts down one or both directions.
    ///
    /// # Errors
    ///
    /// `NotConnected` if the peer is already gone, or another OS error.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::net::Shutdown;
    /// let (a, mut b) = goro::net::UnixStream::pair().unwrap();
    /// a.shutdown(Shutdown::Write).unwrap();
    /// assert_eq!(b.read(&mut [0; 8]).unwrap(), 0); // EOF
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }
    /// Read timeout.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as in std.
    ///
    /// ```
    /// use std::io::{ErrorKind, Read};
    /// use std::time::Duration;
    /// let (mut a, _b) = goro::net::UnixStream::pair().unwrap();
    /// a.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    /// assert_eq!(a.read(&mut [0; 8]).unwrap_err().kind(), ErrorKind::TimedOut);
    /// ```
    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.inner.set_read_timeout(d)
    }
    /// Write timeout.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for `Some(Duration::ZERO)`, as in std.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (a, _b) = goro::net::UnixStream::pair().unwrap();
    /// a.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    /// ```
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
