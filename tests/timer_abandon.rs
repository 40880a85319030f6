//! Abandoned timers are disarmed and freed at once (Go 1.23: an
//! unreferenced timer costs nothing). Alone in its binary: the armed count
//! it reads is process-wide.

use std::time::Duration;

use goro::time::Timer;

#[test]
fn abandoned_timers_are_disarmed_at_once() {
    goro::run(|| {
        let base = goro::diag::stats().chan_timers;
        let keep: Vec<_> = (0..1000).map(|_| goro::time::after(Duration::from_secs(3600))).collect();
        assert_eq!(goro::diag::stats().chan_timers, base + 1000);
        drop(keep);
        for _ in 0..20_000 {
            drop(goro::time::after(Duration::from_secs(3600)));
        }
        let t = Timer::new(Duration::from_secs(3600));
        drop(t);
        assert_eq!(goro::diag::stats().chan_timers, base, "abandoned timers still armed");
    });
}
