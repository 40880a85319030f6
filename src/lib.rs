//! goro: Go's concurrency for Rust.
//!
//! Cheap stackful coroutines on an M:N scheduler, Go-style channels and
//! `select`, timers, locks, contexts, and network I/O that parks a coroutine
//! instead of a thread. Code is written in plain blocking style (no `async`,
//! no `.await`): a coroutine that waits parks, and its worker thread runs
//! another. Port a Go program line by line: `go f()` is `goro::go(f)`.
//! Coming from Go? `docs/porting-from-go.md` in the repository maps each Go
//! construct to its goro spelling and lists the traps.
//!
//! ```
//! goro::run(|| {
//!     let handles: Vec<_> = (0..10).map(|i| goro::go(move || i * i)).collect();
//!     let sum: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
//!     assert_eq!(sum, 285);
//! });
//! ```
//!
//! # Coroutines
//!
//! [`go`] spawns a coroutine and returns its [`JoinHandle`];
//! [`join`](JoinHandle::join) waits for its value (`Err` with the payload if
//! it panicked). [`Builder`] names it or sizes its stack, [`scope`] spawns
//! coroutines that borrow from the caller's stack (like `std::thread::scope`),
//! and [`yield_now`] lets others run. An idle coroutine costs the page or two
//! of stack it touched, so hundreds of thousands at once are fine.
//!
//! [`run`] starts the default runtime, runs a closure as its main coroutine
//! and returns its value; [`Runtime`] (built by [`RuntimeBuilder`]) is a
//! runtime of its own, with its own workers. Called outside any runtime,
//! [`go`] uses a global default one.
//!
//! ```
//! goro::run(|| {
//!     let mut words = vec!["a", "b"];
//!     goro::scope(|s| {
//!         s.go(|| words.push("c")); // borrows `words` mutably
//!     });
//!     assert_eq!(words, ["a", "b", "c"]);
//!
//!     let h = goro::Builder::new().name("worker").spawn(|| 6 * 7).unwrap();
//!     assert_eq!(h.join().unwrap(), 42);
//! });
//! ```
//!
//! # Channels
//!
//! [`chan(n)`](chan()) makes a channel with a buffer of `n` values (`0`: an
//! unbuffered rendezvous) and returns its [`Sender`] and [`Receiver`]. Both
//! ends clone (many producers, many consumers), [`Sender::send`] and
//! [`Receiver::recv`] park while they must wait, and `for v in &rx` is Go's
//! `for v := range ch`. Closing is Go's: [`Sender::close`] (or dropping the
//! last `Sender`) closes for everyone; receivers drain what was sent, then get
//! [`RecvError`]. Unlike Go, dropping the last `Receiver` makes every send fail
//! with the value handed back in a [`SendError`], and a send on a closed
//! channel is an error, not a panic. Each operation has `try_` and `_timeout`
//! forms with their own error types ([`TrySendError`], [`RecvTimeoutError`],
//! ...). [`never()`] is Go's nil channel; [`dropping`] and [`sliding`] make
//! channels whose sends never block.
//!
//! ```
//! goro::run(|| {
//!     let (tx, rx) = goro::chan(0);
//!     goro::go(move || {
//!         for i in 0..3 {
//!             tx.send(i).unwrap();
//!         }
//!         // `tx` is dropped here, which closes the channel.
//!     });
//!     let got: Vec<i32> = rx.iter().collect();
//!     assert_eq!(got, [0, 1, 2]);
//! });
//! ```
//!
//! Porting trap: `let (_, rx) = goro::chan::<T>(0)` is closed at once (its only
//! `Sender` was dropped), while Go's `make(chan T)` stays open. Keep a `Sender`
//! alive, or use [`never()`].
//!
//! # Select
//!
//! [`select!`] waits on several channel operations and runs the arm of the one
//! that completes; among ready cases one is chosen uniformly at random, as in
//! Go. `default => ..` makes it non-blocking and `default(duration) => ..`
//! gives it a timeout. [`Select`] builds a select over a list of cases known
//! only at run time.
//!
//! ```
//! use std::time::Duration;
//!
//! goro::run(|| {
//!     let (tx, rx) = goro::chan::<&str>(1);
//!     let (_quit_tx, quit) = goro::chan::<()>(0);
//!     tx.send("job").unwrap();
//!     goro::select! {
//!         recv(rx) -> job => assert_eq!(job, Ok("job")),
//!         recv(quit) -> _ => unreachable!(),
//!         default(Duration::from_secs(1)) => panic!("timed out"),
//!     }
//! });
//! ```
//!
//! # Time, sync, context, net
//!
//! * [`time`]: [`sleep`](time::sleep), [`after`](time::after),
//!   [`tick`](time::tick), [`Timer`](time::Timer), [`Ticker`](time::Ticker) and
//!   [`after_func`](time::after_func), with Go 1.23's timer rules.
//! * [`sync`]: [`WaitGroup`](sync::WaitGroup), [`Mutex`](sync::Mutex),
//!   [`RwLock`](sync::RwLock), [`Once`](sync::Once),
//!   [`Semaphore`](sync::Semaphore) and [`Group`](sync::Group) (errgroup), all
//!   parking the coroutine rather than its thread.
//! * [`context`]: Go's cancellation tree with deadlines; wait on
//!   [`Context::done`](context::Context::done) in a `select!`.
//! * [`net`]: TCP, UDP and Unix sockets in `std::net`'s shapes, one coroutine
//!   per connection.
//! * [`stack`]: stack sizes, guard pages, and [`maybe_grow`](stack::maybe_grow)
//!   for deep recursion.
//! * [`diag`]: [`coroutines`], [`stats`], a goroutine dump, and the deadlock
//!   report ("all coroutines are asleep").
//!
//! ```
//! use std::time::Duration;
//! use goro::sync::WaitGroup;
//!
//! goro::run(|| {
//!     let wg = WaitGroup::new();
//!     let (tx, rx) = goro::chan(10);
//!     for i in 0..10 {
//!         let tx = tx.clone();
//!         wg.go(move || {
//!             goro::time::sleep(Duration::from_millis(1));
//!             tx.send(i).unwrap();
//!         });
//!     }
//!     wg.wait();
//!     drop(tx);
//!     assert_eq!(rx.iter().sum::<i32>(), 45);
//! });
//! ```
//!
//! # Blocking calls, futures and cancellation
//!
//! [`blocking`] runs a blocking call (file I/O, a C library) on a thread pool
//! while the coroutine parks; [`block_on`] runs a `Future` to completion from
//! coroutine code. [`JoinHandle::cancel`] asks a coroutine to stop: its next
//! (or current) park unwinds with [`Cancelled`], running its destructors, and
//! [`is_cancelled`] lets long computations check.
//!
//! ```
//! goro::run(|| {
//!     let n = goro::blocking(|| std::fs::read_dir(".").unwrap().count());
//!     assert!(n > 0);
//!     assert_eq!(goro::block_on(async { 1 + 1 }), 2);
//! });
//! ```
//!
//! # The home-worker rule
//!
//! A coroutine that has started runs on the same worker thread until it ends.
//! This is what makes [`go`] safe and sound: a stackful coroutine that moved to
//! another thread would carry thread-locals and `!Send` values (an `Rc` from a
//! thread-local, a `std::sync::MutexGuard`) across threads. Load balancing
//! moves only coroutines that have not started (their closure is `Send`).
//!
//! What blocking a worker costs: every coroutine homed on that worker waits.
//! A std lock held across a goro park, a blocking syscall (file I/O, a C
//! library, `std::thread::sleep`) or a long CPU loop stalls them all. Use
//! [`blocking`] for such calls, goro's own primitives (`goro::sync`,
//! `goro::time`, `goro::net`) for waiting, and [`yield_now`] in long loops.
//! The runtime prints a one-line warning (once per coroutine) when a
//! coroutine holds its worker for more than 100 ms without parking.
//!
//! Every blocking call in goro works both inside coroutines (it parks the
//! coroutine) and on plain OS threads (it blocks the thread).

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc
)]

