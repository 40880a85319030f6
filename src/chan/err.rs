//! Channel error types: one per operation and failure. A failed send hands
//! the value back; `Debug` needs no `T: Debug` (so `.unwrap()` always works);
//! `Display` is a lowercase phrase.

use std::error::Error;
use std::fmt;

/// `send` on a closed channel (or one whose receivers are all gone); holds
/// the value that was not sent.
///
/// ```
/// let (tx, rx) = goro::chan(1);
/// drop(rx);
/// let err: goro::SendError<String> = tx.send("lost".to_string()).unwrap_err();
/// assert_eq!(err.to_string(), "sending on a closed channel");
/// assert_eq!(err.0, "lost"); // the value comes back
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

/// Why `try_send` failed; holds the value.
///
/// ```
/// use goro::TrySendError;
/// let (tx, _rx) = goro::chan(1);
/// tx.try_send(1).unwrap();
/// match tx.try_send(2) {
///     Err(TrySendError::Full(v)) => assert_eq!(v, 2), // try again later
///     Err(TrySendError::Closed(_)) => unreachable!(),
///     Ok(()) => unreachable!(),
/// }
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The buffer is full (or, unbuffered, no receiver is waiting).
    Full(T),
    /// The channel is closed or has no receivers left.
    Closed(T),
}

/// Why `send_timeout` failed; holds the value.
///
/// ```
/// use std::time::Duration;
/// use goro::SendTimeoutError;
/// let (tx, _rx) = goro::chan::<&str>(0); // nobody receives
/// let err = tx.send_timeout("ping", Duration::from_millis(2)).unwrap_err();
/// assert_eq!(err, SendTimeoutError::Timeout("ping"));
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<T> {
    /// Nobody took the value in time.
    Timeout(T),
    /// The channel is closed or has no receivers left.
    Closed(T),
}

/// `recv` on a closed and drained channel.
///
/// ```
/// let (tx, rx) = goro::chan::<i32>(1);
/// drop(tx);
/// assert_eq!(rx.recv(), Err(goro::RecvError));
/// assert_eq!(goro::RecvError.to_string(), "receiving on a closed channel");
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct RecvError;

/// Why `try_recv` failed.
///
/// ```
/// use goro::TryRecvError;
/// let (tx, rx) = goro::chan::<i32>(1);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// drop(tx);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum TryRecvError {
    /// Nothing to receive now.
    Empty,
    /// Closed and drained.
    Closed,
}

/// Why `recv_timeout` failed.
///
/// ```
/// use std::time::Duration;
/// use goro::RecvTimeoutError;
/// let (_tx, rx) = goro::chan::<i32>(1);
/// assert_eq!(rx.recv_timeout(Duration::from_millis(2)), Err(RecvTimeoutError::Timeout));
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum RecvTimeoutError {
    /// Nothing arrived in time.
    Timeout,
    /// Closed and drained.
    Closed,
}

/// `Select::try_select` found no ready operation.
///
/// ```
/// let (_tx, rx) = goro::chan::<i32>(1);
/// let mut sel = goro::Select::new();
/// sel.recv(&rx);
/// assert_eq!(sel.try_select().err(), Some(goro::TrySelectError));
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct TrySelectError;

/// `Select::select_timeout` timed out.
///
/// ```
/// use std::time::Duration;
/// let (_tx, rx) = goro::chan::<i32>(1);
/// let mut sel = goro::Select::new();
/// sel.recv(&rx);
/// assert_eq!(sel.select_timeout(Duration::from_millis(2)).err(), Some(goro::SelectTimeoutError));
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct SelectTimeoutError;

impl<T> SendError<T> {
    /// The value that was not sent.
    ///
    /// ```
    /// let (tx, rx) = goro::chan(1);
    /// drop(rx);
    /// let v: Vec<u8> = tx.send(vec![1, 2]).unwrap_err().into_inner();
    /// assert_eq!(v, [1, 2]);
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    ///
    /// ```
    /// let (tx, _rx) = goro::chan(0);
    /// assert_eq!(tx.try_send('x').unwrap_err().into_inner(), 'x');
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Closed(v) => v,
        }
    }
    /// Was the buffer full?
    ///
    /// ```
    /// let (tx, _rx) = goro::chan(1);
    /// tx.try_send(1).unwrap();
    /// assert!(tx.try_send(2).unwrap_err().is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
    /// Was the channel closed?
    ///
    /// ```
    /// let (tx, rx) = goro::chan(1);
    /// drop(rx);
    /// assert!(tx.try_send(1).unwrap_err().is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, TrySendError::Closed(_))
    }
}

impl<T> SendTimeoutError<T> {
    /// The value that was not sent.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (tx, _rx) = goro::chan(0);
    /// let err = tx.send_timeout(String::from("late"), Duration::from_millis(1)).unwrap_err();
    /// assert_eq!(err.into_inner(), "late");
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(v) | SendTimeoutError::Closed(v) => v,
        }
    }
    /// Did it time out?
    ///
    /// ```
    /// use std::time::Duration;
    /// let (tx, _rx) = goro::chan(0);
    /// assert!(tx.send_timeout(1, Duration::from_millis(1)).unwrap_err().is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }
    /// Was the channel closed?
    ///
    /// ```
    /// use std::time::Duration;
    /// let (tx, rx) = goro::chan(0);
    /// drop(rx);
    /// assert!(tx.send_timeout(1, Duration::from_millis(1)).unwrap_err().is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, SendTimeoutError::Closed(_))
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}
impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}
impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            SendTimeoutError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a closed channel")
    }
}
impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full channel"),
            TrySendError::Closed(_) => f.write_str("sending on a closed channel"),
        }
    }
}
impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("timed out waiting on send operation"),
            SendTimeoutError::Closed(_) => f.write_str("sending on a closed channel"),
        }
    }
}
impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("receiving on a closed channel")
    }
}
impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Closed => f.write_str("receiving on a closed channel"),
        }
    }
}
impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting on receive operation"),
            RecvTimeoutError::Closed => f.write_str("receiving on a closed channel"),
        }
    }
}
impl fmt::Display for TrySelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("all operations in select would block")
    }
}
impl fmt::Display for SelectTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out waiting on select")
    }
}

impl<T> Error for SendError<T> {}
impl<T> Error for TrySendError<T> {}
impl<T> Error for SendTimeoutError<T> {}
impl Error for RecvError {}
impl Error for TryRecvError {}
impl Error for RecvTimeoutError {}
impl Error for TrySelectError {}
impl Error for SelectTimeoutError {}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        TrySendError::Closed(e.0)
    }
}
impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(e: SendError<T>) -> Self {
        SendTimeoutError::Closed(e.0)
    }
}
impl From<RecvError> for TryRecvError {
    fn from(_: RecvError) -> Self {
        TryRecvError::Closed
    }
}
impl From<RecvError> for RecvTimeoutError {
    fn from(_: RecvError) -> Self {
        RecvTimeoutError::Closed
    }
}
