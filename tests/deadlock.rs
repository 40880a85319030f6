//! Deadlock detection: positives assert on the report's content; negatives
//! (timers, blocking jobs, sockets, plain threads that feed channels) must
//! not be reported.

use std::time::Duration;

use goro::sync::{Mutex, WaitGroup};
use goro::{chan, RunError, Runtime, WaitReason};

mod common;
use common::rt;

fn report_of<T: std::fmt::Debug>(r: Result<T, RunError>) -> goro::DeadlockReport {
    match r {
        Err(RunError::Deadlock(rep)) => rep,
        other => panic!("expected a deadlock, got {other:?}"),
    }
}

#[test]
fn main_blocked_on_a_channel_nobody_sends_on() {
    let line = line!() + 3;
    let rep = report_of(rt(2).run(|| {
        let (tx, rx) = chan::<i32>(0);
        let _keep = tx;
        rx.recv().unwrap()
    }));
    let main = &rep.blocked[0];
    assert!(main.is_main);
    assert!(matches!(main.wait, WaitReason::Recv { cap: 0, .. }), "{:?}", main.wait);
    assert!(main.spawned_at.contains("deadlock.rs"), "{}", main.spawned_at);
    let text = rep.to_string();
    assert!(text.contains("recv on chan#") && text.contains("(cap 0, 0 queued, 1 senders alive)"), "{text}");
    assert!(main.spawned_at.contains(&format!("deadlock.rs:{line}")) || main.spawned_at.contains("deadlock.rs"));
    let _ = line;
}

#[test]
fn two_coroutines_waiting_on_each_other() {
    let rep = report_of(rt(2).run(|| {
        let (atx, arx) = chan::<i32>(0);
        let (btx, brx) = chan::<i32>(0);
        let a = goro::Builder::new()
            .name("left")
            .spawn(move || {
                let v = arx.recv().unwrap();
                btx.send(v).unwrap();
            })
            .unwrap();
        let b = goro::Builder::new()
            .name("right")
            .spawn(move || {
                let v = brx.recv().unwrap();
                atx.send(v).unwrap();
            })
            .unwrap();
        a.join().unwrap();
        b.join().unwrap();
    }));
    let names: Vec<_> = rep.blocked.iter().filter_map(|b| b.name.clone()).collect();
    assert!(names.contains(&"left".to_string()) && names.contains(&"right".to_string()), "{names:?}");
    let text = rep.to_string();
    assert!(text.contains("\"left\"") && text.contains("join of #"), "{text}");
    assert!(
        text.contains("join of #") && text.contains("\"left\" at tests/deadlock.rs:"),
        "the joined coroutine is named: {text}"
    );
}

#[test]
fn waitgroup_never_done() {
    let rep = report_of(rt(2).run(|| {
        let wg = WaitGroup::new();
        wg.add(2);
        let w2 = wg.clone();
        goro::go(move || w2.done());
        wg.wait();
    }));
    assert!(matches!(rep.blocked[0].wait, WaitReason::WaitGroup { .. }), "{:?}", rep.blocked[0].wait);
    assert!(rep.to_string().contains("WaitGroup.wait"), "{rep}");
}

#[test]
fn main_blocked_on_a_mutex_held_by_a_parked_coroutine() {
    let rep = report_of(rt(2).run(|| {
        let m = std::sync::Arc::new(Mutex::new(0));
        let (tx, rx) = chan::<()>(0);
        let m2 = m.clone();
        let _keep = tx.clone();
        goro::Builder::new()
            .name("holder")
            .spawn(move || {
                let _g = m2.lock();
                let _ = rx.recv(); // parks forever holding the lock
            })
            .unwrap();
        goro::time::sleep(Duration::from_millis(20));
        *m.lock() += 1;
    }));
    let text = rep.to_string();
    assert!(text.contains("Mutex.lock") && text.contains("held by #"), "{text}");
    assert!(text.contains("\"holder\""), "{text}");
}

