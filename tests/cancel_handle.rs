//! `JoinHandle::cancel` and `goro::is_cancelled`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct Count(Arc<AtomicUsize>);

impl Drop for Count {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn cancel_parked_running_and_unstarted() {
    goro::run(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        // Parked.
        let d = Count(drops.clone());
        let h = goro::go(move || {
            let _d = d;
            goro::time::sleep(Duration::from_secs(3600));
        });
        goro::yield_now();
        h.cancel();
        assert!(h.join().unwrap_err().is::<goro::Cancelled>());
        // Running: it sees the flag, stops at its next park.
        let (tx, rx) = goro::chan::<()>(0);
        let h = goro::go(move || {
            while !goro::is_cancelled() {
                goro::yield_now();
            }
            tx.send(()).unwrap(); // its next park: the unwind starts here
            unreachable!("a cancelled coroutine went past a park");
        });
        goro::yield_now();
        h.cancel();
        assert!(h.join().unwrap_err().is::<goro::Cancelled>());
        drop(rx);
        // Unstarted: the body never runs.
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let h = goro::go(move || r.fetch_add(1, Ordering::SeqCst));
        h.cancel();
        h.cancel(); // twice: nothing more
        assert!(h.join().unwrap_err().is::<goro::Cancelled>());
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        // Finished: nothing.
        let h = goro::go(|| 5);
        while !h.is_finished() {
            goro::yield_now();
        }
        h.cancel();
        assert_eq!(h.join().unwrap(), 5);
    });
}

#[test]
fn cancel_from_a_plain_thread_racing_wakes() {
    let rt = goro::Runtime::builder().workers(2).build().unwrap();
    rt.run(|| {
        for _ in 0..2000 {
            let (tx, rx) = goro::chan::<u32>(0);
            let h = goro::go(move || rx.recv());
            let t = std::thread::spawn(move || {
                let _ = tx.send(1);
            });
            h.cancel();
            match h.join() {
                Ok(v) => assert_eq!(v, Ok(1)),
                Err(e) => assert!(e.is::<goro::Cancelled>()),
            }
            t.join().unwrap();
        }
    })
    .unwrap();
}
