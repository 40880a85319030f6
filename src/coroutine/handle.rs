// The public coroutine handle: `go`, `Builder` and `JoinHandle`, apart
// from the control block (`mod.rs`). Spawning goes through
// `spawn_inner`; joining parks until the coroutine is DONE and takes its
// `CoInner::result`.

use super::*;

/// An owned permission to join a coroutine (Go has none; `std::thread`'s
/// shape). Dropping it detaches the coroutine.
///
/// `JoinHandle<T>` is `Send + Sync` for `T: Send`, so any thread or
/// coroutine may join.
///
/// ```
/// goro::run(|| {
///     let h: goro::JoinHandle<String> = goro::go(|| "result".to_string());
///     assert_eq!(h.join().unwrap(), "result");
///
///     let failing = goro::go(|| panic!("boom"));
///     assert!(failing.join().is_err()); // the panic payload
///
///     goro::go(|| {}); // dropping the handle detaches the coroutine
/// });
/// ```
pub struct JoinHandle<T> {
    pub(super) co: CoRef,
    /// The type of `co.result`'s box. As a `Mutex<T>` it gives the handle
    /// the auto traits and variance the old `Arc<Packet<T>>` gave it: `Send
    /// + Sync` exactly when `T: Send` (as documented above), invariant in
    /// `T`.
    pub(super) result: PhantomData<std::sync::Mutex<T>>,
}

impl<T> JoinHandle<T> {
    /// Waits for the coroutine to finish and returns its result, or
    /// `Err(payload)` if it panicked (or was cancelled at shutdown: payload
    /// [`Cancelled`]).
    ///
    /// Parks the calling coroutine, or blocks the calling OS thread.
    ///
    /// # Errors
    ///
    /// `Err(payload)` if the coroutine panicked (the payload of the panic) or
    /// was cancelled (a payload that `is::<goro::Cancelled>()`).
    ///
    /// ```
    /// goro::run(|| {
    ///     let h = goro::go(|| {
    ///         goro::time::sleep(std::time::Duration::from_millis(1));
    ///         7
    ///     });
    ///     assert_eq!(h.join().unwrap(), 7);
    ///     let err = goro::go(|| -> i32 { panic!("no value") }).join().unwrap_err();
    ///     assert_eq!(err.downcast_ref::<&str>(), Some(&"no value"));
    /// });
    /// ```
    #[track_caller]
    pub fn join(self) -> std::thread::Result<T> {
        crate::park::note_thread();
        if !self.co.is_done() {
            *self.co.joiner.lock() = Some(Waiter::current());
            let _owner = crate::wait::OwnerWait::new();
            while !self.co.is_done() {
                crate::wait::note_owner_park();
                crate::park::park(WaitReason::Join { id: self.co.id });
            }
        }
        // SAFETY: `CoInner::result` invariant: DONE was observed with
        // Acquire, the writer is finished, and we are the only reader.
        let r = unsafe { (*self.co.result.get()).take() }.expect("goro bug: a finished coroutine left no result");
        r.map(|b| {
            // SAFETY: `spawn_inner` built this handle and the entry closure
            // that boxed the value with the same `T`, so the box holds a
            // `T`; the cast drops only the vtable, and `Box<T>` frees it
            // with `T`'s layout, as it was allocated.
            *unsafe { Box::from_raw(Box::into_raw(b) as *mut T) }
        })
    }

    /// Has the coroutine finished (returned, panicked or been cancelled)?
    ///
    /// ```
    /// goro::run(|| {
    ///     let (tx, rx) = goro::chan::<()>(0);
    ///     let h = goro::go(move || rx.recv());
    ///     assert!(!h.is_finished()); // waiting for `tx`
    ///     drop(tx);
    ///     while !h.is_finished() {
    ///         goro::yield_now();
    ///     }
    ///     assert!(h.join().unwrap().is_err());
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        self.co.is_done()
    }

    /// Asks the coroutine to stop: it unwinds from its next park (at once
    /// if it is parked now, before its first instruction if it has not
    /// started), its destructors run, and [`join`](JoinHandle::join)
    /// returns `Err(payload)` with `payload.is::<goro::Cancelled>()`.
    ///
    /// Cancelling a finished or already cancelled coroutine does nothing.
    /// A coroutine is never cancelled in the middle of a goro operation's
    /// commit: a value it was sending is either delivered or dropped by its
    /// unwind, never lost half-way. A coroutine that never parks (a pure
    /// computation loop) runs on until it does; it can poll
    /// [`is_cancelled`] and return early. While it unwinds, its destructors
    /// may still park (join, lock, send): a second cancel does not
    /// interrupt them.
    ///
    /// ```
    /// goro::run(|| {
    ///     let h = goro::go(|| goro::time::sleep(std::time::Duration::from_secs(3600)));
    ///     h.cancel();
    ///     let err = h.join().unwrap_err();
    ///     assert!(err.is::<goro::Cancelled>());
    /// });
    /// ```
    pub fn cancel(&self) {
        if self.co.is_done() || self.co.has_flag(F_CANCEL) {
            return;
        }
        self.co.flags.fetch_or(F_CANCEL | F_CANCEL_WAKE, Ordering::SeqCst);
        // Pairs with the fence after the home is set in the worker's
        // `start_co` (Dekker): either we see the home, or the worker sees
        // the flag at the first resume, and the body never runs.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.co.home.get().is_some() {
            // A parked coroutine is queued and resumed with
            // `Resume::Cancel` (its worker reads the flag at every resume);
            // a running one finds the flag at its next park.
            self.co.wake();
        }
    }

    /// The coroutine's id (as in `goro::coroutines()` and reports).
    ///
    /// ```
    /// goro::run(|| {
    ///     let a = goro::go(|| ());
    ///     let b = goro::go(|| ());
    ///     assert_ne!(a.id(), b.id());
    /// });
    /// ```
    pub fn id(&self) -> u64 {
        self.co.id
    }

    /// The coroutine's name, if it was given one.
    ///
    /// ```
    /// let h = goro::Builder::new().name("fetcher").spawn(|| ()).unwrap();
    /// assert_eq!(h.name(), Some("fetcher"));
    /// assert_eq!(goro::go(|| ()).name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.co.name.as_deref()
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("id", &self.co.id).finish()
    }
}