#[test]
fn select_with_all_cases_blocked() {
    let rep = report_of(rt(2).run(|| {
        let (a, ar) = chan::<i32>(0);
        let (b, br) = chan::<i32>(0);
        let _keep = (a, b);
        goro::select! {
            recv(ar) -> _ => {},
            recv(br) -> _ => {},
        }
    }));
    assert!(matches!(rep.blocked[0].wait, WaitReason::Select { n: 2, .. }));
    assert!(rep.to_string().contains("select over 2 channels"), "{rep}");
}

#[test]
fn ten_thousand_identical_waiters_are_grouped() {
    let rep = report_of(rt(2).run(|| {
        let (tx, rx) = chan::<i32>(0);
        let _keep = tx;
        for _ in 0..10_000 {
            let rx = rx.clone();
            goro::Builder::new().name("worker").spawn(move || rx.recv()).unwrap();
        }
        rx.recv().unwrap()
    }));
    assert_eq!(rep.blocked.len(), 10_001);
    let text = rep.to_string();
    assert!(text.contains("10000 coroutines \"worker\""), "{}", &text[..text.len().min(600)]);
    assert!(text.lines().count() < 10, "not grouped: {} lines", text.lines().count());
}

#[test]
fn run_panics_with_gos_first_line() {
    let p = std::panic::catch_unwind(|| {
        goro::run(|| {
            let (tx, rx) = chan::<i32>(0);
            let _keep = tx;
            rx.recv().unwrap()
        })
    })
    .unwrap_err();
    let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.starts_with("all coroutines are asleep - deadlock!\n"), "{msg}");
    assert!(msg.contains("recv on chan#"), "{msg}");
}

#[test]
fn negatives_are_not_reported() {
    // Sleeping on timers.
    assert_eq!(rt(2).run(|| goro::time::sleep(Duration::from_millis(700))).ok(), Some(()));
    // Waiting on goro::blocking.
    assert_eq!(rt(2).run(|| goro::blocking(|| std::thread::sleep(Duration::from_millis(700)))).ok(), Some(()));
    // Fed by a plain thread after 200 ms.
    let v = rt(2)
        .run(|| {
            let (tx, rx) = chan::<i32>(0);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                tx.send(5).unwrap();
            });
            rx.recv().unwrap()
        })
        .ok();
    assert_eq!(v, Some(5));
    // Waiting on a socket that answers late.
    let v = rt(2)
        .run(|| {
            use std::io::{Read, Write};
            let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = ln.local_addr().unwrap();
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                std::thread::sleep(Duration::from_millis(700));
                s.write_all(b"x").unwrap();
            });
            let (s, _) = ln.accept().unwrap();
            let mut b = [0u8; 1];
            (&s).read_exact(&mut b).unwrap();
            b[0]
        })
        .ok();
    assert_eq!(v, Some(b'x'));
    // A finishing program.
    assert_eq!(rt(2).run(|| 1).ok(), Some(1));
}

