//! Ports "Google Search 3.0" from Rob Pike's talk "Go Concurrency Patterns"
//! (Google I/O 2012, <https://go.dev/talks/2012/concurrency.slide#50>):
//! three kinds of search (web, image, video), each sent to two replicas; the
//! first replica to answer wins, and the whole query gives up after 80 ms.
//!
//! `cargo run --release --example fake_search` prints what the talk's
//! program prints: the results, as Go prints a `[]Result` (each result ends
//! in a newline), then the elapsed time, or `timed out` first when no
//! replica of some kind answered within 80 ms. Which replicas win, whether
//! it times out and the elapsed time depend on the random latencies, as in
//! Go.
//!
//! Go → goro: `First`'s unbuffered `c` is `goro::chan(0)`; the losing
//! replicas of the talk block for ever on `c <- ...` (a goroutine leak the
//! talk leaves aside). Here their send fails as soon as `first` has returned
//! and dropped the only `Receiver`, so they end. `time.After(80ms)` in the
//! select is `recv(timeout) -> _`. Go's `math/rand` is a small xorshift.
//! `tests/examples_run.rs` checks `first` and `google` with fixed latencies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where an example's lines go: `println!` in `main`, a `Vec` in the test.
pub type Out = Arc<dyn Fn(String) + Send + Sync>;

/// Go's `type Search func(query string) Result`.
pub type Search = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Go's `fakeSearch(kind)`: answers after a random latency below 100 ms.
pub fn fake_search(kind: &'static str) -> Search {
    Arc::new(move |query: &str| {
        goro::time::sleep(Duration::from_millis(rand_below(100)));
        format!("{kind} result for {query:?}\n")
    })
}

/// A search answering after a fixed latency (for the test).
pub fn fixed_search(kind: &'static str, latency: Duration) -> Search {
    Arc::new(move |query: &str| {
        goro::time::sleep(latency);
        format!("{kind} result for {query:?}\n")
    })
}

/// Go's `First`: asks every replica, returns the first answer.
pub fn first(query: &str, replicas: &[Search]) -> String {
    let (c_tx, c) = goro::chan::<String>(0);
    for replica in replicas {
        let (c_tx, replica, query) = (c_tx.clone(), replica.clone(), query.to_string());
        goro::go(move || {
            let _ = c_tx.send(replica(&query)); // Err once a faster replica has won
        });
    }
    c.recv().unwrap()
}

/// Go's `Google` (3.0) with the replicas and the timeout as parameters.
pub fn google(query: &str, kinds: &[[Search; 2]; 3], timeout: Duration, out: Out) -> Vec<String> {
    let (c_tx, c) = goro::chan::<String>(0);
    for replicas in kinds {
        let (c_tx, replicas, query) = (c_tx.clone(), replicas.clone(), query.to_string());
        goro::go(move || {
            let _ = c_tx.send(first(&query, &replicas));
        });
    }
    let timeout = goro::time::after(timeout);
    let mut results = vec![];
    for _ in 0..3 {
        goro::select! {
            recv(c) -> result => results.push(result.unwrap()),
            recv(timeout) -> _ => {
                out("timed out".to_string());
                return results;
            }
        }
    }
    results
}

/// Go's `fmt.Println` of a `[]Result`.
pub fn format_results(results: &[String]) -> String {
    format!("[{}]", results.join(" "))
}

fn rand_below(n: u64) -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        // Go: rand.Seed(time.Now().UnixNano())
        x = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed); // a lost update between coroutines only repeats a number
    x % n
}

#[allow(dead_code)] // the test includes this file as a module
fn main() {
    goro::run(|| {
        let kinds = [
            [fake_search("web1"), fake_search("web2")],
            [fake_search("image1"), fake_search("image2")],
            [fake_search("video1"), fake_search("video2")],
        ];
        let start = Instant::now();
        let results = google("golang", &kinds, Duration::from_millis(80), Arc::new(|line| println!("{line}")));
        let elapsed = start.elapsed();
        println!("{}", format_results(&results));
        println!("{elapsed:?}");
    });
}
