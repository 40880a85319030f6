// Channels: Go's `chan T` with Rust ownership.
//
// Owns: `Sender`, `Receiver`, `chan`, `never`, `dropping`,
// `sliding`, the error types, and the channel core (`imp.rs`: one lock per
// channel, Go's `hchan` shape; its header lists the invariants).
//
// Semantics (Go's, plus Rust's ownership of the ends):
// * MPMC, FIFO per channel. `chan(0)` is a rendezvous: `send` returns only
//   once a receiver has taken the value.
// * `close` (Go's `close(ch)`) closes for everyone at once: blocked and later
//   sends fail and hand the value back; receivers drain what was sent before,
//   then get `RecvError`. Dropping the last `Sender` closes too.
// * Dropping the last `Receiver` makes every send fail (blocked senders are
//   woken with their value back).
//
// Porting trap: Go's `make(chan T)` stays open while nobody closes it, but
// `let (_, rx) = goro::chan::<T>(0)` is closed at once, because its only
// `Sender` was dropped. Keep a `Sender` alive, or use `never` (Go's nil
// channel, e.g. in a select).

mod err;
pub(crate) mod imp;
pub(crate) mod lock;

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use err::*;
use imp::{Chan, Kind};

use crate::wait::WaitReason;

/// The sending end of a channel. Clone it for more producers.
///
/// ```
/// let (tx, rx) = goro::chan(4);
/// let tx2 = tx.clone(); // a second producer
/// tx.send(1).unwrap();
/// tx2.send(2).unwrap();
/// drop((tx, tx2)); // the last Sender dropped: the channel closes
/// assert_eq!(rx.iter().collect::<Vec<_>>(), [1, 2]);
/// ```
pub struct Sender<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

/// The receiving end of a channel (or [`never()`]). Clone it for more
/// consumers. `for v in &rx` (or `rx.iter()`) is Go's `for v := range ch`.
///
/// ```
/// goro::run(|| {
///     let (tx, rx) = goro::chan(0);
///     let rx2 = rx.clone(); // a second consumer
///     let other = goro::go(move || rx2.iter().count());
///     for i in 0..100 {
///         tx.send(i).unwrap();
///     }
///     tx.close();
///     let mine = rx.iter().count();
///     assert_eq!(mine + other.join().unwrap(), 100);
/// });
/// ```
pub struct Receiver<T> {
    pub(crate) chan: Option<Arc<Chan<T>>>,
}

/// Creates a channel with a buffer of `cap` values; `cap == 0` is an
/// unbuffered rendezvous channel.
///
/// ```
/// let (tx, rx) = goro::chan(1);
/// tx.send(5).unwrap();
/// assert_eq!(rx.recv(), Ok(5));
/// ```
///
/// # Panics
///
/// If a buffer of `cap` values cannot be allocated (the message names the
/// capacity).
#[track_caller]
pub fn chan<T: Send>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let c = Arc::new(Chan::new(cap, Kind::Normal));
    (Sender { chan: c.clone() }, Receiver { chan: Some(c) })
}

/// A buffered channel whose sends never block: when the buffer is full, the
/// new value is discarded (core.async's dropping buffer). Sends fail only on
/// a closed channel.
///
/// # Panics
///
/// If `cap == 0` (there would be nowhere to keep a value).
///
/// ```
/// let (tx, rx) = goro::dropping(2);
/// for i in 0..5 {
///     tx.send(i).unwrap(); // never blocks
/// }
/// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0, 1]); // 2, 3 and 4 were dropped
/// ```
#[track_caller]
pub fn dropping<T: Send>(cap: usize) -> (Sender<T>, Receiver<T>) {
    assert!(cap > 0, "goro::dropping: a dropping channel needs a capacity of at least 1");
    let c = Arc::new(Chan::new(cap, Kind::Dropping));
    (Sender { chan: c.clone() }, Receiver { chan: Some(c) })
}

/// A buffered channel whose sends never block: when the buffer is full, the
/// oldest value is discarded to make room (core.async's sliding buffer).
///
/// # Panics
///
/// If `cap == 0`.
///
/// ```
/// let (tx, rx) = goro::sliding(2);
/// for i in 0..5 {
///     tx.send(i).unwrap(); // never blocks
/// }
/// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [3, 4]); // the oldest were dropped
/// ```
#[track_caller]
pub fn sliding<T: Send>(cap: usize) -> (Sender<T>, Receiver<T>) {
    assert!(cap > 0, "goro::sliding: a sliding channel needs a capacity of at least 1");
    let c = Arc::new(Chan::new(cap, Kind::Sliding));
    (Sender { chan: c.clone() }, Receiver { chan: Some(c) })
}

