//! `JoinHandle::cancel` and `goro::is_cancelled`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{rt, DropCount};

#[test]
fn cancel_parked_running_and_unstarted() {
    goro::run(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        // Parked.
        let d = DropCount(drops.clone());
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
    let rt = rt(2);
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

/// 100 000 coroutines parked in every kind of wait (channel recv and send,
/// select, sleep, lock, join, WaitGroup, net accept and read), each holding
/// a value whose destructor counts; cancel them all and count.
#[test]
fn cancel_a_hundred_thousand_parked_of_every_wait_kind() {
    let rt = rt(2);
    rt.run(|| {
        const N: usize = 100_000;
        let drops = Arc::new(AtomicUsize::new(0));
        let (_keep_tx, rx) = goro::chan::<u8>(0);
        let (tx_full, _keep_rx) = goro::chan::<u8>(0);
        let lock = Arc::new(goro::sync::Mutex::new(()));
        let held = lock.lock();
        let wg = goro::sync::WaitGroup::new();
        wg.add(1);
        let listener = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = Arc::new(listener);
        let mut streams = Vec::new();
        let mut handles = Vec::with_capacity(N);
        for i in 0..N {
            let d = DropCount(drops.clone());
            let kind = i % 8;
            let h = match kind {
                0 => {
                    let rx = rx.clone();
                    goro::go(move || {
                        let _d = d;
                        let _ = rx.recv();
                    })
                }
                1 => {
                    let tx = tx_full.clone();
                    goro::go(move || {
                        let _d = d;
                        let _ = tx.send(1);
                    })
                }
                2 => {
                    let rx = rx.clone();
                    goro::go(move || {
                        let _d = d;
                        goro::select! {
                            recv(rx) -> _ => {},
                            recv(goro::time::after(Duration::from_secs(3600))) -> _ => {},
                        }
                    })
                }
                3 => goro::go(move || {
                    let _d = d;
                    goro::time::sleep(Duration::from_secs(3600));
                }),
                4 => {
                    let lock = lock.clone();
                    goro::go(move || {
                        let _d = d;
                        let _g = lock.lock();
                    })
                }
                5 => {
                    let wg = wg.clone();
                    goro::go(move || {
                        let _d = d;
                        wg.wait();
                    })
                }
                6 if i % 400 == 6 => {
                    // net: one accept and one read per 400 (file descriptors)
                    let l = listener.clone();
                    let s = std::net::TcpStream::connect(addr).unwrap();
                    streams.push(s);
                    goro::go(move || {
                        let _d = d;
                        let (mut conn, _) = l.accept().unwrap();
                        let mut b = [0u8; 1];
                        let _ = std::io::Read::read(&mut conn, &mut b);
                    })
                }
                _ => goro::go(move || {
                    let _d = d;
                    // join of a coroutine that never ends
                    let _ = goro::go(|| goro::time::sleep(Duration::MAX)).join();
                }),
            };
            handles.push(h);
        }
        // Let them all park.
        while goro::stats().parked < (N as u64) * 9 / 10 {
            goro::time::sleep(Duration::from_millis(5));
        }
        for h in &handles {
            h.cancel();
        }
        let mut cancelled = 0;
        for h in handles {
            if let Err(e) = h.join() {
                assert!(e.is::<goro::Cancelled>());
                cancelled += 1;
            }
        }
        assert_eq!(cancelled, N, "every coroutine ended by cancellation");
        assert_eq!(drops.load(Ordering::SeqCst), N, "every destructor ran");
        drop(held);
        drop(streams);
    })
    .unwrap();
}
