//! Diagnostics a Go user expects (issue 14, item 4): where each coroutine
//! waits, panics that name their coroutine, prompt partial-deadlock reports,
//! and the long-run warning only when it matters. Tests that look at stderr
//! re-run this binary as a child (`GORO_DIAG_CHILD` picks the body).

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goro::diag::CoroutineState;
use goro::{chan, RunError, Runtime};

mod common;
use common::{rt, watchdog};

const FILE: &str = "tests/diagnostics.rs";

/// `FILE:line:` (the column follows).
fn at(line: u32) -> String {
    format!(" at {FILE}:{line}:")
}

// ---------------------------------------------------------------- wait sites

#[test]
fn deadlock_report_names_the_line_of_the_blocking_recv() {
    let _w = watchdog(60, "deadlock_report_names_the_line_of_the_blocking_recv");
    let rt = rt(2);
    let line = line!() + 4;
    let r = rt.run(|| {
        let (tx, rx) = chan::<i32>(0);
        let _keep = tx;
        rx.recv().unwrap()
    });
    let rep = match r {
        Err(RunError::Deadlock(rep)) => rep,
        other => panic!("expected a deadlock, got {other:?}"),
    };
    let main = &rep.blocked[0];
    let site = main.wait_at.expect("the report records where main waits");
    assert_eq!((site.file(), site.line()), (FILE, line), "{rep}");
    let text = rep.to_string();
    assert!(text.contains(&format!("senders alive){}", at(line))), "{text}");
    assert!(main.wait_text().ends_with(&format!("{}{}", at(line), site.column())), "{}", main.wait_text());
}

#[test]
fn coroutines_shows_where_each_parked_coroutine_waits() {
    let _w = watchdog(60, "coroutines_shows_where_each_parked_coroutine_waits");
    let rt = rt(2);
    rt.run(|| {
        let (tx, rx) = chan::<i32>(0);
        let (tx2, rx2) = chan::<i32>(0);
        let m = Arc::new(goro::sync::Mutex::new(()));
        let wg = goro::sync::WaitGroup::new();
        wg.add(1);
        let l_recv = line!() + 1;
        let r = goro::Builder::new().name("recv").spawn(move || rx.recv()).unwrap();
        let sel = move || goro::select! { recv(rx2) -> v => v.is_ok() };
        let l_select = line!() - 1;
        let s = goro::Builder::new().name("select").spawn(sel).unwrap();
        let held = m.lock();
        let m2 = m.clone();
        let l_lock = line!() + 1;
        let l = goro::Builder::new().name("lock").spawn(move || drop(m2.lock())).unwrap();
        let wg2 = wg.clone();
        let l_wg = line!() + 1;
        let w = goro::Builder::new().name("wg").spawn(move || wg2.wait()).unwrap();
        let l_sleep = line!() + 1;
        let z = goro::Builder::new().name("sleep").spawn(|| goro::time::sleep(Duration::from_secs(3600))).unwrap();
        let l_join = line!() + 1;
        let j = goro::Builder::new().name("join").spawn(move || z.join().is_err()).unwrap();
        let want = [
            ("recv", l_recv),
            ("select", l_select),
            ("lock", l_lock),
            ("wg", l_wg),
            ("sleep", l_sleep),
            ("join", l_join),
        ];
        // Wait (generously) until all six are parked.
        let t = Instant::now();
        let list = loop {
            let list = goro::coroutines();
            let parked = want
                .iter()
                .all(|(n, _)| list.iter().any(|c| c.name.as_deref() == Some(n) && c.state == CoroutineState::Parked));
            if parked || t.elapsed() > Duration::from_secs(20) {
                break list;
            }
            goro::time::sleep(Duration::from_millis(5));
        };
        for (name, line) in want {
            let c = list.iter().find(|c| c.name.as_deref() == Some(name)).expect(name);
            assert_eq!(c.state, CoroutineState::Parked, "{c}");
            let site = c.wait_at.unwrap_or_else(|| panic!("no wait site for {c}"));
            assert_eq!((site.file(), site.line()), (FILE, line), "{name}: {c}");
            assert!(c.to_string().contains(&format!("{}{}]", at(line), site.column())), "{c}");
        }
        let dump = goro::diag::dump();
        assert!(dump.contains(&at(l_recv)) && dump.contains(&at(l_lock)), "{dump}");
        drop(tx);
        drop(tx2);
        drop(held);
        wg.done();
        r.join().unwrap().unwrap_err();
        assert!(!s.join().unwrap());
        l.join().unwrap();
        w.join().unwrap();
        // `j` waits for the hour-long sleeper: cancelled when main returns.
        drop(j);
    })
    .unwrap();
}

// ------------------------------------------------------ partial deadlocks

