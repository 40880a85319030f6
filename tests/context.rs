//! goro::context: propagation, deadlines, select on done(), a 100 000-node
//! tree, CancelFn drop, plain threads and coroutines. (Timer accounting is
//! in tests/context_timers.rs: the counter is process-wide.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use goro::context::{self, Context, ContextError};

mod common;
use common::{rt, watchdog};

fn is_done(ctx: &Context) -> bool {
    ctx.done().is_closed() && ctx.done().try_recv().is_err()
}

#[test]
fn error_type() {
    assert_eq!(ContextError::Canceled.to_string(), "context canceled");
    assert_eq!(ContextError::DeadlineExceeded.to_string(), "context deadline exceeded");
    let e: Box<dyn std::error::Error + Send + Sync> = Box::new(ContextError::Canceled);
    assert_eq!(e.to_string(), "context canceled");
    let c = ContextError::DeadlineExceeded;
    let d = c; // Copy
    assert_eq!(c, d);
    assert_ne!(ContextError::Canceled, ContextError::DeadlineExceeded);
    assert_eq!(format!("{:?}", ContextError::Canceled), "Canceled");
}

#[test]
fn background_is_never_done() {
    let bg = context::background();
    assert_eq!(bg.err(), None);
    assert_eq!(bg.deadline(), None);
    assert!(!bg.done().is_closed());
    assert!(bg.done().recv_timeout(Duration::from_millis(10)).is_err());
    assert_eq!(bg.err(), None);
    fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug>() {}
    assert_traits::<Context>();
    fn assert_send_sync<T: Send + Sync + std::fmt::Debug>() {}
    assert_send_sync::<context::CancelFn>();
    assert_send_sync::<ContextError>();
}

#[test]
fn propagation_parent_child_grandchild() {
    let _w = watchdog(30, "propagation");
    let (parent, cancel) = context::background().with_cancel();
    let (child, _c1) = parent.with_cancel();
    let (grandchild, _c2) = child.with_timeout(Duration::from_secs(3600));
    let (other_root, _c3) = context::background().with_cancel();
    for c in [&parent, &child, &grandchild] {
        assert_eq!(c.err(), None);
        assert!(!c.done().is_closed());
    }
    cancel.cancel();
    for c in [&parent, &child, &grandchild] {
        assert_eq!(c.err(), Some(ContextError::Canceled));
        assert!(is_done(c));
        assert_eq!(c.done().recv(), Err(goro::RecvError));
    }
    assert_eq!(other_root.err(), None);
    // A child of a done context is done at once, with the parent's error.
    let (late, _c4) = grandchild.with_cancel();
    assert_eq!(late.err(), Some(ContextError::Canceled));
    assert!(is_done(&late));
    // Cancelling again changes nothing.
    cancel.cancel();
    assert_eq!(parent.err(), Some(ContextError::Canceled));
}

#[test]
fn child_cancel_does_not_cancel_parent_or_siblings() {
    let (parent, _cp) = context::background().with_cancel();
    let (a, cancel_a) = parent.with_cancel();
    let (b, _cb) = parent.with_cancel();
    let (a1, _ca1) = a.with_cancel();
    cancel_a.cancel();
    assert_eq!(a.err(), Some(ContextError::Canceled));
    assert_eq!(a1.err(), Some(ContextError::Canceled));
    assert_eq!(parent.err(), None);
    assert_eq!(b.err(), None);
    assert!(!parent.done().is_closed());
    assert!(!b.done().is_closed());
}

#[test]
fn cancel_fn_drop_cancels() {
    let (ctx, cancel) = context::background().with_cancel();
    let (child, child_cancel) = ctx.with_cancel();
    drop(child_cancel);
    assert_eq!(child.err(), Some(ContextError::Canceled));
    assert_eq!(ctx.err(), None);
    {
        let _defer_cancel = cancel; // Go's `defer cancel()`
    }
    assert_eq!(ctx.err(), Some(ContextError::Canceled));
    // The `_` pattern drops at once: a context that is already cancelled.
    let (gone, _) = context::background().with_timeout(Duration::from_secs(60));
    assert_eq!(gone.err(), Some(ContextError::Canceled));
}

#[test]
fn with_timeout_fires_deadline_exceeded() {
    let _w = watchdog(30, "with_timeout");
    let t0 = Instant::now();
    let (ctx, _cancel) = context::background().with_timeout(Duration::from_millis(30));
    let dl = ctx.deadline().expect("a deadline");
    assert!(dl >= t0 + Duration::from_millis(30) && dl <= Instant::now() + Duration::from_millis(30));
    let (child, _cc) = ctx.with_cancel();
    assert_eq!(child.deadline(), Some(dl)); // inherited
    assert_eq!(ctx.err(), None);
    assert_eq!(ctx.done().recv(), Err(goro::RecvError)); // blocks this thread until the deadline
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(30), "fired early: {waited:?}");
    assert!(waited < Duration::from_secs(5), "fired late: {waited:?}");
    assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    assert_eq!(child.err(), Some(ContextError::DeadlineExceeded));
    // A deadline already past: done at once.
    let (past, _cp) = context::background().with_deadline(Instant::now() - Duration::from_millis(1));
    assert_eq!(past.err(), Some(ContextError::DeadlineExceeded));
    let (zero, _cz) = context::background().with_timeout(Duration::ZERO);
    assert_eq!(zero.err(), Some(ContextError::DeadlineExceeded));
    // Duration::MAX never comes.
    let (never, _cn) = context::background().with_timeout(Duration::MAX);
    assert_eq!(never.err(), None);
}