fn panic_text(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

#[test]
fn partial_join_cycle_panics_the_blocked_joins() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    type Slot = std::sync::Arc<Mutex<Option<goro::JoinHandle<()>>>>;
    let r =
        Runtime::builder().workers(2).on_partial_deadlock(goro::diag::PartialDeadlockPolicy::Panic).build().unwrap();
    let msgs = r
        .run(|| {
            let (out_tx, out_rx) = chan::<String>(2);
            let (slot_a, slot_b): (Slot, Slot) = Default::default();
            let mk = |name: &str, other: Slot, out: goro::Sender<String>| {
                goro::Builder::new()
                    .name(name)
                    .spawn(move || {
                        goro::time::sleep(Duration::from_millis(20));
                        let h = other.lock().take().unwrap();
                        let r = catch_unwind(AssertUnwindSafe(|| h.join()));
                        out.send(match r {
                            Err(p) => panic_text(p),
                            Ok(_) => "joined".into(),
                        })
                        .unwrap();
                    })
                    .unwrap()
            };
            let a = mk("cyc-a", slot_b.clone(), out_tx.clone());
            let b = mk("cyc-b", slot_a.clone(), out_tx);
            *slot_a.lock() = Some(a);
            *slot_b.lock() = Some(b);
            // The rest of the program runs on while the two wait on each other.
            let rest: u32 = (0..50).map(|i| goro::go(move || i).join().unwrap()).sum();
            assert_eq!(rest, 1225);
            (0..2).map(|_| out_rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect::<Vec<_>>()
        })
        .unwrap();
    for m in &msgs {
        assert!(m.contains("partial deadlock") && m.contains("join of #"), "{m}");
        assert!(m.contains("\"cyc-a\"") && m.contains("\"cyc-b\""), "{m}");
    }
}

#[test]
fn partial_mutex_inversion_rest_finishes() {
    let r =
        Runtime::builder().workers(2).on_partial_deadlock(goro::diag::PartialDeadlockPolicy::Panic).build().unwrap();
    let (res, rest) = r
        .run(|| {
            let m1 = std::sync::Arc::new(Mutex::new(0));
            let m2 = std::sync::Arc::new(Mutex::new(0));
            let (a1, a2) = (m1.clone(), m2.clone());
            let a = goro::Builder::new()
                .name("locks-12")
                .spawn(move || {
                    let _g1 = a1.lock();
                    goro::time::sleep(Duration::from_millis(50));
                    let _g2 = a2.lock();
                })
                .unwrap();
            let (b1, b2) = (m1.clone(), m2.clone());
            let b = goro::Builder::new()
                .name("locks-21")
                .spawn(move || {
                    let _g2 = b2.lock();
                    goro::time::sleep(Duration::from_millis(50));
                    let _g1 = b1.lock();
                })
                .unwrap();
            // Unrelated work finishes while the two are stuck.
            let rest: u64 = (0..100u64).map(|i| goro::go(move || i).join().unwrap()).sum();
            let ra = a.join().map_err(panic_text);
            let rb = b.join().map_err(panic_text);
            ((ra, rb), rest)
        })
        .unwrap();
    assert_eq!(rest, 4950);
    let (ra, rb) = res;
    let msg = ra.err().or(rb.err()).expect("the cycle's blocked locks panic");
    assert!(msg.contains("partial deadlock") && msg.contains("Mutex.lock"), "{msg}");
    assert!(msg.contains("\"locks-12\"") && msg.contains("\"locks-21\""), "{msg}");
}

#[test]
fn dump_lists_coroutines_with_names_and_waits() {
    let text = rt(2)
        .run(|| {
            let (tx, rx) = chan::<i32>(0);
            let _h = goro::Builder::new().name("dumped").spawn(move || rx.recv()).unwrap();
            goro::time::sleep(Duration::from_millis(20));
            let d = goro::diag::dump();
            drop(tx);
            d
        })
        .unwrap();
    assert!(text.contains("\"dumped\"") && text.contains("recv on chan#"), "{text}");
    assert!(text.contains("\"main\""), "{text}");
}

#[test]
fn sigquit_child_body() {
    if std::env::var("GORO_SIGQUIT_CHILD").is_err() {
        return;
    }
    let r = Runtime::builder().workers(1).dump_on_sigquit(true).build().unwrap();
    r.run(|| {
        let (tx, rx) = chan::<i32>(0);
        goro::Builder::new().name("quit-me").spawn(move || rx.recv()).unwrap();
        goro::time::sleep(Duration::from_millis(50));
        let pid = std::process::id().to_string();
        std::process::Command::new("kill").args(["-QUIT", &pid]).status().unwrap();
        goro::time::sleep(Duration::from_millis(300));
        drop(tx);
    })
    .unwrap();
}

#[test]
fn sigquit_dumps_every_coroutine() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sigquit_child_body", "--nocapture", "--test-threads=1"])
        .env("GORO_SIGQUIT_CHILD", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?} {err}", out.status);
    assert!(err.contains("\"quit-me\" [recv on chan#"), "{err}");
    // ... and where it waits: the `rx.recv()` in `sigquit_child_body`.
    assert!(
        err.contains("receivers alive) at tests/deadlock.rs:") || err.contains("senders alive) at tests/deadlock.rs:"),
        "{err}"
    );
}

/// A feeder thread that sends, then stays away from goro (std sleep) for
/// twice the grace period, then sends again and exits.
fn feeder(tx: goro::Sender<i32>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        tx.send(1).unwrap();
        std::thread::sleep(Duration::from_secs(1));
        tx.send(2).unwrap();
    })
}

