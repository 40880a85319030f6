//! How late the first `sleep(50ms)` of a fresh 1-worker runtime wakes while
//! main waits in a channel `recv` (a lateness reported on a loaded box; see
//! the closing note of issue 14). Prints min / median / max lateness over
//! `N` fresh runtimes (default 20).
//!
//! `cargo run --release --example first_sleep [N]`

use std::time::{Duration, Instant};

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let mut late = Vec::with_capacity(n);
    for _ in 0..n {
        let rt = goro::Runtime::builder().workers(1).build().unwrap();
        let l = rt
            .run(|| {
                let (tx, rx) = goro::chan::<Duration>(0);
                goro::go(move || {
                    let t = Instant::now();
                    goro::time::sleep(Duration::from_millis(50));
                    tx.send(t.elapsed()).unwrap();
                });
                rx.recv().unwrap()
            })
            .unwrap();
        late.push(l.saturating_sub(Duration::from_millis(50)));
    }
    late.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "first_sleep runs={n} late_us min={:.0} median={:.0} max={:.0}",
        us(late[0]),
        us(late[n / 2]),
        us(late[n - 1])
    );
}
