// The dynamic `Select` (Go's `reflect.Select`, crossbeam's `Select`): a
// select over cases known only at run time, on the same algorithm as
// `select!` (`mod.rs`, `select_cases`). Receive cases complete inside the
// select; send cases are readiness cases completed by the caller through
// `SelectedOperation::send`.

use super::*;

/// A select over a number of cases known only at run time (Go's
/// `reflect.Select`, crossbeam's `Select`).
///
/// Receive cases complete inside `select` (the value waits in the returned
/// [`SelectedOperation`]); a send case is chosen when the send can proceed
/// and is performed by [`SelectedOperation::send`].
///
/// ```
/// let (tx1, rx1) = goro::chan::<i32>(1);
/// let (_tx2, rx2) = goro::chan::<i32>(1);
/// tx1.send(7).unwrap();
/// let mut sel = goro::Select::new();
/// let a = sel.recv(&rx1);
/// let _b = sel.recv(&rx2);
/// let op = sel.select();
/// assert_eq!(op.index(), a);
/// assert_eq!(op.recv(&rx1), Ok(7));
/// ```
pub struct Select<'a> {
    cases: Vec<DynCase<'a>>,
}

/// A case of a [`Select`]: a receive (completed inside the select), or a
/// send-readiness case (chosen when a send could proceed; the send itself
/// is made by [`SelectedOperation::send`]).
enum DynCase<'a> {
    Recv(Box<dyn DynRecv<'a> + 'a>),
    Send(Box<dyn DynSend<'a> + 'a>),
}

impl<'a> DynCase<'a> {
    fn as_case(&mut self) -> &mut (dyn Case + 'a) {
        match self {
            DynCase::Recv(r) => r.as_case(),
            DynCase::Send(s) => s.as_case(),
        }
    }

    /// The same case, unused: put back in place of a chosen one, so a
    /// `Select` can be used again.
    fn fresh(&self) -> DynCase<'a> {
        match self {
            DynCase::Recv(r) => DynCase::Recv(r.fresh()),
            DynCase::Send(s) => DynCase::Send(s.fresh()),
        }
    }
}

trait DynRecv<'a>: Case {
    fn addr(&self) -> usize;
    fn take_into(&mut self, out: *mut ());
    fn as_case(&mut self) -> &mut (dyn Case + 'a);
    fn fresh(&self) -> Box<dyn DynRecv<'a> + 'a>;
}

trait DynSend<'a>: Case {
    fn addr(&self) -> usize;
    fn as_case(&mut self) -> &mut (dyn Case + 'a);
    fn fresh(&self) -> Box<dyn DynSend<'a> + 'a>;
}

impl<'a, T> DynRecv<'a> for RecvCase<'a, T> {
    fn addr(&self) -> usize {
        self.chan_addr().unwrap_or(0)
    }
    fn take_into(&mut self, out: *mut ()) {
        // SAFETY: `SelectedOperation::recv` checked that the receiver is this
        // case's channel, so `out` points to an `Option<Result<T, RecvError>>`.
        unsafe { *(out as *mut Option<Result<T, RecvError>>) = self.out.take() };
    }
    fn as_case(&mut self) -> &mut (dyn Case + 'a) {
        self
    }
    fn fresh(&self) -> Box<dyn DynRecv<'a> + 'a> {
        Box::new(RecvCase::new(self.rx))
    }
}

/// A send-readiness case (`imp.rs` invariant 7): ready when a send on `tx`
/// could proceed now (room, a waiting receiver, or closed: the send would
/// fail at once). It queues no value, only an observer entry.
struct SendReady<'a, T> {
    tx: &'a Sender<T>,
    /// Its entry in the channel's observers. In an `Arc` of its own: the
    /// channel relinks it under its lock while this case is borrowed
    /// mutably (a field here would be covered by that `&mut`).
    obs: Arc<imp::Observer>,
    /// Queued on the channel (taken off by `dequeue_locked` if a claimer
    /// did not already).
    queued: bool,
}

impl<'a, T> SendReady<'a, T> {
    fn new(tx: &'a Sender<T>) -> Self {
        SendReady { tx, obs: Arc::new(imp::Observer::new()), queued: false }
    }
}

impl<T> Drop for SendReady<'_, T> {
    fn drop(&mut self) {
        // `select_cases` dequeues every case before it returns or unwinds.
        debug_assert!(!self.queued, "goro bug: a send-readiness case dropped while queued");
    }
}

