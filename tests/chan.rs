//! Channel semantics, each body in three worlds (1 worker, 4 workers, plain
//! threads), plus a stress test that counts every value's receipts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use goro::{chan, RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError};

mod common;
use common::{rt, within};

/// Runs `f` as main of a 1-worker and a 4-worker runtime, and on a plain thread.
fn worlds(f: impl Fn() + Send + Sync + Clone + 'static) {
    for w in [1, 4] {
        let f = f.clone();
        rt(w).run(f).unwrap();
    }
    std::thread::spawn(f).join().unwrap();
}

/// Spawns a party: a coroutine when inside a runtime, else a thread.
fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Box<dyn FnOnce() -> T + Send> {
    if goro::coroutines().is_empty() && std::thread::current().name().is_none_or(|n| !n.contains("worker")) {
        let h = std::thread::spawn(f);
        Box::new(move || h.join().unwrap())
    } else {
        let h = goro::go(f);
        Box::new(move || h.join().unwrap())
    }
}

#[test]
fn unbuffered_is_a_rendezvous() {
    worlds(|| {
        let (tx, rx) = chan::<u32>(0);
        let receiving = Arc::new(AtomicUsize::new(0));
        let r2 = receiving.clone();
        let h = spawn(move || {
            tx.send(1).unwrap();
            // send returned: a receiver must have arrived to take it.
            assert_eq!(r2.load(Ordering::SeqCst), 1, "send completed before any receiver came");
        });
        std::thread::sleep(Duration::from_millis(20));
        goro::yield_now();
        receiving.store(1, Ordering::SeqCst);
        let v = rx.recv().unwrap();
        assert_eq!(v, 1);
        h();
    });
}

#[test]
fn buffered_fifo_and_close_drains() {
    worlds(|| {
        let (tx, rx) = chan(3);
        for i in 0..3 {
            tx.send(i).unwrap();
        }
        assert_eq!(tx.try_send(9), Err(TrySendError::Full(9)));
        assert_eq!(tx.len(), 3);
        assert_eq!(rx.capacity(), 3);
        assert!(tx.close());
        assert!(!tx.close());
        assert!(rx.is_closed());
        assert_eq!(tx.send(5), Err(SendError(5)));
        let got: Vec<i32> = rx.iter().collect();
        assert_eq!(got, vec![0, 1, 2]);
        assert_eq!(rx.recv(), Err(RecvError));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    });
}

#[test]
fn dropping_last_sender_closes_and_last_receiver_fails_sends() {
    worlds(|| {
        let (tx, rx) = chan::<u8>(0);
        let tx2 = tx.clone();
        drop(tx);
        assert!(!rx.is_closed());
        drop(tx2);
        assert_eq!(rx.recv(), Err(RecvError));

        let (tx, rx) = chan::<String>(0);
        let h = spawn(move || tx.send("back".to_string()));
        std::thread::sleep(Duration::from_millis(20));
        goro::yield_now();
        drop(rx); // wakes the blocked sender with its value
        assert_eq!(h().unwrap_err().into_inner(), "back");
    });
}

#[test]
fn timeouts() {
    worlds(|| {
        let (tx, rx) = chan::<u8>(0);
        assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Err(RecvTimeoutError::Timeout));
        assert_eq!(tx.send_timeout(3, Duration::from_millis(10)), Err(SendTimeoutError::Timeout(3)));
        tx.close();
        assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Err(RecvTimeoutError::Closed));
        let never = goro::never::<u8>();
        assert_eq!(never.recv_timeout(Duration::from_millis(5)), Err(RecvTimeoutError::Timeout));
        assert_eq!(never.try_recv(), Err(TryRecvError::Empty));
        assert!(!never.is_closed());
    });
}

#[test]
fn dropping_and_sliding() {
    let (tx, rx) = goro::dropping(2);
    for i in 0..5 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![0, 1]);
    let (tx, rx) = goro::sliding(2);
    for i in 0..5 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![3, 4]);
}

#[test]
fn huge_capacity_panics_with_the_capacity() {
    let p = std::panic::catch_unwind(|| chan::<u64>(usize::MAX / 2)).unwrap_err();
    let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains(&format!("{}", usize::MAX / 2)), "{msg}");
}

#[test]
fn error_values_and_traits() {
    let e: Box<dyn std::error::Error> = Box::new(SendError(1));
    assert_eq!(e.to_string(), "sending on a closed channel");
    struct NoDebug;
    let _ = format!("{:?}", SendError(NoDebug));
    assert_eq!(TrySendError::Full(4).into_inner(), 4);
    assert_eq!(SendTimeoutError::Closed(5).into_inner(), 5);
    assert_eq!(RecvError.to_string(), "receiving on a closed channel");
}

