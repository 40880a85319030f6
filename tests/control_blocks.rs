//! Coroutine control blocks come from goro's own slab (`coroutine/block.rs`):
//! allocated on the spawner's thread, freed on whichever thread drops the
//! last reference (the home worker, a joiner, a plain thread that exits),
//! and reused through per-thread caches and a shared pool. These tests
//! move blocks through every one of those paths and check that no
//! coroutine's state leaks into another's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Spawned on a plain thread, run and freed on the workers, many rounds:
/// the spawner's cache is fed only through the pool.
#[test]
fn blocks_freed_on_other_threads_come_back_to_the_spawner() {
    let rt = goro::Runtime::builder().workers(2).build().unwrap();
    let got = rt
        .run(|| {
            let total = Arc::new(AtomicU64::new(0));
            for round in 0..20u64 {
                let hs: Vec<_> = (0..1000u64)
                    .map(|i| {
                        let total = total.clone();
                        goro::go(move || {
                            total.fetch_add(round * 1000 + i, Ordering::Relaxed);
                            (round, i)
                        })
                    })
                    .collect();
                for (i, h) in hs.into_iter().enumerate() {
                    assert_eq!(h.join().unwrap(), (round, i as u64));
                }
            }
            total.load(Ordering::Relaxed)
        })
        .unwrap();
    let n = 20_000u64;
    assert_eq!(got, n * (n - 1) / 2);
}

/// Handles joined or detached on plain threads that then exit, some kept
/// in a thread-local until the thread's destructors run (after, or before,
/// the thread's block cache is gone): every block is freed once, and each
/// coroutine's result is its own.
#[test]
fn handles_joined_and_dropped_on_exiting_threads() {
    thread_local! {
        static KEPT: std::cell::RefCell<Vec<goro::JoinHandle<u64>>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    for _ in 0..4 {
        let mut handles: Vec<(u64, goro::JoinHandle<u64>)> =
            (0..400u64).map(|i| (i, goro::go(move || i * 3))).collect();
        let mut joiners = Vec::new();
        while !handles.is_empty() {
            let mine: Vec<_> = handles.drain(..50).collect();
            joiners.push(std::thread::spawn(move || {
                let mut sum = 0;
                for (i, h) in mine {
                    match i % 3 {
                        0 => {
                            let v = h.join().unwrap();
                            assert_eq!(v, i * 3);
                            sum += v;
                        }
                        1 => drop(h), // detached: freed when the coroutine ends
                        _ => KEPT.with(|k| k.borrow_mut().push(h)), // dropped at thread exit
                    }
                }
                sum
            }));
        }
        let sum: u64 = joiners.into_iter().map(|j| j.join().unwrap()).sum();
        assert_eq!(sum, (0..400u64).filter(|i| i % 3 == 0).map(|i| i * 3).sum());
    }
    // The blocks of all those coroutines are reused by later ones.
    let sum: u64 =
        (0..2000u64).map(|i| goro::go(move || i)).collect::<Vec<_>>().into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, 2000 * 1999 / 2);
}
