//! Foundation tests: spawning, joining, the home-worker rule, blocking,
//! panics, yields, cancellation and runtime reuse.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use goro::{RunError, Runtime};

mod common;
use common::{rt, DropCount};

#[test]
fn spawn_and_join_100k() {
    let sum = rt(2)
        .run(|| {
            let hs: Vec<_> = (0..100_000u64).map(|i| goro::go(move || i * 3)).collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        })
        .unwrap();
    assert_eq!(sum, 3 * (100_000u64 * 99_999 / 2));
}

#[test]
fn nested_spawn_tree() {
    fn tree(depth: u32, num: u64) -> u64 {
        if depth == 0 {
            return num;
        }
        let hs: Vec<_> = (0..10).map(|i| goro::go(move || tree(depth - 1, num * 10 + i))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    }
    for workers in [1, 4] {
        let v = rt(workers).run(|| tree(4, 0)).unwrap();
        assert_eq!(v, (0..10_000u64).sum::<u64>(), "workers={workers}");
    }
}

#[test]
fn started_coroutine_never_changes_thread() {
    // Many coroutines on 4 workers, each parking (join) and yielding many
    // times while new coroutines keep being spawned and stolen.
    let moved = Arc::new(AtomicUsize::new(0));
    let m2 = moved.clone();
    rt(4)
        .run(move || {
            let hs: Vec<_> = (0..400)
                .map(|i| {
                    let moved = m2.clone();
                    goro::go(move || {
                        let home = std::thread::current().id();
                        for k in 0..50 {
                            if (i + k) % 3 == 0 {
                                goro::yield_now();
                            } else {
                                goro::go(move || k * 2).join().unwrap();
                            }
                            if std::thread::current().id() != home {
                                moved.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            goro::stats()
        })
        .map(|s| assert!(s.context_switches > 0))
        .unwrap();
    assert_eq!(moved.load(Ordering::Relaxed), 0, "a started coroutine resumed on another thread");
}

#[test]
fn thread_bound_values_stay_valid_across_parks() {
    // An Rc from a thread-local held across parks: sound because the
    // coroutine never changes thread.
    thread_local!(static TL: std::rc::Rc<u32> = std::rc::Rc::new(7));
    let v = rt(2)
        .run(|| {
            let hs: Vec<_> = (0..100)
                .map(|_| {
                    goro::go(|| {
                        let rc = TL.with(|t| t.clone());
                        for _ in 0..20 {
                            goro::go(|| ()).join().unwrap();
                        }
                        *rc + TL.with(|t| **t)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
        })
        .unwrap();
    assert_eq!(v, 1400);
}

#[test]
fn blocking_keeps_other_coroutines_running() {
    // One worker: while A waits in goro::blocking, B (same worker) must run.
    let log = Arc::new(Mutex::new(Vec::new()));
    let l2 = log.clone();
    rt(1)
        .run(move || {
            let la = l2.clone();
            let a = goro::go(move || {
                let r = goro::blocking(|| {
                    std::thread::sleep(Duration::from_millis(200));
                    5
                });
                la.lock().unwrap().push("a-done");
                r
            });
            let lb = l2.clone();
            let b = goro::go(move || {
                for _ in 0..100 {
                    goro::yield_now();
                }
                lb.lock().unwrap().push("b-done");
            });
            b.join().unwrap();
            assert_eq!(a.join().unwrap(), 5);
        })
        .unwrap();
    assert_eq!(*log.lock().unwrap(), vec!["b-done", "a-done"]);
}

#[test]
fn blocking_resumes_panics_and_works_on_threads() {
    let r = rt(1).run(|| std::panic::catch_unwind(|| goro::blocking(|| -> u32 { panic!("in pool") })).is_err());
    assert!(r.unwrap());
    assert_eq!(goro::blocking(|| 3), 3);
}

#[test]
fn join_from_plain_thread() {
    let v = rt(2)
        .run(|| {
            let h = goro::go(|| {
                goro::yield_now();
                40
            });
            std::thread::spawn(move || h.join().unwrap() + 2).join().unwrap()
        })
        .unwrap();
    assert_eq!(v, 42);
    // Outside any runtime: the global default runtime.
    let h = goro::go(|| 9);
    assert_eq!(h.join().unwrap(), 9);
}

#[test]
fn panics_are_isolated() {
    let r = rt(2);
    let out = r
        .run(|| {
            let bad = goro::go(|| -> u32 { panic!("boom {}", 7) });
            let good = goro::go(|| 1u32);
            let err = bad.join().unwrap_err();
            let msg = err
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            (msg, good.join().unwrap())
        })
        .unwrap();
    assert_eq!(out, ("boom 7".to_string(), 1));
    // The runtime still works afterwards.
    assert_eq!(r.run(|| goro::go(|| 5).join().unwrap()).unwrap(), 5);
    // A panicking main comes back as RunError::Panic.
    match r.run(|| -> u8 { panic!("main") }) {
        Err(RunError::Panic(p)) => assert_eq!(p.downcast_ref::<&str>(), Some(&"main")),
        other => panic!("expected Panic, got {other:?}"),
    }
}

#[test]
fn run_resumes_main_panic() {
    let r = std::panic::catch_unwind(|| goro::run(|| -> u8 { panic!("resumed") }));
    assert_eq!(r.unwrap_err().downcast_ref::<&str>(), Some(&"resumed"));
}

#[test]
fn yield_interleaves() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l2 = log.clone();
    rt(1)
        .run(move || {
            let mk = |tag: char, log: Arc<Mutex<Vec<char>>>| {
                goro::go(move || {
                    for _ in 0..5 {
                        log.lock().unwrap().push(tag);
                        goro::yield_now();
                    }
                })
            };
            let a = mk('a', l2.clone());
            let b = mk('b', l2.clone());
            a.join().unwrap();
            b.join().unwrap();
        })
        .unwrap();
    // Which starts first is unspecified (as in Go); they must alternate.
    let s: String = log.lock().unwrap().iter().collect();
    assert!(s == "ababababab" || s == "bababababa", "{s}");
}

#[test]
fn leftover_coroutines_are_cancelled_and_unwound() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d2 = drops.clone();
    let start = std::time::Instant::now();
    rt(2)
        .run(move || {
            // A coroutine that never ends, and 3000 parked on joining it.
            let forever = goro::go(|| loop {
                goro::yield_now();
            });
            let forever = Arc::new(Mutex::new(Some(forever)));
            for i in 0..3000 {
                let d = DropCount(d2.clone());
                let f = forever.clone();
                goro::go(move || {
                    let _d = d;
                    if i == 0 {
                        let h = f.lock().unwrap().take().unwrap();
                        let _ = h.join();
                    } else {
                        // Park on a join of a child that parks on yield.
                        let _ = goro::go(|| loop {
                            goro::yield_now();
                        })
                        .join();
                    }
                });
            }
            // Let them all start and park.
            for _ in 0..100 {
                goro::yield_now();
            }
        })
        .unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 3000, "every parked coroutine's destructors ran");
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn unstarted_coroutines_are_dropped_at_shutdown() {
    let drops = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicBool::new(false));
    let (d2, r2) = (drops.clone(), ran.clone());
    rt(1)
        .run(move || {
            for _ in 0..10 {
                let d = DropCount(d2.clone());
                let r = r2.clone();
                goro::go(move || {
                    let _d = d;
                    r.store(true, Ordering::SeqCst);
                });
            }
            // main returns without parking: on one worker none has started.
        })
        .unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 10);
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn one_runtime_runs_many_times() {
    let r = rt(2);
    for i in 0..20u32 {
        let v = r.run(move || goro::go(move || i * 2).join().unwrap()).unwrap();
        assert_eq!(v, i * 2);
    }
}

#[test]
fn nested_run_inside_a_coroutine_works() {
    let v = rt(1).run(|| goro::run(|| goro::go(|| 20).join().unwrap()) + 1).unwrap();
    assert_eq!(v, 21);
}

#[test]
fn run_on_own_runtime_from_inside_panics() {
    let r = Arc::new(rt(1));
    let r2 = r.clone();
    let res = r.run(move || std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r2.run(|| 1))).is_err());
    assert!(res.unwrap());
}

#[test]
fn workers_zero_is_an_error() {
    let e = Runtime::builder().workers(0).build().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("workers(0)"), "{e}");
}

#[test]
fn builder_names_and_stack_sizes() {
    rt(1)
        .run(|| {
            let h = goro::Builder::new().name("named").stack_size(64 * 1024).spawn(|| 1).unwrap();
            assert_eq!(h.name(), Some("named"));
            assert_eq!(h.join().unwrap(), 1);
            // Too small is rounded up, not refused.
            assert_eq!(goro::Builder::new().stack_size(1).spawn(|| 2).unwrap().join().unwrap(), 2);
            // Impossible reservations are an error, not a crash.
            assert!(goro::Builder::new().stack_size(usize::MAX / 2).spawn(|| 3).is_err());
        })
        .unwrap();
}

#[test]
fn is_finished_and_num_coroutines() {
    rt(1)
        .run(|| {
            let before = goro::num_coroutines();
            let h = goro::go(goro::yield_now);
            assert_eq!(goro::num_coroutines(), before + 1);
            assert!(!h.is_finished());
            while !h.is_finished() {
                goro::yield_now();
            }
            h.join().unwrap();
            assert_eq!(goro::num_coroutines(), before);
            let info = goro::coroutines();
            assert!(info.iter().any(|c| c.name.as_deref() == Some("main")), "{info:?}");
        })
        .unwrap();
}

#[test]
fn join_handle_is_send_sync() {
    fn ok<T: Send + Sync>(_: &T) {}
    let h = goro::go(|| 1);
    ok(&h);
    assert_eq!(h.join().unwrap(), 1);
}

/// `migrate_started(true)` is accepted but started coroutines never
/// migrate (its doc): programs written for it still run correctly, and a
/// started coroutine stays on the thread that first ran it across joins,
/// yields and timed parks.
#[test]
fn migrate_started_mode_runs_correctly() {
    // SAFETY: the bodies hold nothing thread-bound across blocking calls.
    let r = unsafe { Runtime::builder().workers(4).migrate_started(true) }.build().unwrap();
    let moved = Arc::new(AtomicUsize::new(0));
    let m2 = moved.clone();
    let v = r
        .run(move || {
            let hs: Vec<_> = (0..2000u64)
                .map(|i| {
                    let moved = m2.clone();
                    goro::go(move || {
                        let home = std::thread::current().id();
                        let mut acc = 0;
                        for k in 0..10 {
                            acc += goro::go(move || i + k).join().unwrap();
                            goro::yield_now();
                            if k == 5 && i % 50 == 0 {
                                goro::time::sleep(Duration::from_millis(1));
                            }
                            if std::thread::current().id() != home {
                                moved.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        acc
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        })
        .unwrap();
    assert_eq!(v, (0..2000u64).map(|i| 10 * i + 45).sum::<u64>());
    assert_eq!(moved.load(Ordering::Relaxed), 0, "a started coroutine resumed on another thread");
}

/// Wakes from other threads (plain threads, and coroutines that may sit on
/// the other worker) reach a coroutine in every state: parked, queued after
/// a wake from its own worker, or yielded. A pinned coroutine's park state
/// is moved only by its home thread, which applies such wakes as requests
/// from its inbox; none may be lost (a lost one ends the session as a
/// deadlock) nor run a coroutine twice (the sums would be off).
#[test]
fn remote_wakes_meet_parked_queued_and_yielded_coroutines() {
    const RECEIVERS: usize = 64;
    const FEEDERS: usize = 4;
    const PER: u64 = 1000;
    let sums = rt(2)
        .run(|| {
            let mut txs = Vec::new();
            let mut receivers = Vec::new();
            for i in 0..RECEIVERS {
                // Unbuffered and buffered channels, so wakes find the
                // receiver both parked and still runnable.
                let (tx, rx) = goro::chan::<u64>(i % 2);
                txs.push(tx);
                receivers.push(goro::go(move || {
                    let mut sum = 0;
                    for k in 0..PER {
                        sum += rx.recv().unwrap();
                        if k % 7 == 0 {
                            goro::yield_now();
                        }
                    }
                    sum
                }));
            }
            // Feeder f serves receivers f, f + FEEDERS, ...: two plain
            // threads and two coroutines.
            let mut threads = Vec::new();
            let mut feeders = Vec::new();
            for f in 0..FEEDERS {
                let mine: Vec<_> = txs.iter().skip(f).step_by(FEEDERS).cloned().collect();
                let feed = move || {
                    for v in 1..=PER {
                        for tx in &mine {
                            tx.send(v).unwrap();
                        }
                    }
                };
                if f % 2 == 0 {
                    threads.push(std::thread::spawn(feed));
                } else {
                    feeders.push(goro::go(feed));
                }
            }
            drop(txs);
            let sums: Vec<u64> = receivers.into_iter().map(|h| h.join().unwrap()).collect();
            feeders.into_iter().for_each(|h| h.join().unwrap());
            threads.into_iter().for_each(|t| t.join().unwrap());
            sums
        })
        .unwrap();
    assert_eq!(sums, vec![PER * (PER + 1) / 2; RECEIVERS]);
}

/// A timeout and a wake from another thread race for the same park: the
/// timer wakes the coroutine on its home while a plain thread completes
/// its receive, so the thread's wake often finds it already queued (and
/// must become a token, never a second run). Every value arrives once.
#[test]
fn timeouts_race_wakes_from_other_threads() {
    const RECEIVERS: usize = 16;
    const PER: u64 = 300;
    let got = rt(2)
        .run(|| {
            let mut threads = Vec::new();
            let mut receivers = Vec::new();
            for _ in 0..RECEIVERS {
                let (tx, rx) = goro::chan::<u64>(0);
                threads.push(std::thread::spawn(move || {
                    for v in 1..=PER {
                        tx.send(v).unwrap();
                    }
                }));
                receivers.push(goro::go(move || {
                    let (mut sum, mut n) = (0, 0);
                    loop {
                        match rx.recv_timeout(Duration::from_micros(20)) {
                            Ok(v) => {
                                sum += v;
                                n += 1;
                            }
                            Err(goro::RecvTimeoutError::Timeout) => {}
                            Err(goro::RecvTimeoutError::Closed) => return (n, sum),
                        }
                    }
                }));
            }
            let got: Vec<(u64, u64)> = receivers.into_iter().map(|h| h.join().unwrap()).collect();
            threads.into_iter().for_each(|t| t.join().unwrap());
            got
        })
        .unwrap();
    assert_eq!(got, vec![(PER, PER * (PER + 1) / 2); RECEIVERS]);
}
