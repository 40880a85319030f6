//! Cancellation and unwinding: per-coroutine unwinding state (not std's
//! per-thread panic count), a coroutine that keeps catching `Cancelled`,
//! a nested `run` cancelled mid-session, and a `Runtime` dropped with parked
//! coroutines that no session owns.
//!
//! Every test that could hang on a regression runs under a watchdog that
//! aborts the process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goro::RunError;

mod common;
use common::{rt, watchdog, DropCount};

/// Parks (a goro `recv`) in its destructor, so a coroutine unwinding through
/// it stays parked mid-unwind until the channel closes.
struct RecvOnDrop(goro::Receiver<()>);
impl Drop for RecvOnDrop {
    fn drop(&mut self) {
        let _ = self.0.recv();
    }
}

/// A unwinds (a panic of its own) and parks in a destructor that waits for
/// B to end. B never panicked; std's per-thread `panicking()` is true while
/// it runs (A's unwind is in flight on their shared worker), but B is not
/// unwinding, so shutdown must cancel it. Old code asked std, so B ignored
/// every cancel, A waited for B for ever, and `run` hung.
#[test]
fn shutdown_cancels_a_coroutine_while_another_is_parked_in_its_unwind() {
    let _w = watchdog(20, "shutdown while A is parked mid-unwind");
    let b_dropped = Arc::new(AtomicUsize::new(0));
    let a_dropped = Arc::new(AtomicUsize::new(0));
    let (bd, ad) = (b_dropped.clone(), a_dropped.clone());
    rt(1)
        .run(move || {
            let (b_alive, b_ended) = goro::chan::<()>(0);
            goro::go(move || {
                let _g = RecvOnDrop(b_ended);
                let _d = DropCount(ad);
                std::panic::resume_unwind(Box::new("A unwinds"));
            });
            goro::go(move || {
                let _keep = b_alive;
                let _d = DropCount(bd);
                loop {
                    goro::time::sleep(Duration::from_millis(1));
                }
            });
            // A is parked in its unwind, B loops; main returns.
            goro::time::sleep(Duration::from_millis(50));
        })
        .unwrap();
    assert_eq!(b_dropped.load(Ordering::SeqCst), 1, "B was cancelled and unwound");
    assert_eq!(a_dropped.load(Ordering::SeqCst), 1, "A finished its unwind");
}

/// What std's shared per-thread count still allows (see `goro::go`'s doc):
/// while A is parked mid-unwind, B (same worker, never panicked) locks and
/// unlocks a std `Mutex` within one slice without poisoning it, catches a
/// panic of its own normally, and is not treated as unwinding.
#[test]
fn std_mutex_used_within_a_slice_is_not_poisoned_while_another_coroutine_is_parked_mid_unwind() {
    let _w = watchdog(20, "std mutex beside a parked unwind");
    let m = Arc::new(std::sync::Mutex::new(0u32));
    let m2 = m.clone();
    let caught = rt(1)
        .run(move || {
            let (b_alive, b_ended) = goro::chan::<()>(0);
            let (parked_tx, parked_rx) = goro::chan::<()>(1);
            let a = goro::go(move || {
                struct SignalThenWait(goro::Sender<()>, goro::Receiver<()>);
                impl Drop for SignalThenWait {
                    fn drop(&mut self) {
                        self.0.send(()).unwrap();
                        let _ = self.1.recv();
                    }
                }
                let _g = SignalThenWait(parked_tx, b_ended);
                std::panic::resume_unwind(Box::new("A unwinds"));
            });
            let b = goro::go(move || {
                parked_rx.recv().unwrap(); // A is now in its unwind
                for _ in 0..20 {
                    *m2.lock().unwrap() += 1;
                    goro::time::sleep(Duration::from_millis(1)); // A stays parked mid-unwind
                }
                let caught = std::panic::catch_unwind(|| std::panic::resume_unwind(Box::new(7u8))).is_err();
                goro::yield_now();
                drop(b_alive); // lets A finish
                caught
            });
            let caught = b.join().unwrap();
            assert!(a.join().is_err());
            caught
        })
        .unwrap();
    assert!(caught);
    assert!(!m.is_poisoned());
    assert_eq!(*m.lock().unwrap(), 20);
}

