//! Harness shared by the test files (`mod common;` in each): a watchdog
//! that turns a hang into a prompt, named failure.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