#[test]
fn range_over_receiver() {
    worlds(|| {
        let (tx, rx) = chan(0);
        let h = spawn(move || {
            for i in 0..100 {
                tx.send(i).unwrap();
            }
        });
        let mut sum = 0;
        for v in &rx {
            sum += v;
        }
        h();
        assert_eq!(sum, 4950);
    });
}

#[test]
fn stress_nothing_lost_or_duplicated() {
    // Producers and consumers mixed: coroutines and OS threads, buffered and
    // unbuffered, plus selecting consumers.
    const P: usize = 6;
    const PER: usize = 3000;
    for cap in [0, 7] {
        let counts: Arc<Vec<AtomicUsize>> = Arc::new((0..P * PER).map(|_| AtomicUsize::new(0)).collect());
        let c2 = counts.clone();
        rt(3)
            .run(move || {
                let (tx, rx) = chan::<usize>(cap);
                let (tx2, rx2) = chan::<usize>(cap);
                let mut hs: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
                for p in 0..P {
                    let tx = if p % 2 == 0 { tx.clone() } else { tx2.clone() };
                    if p % 3 == 0 {
                        let h = std::thread::spawn(move || (p * PER..(p + 1) * PER).for_each(|v| tx.send(v).unwrap()));
                        hs.push(Box::new(move || h.join().unwrap()));
                    } else {
                        let h = goro::go(move || (p * PER..(p + 1) * PER).for_each(|v| tx.send(v).unwrap()));
                        hs.push(Box::new(move || h.join().unwrap()));
                    }
                }
                drop((tx, tx2));
                let mut cs: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
                for c in 0..4 {
                    let (rx, rx2, counts) = (rx.clone(), rx2.clone(), c2.clone());
                    let body = move || {
                        let (mut a, mut b) = (rx, rx2);
                        let (mut a_open, mut b_open) = (true, true);
                        while a_open || b_open {
                            goro::select! {
                                recv(a) -> v => match v {
                                    Ok(v) => { counts[v].fetch_add(1, Ordering::SeqCst); }
                                    Err(_) => { a_open = false; a = goro::never(); }
                                },
                                recv(b) -> v => match v {
                                    Ok(v) => { counts[v].fetch_add(1, Ordering::SeqCst); }
                                    Err(_) => { b_open = false; b = goro::never(); }
                                },
                            }
                        }
                    };
                    if c == 0 {
                        let h = std::thread::spawn(body);
                        cs.push(Box::new(move || h.join().unwrap()));
                    } else {
                        let h = goro::go(body);
                        cs.push(Box::new(move || h.join().unwrap()));
                    }
                }
                for h in hs {
                    h();
                }
                for c in cs {
                    c();
                }
            })
            .unwrap();
        for (v, c) in counts.iter().enumerate() {
            assert_eq!(
                c.load(Ordering::SeqCst),
                1,
                "value {v} received {} times (cap {cap})",
                c.load(Ordering::SeqCst)
            );
        }
    }
}

/// A value that a sliding or dropping channel throws away is dropped after
/// the channel's lock is released: its `Drop` (user code) may use that very
/// channel, here with a `try_send`, and a select's send counts too. Under
/// the lock this would deadlock; the watchdog turns that into a failure.
#[test]
fn discarded_values_are_dropped_outside_the_lock() {
    struct Echo(Option<goro::Sender<Echo>>);
    impl Drop for Echo {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.try_send(Echo(None));
            }
        }
    }
    within(30, "a discarded value was dropped under its channel's lock (deadlock)", || {
        worlds(|| {
            // Sliding: the oldest value slides out and its Drop sends.
            let (tx, rx) = goro::sliding::<Echo>(1);
            tx.send(Echo(Some(tx.clone()))).unwrap();
            tx.send(Echo(None)).unwrap();
            assert!(rx.try_recv().unwrap().0.is_none());
            // Dropping: the new value is discarded and its Drop sends.
            let (tx, rx) = goro::dropping::<Echo>(1);
            tx.send(Echo(None)).unwrap();
            tx.send(Echo(Some(tx.clone()))).unwrap();
            assert!(rx.try_recv().unwrap().0.is_none());
            // The same through a select's send case.
            let (tx, rx) = goro::sliding::<Echo>(1);
            tx.send(Echo(Some(tx.clone()))).unwrap();
            goro::select! {
                send(tx, Echo(None)) -> r => r.unwrap(),
            }
            assert_eq!(rx.len(), 1);
        });
    });
}