impl<T> Case for SendReady<'_, T> {
    fn chan_addr(&self) -> Option<usize> {
        Some(Arc::as_ptr(&self.tx.chan) as usize)
    }
    fn lock(&self) -> Option<RawGuard> {
        Some(raw_lock(&self.tx.chan))
    }
    unsafe fn unlock(&self, g: RawGuard) {
        // SAFETY: forwarded contract.
        unsafe { raw_unlock(&self.tx.chan, g) };
    }
    unsafe fn poll_locked(&mut self) -> Option<Wake> {
        let c = &self.tx.chan;
        // SAFETY: forwarded contract: locked.
        c.send_ready_locked(unsafe { inner(c) }).then(Wake::default)
    }
    unsafe fn enqueue_locked(&mut self, sel: &Selector, index: usize) -> Option<Vec<Wakeup>> {
        let c = &self.tx.chan;
        // SAFETY: forwarded contract: locked; the observer (ours, in no
        // list: a select queues each case once) and the select's selector
        // outlive the entry (`select_cases` dequeues every case before
        // returning, and this case lives as long as the select).
        unsafe { inner(c).observe(&self.obs, sel, index) };
        self.queued = true;
        None
    }
    unsafe fn dequeue_locked(&mut self) {
        if std::mem::take(&mut self.queued) {
            // SAFETY: forwarded contract: locked; queued here by
            // `enqueue_locked`, if still queued.
            unsafe { inner(&self.tx.chan).unobserve(&self.obs) };
        }
    }
    fn complete(&mut self, _closed: bool) {
        self.queued = false;
    }
    fn describe(&self) -> SelectCase {
        SelectCase { chan: self.tx.chan.id, send: true }
    }
    fn maybe_ready(&self) -> bool {
        self.tx.chan.hint() & imp::HINT_SEND != 0
    }
}

impl<'a, T> DynSend<'a> for SendReady<'a, T> {
    fn addr(&self) -> usize {
        Arc::as_ptr(&self.tx.chan) as usize
    }
    fn as_case(&mut self) -> &mut (dyn Case + 'a) {
        self
    }
    fn fresh(&self) -> Box<dyn DynSend<'a> + 'a> {
        Box::new(SendReady::new(self.tx))
    }
}

/// The chosen case of a [`Select`]: complete it with `recv` or `send`.
///
/// ```
/// let (tx, rx) = goro::chan(1);
/// tx.send("v").unwrap();
/// let mut sel = goro::Select::new();
/// sel.recv(&rx);
/// let op: goro::SelectedOperation<'_> = sel.select();
/// assert_eq!(op.index(), 0);
/// assert_eq!(op.recv(&rx), Ok("v"));
/// ```
#[must_use = "a selected operation must be completed with recv or send"]
pub struct SelectedOperation<'a> {
    index: usize,
    case: DynCase<'a>,
}

impl<'a> Select<'a> {
    /// An empty select.
    ///
    /// ```
    /// let mut sel = goro::Select::new();
    /// assert!(sel.try_select().is_err()); // no cases: nothing is ever ready
    /// ```
    pub fn new() -> Select<'a> {
        Select { cases: Vec::new() }
    }

    /// Adds a receive case; returns its index.
    ///
    /// ```
    /// // Receive from whichever of a run-time list of channels has a value.
    /// let chans: Vec<_> = (0..4).map(|_| goro::chan::<usize>(1)).collect();
    /// chans[2].0.send(20).unwrap();
    /// let mut sel = goro::Select::new();
    /// let idx: Vec<usize> = chans.iter().map(|(_, rx)| sel.recv(rx)).collect();
    /// let op = sel.select();
    /// let i = idx.iter().position(|&k| k == op.index()).unwrap();
    /// assert_eq!(i, 2);
    /// assert_eq!(op.recv(&chans[i].1), Ok(20));
    /// ```
    pub fn recv<T>(&mut self, rx: &'a Receiver<T>) -> usize {
        self.cases.push(DynCase::Recv(Box::new(RecvCase::new(rx))));
        self.cases.len() - 1
    }

    /// Adds a send case; returns its index. It is chosen when a send on
    /// `tx` could proceed; complete it with [`SelectedOperation::send`].
    ///
    /// ```
    /// let (full_tx, _full_rx) = goro::chan::<i32>(1);
    /// full_tx.send(0).unwrap(); // no room left
    /// let (tx, rx) = goro::chan::<i32>(1);
    /// let mut sel = goro::Select::new();
    /// let _a = sel.send(&full_tx);
    /// let b = sel.send(&tx);
    /// let op = sel.select();
    /// assert_eq!(op.index(), b); // only `tx` has room
    /// op.send(&tx, 5).unwrap();
    /// assert_eq!(rx.recv(), Ok(5));
    /// ```
    pub fn send<T>(&mut self, tx: &'a Sender<T>) -> usize {
        self.cases.push(DynCase::Send(Box::new(SendReady::new(tx))));
        self.cases.len() - 1
    }

    /// Waits until one case is chosen. With no cases, waits for ever
    /// (Go's `select {}`).
    ///
    /// ```
    /// goro::run(|| {
    ///     let (tx, rx) = goro::chan::<&str>(0);
    ///     goro::go(move || tx.send("late").unwrap());
    ///     let mut sel = goro::Select::new();
    ///     sel.recv(&rx);
    ///     let op = sel.select(); // parks until the sender arrives
    ///     assert_eq!(op.recv(&rx), Ok("late"));
    /// });
    /// ```
    #[track_caller]
    pub fn select(&mut self) -> SelectedOperation<'a> {
        self.run(Mode::Block).expect("a blocking select returns a case")
    }

    /// Chooses a case that is ready now.
    ///
    /// # Errors
    ///
    /// `TrySelectError` if none is.
    ///
    /// ```
    /// let (tx, rx) = goro::chan::<i32>(1);
    /// let mut sel = goro::Select::new();
    /// sel.recv(&rx);
    /// assert!(sel.try_select().is_err()); // nothing buffered yet
    /// tx.send(1).unwrap();
    /// let mut sel = goro::Select::new();
    /// sel.recv(&rx);
    /// assert_eq!(sel.try_select().unwrap().recv(&rx), Ok(1));
    /// ```
    pub fn try_select(&mut self) -> Result<SelectedOperation<'a>, crate::TrySelectError> {
        self.run(Mode::Try).ok_or(crate::TrySelectError)
    }

    /// Waits at most `d` for a case.
    ///
    /// # Errors
    ///
    /// `SelectTimeoutError` on timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (_tx, rx) = goro::chan::<i32>(1);
    /// let mut sel = goro::Select::new();
    /// sel.recv(&rx);
    /// assert!(sel.select_timeout(Duration::from_millis(2)).is_err());
    /// ```
    #[track_caller]
    pub fn select_timeout(&mut self, d: Duration) -> Result<SelectedOperation<'a>, crate::SelectTimeoutError> {
        self.run(Mode::timeout(d)).ok_or(crate::SelectTimeoutError)
    }

    /// One select over every case, receive and send alike: the same
    /// algorithm, fairness and single park as `select!`.
    #[track_caller]
    fn run(&mut self, mode: Mode) -> Option<SelectedOperation<'a>> {
        let mut refs: Vec<&mut (dyn Case + 'a)> = self.cases.iter_mut().map(DynCase::as_case).collect();
        let i = select_cases(&mut refs, mode)?;
        drop(refs);
        let fresh = self.cases[i].fresh();
        let case = std::mem::replace(&mut self.cases[i], fresh);
        Some(SelectedOperation { index: i, case })
    }
}