/// A receiver that is never ready: Go's nil channel. `recv` blocks forever
/// (until the runtime cancels the coroutine); in a select its case is never
/// chosen.
///
/// ```
/// use std::time::Duration;
/// let mut results = goro::never::<i32>();
/// let got = goro::select! {
///     recv(results) -> _ => "result",
///     default(Duration::from_millis(1)) => "nothing yet",
/// };
/// assert_eq!(got, "nothing yet");
/// // Go's `ch = nil`: turn a finished case off by swapping in `never()`.
/// let (_tx, rx) = goro::chan::<i32>(1);
/// results = rx;
/// assert!(results.try_recv().is_err());
/// assert!(goro::never::<i32>().try_recv().is_err());
/// ```
pub fn never<T>() -> Receiver<T> {
    Receiver { chan: None }
}

fn deadline(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// A receive on [`never()`]: parks for ever (until cancelled). Out of line,
/// so that `Receiver::recv`'s common path carries no frame for it.
#[cold]
#[inline(never)]
#[track_caller]
fn never_recv<T>() -> T {
    loop {
        crate::park::park(WaitReason::Recv { chan: 0, cap: 0, queued: 0, senders: 0 });
    }
}

impl<T> Sender<T> {
    /// A sender that is never ready: Go's nil channel in a send case.
    /// `send` blocks for ever (until the runtime cancels the coroutine), and
    /// in a select its case is never chosen. The receiving counterpart is
    /// [`never()`].
    ///
    /// ```
    /// let quiet = goro::Sender::<i32>::never();
    /// goro::select! {
    ///     send(quiet, 1) -> _ => unreachable!(),
    ///     default => {}
    /// }
    /// assert_eq!(quiet.try_send(2), Err(goro::TrySendError::Full(2)));
    /// ```
    pub fn never() -> Sender<T> {
        // A rendezvous channel with one receiver that never comes: the
        // count starts at one and no `Receiver` exists to drop it, so a
        // send neither completes nor fails.
        Sender { chan: Arc::new(Chan::new(0, Kind::Normal)) }
    }

    /// Sends `v`, parking until a receiver takes it (unbuffered) or there is
    /// room (buffered).
    ///
    /// # Errors
    ///
    /// The channel is closed or has no receivers left; the value comes back.
    ///
    /// ```
    /// goro::run(|| {
    ///     let (tx, rx) = goro::chan(0);
    ///     goro::go(move || tx.send("hello").unwrap()); // parks until received
    ///     assert_eq!(rx.recv(), Ok("hello"));
    ///
    ///     let (tx, rx) = goro::chan(1);
    ///     drop(rx);
    ///     assert_eq!(tx.send(7).unwrap_err().into_inner(), 7); // no receivers left
    /// });
    /// ```
    // Inlined, with the whole blocking send: see `chan::imp::Chan::send`.
    #[inline(always)]
    #[track_caller]
    pub fn send(&self, v: T) -> Result<(), SendError<T>> {
        self.chan.send(v, None).map_err(|e| SendError(e.into_inner()))
    }

    /// Sends without waiting.
    ///
    /// # Errors
    ///
    /// `Full(v)` if it would block, `Closed(v)` if closed.
    ///
    /// ```
    /// use goro::TrySendError;
    /// let (tx, rx) = goro::chan(1);
    /// assert_eq!(tx.try_send(1), Ok(()));
    /// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    /// tx.close();
    /// assert_eq!(tx.try_send(3), Err(TrySendError::Closed(3)));
    /// assert_eq!(rx.recv(), Ok(1));
    /// ```
    pub fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(v)
    }

    /// Sends, waiting at most `d`.
    ///
    /// # Errors
    ///
    /// `Timeout(v)` or `Closed(v)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use goro::SendTimeoutError;
    /// let (tx, _rx) = goro::chan(1);
    /// assert_eq!(tx.send_timeout(1, Duration::from_millis(1)), Ok(()));
    /// // The buffer is full and nobody receives.
    /// assert_eq!(tx.send_timeout(2, Duration::from_millis(5)), Err(SendTimeoutError::Timeout(2)));
    /// ```
    #[track_caller]
    pub fn send_timeout(&self, v: T, d: Duration) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(v, deadline(d))
    }

    /// Closes the channel for everyone (Go's `close(ch)`). Returns true if
    /// this call closed it, false if it was already closed.
    ///
    /// ```
    /// let (tx, rx) = goro::chan(2);
    /// tx.send(1).unwrap();
    /// assert!(tx.close());
    /// assert!(!tx.close()); // already closed
    /// assert!(tx.send(2).is_err());
    /// assert_eq!(rx.recv(), Ok(1)); // what was sent before is still received
    /// assert!(rx.recv().is_err());
    /// ```
    pub fn close(&self) -> bool {
        self.chan.close()
    }

    /// Values buffered now.
    ///
    /// ```
    /// let (tx, _rx) = goro::chan(4);
    /// tx.send('a').unwrap();
    /// tx.send('b').unwrap();
    /// assert_eq!(tx.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// True if nothing is buffered.
    ///
    /// ```
    /// let (tx, rx) = goro::chan(4);
    /// assert!(tx.is_empty());
    /// tx.send(1).unwrap();
    /// assert!(!tx.is_empty());
    /// assert!(rx.recv().is_ok());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer capacity (0: unbuffered).
    ///
    /// ```
    /// assert_eq!(goro::chan::<u8>(0).0.capacity(), 0);
    /// assert_eq!(goro::chan::<u8>(16).0.capacity(), 16);
    /// ```
    pub fn capacity(&self) -> usize {
        self.chan.cap
    }

    /// Has the channel been closed?
    ///
    /// ```
    /// let (tx, rx) = goro::chan::<i32>(1);
    /// assert!(!tx.is_closed());
    /// rx.close();
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.chan.closed.load(Ordering::Acquire)
    }
}

