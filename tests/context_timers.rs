//! goro::context frees its deadline timers: `stats().chan_timers` (armed
//! channel timers, process-wide) goes back to its baseline. Alone in this
//! file, and serialized by a lock, because the counter is process-wide.

use std::sync::Mutex;
use std::time::Duration;

use goro::context::{self, ContextError};

static SERIAL: Mutex<()> = Mutex::new(());

mod common;
use common::{armed, watchdog};

#[test]
fn cancelled_subtree_frees_its_timers() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _w = watchdog(30, "subtree timers");
    let base = armed();
    let (root, cancel) = context::background().with_cancel();
    assert_eq!(armed(), base, "with_cancel arms no timer");
    let mut keep = Vec::new();
    for i in 0..1_000u64 {
        let (c, cf) = root.with_timeout(Duration::from_secs(3600 + i));
        // A grandchild with an earlier deadline arms its own timer...
        let (g, gf) = c.with_timeout(Duration::from_secs(1800));
        // ...one with a later deadline does not (the parent's cancels it).
        let (l, lf) = c.with_timeout(Duration::from_secs(7200 + i));
        assert_eq!(l.deadline(), c.deadline());
        keep.push((c, cf, g, gf, l, lf));
    }
    assert_eq!(armed(), base + 2_000);
    cancel.cancel();
    assert_eq!(armed(), base, "cancelling the root stops every timer below it");
    for (c, _, g, _, l, _) in &keep {
        assert_eq!(c.err(), Some(ContextError::Canceled));
        assert_eq!(g.err(), Some(ContextError::Canceled));
        assert_eq!(l.err(), Some(ContextError::Canceled));
    }
    drop(keep);
    assert_eq!(armed(), base);
}

#[test]
fn dropping_cancel_fn_or_firing_frees_the_timer() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _w = watchdog(30, "drop timers");
    let base = armed();
    let (ctx, cf) = context::background().with_timeout(Duration::from_secs(3600));
    assert_eq!(armed(), base + 1);
    drop(cf);
    assert_eq!(armed(), base);
    assert_eq!(ctx.err(), Some(ContextError::Canceled));

    // A deadline that fires: its timer is spent, nothing stays armed.
    let (ctx, _cf) = context::background().with_timeout(Duration::from_millis(5));
    assert!(ctx.done().recv().is_err());
    assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    assert_eq!(armed(), base);

    // A child of a done context arms nothing.
    let (child, _cc) = ctx.with_timeout(Duration::from_secs(3600));
    assert_eq!(child.err(), Some(ContextError::DeadlineExceeded));
    assert_eq!(armed(), base);

    // Inside a coroutine too.
    goro::run(move || {
        let (p, pf) = context::background().with_cancel();
        let hs: Vec<_> = (0..100)
            .map(|_| {
                let (c, cf) = p.with_timeout(Duration::from_secs(3600));
                goro::go(move || {
                    let _cf = cf;
                    c.done().recv().is_err()
                })
            })
            .collect();
        goro::time::sleep(Duration::from_millis(5));
        assert_eq!(armed(), base + 100);
        drop(pf);
        assert!(hs.into_iter().all(|h| h.join().unwrap()));
        assert_eq!(armed(), base);
    });
}