impl Default for Select<'_> {
    fn default() -> Self {
        Select::new()
    }
}

impl std::fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Select").field("cases", &self.cases.len()).finish()
    }
}

impl std::fmt::Debug for SelectedOperation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelectedOperation").field("index", &self.index).finish()
    }
}

impl SelectedOperation<'_> {
    /// The index of the chosen case.
    ///
    /// ```
    /// let (_tx1, rx1) = goro::chan::<i32>(1);
    /// let (tx2, rx2) = goro::chan::<i32>(1);
    /// tx2.send(2).unwrap();
    /// let mut sel = goro::Select::new();
    /// let _first = sel.recv(&rx1);
    /// let second = sel.recv(&rx2);
    /// let op = sel.select();
    /// assert_eq!(op.index(), second);
    /// op.recv(&rx2).unwrap();
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// Completes a receive case.
    ///
    /// # Panics
    ///
    /// If the chosen case is not a receive on `rx`.
    ///
    /// # Errors
    ///
    /// `RecvError` if the channel is closed and drained (a closed channel is
    /// always ready).
    ///
    /// ```
    /// let (tx, rx) = goro::chan::<i32>(1);
    /// drop(tx);
    /// let mut sel = goro::Select::new();
    /// sel.recv(&rx);
    /// // A closed channel's receive is ready and yields `Err(RecvError)`.
    /// assert_eq!(sel.select().recv(&rx), Err(goro::RecvError));
    /// ```
    pub fn recv<T>(self, rx: &Receiver<T>) -> Result<T, RecvError> {
        match self.case {
            DynCase::Recv(mut r) => {
                let addr = rx.chan.as_ref().map_or(0, |c| Arc::as_ptr(c) as usize);
                assert_eq!(r.addr(), addr, "SelectedOperation::recv: not the receiver of the chosen case");
                let mut out: Option<Result<T, RecvError>> = None;
                r.take_into(&mut out as *mut _ as *mut ());
                out.expect("goro bug: a chosen receive has no result")
            }
            DynCase::Send(_) => panic!("SelectedOperation::recv: the chosen case is a send"),
        }
    }

    /// Completes a send case by sending `v` (it was ready when chosen; if a
    /// competing sender took the room meanwhile, this waits like `send`).
    ///
    /// # Panics
    ///
    /// If the chosen case is not a send on `tx`.
    ///
    /// # Errors
    ///
    /// `SendError(v)` if the channel is closed or has no receivers left.
    ///
    /// ```
    /// let (tx, rx) = goro::chan::<String>(1);
    /// let mut sel = goro::Select::new();
    /// sel.send(&tx);
    /// sel.select().send(&tx, "hi".to_string()).unwrap();
    /// assert_eq!(rx.recv().unwrap(), "hi");
    /// ```
    pub fn send<T>(self, tx: &Sender<T>, v: T) -> Result<(), SendError<T>> {
        match self.case {
            DynCase::Send(s) => {
                assert_eq!(
                    s.addr(),
                    Arc::as_ptr(&tx.chan) as usize,
                    "SelectedOperation::send: not the sender of the chosen case"
                );
                tx.send(v)
            }
            DynCase::Recv(_) => panic!("SelectedOperation::send: the chosen case is a receive"),
        }
    }
}