mod block_on;
mod chan;
pub mod context;
mod coroutine;
pub mod diag;
mod list;
mod loom;
pub mod net;
mod park;
mod runtime;
mod sched;
mod scope;
mod select;
mod select_macro;
mod shard;
pub mod stack;
pub mod sync;
pub mod time;
mod wait;

pub use block_on::block_on;
pub use chan::{
    chan, dropping, never, sliding, IntoIter, Iter, Receiver, RecvError, RecvTimeoutError, SelectTimeoutError,
    SendError, SendTimeoutError, Sender, TryIter, TryRecvError, TrySelectError, TrySendError,
};
pub use coroutine::{go, is_cancelled, yield_now, Builder, Cancelled, JoinHandle};
pub use diag::report::{BlockedCoroutine, DeadlockReport};
pub use diag::{coroutines, num_coroutines, stats, CoroutineInfo, CoroutineState, LockWait, Stats, WaitReason};
pub use runtime::{run, RunError, Runtime, RuntimeBuilder};
pub use sched::blocking::blocking;
pub use scope::{scope, Scope, ScopedJoinHandle};
pub use select::{Select, SelectedOperation};

/// What the expansion of `select!` names (it expands in the user's crate, so
/// these must be `pub`); nothing else is. The one `#[doc(hidden)] pub`
/// surface of the crate besides the macro's own helper macros
/// (`tests/layering.rs` keeps it so).
#[doc(hidden)]
pub mod __private {
    // `recv_case`/`send_case`: build a typed case from the case's channel
    // expression (`rx`, `&rx`, `&&rx`, ...); `CaseRef`: the opaque handle a
    // case is passed as (`RecvCase::erased`); `select`: runs the select and
    // names the winner; `Mode`: block, `default` (try) or `default(timeout)`.
    pub use crate::select::{recv_case, select, send_case, CaseRef, Mode};
}

/// The default runtime `go` uses outside any runtime, built on first use.
///
/// The composition root's one late-bound edge (ARCHITECTURE.md): the
/// scheduler reaches the runtime that builds it only through here.
pub(crate) fn default_runtime() -> &'static std::sync::Arc<sched::Shared> {
    runtime::global_shared()
}

/// The porting guide's code blocks (`docs/porting-from-go.md`), run as doc
/// tests so the guide cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../docs/porting-from-go.md")]
pub struct PortingGuideDoctests;
