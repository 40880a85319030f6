//! Panic messages that name the coroutine.
//!
//! Owns: the process-wide panic hook goro installs when the first runtime is
//! built ([`install_hook`]). It marks the running coroutine (if any) as
//! unwinding (`coroutine.rs`, "Unwinding"). It wraps the hook that was in
//! place then: a
//! panic raised while a coroutine runs prints
//! `coroutine #12 "fetcher" (spawned at src/main.rs:30:9) panicked at
//! src/main.rs:31:5:` and the message (Go names the goroutine; std would
//! name only the worker thread), then a backtrace or the note about
//! `RUST_BACKTRACE`, as std's default hook does. Any other panic (plain
//! threads, the blocking pool, goro's own threads outside a coroutine) goes
//! to the previous hook unchanged.
//!
//! Invariants: cancellation unwinds (`Cancelled`) never reach a hook
//! (`resume_unwind` does not call it); the hook also stays silent for that
//! payload in case one is ever raised with `panic_any`. The hook holds no
//! goro lock and only reads the running coroutine's immutable fields (id,
//! name, spawn site), so it can run from any panic, however deep.
//!
//! Limits: a hook set *before* the first runtime is built is kept for
//! panics outside coroutines only; one set *after* replaces goro's.

use std::any::Any;
use std::backtrace::Backtrace;
use std::io::Write as _;
use std::panic::PanicHookInfo;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use crate::coroutine::Cancelled;

/// Installs goro's panic hook (once per process), wrapping the current one.
pub(crate) fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // The unwind starting now is the running coroutine's own
            // (`coroutine.rs`, "Unwinding"): std's count is per thread.
            crate::coroutine::mark_unwinding();
            if info.payload().is::<Cancelled>() {
                return;
            }
            if !report(info) {
                prev(info);
            }
        }));
    });
}

/// Prints the coroutine's report if the panic happened in one; false if not.
fn report(info: &PanicHookInfo<'_>) -> bool {
    let Some(co) = crate::coroutine::current() else { return false };
    let at = match info.location() {
        Some(l) => l.to_string(),
        None => "an unknown place".to_string(),
    };
    let mut text = format!(
        "coroutine {} (spawned at {}) panicked at {at}:\n{}\n",
        co.label(),
        co.spawned_at,
        message(info.payload())
    );
    static FIRST: AtomicBool = AtomicBool::new(true);
    match std::env::var("RUST_BACKTRACE").as_deref() {
        Ok("full") => text.push_str(&format!("stack backtrace:\n{:#}", Backtrace::force_capture())),
        Ok(v) if v != "0" => text.push_str(&format!("stack backtrace:\n{}", Backtrace::force_capture())),
        _ => {
            if FIRST.swap(false, Ordering::Relaxed) {
                text.push_str("note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n");
            }
        }
    }
    // One write, so lines of panics on two workers do not interleave;
    // `eprint!` goes to a test's captured output like std's hook does.
    eprint!("{text}");
    let _ = std::io::stderr().flush();
    true
}

/// The panic message, as std's hook shows it.
fn message(p: &(dyn Any + Send)) -> &str {
    if let Some(s) = p.downcast_ref::<&str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}
