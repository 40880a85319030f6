//! goro: Go's concurrency for Rust.
//!
//! Cheap stackful coroutines on an M:N scheduler, Go-style channels and
//! `select`, timers, and network I/O that parks a coroutine instead of a
//! thread. Port a Go program line by line: `go f()` is `goro::go(f)`.
//!
//! ```
//! goro::run(|| {
//!     let handles: Vec<_> = (0..10).map(|i| goro::go(move || i * i)).collect();
//!     let sum: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
//!     assert_eq!(sum, 285);
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
mod loom;
pub mod net;
mod park;
mod runtime;
mod sched;
mod scope;
mod select;
mod select_macro;
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