/// Configures a coroutine before spawning it (`std::thread::Builder`'s
/// shape).
///
/// ```
/// let h = goro::Builder::new().name("worker").stack_size(64 * 1024).spawn(|| 6 * 7).unwrap();
/// assert_eq!(h.join().unwrap(), 42);
/// ```
#[derive(Debug, Default, Clone)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with the runtime's defaults.
    ///
    /// ```
    /// let h = goro::Builder::new().spawn(|| "default stack, no name").unwrap();
    /// assert_eq!(h.join().unwrap(), "default stack, no name");
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the coroutine (shown by diagnostics and reports).
    ///
    /// ```
    /// goro::run(|| {
    ///     let h = goro::Builder::new().name("logger").spawn(|| goro::diag::dump()).unwrap();
    ///     assert!(h.join().unwrap().contains("\"logger\""));
    /// });
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Stack reservation in bytes. Rounded up to whole pages and to at least
    /// [`crate::stack::MIN_STACK_SIZE`]. Only touched pages cost memory.
    ///
    /// ```
    /// // A deep recursion needs more than the default 256 KiB.
    /// fn depth(n: u32) -> u32 {
    ///     let pad = [0u8; 512];
    ///     if n == 0 { pad[0] as u32 } else { 1 + depth(n - 1) + std::hint::black_box(pad)[1] as u32 }
    /// }
    /// let h = goro::Builder::new().stack_size(8 << 20).spawn(|| depth(5_000)).unwrap();
    /// assert_eq!(h.join().unwrap(), 5_000);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawns the coroutine onto the current runtime (or the global default
    /// runtime outside any).
    ///
    /// # Errors
    ///
    /// `Err` if its stack cannot be reserved (the reason from the OS).
    ///
    /// ```
    /// goro::run(|| {
    ///     let h = goro::Builder::new().name("child").spawn(|| 1).expect("stack reservation failed");
    ///     assert_eq!(h.join().unwrap(), 1);
    /// });
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let loc = Location::caller();
        sched::with_runtime(|rt| spawn_inner(rt, self.name, self.stack_size, 0, loc, f))
    }
}

/// Spawns a coroutine, Go's `go f()`.
///
/// Inside a coroutine it joins the same runtime; outside any it goes to the
/// global default runtime (started on first use). The returned handle may be
/// dropped to detach.
///
/// # Panics
///
/// If its stack cannot be reserved (see [`Builder::spawn`] for the `Result`
/// form).
///
/// ```
/// let h = goro::go(|| 1 + 1);
/// assert_eq!(h.join().unwrap(), 2);
/// ```
///
/// The closure must be `Send`: a coroutine may start on another worker.
///
/// # Unwinding and `std::thread::panicking()`
///
/// goro keeps, per coroutine, whether it is unwinding (a panic of its own,
/// or its cancellation at shutdown), and that alone decides whether a
/// cancel interrupts it: a coroutine never sees another one's unwind.
/// std's `std::thread::panicking()` is different: it counts the panics in
/// flight on the OS thread, which every coroutine of a worker shares, and
/// goro cannot save and restore it across switches (std keeps it private).
/// So while coroutine A is parked in a destructor in the middle of its
/// unwind (one that joins, locks, sends or sleeps), every other coroutine
/// on A's worker sees `panicking() == true`. For code that calls it:
///
/// * A `std::sync::Mutex` locked and unlocked without a park in between is
///   unaffected. A guard taken *before* A's parked unwind began and dropped
///   *during* it poisons the mutex, as if its holder had panicked (std reads
///   `panicking()` at lock and at unlock). Do not hold a std guard across a
///   goro park (it also blocks the worker if another coroutine contends):
///   use `goro::sync::Mutex`, which never poisons.
/// * A destructor that does something else when `panicking()` (skips a
///   flush, logs, aborts on a second panic) may take that branch in a
///   coroutine that is not unwinding.
/// * A new panic in such a coroutine is an ordinary panic (std aborts only
///   on a panic escaping a destructor that runs *during* an unwind).
///
/// ```compile_fail
/// let rc = std::rc::Rc::new(1);
/// goro::go(move || *rc);
/// ```
#[track_caller]
pub fn go<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let loc = Location::caller();
    match sched::with_runtime(|rt| spawn_inner(rt, None, None, 0, loc, f)) {
        Ok(h) => h,
        Err(e) => panic!("goro::go: cannot reserve a coroutine stack: {e} (lower the stack size with goro::Builder::stack_size or RuntimeBuilder::stack_size)"),
    }
}
