//! Ports Go by Example's "Rate Limiting"
//! (<https://gobyexample.com/rate-limiting>): five requests served one per
//! tick of `time.Tick(200ms)`, then five more through a "bursty" limiter, a
//! buffered channel of three tokens pre-filled (a burst of three) and
//! refilled by a ticker coroutine.
//!
//! `cargo run --release --example rate_limiting` prints Go's lines,
//! `request N <time>`, in about 1.4 s. Go prints the wall-clock time
//! (`time.Now()`); this port prints the time since the start instead, which
//! shows the rate directly: the first five about 200 ms apart, then requests
//! 1-3 of the bursty batch at once and 4-5 200 ms apart. The times depend on
//! timing, as in Go.
//!
//! Go → goro: `time.Tick(d)` is `goro::time::tick(d)`; `<-limiter` is
//! `limiter.recv()`; `make(chan time.Time, 3)` is `goro::chan::<Instant>(3)`.
//! The refill coroutine runs for ever in Go; here it ends when `run`'s main
//! coroutine returns (leftover coroutines are cancelled) or, had `main` gone
//! on, when the bursty limiter's receiver is dropped (its send fails).
//! `tests/examples_run.rs` runs `rate_limiting` with a 5 ms tick.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where an example's lines go: `println!` in `main`, a `Vec` in the test.
pub type Out = Arc<dyn Fn(String) + Send + Sync>;

/// Go's `main` with the tick as a parameter (Go's is 200 ms). Returns, for
/// each batch, when each request was served (time since the batch began).
pub fn rate_limiting(every: Duration, out: Out) -> [Vec<Duration>; 2] {
    let t0 = Instant::now();
    let (requests_tx, requests) = goro::chan::<u32>(5);
    for i in 1..=5 {
        requests_tx.send(i).unwrap();
    }
    requests_tx.close();
    let limiter = goro::time::tick(every);
    let mut steady = vec![];
    for req in &requests {
        limiter.recv().unwrap();
        steady.push(t0.elapsed());
        out(format!("request {req} {:?}", t0.elapsed()));
    }

    let t1 = Instant::now();
    let (bursty_tx, bursty_limiter) = goro::chan::<Instant>(3);
    for _ in 0..3 {
        bursty_tx.send(Instant::now()).unwrap();
    }
    goro::go(move || {
        for t in goro::time::tick(every) {
            if bursty_tx.send(t).is_err() {
                return; // nobody takes tokens any more
            }
        }
    });
    let (bursty_requests_tx, bursty_requests) = goro::chan::<u32>(5);
    for i in 1..=5 {
        bursty_requests_tx.send(i).unwrap();
    }
    bursty_requests_tx.close();
    let mut bursty = vec![];
    for req in &bursty_requests {
        bursty_limiter.recv().unwrap();
        bursty.push(t1.elapsed());
        out(format!("request {req} {:?}", t0.elapsed()));
    }
    [steady, bursty]
}

#[allow(dead_code)] // the test includes this file as a module
fn main() {
    goro::run(|| {
        rate_limiting(Duration::from_millis(200), Arc::new(|line| println!("{line}")));
    });
}
