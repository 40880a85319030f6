//! goro::sync::Group (Go's errgroup) and WaitGroup::go (Go 1.25's wg.Go).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goro::context::{self, ContextError};
use goro::sync::{Group, WaitGroup};

mod common;
use common::{rt, watchdog};

fn one_worker<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    rt(1).run(f).unwrap()
}

#[test]
fn first_error_after_all_tasks() {
    let _w = watchdog(30, "first error");
    one_worker(|| {
        let g = Group::<String>::new();
        let ran = Arc::new(AtomicUsize::new(0));
        for i in 0..10u64 {
            let ran = ran.clone();
            g.go(move || {
                // Task 2 fails first, task 7 later; the slow ones finish.
                goro::time::sleep(Duration::from_millis(match i {
                    2 => 1,
                    7 => 10,
                    _ => 20,
                }));
                ran.fetch_add(1, SeqCst);
                match i {
                    2 | 7 => Err(format!("task {i}")),
                    _ => Ok(()),
                }
            });
        }
        assert_eq!(g.wait(), Err("task 2".to_string()));
        assert_eq!(ran.load(SeqCst), 10, "wait returns after every task");
        // The error is handed out once.
        assert_eq!(g.wait(), Ok(()));
        // The group is reusable.
        g.go(|| Err("again".into()));
        assert_eq!(g.wait(), Err("again".to_string()));
        let ok = Group::<()>::default();
        assert_eq!(ok.wait(), Ok(()));
    });
}

#[test]
fn with_context_cancels_at_first_error_and_on_wait() {
    let _w = watchdog(30, "with_context");
    one_worker(|| {
        let (parent, _pc) = context::background().with_cancel();
        let (g, ctx) = Group::<&'static str>::with_context(&parent);
        let stopped_early = Arc::new(AtomicUsize::new(0));
        for _ in 0..5 {
            let (ctx, stopped_early) = (ctx.clone(), stopped_early.clone());
            g.go(move || {
                goro::select! {
                    recv(ctx.done()) -> _ => { stopped_early.fetch_add(1, SeqCst); Ok(()) },
                    recv(goro::time::after(Duration::from_secs(20))) -> _ => Ok(()),
                }
            });
        }
        let t0 = Instant::now();
        g.go(|| {
            goro::time::sleep(Duration::from_millis(5));
            Err("fail")
        });
        assert_eq!(g.wait(), Err("fail"));
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert_eq!(stopped_early.load(SeqCst), 5);
        assert_eq!(ctx.err(), Some(ContextError::Canceled));
        assert_eq!(parent.err(), None, "the group's context is a child");

        // No error: the context is cancelled when wait returns (Go).
        let (g, ctx) = Group::<()>::with_context(&context::background());
        let c2 = ctx.clone();
        g.go(move || {
            assert_eq!(c2.err(), None);
            Ok(())
        });
        assert_eq!(g.wait(), Ok(()));
        assert_eq!(ctx.err(), Some(ContextError::Canceled));

        // A parent's cancel reaches the group's context.
        let (parent, pc) = context::background().with_cancel();
        let (g, ctx) = Group::<ContextError>::with_context(&parent);
        let c3 = ctx.clone();
        g.go(move || {
            let _ = c3.done().recv();
            Err(c3.err().unwrap())
        });
        pc.cancel();
        assert_eq!(g.wait(), Err(ContextError::Canceled));
    });
}

#[test]
fn set_limit_bounds_running_tasks_and_go_parks() {
    let _w = watchdog(30, "limit");
    // One worker: if `go` blocked the worker instead of parking, no task
    // could run to free a slot and this would hang.
    let max = one_worker(|| {
        let g = Group::<()>::new();
        g.set_limit(3);
        let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        for _ in 0..30 {
            let (n, m) = (now.clone(), max.clone());
            g.go(move || {
                m.fetch_max(n.fetch_add(1, SeqCst) + 1, SeqCst);
                goro::time::sleep(Duration::from_millis(1));
                n.fetch_sub(1, SeqCst);
                Ok(())
            });
            assert!(now.load(SeqCst) <= 3);
        }
        g.wait().unwrap();
        max.load(SeqCst)
    });
    assert_eq!(max, 3);
}

