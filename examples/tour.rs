//! A tour of goro: `cargo run --release --example tour`.
//!
//! Spawns a tree of coroutines, joins them, shows a panic isolated in its
//! coroutine, and prints the runtime's counters.

use std::time::Instant;

fn tree(depth: u32, num: u64) -> u64 {
    if depth == 0 {
        return num;
    }
    let hs: Vec<_> = (0..10).map(|i| goro::go(move || tree(depth - 1, num * 10 + i))).collect();
    hs.into_iter().map(|h| h.join().unwrap()).sum()
}

fn main() {
    goro::run(|| {
        let t = Instant::now();
        let sum = tree(5, 0);
        println!("spawned and joined a tree of 111111 coroutines: sum {sum} in {:?}", t.elapsed());

        let h = goro::Builder::new().name("fragile").spawn(|| -> u32 { panic!("a coroutine panicked") }).unwrap();
        println!("join of a panicking coroutine: is_err = {}", h.join().is_err());

        let s = goro::stats();
        println!(
            "stats: spawned {} context switches {} steals {} stacks in use {}",
            s.spawned, s.context_switches, s.steals, s.stacks_in_use
        );
    });
}