/// Forms a two-mutex lock-order inversion and returns how long after it
/// formed the blocked `lock` calls panicked with the report (policy Panic).
/// `busy`: a coroutine spins on `yield_now` meanwhile.
fn time_to_report(busy: bool) -> Duration {
    let rt =
        Runtime::builder().workers(2).on_partial_deadlock(goro::diag::PartialDeadlockPolicy::Panic).build().unwrap();
    rt.run(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let spinner = busy.then(|| {
            let stop = stop.clone();
            goro::go(move || {
                while !stop.load(Ordering::Relaxed) {
                    goro::yield_now();
                }
            })
        });
        // A coroutine asleep for an hour: a pending timer, as in any real
        // program, so the global detector has nothing to look at and the
        // monitor naps its longest while idle. Cancelled when main returns.
        goro::go(|| goro::time::sleep(Duration::from_secs(3600)));
        // Let the monitor settle into its longest nap first.
        goro::time::sleep(Duration::from_millis(400));
        let a = Arc::new(goro::sync::Mutex::new(()));
        let b = Arc::new(goro::sync::Mutex::new(()));
        let wg = goro::sync::WaitGroup::new();
        wg.add(2);
        let (tx, rx) = chan::<Instant>(2);
        let side = |first: Arc<goro::sync::Mutex<()>>, second: Arc<goro::sync::Mutex<()>>| {
            let wg = wg.clone();
            let tx = tx.clone();
            goro::go(move || {
                let _g = first.lock();
                wg.done();
                wg.wait();
                tx.send(Instant::now()).unwrap();
                let _h = second.lock();
            })
        };
        let h1 = side(a.clone(), b.clone());
        let h2 = side(b, a);
        let formed = rx.recv().unwrap().max(rx.recv().unwrap());
        let e1 = h1.join().expect_err("the inverted lock must panic with the report");
        let reported = Instant::now();
        let e2 = h2.join().expect_err("the inverted lock must panic with the report");
        stop.store(true, Ordering::Relaxed);
        if let Some(s) = spinner {
            s.join().unwrap();
        }
        for e in [e1, e2] {
            let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(msg.contains("partial deadlock") && msg.contains("Mutex.lock"), "{msg}");
        }
        reported.saturating_duration_since(formed)
    })
    .unwrap()
}

/// Runs `time_to_report` in a child without `RUST_BACKTRACE` (the time
/// includes printing the panics of the blocked calls, which a backtrace in
/// a debug build would stretch to hundreds of milliseconds).
fn measured_in_child(which: &str) -> Duration {
    let (st, err) = run_child(which);
    assert!(st.success(), "{st:?}: {err}");
    let ms: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("MEASURED "))
        .unwrap_or_else(|| panic!("no measurement: {err}"))
        .trim()
        .parse()
        .unwrap();
    Duration::from_millis(ms)
}

#[test]
fn partial_deadlock_reported_promptly_while_busy() {
    let _w = watchdog(60, "partial_deadlock_reported_promptly_while_busy");
    let t = measured_in_child("partial-busy");
    println!("busy: inversion reported {} ms after it formed", t.as_millis());
    assert!(t < Duration::from_secs(1), "reported {t:?} after it formed");
}

#[test]
fn partial_deadlock_reported_promptly_while_idle() {
    let _w = watchdog(60, "partial_deadlock_reported_promptly_while_idle");
    let t = measured_in_child("partial-idle");
    println!("idle: inversion reported {} ms after it formed", t.as_millis());
    assert!(t < Duration::from_secs(1), "reported {t:?} after it formed");
}

// ------------------------------------------------------------ child bodies