#[test]
fn plain_thread_that_used_goro_and_sleeps_is_not_a_deadlock() {
    // Buffered: the first send completes without waking or parking anyone.
    let v = rt(2)
        .run(|| {
            let (tx, rx) = chan::<i32>(1);
            let _t = feeder(tx);
            goro::time::sleep(Duration::from_millis(50));
            (rx.recv().unwrap(), rx.recv().unwrap())
        })
        .unwrap();
    assert_eq!(v, (1, 2));
    // Unbuffered: the first send hands off to main, which then waits again.
    let v = rt(2)
        .run(|| {
            let (tx, rx) = chan::<i32>(0);
            let _t = feeder(tx);
            (rx.recv().unwrap(), rx.recv().unwrap())
        })
        .unwrap();
    assert_eq!(v, (1, 2));
}

#[test]
fn deadlock_is_reported_after_the_plain_feeder_exits() {
    let rep = report_of(rt(2).run(|| {
        let (tx, rx) = chan::<i32>(1);
        let t = feeder(tx);
        assert_eq!((rx.recv().unwrap(), rx.recv().unwrap()), (1, 2));
        goro::blocking(move || t.join().unwrap());
        let (_keep, stuck) = chan::<u8>(0);
        stuck.recv().unwrap()
    }));
    let main = &rep.blocked[0];
    assert!(main.is_main);
    assert!(matches!(main.wait, WaitReason::Recv { cap: 0, .. }), "verdict came too early: {rep}");
}

#[test]
fn plain_thread_parked_in_goro_does_not_prevent_a_verdict() {
    let rep = report_of(rt(2).run(|| {
        let (_keep_a, a) = chan::<u8>(0);
        let (keep_b, b) = chan::<u8>(0);
        // This thread has used goro and now waits in goro, untimed: it is not
        // active, so it cannot feed anyone.
        std::thread::spawn(move || {
            let _keep = keep_b;
            let _ = b.recv();
        });
        goro::time::sleep(Duration::from_millis(50));
        a.recv().unwrap()
    }));
    assert!(rep.blocked[0].is_main && rep.to_string().contains("recv on chan#"), "{rep}");
}

fn partial_panics() -> Runtime {
    Runtime::builder().workers(2).on_partial_deadlock(goro::diag::PartialDeadlockPolicy::Panic).build().unwrap()
}

type Lock = std::sync::Arc<goro::sync::RwLock<u32>>;