#[test]
fn try_go_and_limit_rules() {
    let _w = watchdog(30, "try_go");
    one_worker(|| {
        let g = Group::<()>::new();
        g.set_limit(1);
        let (tx, rx) = goro::chan::<()>(0);
        assert!(g.try_go(move || {
            rx.recv().unwrap();
            Ok(())
        }));
        assert!(!g.try_go(|| unreachable!()));
        // Changing the limit while a task runs panics (Go's rule).
        let g2 = g.clone();
        let r = goro::go(move || g2.set_limit(5)).join();
        let msg = r.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("modify limit while 1 goroutines"), "{msg}");
        tx.send(()).unwrap();
        g.wait().unwrap();
        g.set_limit(usize::MAX); // no limit
        for _ in 0..10 {
            assert!(g.try_go(|| Ok(())));
        }
        g.wait().unwrap();
        assert!(format!("{g:?}").contains("running: 0"));
    });
}

#[test]
fn panic_is_resumed_in_wait_after_all_tasks_end() {
    let _w = watchdog(30, "panic");
    one_worker(|| {
        let (g, ctx) = Group::<()>::with_context(&context::background());
        let slow_done = Arc::new(AtomicBool::new(false));
        let s = slow_done.clone();
        g.go(move || {
            goro::time::sleep(Duration::from_millis(20));
            s.store(true, SeqCst);
            Ok(())
        });
        g.go(|| panic!("boom in a task"));
        g.go(|| Err(()));
        let g2 = g.clone();
        let r = goro::go(move || g2.wait()).join();
        let payload = r.unwrap_err();
        assert_eq!(*payload.downcast::<&str>().unwrap(), "boom in a task");
        assert!(slow_done.load(SeqCst), "wait resumed the panic before every task ended");
        assert_eq!(ctx.err(), Some(ContextError::Canceled));
    });
}

#[test]
fn group_from_plain_threads() {
    let _w = watchdog(30, "threads");
    let g = Group::<usize>::new();
    g.set_limit(2);
    let sum = Arc::new(AtomicUsize::new(0));
    for i in 0..20 {
        let sum = sum.clone();
        g.go(move || {
            sum.fetch_add(i, SeqCst);
            if i == 13 {
                Err(i)
            } else {
                Ok(())
            }
        });
    }
    let g2 = g.clone();
    let other = std::thread::spawn(move || g2.wait());
    let mine = g.wait();
    let theirs = other.join().unwrap();
    // One of the two waiters got the error, the other Ok.
    assert!((mine, theirs) == (Err(13), Ok(())) || (mine, theirs) == (Ok(()), Err(13)), "{mine:?} {theirs:?}");
    assert_eq!(sum.load(SeqCst), (0..20).sum::<usize>());
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug + Default>() {}
    assert_traits::<Group<String>>();
}

#[test]
fn waitgroup_go_counts_and_survives_panics() {
    let _w = watchdog(30, "wg.go");
    one_worker(|| {
        let wg = WaitGroup::new();
        let n = Arc::new(AtomicUsize::new(0));
        for i in 0..20 {
            let n = n.clone();
            wg.go(move || {
                goro::time::sleep(Duration::from_millis(1));
                n.fetch_add(1, SeqCst);
                if i % 5 == 0 {
                    panic!("task {i} panics");
                }
            });
        }
        wg.wait();
        assert_eq!(n.load(SeqCst), 20);
        assert_eq!(wg.count(), 0);
    });
    // From a plain thread.
    let wg = WaitGroup::new();
    let n = Arc::new(AtomicUsize::new(0));
    for _ in 0..8 {
        let n = n.clone();
        wg.go(move || {
            n.fetch_add(1, SeqCst);
        });
    }
    wg.wait();
    assert_eq!(n.load(SeqCst), 8);
}

#[test]
fn spawn_sites_are_the_callers_line() {
    let _w = watchdog(30, "spawn site");
    let (wg_line, g_line, infos) = one_worker(|| {
        let (tx, rx) = goro::chan::<()>(0);
        let wg = WaitGroup::new();
        let g = Group::<()>::new();
        let rx1 = rx.clone();
        let wg_line = line!() + 1;
        wg.go(move || rx1.recv().unwrap_or_default());
        let g_line = line!() + 1;
        g.go(move || rx.recv().or(Ok(())));
        goro::time::sleep(Duration::from_millis(5));
        let infos: Vec<String> = goro::coroutines().into_iter().map(|c| c.spawned_at).collect();
        drop(tx);
        wg.wait();
        g.wait().unwrap();
        (wg_line, g_line, infos)
    });
    let here = file!();
    assert!(infos.iter().any(|s| s.starts_with(&format!("{here}:{wg_line}:"))), "{infos:?}");
    assert!(infos.iter().any(|s| s.starts_with(&format!("{here}:{g_line}:"))), "{infos:?}");
}
