//! goro::time: ordering, lower bounds, Go 1.23 stop/reset, tick dropping,
//! plain threads, many sleepers. No upper-bound timing asserts except with
//! generous slack.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use goro::time::{after, sleep, tick, Ticker, Timer};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn shorter_sleeps_wake_first() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let o2 = order.clone();
    goro::Runtime::builder()
        .workers(2)
        .build()
        .unwrap()
        .run(move || {
            let hs: Vec<_> = [50u64, 10, 30, 20, 40]
                .into_iter()
                .map(|d| {
                    let o = o2.clone();
                    goro::go(move || {
                        let t = Instant::now();
                        sleep(ms(d));
                        assert!(t.elapsed() >= ms(d));
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

#[test]
fn slow_ticker_readers_drop_ticks() {
    let rx = tick(ms(5));
    std::thread::sleep(ms(60));
    // One buffered tick, not a backlog of ~12.
    let mut n = 0;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, 1);
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
    let r = goro::Runtime::builder().workers(1).build().unwrap();
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