/// Child bodies, selected by env var (the test re-runs its own binary).
#[test]
fn child_bodies() {
    if let Ok("catches-cancelled") = std::env::var("GORO_CANCEL_CHILD").as_deref() {
        rt(1)
            .run(|| {
                goro::Builder::new()
                    .name("stubborn")
                    .spawn(|| loop {
                        // Every park re-raises the cancellation at once; this
                        // loop catches it each time.
                        let _ = std::panic::catch_unwind(|| goro::time::sleep(Duration::from_millis(1)));
                    })
                    .unwrap();
                goro::time::sleep(Duration::from_millis(20));
            })
            .unwrap();
        eprintln!("child: run returned");
    }
}

/// A coroutine that catches `Cancelled` and loops is re-raised at each
/// park; after a bounded number the process aborts naming it (the old code
/// spun for ever and `run` never returned: the child was killed by the
/// timeout below).
#[test]
fn a_coroutine_that_keeps_catching_cancelled_aborts_with_its_name() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_bodies", "--nocapture", "--test-threads=1"])
        .env("GORO_CANCEL_CHILD", "catches-cancelled")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!("the child hung (killed after 20 s); stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{:?} {err}", out.status);
    assert_eq!(out.status.signal(), Some(6), "aborted: {:?} {err}", out.status);
    assert!(err.contains("\"stubborn\"") && err.contains("catches goro::Cancelled"), "{err}");
    assert!(err.contains("spawned at tests/cancel.rs:"), "{err}");
    assert!(!err.contains("child: run returned"), "{err}");
}

/// A coroutine cancelled while parked in a nested `Runtime::run` ends that
/// session: its main and the rest are cancelled, so the next session of the
/// inner runtime is its own. (Old code left the old session's main running
/// with no session of its own; its end then ended the next session, whose
/// main was cancelled: `Err(Panic(Cancelled))`.)
#[test]
fn a_nested_run_cancelled_mid_session_does_not_end_the_next_session() {
    let _w = watchdog(20, "nested run cancelled");
    let inner = Arc::new(rt(1));
    let old_main_dropped = Arc::new(AtomicUsize::new(0));
    let (i2, d2) = (inner.clone(), old_main_dropped.clone());
    rt(1)
        .run(move || {
            goro::go(move || {
                let _ = i2.run(move || {
                    let _d = DropCount(d2);
                    std::thread::sleep(Duration::from_millis(1)); // not a goro park
                    goro::time::sleep(Duration::from_millis(150));
                });
            });
            goro::time::sleep(Duration::from_millis(30)); // the nested session runs
        })
        .unwrap();
    assert_eq!(old_main_dropped.load(Ordering::SeqCst), 1, "the cancelled session's main was cancelled");
    let v = inner.run(|| {
        goro::time::sleep(Duration::from_millis(300));
        42
    });
    match v {
        Ok(v) => assert_eq!(v, 42),
        Err(RunError::Panic(p)) => {
            panic!("next session ended early: main panicked with is Cancelled = {}", p.is::<goro::Cancelled>())
        }
        Err(e) => panic!("{e}"),
    }
}

/// A `Runtime` dropped while coroutines no session owns are parked (spawned
/// by a `goro::blocking` job after its session ended) cancels them: their
/// destructors run and `join` returns `Err(Cancelled)`. (Old code leaked
/// them in a `home` <-> registry cycle: no destructor, `join` hung.)
#[test]
fn dropping_a_runtime_cancels_parked_coroutines_spawned_by_a_blocking_job() {
    let _w = watchdog(20, "runtime drop with parked coroutines");
    let drops = Arc::new(AtomicUsize::new(0));
    let (h_tx, h_rx) = std::sync::mpsc::channel();
    let (keep_tx, rx) = goro::chan::<()>(0);
    let r = rt(1);
    let d2 = drops.clone();
    r.run(move || {
        goro::go(move || {
            goro::blocking(move || {
                std::thread::sleep(Duration::from_millis(100)); // the session is over by then
                let h = goro::go(move || {
                    let _d = DropCount(d2);
                    let _ = rx.recv(); // parks for ever: `keep_tx` stays alive
                });
                h_tx.send(h).unwrap();
            })
        });
        goro::time::sleep(Duration::from_millis(20)); // the job starts
    })
    .unwrap();
    let h = h_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_millis(50)); // it starts and parks
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(r);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "its destructors ran when the runtime was dropped");
    let e = h.join().unwrap_err();
    assert!(e.is::<goro::Cancelled>());
    drop(keep_tx);
}