#[test]
fn child_deadline_is_min_of_own_and_parents() {
    let _w = watchdog(30, "deadline min");
    let now = Instant::now();
    let (parent, _cp) = context::background().with_deadline(now + Duration::from_millis(40));
    // Later own deadline: the parent's wins, and the parent's timer cancels
    // the child with DeadlineExceeded.
    let (late, _c1) = parent.with_deadline(now + Duration::from_secs(3600));
    assert_eq!(late.deadline(), Some(now + Duration::from_millis(40)));
    // Earlier own deadline: its own.
    let (early, _c2) = parent.with_deadline(now + Duration::from_millis(10));
    assert_eq!(early.deadline(), Some(now + Duration::from_millis(10)));
    // A with_cancel child inherits; a with_timeout one takes the minimum.
    let (plain, _c3) = parent.with_cancel();
    assert_eq!(plain.deadline(), parent.deadline());
    let (tm, _c4) = late.with_timeout(Duration::from_secs(10));
    assert_eq!(tm.deadline(), Some(now + Duration::from_millis(40)));

    assert!(early.done().recv().is_err());
    assert_eq!(early.err(), Some(ContextError::DeadlineExceeded));
    assert_eq!(parent.err(), None, "a child's deadline must not reach its parent");
    assert!(late.done().recv().is_err());
    assert!(now.elapsed() >= Duration::from_millis(40));
    for c in [&parent, &late, &plain, &tm] {
        assert_eq!(c.err(), Some(ContextError::DeadlineExceeded));
    }
}

#[test]
fn select_on_done() {
    let _w = watchdog(30, "select");
    goro::run(|| {
        let (ctx, cancel) = context::background().with_cancel();
        let (tx, rx) = goro::chan::<u32>(0);
        let worker_ctx = ctx.clone();
        let worker = goro::go(move || {
            let mut sent = 0u32;
            loop {
                goro::select! {
                    send(tx, sent) -> r => { r.unwrap(); sent += 1; },
                    recv(worker_ctx.done()) -> r => { assert!(r.is_err()); return sent; },
                }
            }
        });
        for i in 0..10 {
            assert_eq!(rx.recv(), Ok(i));
        }
        cancel.cancel();
        assert_eq!(worker.join().unwrap(), 10);

        // A select that parks on done() and a timer: the timeout wins.
        let (ctx2, _c2) = context::background().with_timeout(Duration::from_millis(15));
        let (_keep, idle) = goro::chan::<()>(0);
        let t0 = Instant::now();
        let which = goro::select! {
            recv(idle) -> _ => "idle",
            recv(ctx2.done()) -> _ => "done",
        };
        assert_eq!(which, "done");
        assert!(t0.elapsed() >= Duration::from_millis(15));
        assert_eq!(ctx2.err(), Some(ContextError::DeadlineExceeded));
        // With default: not ready, then ready.
        let (ctx3, c3) = context::background().with_cancel();
        let r = goro::select! { recv(ctx3.done()) -> _ => 1, default => 0 };
        assert_eq!(r, 0);
        drop(c3);
        let r = goro::select! { recv(ctx3.done()) -> _ => 1, default => 0 };
        assert_eq!(r, 1);
    });
}

#[test]
fn tree_of_100_000_cancelled_from_root() {
    let _w = watchdog(30, "tree");
    // Fan-out 10, 5 levels: 10^5 leaves (111 111 contexts).
    let t0 = Instant::now();
    let (root, cancel) = context::background().with_cancel();
    let mut level: Vec<Context> = vec![root.clone()];
    let mut cancels = Vec::new();
    for _ in 0..5 {
        let mut next = Vec::with_capacity(level.len() * 10);
        for p in &level {
            for _ in 0..10 {
                let (c, cf) = p.with_cancel();
                next.push(c);
                cancels.push(cf);
            }
        }
        level = next;
    }
    assert_eq!(level.len(), 100_000);
    assert!(level.iter().all(|c| c.err().is_none()));
    cancel.cancel();
    for (i, leaf) in level.iter().enumerate() {
        assert_eq!(leaf.err(), Some(ContextError::Canceled), "leaf {i}");
        assert!(leaf.done().is_closed(), "leaf {i}");
    }
    drop(cancels);
    assert!(t0.elapsed() < Duration::from_secs(20), "took {:?}", t0.elapsed());
}

