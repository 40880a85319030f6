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

const FILE: &str = "tests/diagnostics.rs";

/// Aborts the process if the test is still running after `secs`: a hang
/// becomes a failure, never a stuck run.
struct Watchdog(Arc<AtomicBool>);

fn watchdog(secs: u64) -> Watchdog {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(secs) {
            if d.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("watchdog: test still running after {secs} s");
        std::process::abort();
    });
    Watchdog(done)
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `FILE:line:` (the column follows).
fn at(line: u32) -> String {
    format!(" at {FILE}:{line}:")
}

// ---------------------------------------------------------------- wait sites

#[test]
fn deadlock_report_names_the_line_of_the_blocking_recv() {
    let _w = watchdog(60);
    let rt = Runtime::builder().workers(2).build().unwrap();
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
    let _w = watchdog(60);
    let rt = Runtime::builder().workers(2).build().unwrap();
    rt.run(|| {
        let (tx, rx) = chan::<i32>(0);
        let (tx2, rx2) = chan::<i32>(0);
        let m = Arc::new(goro::sync::Mutex::new(()));
        let wg = goro::sync::WaitGroup::new();
        wg.add(1);
        let l_recv = line!() + 1;
        let r = goro::Builder::new().name("recv").spawn(move || rx.recv()).unwrap();
        let l_select = line!() + 3;
        let s = goro::Builder::new()
            .name("select")
            .spawn(move || goro::select! { recv(rx2) -> v => v.is_ok() })
            .unwrap();
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
            let parked = want.iter().all(|(n, _)| {
                list.iter().any(|c| c.name.as_deref() == Some(n) && c.state == CoroutineState::Parked)
            });
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
