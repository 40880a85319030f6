//! Harness shared by the test files (`mod common;` in each): runtime
//! builders, a watchdog that turns a hang into a prompt, named failure,
//! `within` (the same for a body run on a thread of its own), a destructor
//! counter, and small helpers several files need.
//!
//! Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A runtime of `n` workers, default settings otherwise.
pub fn rt(n: usize) -> goro::Runtime {
    goro::Runtime::builder().workers(n).build().expect("runtime")
}

/// Aborts the process if still alive after its `secs` (a hang); disarmed
/// when dropped.
pub struct Watchdog(Arc<AtomicBool>);

/// Arms a [`Watchdog`] for `secs`; `what` names the test in the message.
pub fn watchdog(secs: u64, what: &'static str) -> Watchdog {
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if d2.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("watchdog: {what}: still running after {secs} s (hang); aborting");
        std::process::abort();
    });
    Watchdog(done)
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs `f` on a thread of its own and returns its result; fails the test
/// with `hang` if it has not finished within `secs` (the thread is left
/// behind), and passes on its panic if it panicked.
pub fn within<T: Send + 'static>(secs: u64, hang: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{hang} (still running after {secs} s)"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match t.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("the body returned without sending"),
        },
    }
}

/// Counts its drops: one increment of the shared counter per destructor run.
pub struct DropCount(pub Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Channel timers armed now, process-wide (`Stats::chan_timers`).
pub fn armed() -> u64 {
    goro::stats().chan_timers
}

/// Plain recursion with a 512-byte frame: overflows any stack for a large
/// enough `n`.
pub fn overflow(n: u64) -> u64 {
    let pad = std::hint::black_box([n; 64]);
    if n == 0 {
        0
    } else {
        overflow(n - 1) + pad[3]
    }
}

/// Runs the (ignored) test `name` of the current test binary alone in a
/// child process with `env` set, and returns its output: for a test that
/// must own process-wide state (counters, environment read at build).
pub fn run_child_test(name: &str, env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--include-ignored"])
        .envs(env.iter().copied())
        .output()
        .unwrap()
}
