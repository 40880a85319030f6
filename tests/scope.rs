//! `goro::scope`: borrowing coroutines, unjoined panics resumed at the end,
//! cancellation of the scope's owner (every borrow ends before the unwind
//! leaves `scope`), plain threads, nesting.
//!
//! Every test runs under a watchdog that aborts the process on a hang.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{rt, watchdog};

/// Bumps a counter *through a borrow* when dropped: if it ran after the
/// borrowed counter's frame was gone, that would be a use after free; the
/// counter's value shows when it ran.
struct Bump<'a>(&'a AtomicUsize);

impl Drop for Bump<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Copies the borrowed counter into `seen` when dropped.
struct Observe<'a> {
    counter: &'a AtomicUsize,
    seen: Arc<AtomicUsize>,
}

impl Drop for Observe<'_> {
    fn drop(&mut self) {
        self.seen.store(self.counter.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

fn payload_str(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
}

#[test]
fn many_coroutines_borrow_a_vec() {
    let _w = watchdog(30, "many_coroutines_borrow_a_vec");
    let r = rt(2)
        .run(|| {
            let v: Vec<u64> = (1..=1000).collect();
            let total = AtomicUsize::new(0);
            goro::scope(|s| {
                for k in 0..100u64 {
                    let (v, total) = (&v, &total);
                    s.go(move || {
                        let part: u64 = v.iter().filter(|x| *x % 100 == k).sum();
                        total.fetch_add(part as usize, Ordering::SeqCst);
                        goro::yield_now();
                    });
                }
            });
            // The Vec is still ours, and every coroutine has run.
            (v.len(), total.into_inner())
        })
        .unwrap();
    assert_eq!(r, (1000, 500_500));
}

#[test]
fn chunks_mut_split_across_coroutines() {
    let _w = watchdog(30, "chunks_mut_split_across_coroutines");
    let data = rt(2)
        .run(|| {
            let mut data = vec![0usize; 1000];
            goro::scope(|s| {
                for (i, chunk) in data.chunks_mut(64).enumerate() {
                    s.go(move || {
                        for (j, x) in chunk.iter_mut().enumerate() {
                            *x = i * 64 + j;
                            if j % 16 == 0 {
                                goro::yield_now();
                            }
                        }
                    });
                }
            });
            data
        })
        .unwrap();
    assert_eq!(data, (0..1000).collect::<Vec<_>>());
}

#[test]
fn join_returns_a_value_derived_from_a_borrow() {
    let _w = watchdog(30, "join_returns_a_value_derived_from_a_borrow");
    let words = ["alpha".to_string(), "beta".to_string(), "epsilon".to_string()];
    let (longest, first): (&str, &String) = goro::scope(|s| {
        let h1 = s.go(|| words.iter().max_by_key(|w| w.len()).unwrap().as_str());
        let h2 = s.go(|| &words[0]);
        assert!(h2.id() > 0);
        (h1.join().unwrap(), h2.join().unwrap())
    });
    assert_eq!(longest, "epsilon");
    assert_eq!(first, "alpha");
    assert!(std::ptr::eq(first, &words[0]));
}

/// A panic in a coroutine whose handle was dropped is resumed by `scope`,
/// after every other coroutine of the scope has finished.
fn unjoined_panic_is_resumed_after_the_others() {
    let finished = AtomicUsize::new(0);
    let r = panic::catch_unwind(AssertUnwindSafe(|| {
        goro::scope(|s| {
            s.go(|| panic!("child boom"));
            for _ in 0..8 {
                s.go(|| {
                    goro::time::sleep(Duration::from_millis(30));
                    finished.fetch_add(1, Ordering::SeqCst);
                });
            }
        })
    }));
    let p = r.expect_err("scope must resume the child's panic");
    assert_eq!(payload_str(&*p), "child boom");
    assert_eq!(finished.load(Ordering::SeqCst), 8);
}

#[test]
fn unjoined_panic_resumed_on_a_plain_thread() {
    let _w = watchdog(30, "unjoined_panic_resumed_on_a_plain_thread");
    unjoined_panic_is_resumed_after_the_others();
}

#[test]
fn unjoined_panic_resumed_in_a_coroutine() {
    let _w = watchdog(30, "unjoined_panic_resumed_in_a_coroutine");
    rt(2).run(unjoined_panic_is_resumed_after_the_others).unwrap();
}

/// One worker: "first" is the panic goro sees first, and the order below
/// holds only if the woken child cannot run while the other unwinds. With
/// two workers a thief could start the children on different threads
/// (the test binary runs its tests at once, so a worker is often off its
/// core for the 3 ms that make a backlog stealable); then "second" could
/// end before "first" had finished unwinding and win: seen once in three
/// `cargo test --release` runs, and once in 60 runs of this binary beside
/// three spinning shells.
#[test]
fn joined_panic_is_not_resumed_and_first_unjoined_wins() {
    let _w = watchdog(30, "joined_panic_is_not_resumed_and_first_unjoined_wins");
    rt(1)
        .run(|| {
            // Joined: the panic is the join's Err, and scope returns.
            let v = goro::scope(|s| {
                let h = s.go(|| panic!("joined"));
                let e = h.join().unwrap_err();
                assert_eq!(payload_str(&*e), "joined");
                7
            });
            assert_eq!(v, 7);
            // Two unjoined panics, in a known order: the first is resumed.
            let (tx, rx) = goro::chan::<()>(0);
            let r = panic::catch_unwind(AssertUnwindSafe(|| {
                goro::scope(|s| {
                    s.go(move || {
                        let _ = rx.recv();
                        panic!("second");
                    });
                    s.go(move || {
                        let _tx = tx; // dropped by the unwind: wakes the other
                        panic!("first");
                    });
                })
            }));
            assert_eq!(payload_str(&*r.unwrap_err()), "first");
        })
        .unwrap();
}

/// The parent coroutine is cancelled while its scoped children are parked
/// for ever: the children are cancelled, and every borrow they hold ends
/// (their destructors run, through the borrow) before the parent's unwind
/// leaves `scope`, which `Observe`, dropped just after, sees.
fn parent_cancelled(during_wait: bool) {
    const N: usize = 20;
    let _w = watchdog(30, "parent_cancelled");
    rt(2)
        .run(move || {
            let seen = Arc::new(AtomicUsize::new(usize::MAX));
            let seen2 = seen.clone();
            let (ready_tx, ready_rx) = goro::chan::<()>(N + 1);
            let parent = goro::go(move || {
                let borrowed = AtomicUsize::new(0);
                let _observe = Observe { counter: &borrowed, seen: seen2 };
                let (_forever_tx, forever_rx) = goro::chan::<()>(0);
                goro::scope(|s| {
                    for i in 0..N {
                        // Captured, so it ends with the closure even if the
                        // child is cancelled before it starts.
                        let bump = Bump(&borrowed);
                        let (rx, ready) = (forever_rx.clone(), ready_tx.clone());
                        s.go(move || {
                            let _bump = bump;
                            if i % 2 == 0 {
                                // Half announce they started (the rest may
                                // still be unstarted when the cancel comes).
                                ready.send(()).unwrap();
                            }
                            let _ = rx.recv();
                            unreachable!("the channel never delivers");
                        });
                    }
                    ready_tx.send(()).unwrap();
                    if !during_wait {
                        let _ = forever_rx.recv();
                        unreachable!("the channel never delivers");
                    }
                    // Else: return, and `scope` parks waiting for them.
                });
                unreachable!("scope returned while its children park for ever");
            });
            // The parent and the even children announced themselves.
            for _ in 0..(N / 2 + 1) {
                ready_rx.recv().unwrap();
            }
            goro::time::sleep(Duration::from_millis(20));
            assert!(!parent.is_finished());
            assert_eq!(seen.load(Ordering::SeqCst), usize::MAX);
            parent.cancel();
            let e = parent.join().unwrap_err();
            assert!(e.is::<goro::Cancelled>());
            // Every child's Bump ran before the unwind left `scope`.
            assert_eq!(seen.load(Ordering::SeqCst), N);
        })
        .unwrap();
}

#[test]
fn parent_cancelled_while_f_runs() {
    parent_cancelled(false);
}

#[test]
fn parent_cancelled_while_scope_waits() {
    parent_cancelled(true);
}

#[test]
fn f_panics_children_are_cancelled_first() {
    let _w = watchdog(30, "f_panics_children_are_cancelled_first");
    rt(2)
        .run(|| {
            let borrowed = AtomicUsize::new(0);
            let seen = Arc::new(AtomicUsize::new(usize::MAX));
            let r = panic::catch_unwind(AssertUnwindSafe(|| {
                let _observe = Observe { counter: &borrowed, seen: seen.clone() };
                let (_tx, rx) = goro::chan::<()>(0);
                goro::scope(|s| {
                    for _ in 0..10 {
                        let bump = Bump(&borrowed);
                        let rx = rx.clone();
                        s.go(move || {
                            let _bump = bump;
                            let _ = rx.recv();
                        });
                    }
                    goro::yield_now();
                    panic!("f boom");
                })
            }));
            assert_eq!(payload_str(&*r.unwrap_err()), "f boom");
            assert_eq!(seen.load(Ordering::SeqCst), 10);
        })
        .unwrap();
}

#[test]
fn scope_on_a_plain_thread() {
    let _w = watchdog(30, "scope_on_a_plain_thread");
    let mut counts = [0u32; 8];
    let (tx, rx) = goro::chan::<u32>(0);
    goro::scope(|s| {
        for (i, c) in counts.iter_mut().enumerate() {
            let rx = rx.clone();
            s.go(move || *c = rx.recv().unwrap() + i as u32);
        }
        for _ in 0..8 {
            tx.send(100).unwrap();
        }
    });
    assert_eq!(counts, [100, 101, 102, 103, 104, 105, 106, 107]);
}

#[test]
fn nested_scopes_and_children_spawning_into_the_scope() {
    let _w = watchdog(30, "nested_scopes_and_children_spawning_into_the_scope");
    let total = rt(2)
        .run(|| {
            let outer = vec![1usize, 2, 3, 4];
            let total = AtomicUsize::new(0);
            goro::scope(|s| {
                for x in &outer {
                    let total = &total;
                    s.go(move || {
                        let inner = vec![*x; 10];
                        // A nested scope borrowing both the outer data and
                        // this coroutine's own stack.
                        goro::scope(|s2| {
                            for y in &inner {
                                s2.go(move || total.fetch_add(*y, Ordering::SeqCst));
                            }
                        });
                    });
                }
                // A child spawning into the same scope.
                s.go(|| {
                    s.go(|| total.fetch_add(1000, Ordering::SeqCst));
                });
            });
            total.into_inner()
        })
        .unwrap();
    assert_eq!(total, 10 * (1 + 2 + 3 + 4) + 1000);
}

#[test]
fn is_finished_and_join_from_a_plain_thread_scope() {
    let _w = watchdog(30, "is_finished_and_join_from_a_plain_thread_scope");
    let (tx, rx) = goro::chan::<()>(0);
    goro::scope(|s| {
        let h = s.go(move || rx.recv().unwrap());
        std::thread::sleep(Duration::from_millis(20));
        assert!(!h.is_finished());
        tx.send(()).unwrap();
        h.join().unwrap();
    });
}

#[test]
fn scope_parks_rather_than_blocks_its_worker() {
    let _w = watchdog(30, "scope_parks_rather_than_blocks_its_worker");
    // One worker: if `scope` blocked the thread instead of parking the
    // coroutine, its children (homed on the same worker) could never run.
    let r = rt(1)
        .run(|| {
            let mut cells = [0u8; 16];
            goro::scope(|s| {
                for (i, c) in cells.iter_mut().enumerate() {
                    s.go(move || {
                        goro::time::sleep(Duration::from_millis(5));
                        *c = i as u8;
                    });
                }
            });
            cells
        })
        .unwrap();
    assert_eq!(r, core::array::from_fn::<u8, 16, _>(|i| i as u8));
}
