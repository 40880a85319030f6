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
pub struct Sender<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

/// The receiving end of a channel (or [`never()`]). Clone it for more
/// consumers. `for v in &rx` (or `rx.iter()`) is Go's `for v := range ch`.
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
#[track_caller]
pub fn sliding<T: Send>(cap: usize) -> (Sender<T>, Receiver<T>) {
    assert!(cap > 0, "goro::sliding: a sliding channel needs a capacity of at least 1");
    let c = Arc::new(Chan::new(cap, Kind::Sliding));
    (Sender { chan: c.clone() }, Receiver { chan: Some(c) })
}

/// A receiver that is never ready: Go's nil channel. `recv` blocks forever
/// (until the runtime cancels the coroutine); in a select its case is never
/// chosen.
pub fn never<T>() -> Receiver<T> {
    Receiver { chan: None }
}

fn deadline(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
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
    #[track_caller]
    pub fn send(&self, v: T) -> Result<(), SendError<T>> {
        self.chan.send(v, None).map_err(|e| SendError(e.into_inner()))
    }

    /// Sends without waiting.
    ///
    /// # Errors
    ///
    /// `Full(v)` if it would block, `Closed(v)` if closed.
    pub fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(v)
    }

    /// Sends, waiting at most `d`.
    ///
    /// # Errors
    ///
    /// `Timeout(v)` or `Closed(v)`.
    #[track_caller]
    pub fn send_timeout(&self, v: T, d: Duration) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(v, deadline(d))
    }

    /// Closes the channel for everyone (Go's `close(ch)`). Returns true if
    /// this call closed it, false if it was already closed.
    pub fn close(&self) -> bool {
        self.chan.close()
    }

    /// Values buffered now.
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// True if nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer capacity (0: unbuffered).
    pub fn capacity(&self) -> usize {
        self.chan.cap
    }

    /// Has the channel been closed?
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
    #[track_caller]
    pub fn recv(&self) -> Result<T, RecvError> {
        match &self.chan {
            Some(c) => c.recv(None).map_err(|_| RecvError),
            None => loop {
                crate::park::park(WaitReason::Recv { chan: 0, cap: 0, queued: 0, senders: 0 });
            },
        }
    }

    /// Receives without waiting.
    ///
    /// # Errors
    ///
    /// `Empty` if nothing is there, `Closed` if closed and drained.
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
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// An iterator over the values available now, without waiting.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// Values buffered now.
    pub fn len(&self) -> usize {
        self.chan.as_ref().map_or(0, |c| c.len())
    }

    /// True if nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer capacity (0: unbuffered or `never`).
    pub fn capacity(&self) -> usize {
        self.chan.as_ref().map_or(0, |c| c.cap)
    }

    /// Has the channel been closed? (`never()` is not.)
    pub fn is_closed(&self) -> bool {
        self.chan.as_ref().is_some_and(|c| c.closed.load(Ordering::Acquire))
    }

    /// Closes the channel for everyone; true if this call closed it.
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
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    #[track_caller]
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// Non-blocking iterator over the values available now.
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
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    #[track_caller]
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
