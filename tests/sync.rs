//! goro::sync: each body runs on one worker, four workers, and plain threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use goro::sync::{Mutex, Once, RwLock, Semaphore, WaitGroup};

mod common;
use common::rt;

/// Spawns `n` parties running `f(i)` in the given world and waits for all.
fn world(kind: &str, n: usize, f: impl Fn(usize) + Send + Sync + 'static) {
    let f = Arc::new(f);
    match kind {
        "threads" => {
            let hs: Vec<_> = (0..n)
                .map(|i| {
                    let f = f.clone();
                    std::thread::spawn(move || f(i))
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        }
        _ => {
            let workers = if kind == "w1" { 1 } else { 4 };
            let rt = rt(workers);
            rt.run(move || {
                let hs: Vec<_> = (0..n)
                    .map(|i| {
                        let f = f.clone();
                        goro::go(move || f(i))
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
            })
            .unwrap();
        }
    }
}

const WORLDS: [&str; 3] = ["w1", "w4", "threads"];

#[test]
fn mutex_excludes() {
    for w in WORLDS {
        // A non-atomic read-modify-write with a yield inside the critical
        // section: lost updates would show if exclusion failed.
        let m = Arc::new(Mutex::new(0u64));
        let m2 = m.clone();
        world(w, 8, move |_| {
            for k in 0..2_000 {
                let mut g = m2.lock();
                let v = *g;
                if k % 100 == 0 {
                    goro::yield_now();
                }
                *g = v + 1;
            }
        });
        assert_eq!(*m.lock(), 16_000, "world {w}");
    }
}

#[test]
fn mutex_try_lock_and_holder_across_yield() {
    rt(1)
        .run(|| {
            let m = Arc::new(Mutex::new(1));
            let g = m.lock();
            assert!(m.try_lock().is_none());
            let m2 = m.clone();
            // Same worker: the waiter parks; holding across yield must not
            // deadlock the worker.
            let h = goro::go(move || *m2.lock() + 1);
            for _ in 0..10 {
                goro::yield_now();
            }
            assert!(!h.is_finished());
            drop(g);
            assert_eq!(h.join().unwrap(), 2);
            assert!(m.try_lock().is_some());
        })
        .unwrap();
}

#[test]
fn rwlock_readers_share_writers_exclude() {
    for w in WORLDS {
        let l = Arc::new(RwLock::new(0u64));
        let readers_in = Arc::new(AtomicUsize::new(0));
        let max_readers = Arc::new(AtomicUsize::new(0));
        let bad = Arc::new(AtomicUsize::new(0));
        let (l2, r2, m2, b2) = (l.clone(), readers_in.clone(), max_readers.clone(), bad.clone());
        world(w, 8, move |i| {
            for k in 0..300 {
                if (i + k) % 4 == 0 {
                    let mut g = l2.write();
                    if r2.load(Ordering::SeqCst) != 0 {
                        b2.fetch_add(1, Ordering::SeqCst);
                    }
                    *g += 1;
                } else {
                    let g = l2.read();
                    let n = r2.fetch_add(1, Ordering::SeqCst) + 1;
                    m2.fetch_max(n, Ordering::SeqCst);
                    let _ = *g;
                    goro::yield_now();
                    r2.fetch_sub(1, Ordering::SeqCst);
                }
            }
        });
        assert_eq!(bad.load(Ordering::SeqCst), 0, "a writer overlapped readers in {w}");
        assert_eq!(*l.read(), 600, "world {w}");
        if w != "w1" {
            assert!(max_readers.load(Ordering::SeqCst) >= 1);
        }
    }
    let l = RwLock::new(1);
    let r = l.read();
    assert!(l.try_read().is_some());
    assert!(l.try_write().is_none());
    drop(r);
    assert!(l.try_write().is_some());
}

#[test]
fn once_runs_once_and_others_wait() {
    for w in WORLDS {
        let once = Arc::new(Once::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let seen_after = Arc::new(AtomicUsize::new(0));
        let (o2, r2, s2) = (once.clone(), runs.clone(), seen_after.clone());
        world(w, 16, move |_| {
            o2.call_once(|| {
                goro::yield_now();
                std::thread::sleep(Duration::from_millis(5));
                r2.fetch_add(1, Ordering::SeqCst);
            });
            // Every caller returns only after the initializer finished.
            s2.fetch_add(r2.load(Ordering::SeqCst), Ordering::SeqCst);
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1, "world {w}");
        assert_eq!(seen_after.load(Ordering::SeqCst), 16, "world {w}");
        assert!(once.is_completed());
    }
}

#[test]
fn semaphore_bounds_concurrency() {
    for w in WORLDS {
        let sem = Arc::new(Semaphore::new(3));
        let inside = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let (s2, i2, m2) = (sem.clone(), inside.clone(), max.clone());
        world(w, 12, move |_| {
            for _ in 0..20 {
                let _p = s2.acquire();
                let n = i2.fetch_add(1, Ordering::SeqCst) + 1;
                m2.fetch_max(n, Ordering::SeqCst);
                goro::yield_now();
                i2.fetch_sub(1, Ordering::SeqCst);
            }
        });
        assert!(max.load(Ordering::SeqCst) <= 3, "world {w}");
        assert!(max.load(Ordering::SeqCst) >= 1);
        assert_eq!(sem.available_permits(), 3);
    }
    let s = Semaphore::new(1);
    let p = s.try_acquire().unwrap();
    assert!(s.try_acquire().is_none());
    drop(p);
    assert!(s.try_acquire().is_some());
}

#[test]
fn waitgroup_waits_for_all() {
    for w in WORLDS {
        let wg = WaitGroup::new();
        let done = Arc::new(AtomicUsize::new(0));
        let (wg2, d2) = (wg.clone(), done.clone());
        wg.add(10);
        let waiter = {
            let wg = wg.clone();
            let d = done.clone();
            std::thread::spawn(move || {
                wg.wait();
                d.load(Ordering::SeqCst)
            })
        };
        world(w, 10, move |_| {
            goro::yield_now();
            d2.fetch_add(1, Ordering::SeqCst);
            wg2.done();
        });
        assert_eq!(waiter.join().unwrap(), 10, "world {w}");
        assert_eq!(wg.count(), 0);
        wg.wait(); // zero: returns at once
    }
}

#[test]
fn waitgroup_negative_panics() {
    let wg = WaitGroup::new();
    let p = std::panic::catch_unwind(|| wg.done()).unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"sync: negative WaitGroup counter"));
}

#[test]
fn cancelled_waiter_passes_the_lock_on() {
    // Coroutines parked on a Mutex when main returns unwind; the lock is not
    // poisoned nor lost.
    let m = Arc::new(Mutex::new(0));
    let m2 = m.clone();
    rt(2)
        .run(move || {
            let g = m2.lock();
            for _ in 0..50 {
                let m = m2.clone();
                goro::go(move || *m.lock() += 1);
            }
            for _ in 0..20 {
                goro::yield_now();
            }
            drop(g);
        })
        .unwrap();
    *m.lock() += 1000;
    assert!(*m.lock() >= 1000);
}

/// Go's TestMutexFairness: a party that keeps re-locking (and would always
/// win the barging race) must not starve one that locks now and then: the
/// starvation mode hands it the lock after 1 ms of waiting.
#[test]
fn mutex_starvation_mode_is_fair() {
    for w in WORLDS {
        let m = Arc::new(Mutex::new(()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let got = Arc::new(AtomicUsize::new(0));
        let (m2, stop2, got2) = (m.clone(), stop.clone(), got.clone());
        let t = std::time::Instant::now();
        world(w, 2, move |i| {
            if i == 0 {
                while !stop2.load(Ordering::Relaxed) {
                    let _g = m2.lock();
                    goro::time::sleep(Duration::from_micros(100));
                }
            } else {
                for _ in 0..10 {
                    goro::time::sleep(Duration::from_micros(100));
                    let _g = m2.lock();
                    got2.fetch_add(1, Ordering::Relaxed);
                }
                stop2.store(true, Ordering::Relaxed);
            }
        });
        assert_eq!(got.load(Ordering::Relaxed), 10, "world {w}");
        assert!(t.elapsed() < Duration::from_secs(10), "world {w}: the occasional locker starved");
    }
}

/// Normal mode under heavy contention from coroutines on several workers
/// and plain threads at once: exclusion holds and no party is lost.
#[test]
fn mutex_contended_mixed_parties() {
    let m = Arc::new(Mutex::new(0u64));
    let rt = rt(2);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..20_000 {
                    *m.lock() += 1;
                }
            })
        })
        .collect();
    let m2 = m.clone();
    rt.run(move || {
        let hs: Vec<_> = (0..16)
            .map(|_| {
                let m = m2.clone();
                goro::go(move || {
                    for k in 0..5_000 {
                        let mut g = m.lock();
                        *g += 1;
                        if k % 500 == 0 {
                            drop(g);
                            goro::yield_now();
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    })
    .unwrap();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*m.lock(), 2 * 20_000 + 16 * 5_000);
}

#[test]
fn waiters_cancelled_anywhere_in_the_queue_leave_the_rest_in_order() {
    // Eight parties queue on a semaphore in a known order; the first, two
    // in the middle and the last are cancelled (each leaves the queue from
    // where it is); the others then get permits in their queue order.
    let rt = rt(1);
    let order = rt
        .run(|| {
            let sem = Arc::new(Semaphore::new(0));
            let (tx, rx) = goro::chan::<usize>(8);
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let (sem, tx) = (sem.clone(), tx.clone());
                    let h = goro::go(move || {
                        let _p = sem.acquire();
                        tx.send(i).unwrap();
                    });
                    goro::yield_now(); // it queues before the next one starts
                    h
                })
                .collect();
            for i in [0, 3, 5, 7] {
                hs[i].cancel();
            }
            goro::yield_now(); // the cancelled ones unwind and leave
            sem.add_permits(1); // passed on by each party as it finishes
            let order: Vec<usize> = (0..4).map(|_| rx.recv().unwrap()).collect();
            for (i, h) in hs.into_iter().enumerate() {
                let r = h.join();
                assert_eq!(r.is_err(), [0, 3, 5, 7].contains(&i), "party {i}");
            }
            assert_eq!(sem.available_permits(), 1);
            order
        })
        .unwrap();
    assert_eq!(order, vec![1, 2, 4, 6]);
}
