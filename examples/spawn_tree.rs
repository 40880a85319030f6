//! A 10-ary tree of 1 111 111 coroutines: each node spawns 10 children with
//! `goro::go` and sums their joined results (skynet's shape, with join
//! instead of channels). `cargo run --release --example spawn_tree [N]`
use std::time::Instant;

fn node(num: u64, size: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let hs: Vec<_> = (0..10).map(|i| goro::go(move || node(num + i * (size / 10), size / 10))).collect();
    hs.into_iter().map(|h| h.join().unwrap()).sum()
}

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let (v, ms) = goro::run(move || {
        let t = Instant::now();
        let v = node(0, n);
        (v, t.elapsed().as_secs_f64() * 1000.0)
    });
    println!("workload=spawn_tree n={n} result={v} ms={ms:.1}");
    if v != n * (n - 1) / 2 {
        eprintln!("wrong result: want {}", n * (n - 1) / 2);
        std::process::exit(1);
    }
}