#[test]
fn deep_chain_cancelled_inside_a_coroutine() {
    let _w = watchdog(30, "chain");
    // 100 000 deep: the cancel walk and the drops must not recurse (a
    // coroutine stack is small).
    goro::run(|| {
        let (root, cancel) = context::background().with_cancel();
        let mut cur = root.clone();
        let mut cancels = Vec::with_capacity(100_000);
        for _ in 0..100_000 {
            let (c, cf) = cur.with_cancel();
            cancels.push(cf);
            cur = c;
        }
        let leaf = cur;
        let waiter = {
            let leaf = leaf.clone();
            goro::go(move || leaf.done().recv().is_err())
        };
        cancel.cancel();
        assert!(waiter.join().unwrap());
        assert_eq!(leaf.err(), Some(ContextError::Canceled));
        drop(cancels);
        drop(leaf);
        drop(root);
    });
}

#[test]
fn plain_threads_and_coroutines_mix() {
    let _w = watchdog(30, "threads");
    let (ctx, cancel) = context::background().with_cancel();
    // Plain threads wait on a context that a coroutine cancels.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (c, _cf) = ctx.with_cancel();
            std::thread::spawn(move || {
                let _cf = _cf;
                c.done().recv().is_err() && c.err() == Some(ContextError::Canceled)
            })
        })
        .collect();
    // Coroutines wait on the same tree.
    let coros: Vec<_> = (0..4)
        .map(|_| {
            let c = ctx.clone();
            goro::go(move || {
                goro::select! { recv(c.done()) -> r => r.is_err() }
            })
        })
        .collect();
    goro::go(move || {
        goro::time::sleep(Duration::from_millis(10));
        cancel.cancel();
    })
    .join()
    .unwrap();
    for t in threads {
        assert!(t.join().unwrap());
    }
    for c in coros {
        assert!(c.join().unwrap());
    }
    // And the other way: a thread cancels, coroutines in a runtime see it.
    let (ctx2, cancel2) = context::background().with_cancel();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        cancel2.cancel();
    });
    let seen = rt(1)
        .run(move || {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let (c, cf) = ctx2.with_timeout(Duration::from_secs(60));
                    goro::go(move || {
                        let _cf = cf;
                        c.done().recv().is_err() && c.err() == Some(ContextError::Canceled)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).filter(|&b| b).count()
        })
        .unwrap();
    t.join().unwrap();
    assert_eq!(seen, 8);
}

#[test]
fn debug_output() {
    assert_eq!(format!("{:?}", context::background()), "context.Background");
    let (ctx, cancel) = context::background().with_cancel();
    assert!(format!("{ctx:?}").contains("err: None"));
    cancel.cancel();
    assert!(format!("{ctx:?}").contains("Canceled"));
    assert!(format!("{cancel:?}").contains("CancelFn"));
}

#[test]
fn cancelled_children_unregister_from_a_long_lived_parent() {
    // Debug shows the children registered in a context.
    let (parent, _cp) = context::background().with_cancel();
    assert!(format!("{parent:?}").contains("children: 0 }"), "{parent:?}");
    let mut keep = Vec::new();
    for i in 0..10_000 {
        let (c, cf) = parent.with_timeout(Duration::from_secs(3600));
        if i % 1000 == 0 {
            keep.push((c, cf));
        } // else: dropped, so cancelled and unregistered
    }
    assert!(format!("{parent:?}").contains("children: 10 }"), "{parent:?}");
    // A child cancelled by its own deadline unregisters too.
    let (short, _cs) = parent.with_timeout(Duration::from_millis(5));
    assert!(short.done().recv().is_err());
    assert!(format!("{parent:?}").contains("children: 10 }"), "{parent:?}");
    for (c, cf) in keep.drain(..) {
        cf.cancel();
        assert_eq!(c.err(), Some(ContextError::Canceled));
    }
    assert!(format!("{parent:?}").contains("children: 0 }"), "{parent:?}");
    assert_eq!(parent.err(), None);
}

#[test]
fn children_created_while_the_parent_is_cancelled_all_end_done() {
    let _w = watchdog(30, "race");
    // Threads keep deriving children (and grandchildren) while another
    // thread cancels the root: every context made, before or after the
    // cancel, must end up done. Registration and cancel serialize on the
    // parent's lock, so none can slip through.
    for round in 0..20 {
        let (root, cancel) = context::background().with_cancel();
        let start = Arc::new(std::sync::Barrier::new(5));
        let makers: Vec<_> = (0..4)
            .map(|_| {
                let (root, start) = (root.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let mut made = Vec::new();
                    for _ in 0..500 {
                        let (c, cf) = root.with_cancel();
                        let (g, gf) = c.with_timeout(Duration::from_secs(3600));
                        made.push((c, cf, g, gf));
                    }
                    made
                })
            })
            .collect();
        start.wait();
        cancel.cancel();
        for m in makers {
            for (c, _cf, g, _gf) in m.join().unwrap() {
                assert_eq!(c.err(), Some(ContextError::Canceled), "round {round}");
                assert_eq!(g.err(), Some(ContextError::Canceled), "round {round}");
                assert!(g.done().is_closed());
            }
        }
        assert!(format!("{root:?}").contains("children: 0 }"), "{root:?}");
    }
}
