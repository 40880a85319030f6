//! goro::time: ordering, lower bounds, Go 1.23 stop/reset, tick dropping,
//! plain threads, many sleepers. No upper-bound timing asserts except with
//! generous slack.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use goro::time::{after, sleep, tick, Ticker, Timer};

mod common;
use common::{ms, rt};

#[test]
fn shorter_sleeps_wake_first() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let o2 = order.clone();
    rt(2)
        .run(move || {
            // Deadlines from one instant: the order under test is the
            // timers', not the coroutines' start order (a loaded box once
            // started the 10 ms one more than 10 ms after the 20 ms one).
            let t0 = Instant::now();
            let hs: Vec<_> = [50u64, 10, 30, 20, 40]
                .into_iter()
                .map(|d| {
                    let o = o2.clone();
                    goro::go(move || {
                        let t = Instant::now();
                        let left = ms(d).saturating_sub(t.duration_since(t0));
                        sleep(left);
                        assert!(t.elapsed() >= left);
                        assert!(t0.elapsed() >= ms(d));
                        o.lock().unwrap().push(d);
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        })
        .unwrap();
    assert_eq!(*order.lock().unwrap(), vec![10, 20, 30, 40, 50]);
}

#[test]
fn hundred_thousand_sleepers() {
    let woke = Arc::new(AtomicUsize::new(0));
    let w2 = woke.clone();
    goro::run(move || {
        let hs: Vec<_> = (0..100_000u64)
            .map(|i| {
                let w = w2.clone();
                goro::go(move || {
                    sleep(ms(1 + i % 20));
                    w.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    assert_eq!(woke.load(Ordering::Relaxed), 100_000);
}

#[test]
fn after_and_timer_fire_once() {
    for in_coroutine in [true, false] {
        let body = || {
            let t = Instant::now();
            let rx = after(ms(10));
            let at = rx.recv().unwrap();
            assert!(at >= t + ms(10));
            assert!(rx.recv_timeout(ms(30)).is_err(), "after delivers one value");
            let timer = Timer::new(ms(5));
            timer.chan().recv().unwrap();
            assert!(!timer.stop(), "already received");
        };
        if in_coroutine {
            goro::run(body);
        } else {
            body();
        }
    }
}

#[test]
fn stop_and_reset_never_deliver_stale_values() {
    goro::run(|| {
        // Fired but not received: stop returns true and drains it.
        let t = Timer::new(ms(1));
        sleep(ms(20));
        assert!(t.stop());
        assert!(t.chan().try_recv().is_err());
        // Reset after firing: only the new deadline's value arrives.
        let t = Timer::new(ms(1));
        sleep(ms(20));
        let before = Instant::now();
        assert!(t.reset(ms(30)));
        let v = t.chan().recv().unwrap();
        assert!(v >= before + ms(30), "a stale value was received");
        // Stopped before firing: nothing ever arrives.
        let t = Timer::new(ms(10));
        assert!(t.stop());
        assert!(t.chan().recv_timeout(ms(40)).is_err());
        assert!(!t.stop());
    });
}

#[test]
fn reset_races_with_a_reader() {
    goro::run(|| {
        let t = Arc::new(Timer::new(ms(5)));
        let got = Arc::new(AtomicUsize::new(0));
        let (t2, g2) = (t.clone(), got.clone());
        let reader = goro::go(move || {
            while t2.chan().recv_timeout(ms(200)).is_ok() {
                g2.fetch_add(1, Ordering::SeqCst);
            }
        });
        for _ in 0..20 {
            t.reset(ms(3));
            sleep(ms(1));
        }
        t.reset(ms(2));
        reader.join().unwrap();
        // The last reset certainly fired once; stale ones never add extra.
        let n = got.load(Ordering::SeqCst);
        assert!((1..=21).contains(&n), "{n}");
    });
}

/// A reader 60 ms late finds one tick waiting, not a backlog of ~12. The
/// ticker goes on while the reader drains, so a reader preempted for a
/// period between two `try_recv`s also gets the next tick (2 runs in 20 of
/// this binary beside two spinning shells): up to three tickers, and one
/// drain must find exactly one. A ticker that kept a backlog finds several
/// every time.
#[test]
fn slow_ticker_readers_drop_ticks() {
    let mut drained = Vec::new();
    for _ in 0..3 {
        let rx = tick(ms(5));
        std::thread::sleep(ms(60));
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        drained.push(n);
        if n == 1 {
            break;
        }
    }
    assert_eq!(drained.last(), Some(&1), "ticks found by each late reader: {drained:?}");
    let ticker = Ticker::new(ms(5));
    ticker.chan().recv().unwrap();
    ticker.chan().recv().unwrap();
    ticker.stop();
    assert!(ticker.chan().recv_timeout(ms(30)).is_err());
    ticker.reset(ms(5));
    assert!(ticker.chan().recv_timeout(ms(500)).is_ok());
}

#[test]
fn zero_and_huge_durations() {
    let t = Instant::now();
    after(Duration::ZERO).recv().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    let rx = after(Duration::MAX);
    assert!(rx.recv_timeout(ms(20)).is_err());
    let timer = Timer::new(Duration::MAX);
    assert!(timer.stop());
    // sleep(Duration::MAX) in a coroutine neither panics nor returns; the
    // runtime cancels it when main returns.
    goro::run(|| {
        goro::go(|| sleep(Duration::MAX));
        sleep(ms(5));
    });
}

#[test]
fn zero_tick_panics_like_go() {
    let p = std::panic::catch_unwind(|| Ticker::new(Duration::ZERO)).unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"non-positive interval for NewTicker"));
    assert!(std::panic::catch_unwind(|| tick(Duration::ZERO)).is_err());
}

#[test]
fn sleeping_program_is_not_a_deadlock() {
    let r = rt(1);
    let v = r
        .run(|| {
            sleep(ms(700));
            after(ms(600)).recv().unwrap();
            7
        })
        .unwrap();
    assert_eq!(v, 7);
}

#[test]
fn timeouts_in_select() {
    goro::run(|| {
        let (_tx, rx) = goro::chan::<u8>(0);
        let t = Instant::now();
        let mut timed_out = false;
        goro::select! {
            recv(rx) -> _ => {},
            default(ms(15)) => timed_out = true,
        }
        assert!(timed_out && t.elapsed() >= ms(15));
        let timer = after(ms(10));
        goro::select! {
            recv(rx) -> _ => panic!(),
            recv(timer) -> v => assert!(v.is_ok()),
        }
    });
}

// ---- Go's timer channels: never closed, kept alive by their receivers.

#[test]
fn after_stays_open_after_its_value() {
    let rx = goro::time::after(ms(5));
    assert!(rx.recv().is_ok());
    // Go: a second receive waits; it never fails.
    assert_eq!(rx.recv_timeout(ms(30)), Err(goro::RecvTimeoutError::Timeout));
    assert!(!rx.is_closed());
}

#[test]
fn after_duration_max_is_never_ready() {
    goro::run(|| {
        let got = goro::select! {
            recv(goro::time::after(Duration::MAX)) -> _ => "max",
            recv(goro::time::after(ms(25))) -> _ => "25ms",
        };
        assert_eq!(got, "25ms");
        let t = Timer::new(Duration::MAX);
        assert!(t.chan().try_recv().is_err());
        assert!(t.stop(), "an armed timer that never fires is stopped by stop()");
    });
}

#[test]
fn dropped_timer_still_delivers_to_a_receiver_clone() {
    goro::run(|| {
        let t = Timer::new(ms(20));
        let rx = t.chan().clone();
        drop(t);
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok(), "the channel keeps its timer (Go 1.23)");
        let tk = Ticker::new(ms(5));
        let rx = tk.chan().clone();
        drop(tk);
        for _ in 0..3 {
            assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok());
        }
    });
}

#[test]
fn an_abandoned_after_does_not_hold_off_a_deadlock_verdict() {
    let rt = goro::Runtime::builder().build().unwrap();
    let t = Instant::now();
    let r = rt.run(|| {
        let (_tx, rx) = goro::chan::<i32>(0);
        let rx2 = rx.clone();
        drop(_tx);
        let (tx3, rx3) = goro::chan::<i32>(0);
        let _keep = tx3.clone();
        // A select that gave up on a 5 s timer...
        goro::select! {
            recv(rx2) -> _ => {},
            recv(goro::time::after(Duration::from_secs(5))) -> _ => {},
        }
        // ...then a wait nothing can end.
        let _ = rx3.recv();
        drop(rx);
    });
    assert!(matches!(r, Err(goro::RunError::Deadlock(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(4), "the verdict waited for the abandoned timer: {:?}", t.elapsed());
}

#[test]
fn after_func_runs_in_a_coroutine_and_stop_prevents_it() {
    goro::run(|| {
        let (tx, rx) = goro::chan(1);
        let t = goro::time::after_func(ms(10), move || {
            assert!(goro::coroutines().iter().any(|c| c.state != goro::CoroutineState::Done));
            tx.send(goro::num_coroutines()).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap() >= 2, "f runs in its own coroutine");
        assert!(t.chan().try_recv().is_err(), "chan() of an after_func timer is never ready");
        assert!(!t.stop(), "already fired");

        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let t = goro::time::after_func(ms(20), move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        assert!(t.stop());
        // Dropping the handle of a running timer does not stop it.
        let h = hits.clone();
        drop(goro::time::after_func(ms(5), move || {
            h.fetch_add(10, Ordering::SeqCst);
        }));
        goro::time::sleep(ms(60));
        assert_eq!(hits.load(Ordering::SeqCst), 10);
    });
}

#[test]
fn sender_never_is_never_ready() {
    let s = goro::Sender::<i32>::never();
    assert_eq!(s.send_timeout(1, ms(10)), Err(goro::SendTimeoutError::Timeout(1)));
    let got = goro::select! {
        send(s, 2) -> _ => "sent",
        default(ms(10)) => "timeout",
    };
    assert_eq!(got, "timeout");
}

#[test]
fn first_sleep_of_a_fresh_runtime_is_on_time() {
    // Reported once as 11–15 ms late on a loaded box (main parked in a
    // channel recv). The best of three fresh runtimes must be within 8 ms:
    // loose enough for a shared box, tight enough to catch that.
    let best = (0..3)
        .map(|_| {
            let rt = rt(1);
            rt.run(|| {
                let (tx, rx) = goro::chan::<Duration>(0);
                goro::go(move || {
                    let t = Instant::now();
                    sleep(ms(50));
                    tx.send(t.elapsed()).unwrap();
                });
                rx.recv().unwrap()
            })
            .unwrap()
        })
        .min()
        .unwrap();
    assert!(best >= ms(50) && best < ms(58), "first sleep(50ms) took {best:?}");
}

#[test]
fn timers_due_together_wake_their_coroutines_in_deadline_order() {
    // One worker, held by main until all three deadlines have passed: the
    // worker then fires them in one pass, and the coroutines must run in
    // deadline order (each fired wake used to take the "run next" place,
    // pushing the one before back: the last deadline ran first).
    let order = Arc::new(Mutex::new(Vec::new()));
    let o2 = order.clone();
    rt(1)
        .run(move || {
            let t0 = Instant::now();
            let hs: Vec<_> = [10u64, 20, 30]
                .into_iter()
                .map(|d| {
                    let o = o2.clone();
                    goro::go(move || {
                        sleep(ms(d).saturating_sub(t0.elapsed()));
                        o.lock().unwrap().push(d);
                    })
                })
                .collect();
            goro::yield_now(); // all three start and arm their timers
            while t0.elapsed() < ms(50) {
                std::hint::spin_loop(); // the worker is held: all come due
            }
            for h in hs {
                h.join().unwrap();
            }
        })
        .unwrap();
    assert_eq!(*order.lock().unwrap(), vec![10, 20, 30]);
}
