//! Ports the `merge` of Francesc Campoy's "Why are there nil channels in
//! Go?" (justforfunc, 2017,
//! <https://medium.com/justforfunc/why-are-there-nil-channels-in-go-9877cc0b2308>):
//! a `for { select }` loop merging two channels, which disables the case of
//! a finished input by setting that channel to nil, so the loop neither
//! spins on the closed channel nor stops before the other input is drained.
//!
//! `cargo run --release --example for_select` prints what the Go program
//! prints: the numbers 1 to 8, each input's in order but the two
//! interleaved at random (each input sleeps up to a second between values),
//! and `a is done` / `b is done` when an input closes. The interleaving
//! depends on timing, as in Go.
//!
//! Go → goro: `a = nil` is `a = goro::never()` (a receiver that is never
//! ready); `select!` holds no borrow of `a` while the arm runs, so the arm
//! may reassign it. Go's loop condition `a != nil || b != nil` becomes two
//! flags, as a goro `Receiver` has no nil state to compare with.
//! `defer close(c)` is the merged `Sender` being dropped when the coroutine
//! ends. `tests/examples_run.rs` runs `merge` with short sleeps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use goro::{chan, never, Receiver};

/// Where an example's lines go: `println!` in `main`, a `Vec` in the test.
pub type Out = Arc<dyn Fn(String) + Send + Sync>;

/// Go's `merge(a, b <-chan int) <-chan int`.
pub fn merge(mut a: Receiver<i32>, mut b: Receiver<i32>, out: Out) -> Receiver<i32> {
    let (c_tx, c) = chan::<i32>(0);
    goro::go(move || {
        let (mut a_live, mut b_live) = (true, true);
        while a_live || b_live {
            goro::select! {
                recv(a) -> v => match v {
                    Ok(v) => { let _ = c_tx.send(v); }
                    Err(_) => {
                        out("a is done".to_string());
                        a = never(); // Go: a = nil
                        a_live = false;
                    }
                },
                recv(b) -> v => match v {
                    Ok(v) => { let _ = c_tx.send(v); }
                    Err(_) => {
                        out("b is done".to_string());
                        b = never(); // Go: b = nil
                        b_live = false;
                    }
                },
            }
        }
    });
    c
}

/// Go's `asChan(vs ...int)`: sends each value, then sleeps a random time
/// below `max_sleep` (Go's: one second).
pub fn as_chan(vs: Vec<i32>, max_sleep: Duration) -> Receiver<i32> {
    let (c_tx, c) = chan::<i32>(0);
    goro::go(move || {
        for v in vs {
            c_tx.send(v).unwrap();
            goro::time::sleep(max_sleep.mul_f64(rand_unit()));
        }
        c_tx.close();
    });
    c
}

fn rand_unit() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    (x % 1000) as f64 / 1000.0
}

#[allow(dead_code)] // the test includes this file as a module
fn main() {
    goro::run(|| {
        let out: Out = Arc::new(|line| println!("{line}"));
        let a = as_chan(vec![1, 3, 5, 7], Duration::from_secs(1));
        let b = as_chan(vec![2, 4, 6, 8], Duration::from_secs(1));
        let c = merge(a, b, out);
        for v in &c {
            println!("{v}");
        }
    });
}
