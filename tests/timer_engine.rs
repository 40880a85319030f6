//! The channel-timer engine: per-worker heaps, the hand-off of an exiting
//! worker's timers, and the exact count of armed timers. One test binary of
//! its own, with one test, because `Stats::chan_timers` is process-wide.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goro::time::{after, Ticker, Timer};

mod common;
use common::{armed, ms, rt};

#[test]
fn channel_timers_on_worker_heaps() {
    let rt = rt(2);

    // 20 000 coroutines each arm `after` on their own worker's heap, half of
    // them also arm and stop a long Timer; every `after` fires exactly once.
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    rt.run(move || {
        let wg = goro::sync::WaitGroup::new();
        for i in 0..20_000u64 {
            let wg = wg.clone();
            let f = f.clone();
            wg.add(1);
            goro::go(move || {
                let start = Instant::now();
                let rx = after(ms(1 + i % 20));
                if i % 2 == 0 {
                    let t = Timer::new(Duration::from_secs(3600));
                    assert!(t.stop());
                }
                let at = rx.recv().unwrap();
                assert!(at >= start + ms(1 + i % 20));
                assert!(rx.try_recv().is_err());
                f.fetch_add(1, Ordering::Relaxed);
                wg.done();
            });
        }
        wg.wait();
        assert_eq!(goro::stats().chan_timers, 0, "every timer fired or was stopped");
    })
    .unwrap();
    assert_eq!(fired.load(Ordering::Relaxed), 20_000);

    // Dropped, unstopped timers stop counting at once; their stale heap
    // entries are compacted away (the heap stays bounded).
    rt.run(|| {
        for _ in 0..100_000 {
            drop(Timer::new(Duration::from_secs(3600)));
        }
        assert_eq!(goro::stats().chan_timers, 0);
        // A ticker stopped from a plain thread delivers nothing after.
        let t = Arc::new(Ticker::new(ms(2)));
        let t2 = t.clone();
        t.chan().recv().unwrap();
        std::thread::spawn(move || t2.stop()).join().unwrap();
        assert!(t.chan().recv_timeout(ms(30)).is_err(), "a tick after stop");
    })
    .unwrap();

    // A timer armed on a worker of a runtime that is then dropped still
    // fires: the exiting worker hands it to the fallback driver.
    let rx = rt.run(|| after(ms(40))).unwrap();
    let t = Instant::now();
    drop(rt);
    assert_eq!(armed(), 1);
    let at = rx.recv_timeout(Duration::from_secs(5)).expect("the timer was lost with its worker");
    assert!(at + ms(1) >= t, "fired after the hand-off");
    assert_eq!(armed(), 0);
}