impl<T> Receiver<T> {
    /// Receives a value, parking until one arrives.
    ///
    /// # Errors
    ///
    /// `RecvError` once the channel is closed and drained.
    ///
    /// ```
    /// goro::run(|| {
    ///     let (tx, rx) = goro::chan(0);
    ///     goro::go(move || {
    ///         tx.send(1).unwrap();
    ///         // dropping `tx` closes the channel
    ///     });
    ///     assert_eq!(rx.recv(), Ok(1));
    ///     assert_eq!(rx.recv(), Err(goro::RecvError)); // closed and drained
    /// });
    /// ```
    // Inlined, with the whole blocking receive: see `chan::imp::Chan::send`.
    #[inline(always)]
    #[track_caller]
    pub fn recv(&self) -> Result<T, RecvError> {
        match &self.chan {
            Some(c) => c.recv(None).map_err(|_| RecvError),
            None => never_recv(),
        }
    }

    /// Receives without waiting.
    ///
    /// # Errors
    ///
    /// `Empty` if nothing is there, `Closed` if closed and drained.
    ///
    /// ```
    /// use goro::TryRecvError;
    /// let (tx, rx) = goro::chan(1);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.send(5).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.try_recv(), Ok(5));
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let Some(c) = &self.chan else { return Err(TryRecvError::Empty) };
        crate::park::note_thread();
        let mut g = c.lock();
        let (v, w) = c.try_recv_locked(&mut g)?;
        drop(g);
        w.wake();
        Ok(v)
    }

    /// Receives, waiting at most `d`.
    ///
    /// # Errors
    ///
    /// `Timeout` or `Closed`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use goro::RecvTimeoutError;
    /// let (tx, rx) = goro::chan::<i32>(1);
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(5)), Err(RecvTimeoutError::Timeout));
    /// drop(tx);
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(5)), Err(RecvTimeoutError::Closed));
    /// ```
    #[track_caller]
    pub fn recv_timeout(&self, d: Duration) -> Result<T, RecvTimeoutError> {
        match &self.chan {
            Some(c) => c.recv(deadline(d)),
            None => {
                let dl = deadline(d);
                loop {
                    if dl.is_some_and(|x| Instant::now() >= x) {
                        return Err(RecvTimeoutError::Timeout);
                    }
                    crate::park::park_deadline(WaitReason::Recv { chan: 0, cap: 0, queued: 0, senders: 0 }, dl);
                }
            }
        }
    }

    /// An iterator that receives until the channel is closed and drained
    /// (Go's `for v := range ch`).
    ///
    /// ```
    /// goro::run(|| {
    ///     let (tx, rx) = goro::chan(0);
    ///     goro::go(move || {
    ///         for word in ["a", "b", "c"] {
    ///             tx.send(word).unwrap();
    ///         }
    ///     });
    ///     let words: Vec<&str> = rx.iter().collect(); // ends when `tx` is dropped
    ///     assert_eq!(words, ["a", "b", "c"]);
    /// });
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// An iterator over the values available now, without waiting.
    ///
    /// ```
    /// let (tx, rx) = goro::chan(8);
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]);
    /// assert_eq!(rx.try_iter().count(), 0); // nothing left; the channel is still open
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// Values buffered now.
    ///
    /// ```
    /// let (tx, rx) = goro::chan(4);
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// assert_eq!(rx.len(), 2);
    /// rx.recv().unwrap();
    /// assert_eq!(rx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.chan.as_ref().map_or(0, |c| c.len())
    }

    /// True if nothing is buffered.
    ///
    /// ```
    /// let (tx, rx) = goro::chan(4);
    /// assert!(rx.is_empty());
    /// tx.send(1).unwrap();
    /// assert!(!rx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer capacity (0: unbuffered or `never`).
    ///
    /// ```
    /// assert_eq!(goro::chan::<u8>(8).1.capacity(), 8);
    /// assert_eq!(goro::never::<u8>().capacity(), 0);
    /// ```
    pub fn capacity(&self) -> usize {
        self.chan.as_ref().map_or(0, |c| c.cap)
    }

    /// Has the channel been closed? (`never()` is not.)
    ///
    /// ```
    /// let (tx, rx) = goro::chan::<i32>(1);
    /// assert!(!rx.is_closed());
    /// tx.close();
    /// assert!(rx.is_closed());
    /// assert!(!goro::never::<i32>().is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.chan.as_ref().is_some_and(|c| c.closed.load(Ordering::Acquire))
    }

    /// Closes the channel for everyone; true if this call closed it.
    ///
    /// ```
    /// let (tx, rx) = goro::chan(1);
    /// assert!(rx.close()); // e.g. a consumer that wants no more work
    /// assert!(!rx.close());
    /// assert!(tx.send(1).is_err());
    /// ```
    pub fn close(&self) -> bool {
        self.chan.as_ref().is_some_and(|c| c.close())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.senders.fetch_add(1, Ordering::Relaxed);
        Sender { chan: self.chan.clone() }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        if let Some(c) = &self.chan {
            c.receivers.fetch_add(1, Ordering::Relaxed);
        }
        Receiver { chan: self.chan.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        // AcqRel: the last one out sees every other end's effects.
        if self.chan.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.chan.close();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if let Some(c) = &self.chan {
            if c.receivers.fetch_sub(1, Ordering::AcqRel) == 1 {
                c.disconnect_receivers();
            }
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sender(chan#{}, cap {})", self.chan.id, self.chan.cap)
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.chan {
            Some(c) => write!(f, "Receiver(chan#{}, cap {})", c.id, c.cap),
            None => f.write_str("Receiver(never)"),
        }
    }
}

/// Blocking iterator over a [`Receiver`]; ends when the channel is closed and
/// drained.
///
/// ```
/// let (tx, rx) = goro::chan(3);
/// for i in 1..=3 {
///     tx.send(i).unwrap();
/// }
/// drop(tx);
/// let it: goro::Iter<'_, i32> = rx.iter();
/// assert_eq!(it.sum::<i32>(), 6);
/// ```
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    #[track_caller]
    // Inlined, with the blocking receive: see `chan::imp::Chan::send`.
    #[inline(always)]
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// Non-blocking iterator over the values available now.
///
/// ```
/// let (tx, rx) = goro::chan(3);
/// tx.send("x").unwrap();
/// let it: goro::TryIter<'_, &str> = rx.try_iter();
/// assert_eq!(it.collect::<Vec<_>>(), ["x"]);
/// ```
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

/// Owning blocking iterator over a [`Receiver`].
///
/// ```
/// goro::run(|| {
///     let (tx, rx) = goro::chan(0);
///     let consumer = goro::go(move || {
///         let it: goro::IntoIter<u32> = rx.into_iter(); // takes the receiver
///         it.sum::<u32>()
///     });
///     for i in 0..10 {
///         tx.send(i).unwrap();
///     }
///     drop(tx);
///     assert_eq!(consumer.join().unwrap(), 45);
/// });
/// ```
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    #[track_caller]
    // Inlined, with the blocking receive: see `chan::imp::Chan::send`.
    #[inline(always)]
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn ok<T: Send + Sync>() {}
    ok::<Sender<u8>>();
    ok::<Receiver<u8>>();
}