/// Child bodies, selected by `GORO_DIAG_CHILD` (tests re-run this binary).
#[test]
fn child_bodies() {
    let Ok(which) = std::env::var("GORO_DIAG_CHILD") else { return };
    match which.as_str() {
        "partial-busy" | "partial-idle" => {
            let t = time_to_report(which == "partial-busy");
            eprintln!("MEASURED {}", t.as_millis());
        }
        "cycle-at-exit" => {
            // A lock-order inversion that forms just before main returns.
            goro::run(|| {
                let a = Arc::new(goro::sync::Mutex::new(()));
                let b = Arc::new(goro::sync::Mutex::new(()));
                let wg = goro::sync::WaitGroup::new();
                wg.add(2);
                let (tx, rx) = chan::<()>(2);
                for (first, second) in [(a.clone(), b.clone()), (b, a)] {
                    let wg = wg.clone();
                    let tx = tx.clone();
                    goro::Builder::new()
                        .name("inverted")
                        .spawn(move || {
                            let _g = first.lock();
                            wg.done();
                            wg.wait();
                            tx.send(()).unwrap();
                            let _h = second.lock();
                        })
                        .unwrap();
                }
                rx.recv().unwrap();
                rx.recv().unwrap();
                // Both are about to block on each other: return now.
            });
            eprintln!("child: run returned");
        }
        "panics" => {
            goro::run(move || {
                let h = goro::Builder::new().name("fetcher").spawn(move || panic!("boom {}", 7)).unwrap();
                let id = h.id();
                assert!(h.join().is_err());
                eprintln!("FETCHER-ID {id}");
                // Goro's own panics point at the caller's line.
                assert!(goro::go(|| goro::sync::WaitGroup::new().done()).join().is_err());
                assert!(goro::go(|| goro::time::Ticker::new(Duration::ZERO)).join().is_err());
                assert!(goro::go(|| drop(goro::chan::<[u8; 64]>(usize::MAX / 2))).join().is_err());
                assert!(goro::go(|| drop(goro::dropping::<u8>(0))).join().is_err());
                // A plain thread's panic keeps std's report.
                let _ = std::thread::Builder::new().name("plain-one".into()).spawn(|| panic!("plain")).unwrap().join();
                // A leftover cancelled at the end unwinds quietly.
                let (tx, rx) = chan::<()>(0);
                std::mem::forget(tx);
                goro::Builder::new().name("leftover").spawn(move || rx.recv()).unwrap();
                goro::time::sleep(Duration::from_millis(20));
            });
        }
        "spin-alone" | "spin-behind-woken" | "spin-behind-yielded" | "spin-behind-timer" => {
            fn spin(d: Duration) {
                let t = Instant::now();
                while t.elapsed() < d {
                    std::hint::spin_loop();
                }
            }
            let rt = rt(1);
            let which2 = which.clone();
            rt.run(move || {
                let (tx, rx) = chan::<()>(0);
                let stop = Arc::new(AtomicBool::new(false));
                let stop2 = stop.clone();
                let which = which2.clone();
                let other = goro::Builder::new()
                    .name("other")
                    .spawn(move || match which.as_str() {
                        "spin-behind-woken" => drop(rx.recv()),
                        "spin-behind-yielded" => {
                            while !stop2.load(Ordering::Relaxed) {
                                goro::yield_now();
                            }
                        }
                        "spin-behind-timer" => goro::time::sleep(Duration::from_millis(20)),
                        _ => {}
                    })
                    .unwrap();
                let which = which2.clone();
                let spinner = goro::Builder::new()
                    .name("spinner")
                    .spawn(move || {
                        // Let `other` start and park (or yield) first.
                        goro::time::sleep(Duration::from_millis(5));
                        if which == "spin-behind-woken" {
                            tx.send(()).unwrap(); // `other` is now runnable here
                        }
                        spin(Duration::from_millis(400));
                        stop.store(true, Ordering::Relaxed);
                    })
                    .unwrap();
                spinner.join().unwrap();
                other.join().unwrap();
            })
            .unwrap();
            eprintln!("child: spun");
        }
        other => panic!("unknown child {other}"),
    }
}

fn run_child(which: &str) -> (std::process::ExitStatus, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_bodies", "--nocapture", "--test-threads=1"])
        .env("GORO_DIAG_CHILD", which)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn cycle_standing_when_main_returns_is_reported() {
    let _w = watchdog(60, "cycle_standing_when_main_returns_is_reported");
    let (st, err) = run_child("cycle-at-exit");
    assert!(st.success(), "{st:?}: {err}");
    assert!(err.contains("partial deadlock") && err.contains("\"inverted\""), "{err}");
    let report = err.find("partial deadlock").unwrap();
    assert!(report < err.find("child: run returned").unwrap(), "{err}");
}

// ------------------------------------------------------- panic identity

#[test]
fn a_coroutine_panic_names_the_coroutine() {
    let _w = watchdog(60, "a_coroutine_panic_names_the_coroutine");
    let (st, err) = run_child("panics");
    assert!(st.success(), "{st:?}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    // The line before a message: who panicked, and where.
    let head_of = |msg: &str| {
        let i = lines.iter().position(|l| l.starts_with(msg)).unwrap_or_else(|| panic!("no {msg:?} in:\n{err}"));
        assert!(i > 0, "{err}");
        lines[i - 1]
    };
    let id = err.lines().find_map(|l| l.strip_prefix("FETCHER-ID ")).expect("id");
    let head = head_of("boom 7");
    let want = format!("coroutine #{id} \"fetcher\" (spawned at {FILE}:");
    assert!(head.starts_with(&want) && head.contains(&format!(") panicked at {FILE}:")), "{head}");
    for msg in [
        "sync: negative WaitGroup counter",
        "non-positive interval for NewTicker",
        "goro::chan: cannot allocate a buffer",
        "goro::dropping: a dropping channel needs",
    ] {
        let head = head_of(msg);
        assert!(head.starts_with("coroutine #") && head.contains(&format!("panicked at {FILE}:")), "{head}");
    }
    assert!(head_of("plain").starts_with("thread 'plain-one'"), "{err}");
    assert!(!err.contains("thread 'goro-worker"), "{err}");
    assert!(!err.contains("leftover") && !err.contains("Cancelled"), "{err}");
}

// ------------------------------------------------------- long-run warning

#[test]
fn long_run_warning_only_when_work_is_stuck_behind() {
    let _w = watchdog(60, "long_run_warning_only_when_work_is_stuck_behind");
    let (st, err) = run_child("spin-alone");
    assert!(st.success(), "{st:?}: {err}");
    assert!(err.contains("child: spun"), "{err}");
    assert!(!err.contains("without parking"), "a coroutine alone on its worker hurts nobody: {err}");
    for which in ["spin-behind-woken", "spin-behind-yielded", "spin-behind-timer"] {
        let (st, err) = run_child(which);
        assert!(st.success(), "{which}: {st:?}: {err}");
        assert!(err.contains("\"spinner\"") && err.contains("without parking"), "{which}: {err}");
    }
}