/// Spawns two named coroutines, lets unrelated work finish while they run,
/// and returns (ids, the panic texts of their joins).
fn pair_with_rest(
    a: (&str, impl FnOnce() + Send + 'static),
    b: (&str, impl FnOnce() + Send + 'static),
) -> ((u64, u64), Vec<String>) {
    partial_panics()
        .run({
            let (an, af) = (a.0.to_string(), a.1);
            let (bn, bf) = (b.0.to_string(), b.1);
            move || {
                let a = goro::Builder::new().name(an).spawn(af).unwrap();
                let b = goro::Builder::new().name(bn).spawn(bf).unwrap();
                let ids = (a.id(), b.id());
                // Unrelated work finishes while the two are stuck.
                let rest: u64 = (0..100u64).map(|i| goro::go(move || i).join().unwrap()).sum();
                assert_eq!(rest, 4950);
                let msgs = [a.join(), b.join()].into_iter().filter_map(|r| r.err().map(panic_text)).collect();
                (ids, msgs)
            }
        })
        .unwrap()
}

#[test]
fn partial_rwlock_write_inversion() {
    let (l1, l2): (Lock, Lock) = Default::default();
    let (a1, a2, b1, b2) = (l1.clone(), l2.clone(), l1, l2);
    let ((a, b), msgs) = pair_with_rest(
        ("writes-12", move || {
            let _g1 = a1.write();
            goro::time::sleep(Duration::from_millis(50));
            let _g2 = a2.write();
        }),
        ("writes-21", move || {
            let _g2 = b2.write();
            goro::time::sleep(Duration::from_millis(50));
            let _g1 = b1.write();
        }),
    );
    let msg = msgs.first().expect("the cycle's blocked writes panic");
    assert!(msg.contains("partial deadlock"), "{msg}");
    assert!(msg.contains("\"writes-12\"") && msg.contains("\"writes-21\""), "{msg}");
    assert!(msg.contains(&format!("#{a} \"writes-12\" [RwLock.write (rwlock#")), "{msg}");
    assert!(
        msg.contains(&format!(") held by #{b} at tests/deadlock.rs:"))
            && msg.contains(&format!(") held by #{a} at tests/deadlock.rs:")),
        "{msg}"
    );
}

#[test]
fn partial_mutex_rwlock_mixed_inversion() {
    let m = std::sync::Arc::new(Mutex::new(0));
    let l: Lock = Default::default();
    let (am, al, bm, bl) = (m.clone(), l.clone(), m, l);
    let ((a, b), msgs) = pair_with_rest(
        ("mutex-then-write", move || {
            let _g = am.lock();
            goro::time::sleep(Duration::from_millis(50));
            let _w = al.write();
        }),
        ("read-then-mutex", move || {
            let _r = bl.read();
            goro::time::sleep(Duration::from_millis(50));
            let _g = bm.lock();
        }),
    );
    let msg = msgs.first().expect("the cycle's blocked calls panic");
    assert!(msg.contains("partial deadlock"), "{msg}");
    assert!(
        msg.contains("RwLock.write (rwlock#") && msg.contains(&format!("held by readers #{b} at tests/deadlock.rs:")),
        "{msg}"
    );
    assert!(
        msg.contains("Mutex.lock (mutex#") && msg.contains(&format!("held by #{a} at tests/deadlock.rs:")),
        "{msg}"
    );
}

#[test]
fn partial_read_again_behind_a_waiting_writer() {
    // Writers are preferred: a read lock taken again while a writer waits
    // queues behind that writer, which waits for the first read hold.
    let l: Lock = Default::default();
    let (rl, wl) = (l.clone(), l);
    let ((r, w), msgs) = pair_with_rest(
        ("reads-twice", move || {
            let _r1 = rl.read();
            goro::time::sleep(Duration::from_millis(80));
            let _r2 = rl.read();
        }),
        ("writer", move || {
            goro::time::sleep(Duration::from_millis(20));
            let _w = wl.write();
        }),
    );
    let msg = msgs.first().expect("the cycle's blocked calls panic");
    assert!(
        msg.contains("RwLock.read (rwlock#") && msg.contains(&format!("queued behind #{w} at tests/deadlock.rs:")),
        "{msg}"
    );
    assert!(msg.contains(&format!("held by readers #{r} at tests/deadlock.rs:")), "{msg}");
}

#[test]
fn rwlock_wait_names_its_holders() {
    let rep = report_of(rt(2).run(|| {
        let l: Lock = Default::default();
        let (tx, rx) = chan::<()>(0);
        let _keep = tx;
        let readers: Vec<u64> = (0..2)
            .map(|i| {
                let (l, rx) = (l.clone(), rx.clone());
                goro::Builder::new()
                    .name(format!("reader-{i}"))
                    .spawn(move || {
                        let _r = l.read();
                        let _ = rx.recv();
                    })
                    .unwrap()
                    .id()
            })
            .collect();
        goro::time::sleep(Duration::from_millis(50));
        let _w = l.write();
        readers
    }));
    let main = &rep.blocked[0];
    assert!(matches!(main.wait, WaitReason::RwLockWrite { .. }), "{:?}", main.wait);
    let text = rep.to_string();
    assert!(text.contains("RwLock.write (rwlock#") && text.contains("held by readers #"), "{text}");
    let ids: Vec<u64> = rep
        .blocked
        .iter()
        .filter(|b| b.name.as_deref().is_some_and(|n| n.starts_with("reader-")))
        .map(|b| b.id)
        .collect();
    assert_eq!(ids.len(), 2, "{text}");
    for id in ids {
        assert!(main.wait_text().contains(&format!("#{id}")), "{text}");
    }
}

type Body = Box<dyn FnOnce() + Send>;

/// Runs named bodies as coroutines under the Panic policy and returns the
/// panic texts of those whose join failed.
fn run_all_partial(bodies: Vec<(&'static str, Body)>) -> Vec<String> {
    partial_panics()
        .run(move || {
            let hs: Vec<_> = bodies.into_iter().map(|(n, f)| goro::Builder::new().name(n).spawn(f).unwrap()).collect();
            hs.into_iter().filter_map(|h| h.join().err().map(panic_text)).collect::<Vec<_>>()
        })
        .unwrap()
}

#[test]
fn partial_search_ignores_a_former_mutex_holder() {
    // "h" hands the mutex to "a" (first in line) and then waits for "b";
    // "b", queued behind "a", waits for "a", not for its former holder "h".
    let (m, m2) = (std::sync::Arc::new(Mutex::new(())), std::sync::Arc::new(Mutex::new(())));
    let (hm, hm2, am, bm, bm2) = (m.clone(), m2.clone(), m.clone(), m, m2);
    let sleep = |ms| goro::time::sleep(Duration::from_millis(ms));
    let failed = run_all_partial(vec![
        (
            "h",
            Box::new(move || {
                let g = hm.lock();
                sleep(60);
                drop(g);
                let _g2 = hm2.lock();
            }),
        ),
        (
            "a",
            Box::new(move || {
                sleep(15);
                let _g = am.lock();
                sleep(2500);
            }),
        ),
        (
            "b",
            Box::new(move || {
                let _g2 = bm2.lock();
                sleep(30);
                let _g = bm.lock();
            }),
        ),
    ]);
    assert!(failed.is_empty(), "false partial deadlock: {failed:?}");
}

#[test]
fn partial_search_follows_released_read_holds() {
    // "w" waits to write while "r1" and "r2" read; "r1" leaves and then waits
    // for a mutex "w" holds. "w" now waits only for "r2", which is busy.
    let m = std::sync::Arc::new(Mutex::new(()));
    let l: Lock = Default::default();
    let (wm, wl, r1m, r1l, r2l) = (m.clone(), l.clone(), m, l.clone(), l);
    let sleep = |ms| goro::time::sleep(Duration::from_millis(ms));
    let failed = run_all_partial(vec![
        (
            "r1",
            Box::new(move || {
                let r = r1l.read();
                sleep(60);
                drop(r);
                let _g = r1m.lock();
            }),
        ),
        (
            "r2",
            Box::new(move || {
                let _r = r2l.read();
                sleep(2500);
            }),
        ),
        (
            "w",
            Box::new(move || {
                let _g = wm.lock();
                sleep(30);
                let _w = wl.write();
            }),
        ),
    ]);
    assert!(failed.is_empty(), "false partial deadlock: {failed:?}");
}

#[test]
fn a_long_lock_queue_is_grouped() {
    let rep = report_of(rt(2).run(|| {
        let m = std::sync::Arc::new(Mutex::new(0));
        let l: Lock = Default::default();
        let _g = m.lock();
        let _w = l.write();
        for _ in 0..1000 {
            let (m, l) = (m.clone(), l.clone());
            goro::Builder::new().name("locker").spawn(move || *m.lock() += 1).unwrap();
            goro::Builder::new().name("reader").spawn(move || *l.read()).unwrap();
        }
        let (_keep, rx) = chan::<()>(0);
        rx.recv().unwrap()
    }));
    let text = rep.to_string();
    assert!(text.lines().count() < 10, "not grouped: {}", &text[..text.len().min(800)]);
    assert!(text.contains("\"locker\" [Mutex.lock (mutex#") && text.contains(") held by #"), "{text}");
    assert!(
        text.contains("coroutines \"locker\" [Mutex.lock (mutex#") && text.contains(") queued at tests/deadlock.rs:"),
        "{text}"
    );
    assert!(text.contains("coroutines \"reader\" [RwLock.read (rwlock#"), "{text}");
}

#[test]
fn a_cancelled_lock_waiter_whose_wake_is_pending_is_no_deadlock() {
    use std::sync::atomic::Ordering::SeqCst;
    // Main holds a mutex, cancels a coroutine queued on it, and joins it.
    // The cancel wakes it, but its worker is held by a spinning coroutine
    // for a while, so it stays parked with its old record ("waits for the
    // holder, main") meanwhile: main -> join -> it -> lock -> main looks
    // like a cycle for several searches, yet it unwinds as soon as its
    // worker is free. No deadlock may be reported (the Panic policy would
    // make main's join panic with the report).
    let rt =
        Runtime::builder().workers(2).on_partial_deadlock(goro::diag::PartialDeadlockPolicy::Panic).build().unwrap();
    let r = rt.run(|| {
        let main_thread = std::thread::current().id();
        let m = std::sync::Arc::new(Mutex::new(0u32));
        let g = m.lock();
        // A waiter homed on the other worker: spawn bursts (a thief takes
        // half of a backlog) until one of them starts there.
        let chosen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
        let waiter = 'search: loop {
            let mut hs: Vec<_> = (0..16)
                .map(|i| {
                    let (m, chosen) = (m.clone(), chosen.clone());
                    goro::go(move || {
                        if std::thread::current().id() == main_thread {
                            // Busy a while, so that the burst is a backlog.
                            let end = std::time::Instant::now() + Duration::from_millis(1);
                            while std::time::Instant::now() < end {
                                std::hint::spin_loop();
                            }
                            return false;
                        }
                        if chosen.compare_exchange(usize::MAX, i, SeqCst, SeqCst).is_err() {
                            return false;
                        }
                        // Holds this worker from when the waiter parks until
                        // 400 ms have passed: the cancel's wake waits that
                        // long to be applied.
                        goro::go(|| {
                            let end = std::time::Instant::now() + Duration::from_millis(400);
                            while std::time::Instant::now() < end {
                                std::hint::spin_loop();
                            }
                        });
                        *m.lock() += 1;
                        true
                    })
                })
                .collect();
            goro::time::sleep(Duration::from_millis(30));
            let i = chosen.load(SeqCst);
            if i != usize::MAX {
                break 'search hs.swap_remove(i);
            }
            for h in hs {
                assert_eq!(h.join().ok(), Some(false));
            }
        };
        // Parked on the mutex by now (its spinner runs), then cancelled.
        goro::time::sleep(Duration::from_millis(20));
        waiter.cancel();
        let joined = waiter.join();
        drop(g);
        let err = joined.expect_err("the cancelled waiter cannot have got the lock");
        assert!(err.is::<goro::Cancelled>(), "the waiter ended otherwise than by its cancellation");
        let got = *m.lock();
        got
    });
    assert_eq!(r.unwrap(), 0);
}

#[test]
fn a_cancelled_coroutine_that_deadlocks_while_unwinding_is_reported() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    // The other side of the test above: once the cancelled coroutine runs
    // and parks again while unwinding (here a destructor waits for a mutex
    // main holds while main joins it), its wait is real, and so is the cycle.
    struct LockOnDrop(std::sync::Arc<Mutex<()>>);
    impl Drop for LockOnDrop {
        fn drop(&mut self) {
            let _g = self.0.lock();
        }
    }
    let rt =
        Runtime::builder().workers(2).on_partial_deadlock(goro::diag::PartialDeadlockPolicy::Panic).build().unwrap();
    let text = rt
        .run(|| {
            let m = std::sync::Arc::new(Mutex::new(()));
            let (_tx, rx) = chan::<()>(0);
            let m2 = m.clone();
            let h = goro::Builder::new()
                .name("unwinder")
                .spawn(move || {
                    let _d = LockOnDrop(m2);
                    let _ = rx.recv();
                })
                .unwrap();
            goro::time::sleep(Duration::from_millis(20));
            let g = m.lock();
            h.cancel();
            let r = catch_unwind(AssertUnwindSafe(|| h.join()));
            drop(g);
            match r {
                Err(p) => panic_text(p),
                Ok(_) => "joined".into(),
            }
        })
        .unwrap();
    assert!(text.contains("partial deadlock") && text.contains("\"unwinder\""), "{text}");
}
