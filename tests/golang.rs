//! Ports of Go's channel conformance programs to goro, one `mod` per Go file.
//! Sizes are reduced where the Go program loops for long; the checks are the
//! same.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use goro::{chan, go, never, select, Receiver, Sender};

mod common;
use common::rt;

// https://github.com/golang/go/blob/master/test/chan/fifo.go
mod fifo {
    use super::*;

    const N: i32 = 10;

    #[test]
    fn asynch_fifo() {
        let (tx, rx) = chan(N as usize);
        for i in 0..N {
            tx.send(i).unwrap();
        }
        for i in 0..N {
            assert_eq!(rx.recv().unwrap(), i, "asynch_fifo: wrong value");
        }
    }

    fn chain(ch: Receiver<i32>, val: i32, inp: Receiver<i32>, out: Sender<i32>) {
        inp.recv().unwrap();
        assert_eq!(ch.recv().unwrap(), val, "chain: wrong value");
        out.send(1).unwrap();
    }

    #[test]
    fn synch_fifo() {
        goro::run(|| {
            let (tx, rx) = chan(0);
            let (start_tx, mut inp) = chan(0);
            for i in 0..N {
                let (otx, orx) = chan(0);
                let (rx, inp2) = (rx.clone(), inp);
                go(move || chain(rx, i, inp2, otx));
                inp = orx;
            }
            start_tx.send(0).unwrap();
            for i in 0..N {
                tx.send(i).unwrap();
            }
            inp.recv().unwrap();
        });
    }
}

// https://github.com/golang/go/blob/master/test/chan/nonblock.go
mod nonblock {
    use super::*;

    #[test]
    fn nonblocking_ops() {
        goro::run(|| {
            for buffer in [0usize, 1, 10] {
                let (tx, rx) = chan::<i32>(buffer);
                assert!(rx.try_recv().is_err(), "recv on empty channel succeeded");
                if buffer == 0 {
                    assert!(tx.try_send(1).is_err(), "unbuffered send with no receiver succeeded");
                }
                // A blocked receiver makes a non-blocking send succeed.
                let (rx2, done_tx) = (rx.clone(), chan::<i32>(1));
                let (done_tx, done_rx) = done_tx;
                go(move || done_tx.send(rx2.recv().unwrap()).unwrap());
                let mut sent = false;
                for _ in 0..10_000 {
                    if tx.try_send(7).is_ok() {
                        sent = true;
                        break;
                    }
                    goro::yield_now();
                }
                assert!(sent, "send never succeeded (buffer {buffer})");
                assert_eq!(done_rx.recv().unwrap(), 7);
                // A blocked sender makes a non-blocking receive succeed.
                let tx2 = tx.clone();
                go(move || tx2.send(9).unwrap());
                let mut got = None;
                for _ in 0..10_000 {
                    if let Ok(v) = rx.try_recv() {
                        got = Some(v);
                        break;
                    }
                    goro::yield_now();
                }
                assert_eq!(got, Some(9));
            }
        });
    }
}

// https://github.com/golang/go/blob/master/test/chan/select3.go
mod select3 {
    use super::*;

    /// Runs `f` and reports whether it blocked (did not finish in 50 ms).
    fn blocks(f: impl FnOnce() + Send + 'static) -> bool {
        let (tx, rx) = chan::<()>(1);
        go(move || {
            f();
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_millis(50)).is_err()
    }

    #[test]
    fn blocking_rules() {
        goro::run(|| {
            // A never channel blocks on receive, in a select too.
            assert!(blocks(|| {
                let _ = never::<i32>().recv();
            }));
            assert!(blocks(|| {
                let n = never::<i32>();
                select! { recv(n) -> _ => {} }
            }));
            // An empty select {} blocks forever.
            assert!(blocks(|| select! {}));
            // Unbuffered send with no receiver blocks; buffered does not.
            let (tx, _rx) = chan::<i32>(0);
            assert!(blocks(move || {
                let _ = tx.send(1);
            }));
            let (tx, _rx) = chan::<i32>(1);
            assert!(!blocks(move || tx.send(1).unwrap()));
            // A closed channel never blocks a receive.
            let (tx, rx) = chan::<i32>(0);
            tx.close();
            assert!(!blocks(move || assert!(rx.recv().is_err())));
            // Select with a default never blocks.
            let (_tx, rx) = chan::<i32>(0);
            assert!(!blocks(move || select! { recv(rx) -> _ => panic!(), default => {} }));
        });
    }
}

// https://github.com/golang/go/blob/master/test/chan/doubleselect.go
mod doubleselect {
    use super::*;

    const ITERATIONS: i32 = 20_000;

    fn sender(n: i32, c1: Sender<i32>, c2: Sender<i32>, c3: Sender<i32>, c4: Sender<i32>) {
        for i in 0..n {
            select! {
                send(c1, i) -> r => r.unwrap(),
                send(c2, i) -> r => r.unwrap(),
                send(c3, i) -> r => r.unwrap(),
                send(c4, i) -> r => r.unwrap(),
            }
        }
        c1.close();
        c2.close();
        c3.close();
        c4.close();
    }

    fn mux(out: Sender<i32>, inp: Receiver<i32>, done: Sender<bool>) {
        for v in &inp {
            out.send(v).unwrap();
        }
        done.send(true).unwrap();
    }

    fn recver(inp: Receiver<i32>) -> usize {
        let mut seen = std::collections::HashSet::new();
        for v in &inp {
            assert!(seen.insert(v), "got duplicate value: {v}");
        }
        seen.len()
    }

    #[test]
    fn no_value_delivered_twice() {
        let n = goro::run(|| {
            let (c1t, c1r) = chan(0);
            let (c2t, c2r) = chan(0);
            let (c3t, c3r) = chan(0);
            let (c4t, c4r) = chan(0);
            let (dt, dr) = chan(0);
            let (cmt, cmr) = chan(0);
            go(move || sender(ITERATIONS, c1t, c2t, c3t, c4t));
            for r in [c1r, c2r, c3r, c4r] {
                let (cmt, dt) = (cmt.clone(), dt.clone());
                go(move || mux(cmt, r, dt));
            }
            let h = go(move || recver(cmr));
            for _ in 0..4 {
                dr.recv().unwrap();
            }
            drop(cmt);
            h.join().unwrap()
        });
        assert_eq!(n, ITERATIONS as usize);
    }
}

// https://github.com/golang/go/blob/master/test/chan/sieve1.go
mod sieve1 {
    use super::*;

    fn generate(ch: Sender<i32>) {
        let mut i = 2;
        while ch.send(i).is_ok() {
            i += 1;
        }
    }

    fn filter(inp: Receiver<i32>, out: Sender<i32>, prime: i32) {
        for i in &inp {
            if i % prime != 0 && out.send(i).is_err() {
                return;
            }
        }
    }

    #[test]
    fn first_primes() {
        let primes = goro::run(|| {
            let (tx, mut rx) = chan(0);
            go(move || generate(tx));
            let mut out = Vec::new();
            for _ in 0..25 {
                let prime = rx.recv().unwrap();
                out.push(prime);
                let (tx1, rx1) = chan(0);
                go(move || filter(rx, tx1, prime));
                rx = rx1;
            }
            out
        });
        assert_eq!(
            primes,
            vec![2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97]
        );
    }
}

// https://github.com/golang/go/blob/master/test/chan/zerosize.go
mod zerosize {
    use super::*;

    #[test]
    fn zero_sized_values() {
        goro::run(|| {
            let (tx, rx) = chan::<()>(0);
            let (tx2, rx2) = chan::<[u8; 0]>(3);
            go(move || tx.send(()).unwrap());
            assert_eq!(rx.recv(), Ok(()));
            for _ in 0..3 {
                tx2.send([]).unwrap();
            }
            assert_eq!(rx2.len(), 3);
            assert_eq!(rx2.try_iter().count(), 3);
        });
    }
}

// https://github.com/golang/go/blob/master/test/chan/goroutines.go
mod goroutines {
    use super::*;

    fn f(left: Receiver<i32>, right: Sender<i32>) {
        right.send(left.recv().unwrap()).unwrap();
    }

    #[test]
    fn chain_of_coroutines() {
        let n = 10_000;
        let v = goro::run(move || {
            let (leftmost_tx, leftmost_rx) = chan(0);
            let mut right = leftmost_rx;
            for _ in 0..n {
                let (tx, left) = chan(0);
                let r = right;
                go(move || f(r, tx));
                right = left;
            }
            go(move || leftmost_tx.send(1).unwrap());
            right.recv().unwrap()
        });
        assert_eq!(v, 1);
    }
}

// https://github.com/golang/go/blob/master/src/runtime/chan_test.go
mod chan_test {
    use super::*;

    /// TestChan: for each capacity, the basic guarantees.
    #[test]
    fn test_chan() {
        goro::run(|| {
            for cap in 0..8usize {
                let (tx, rx) = chan::<i32>(cap);
                // Non-blocking receive from an empty channel.
                assert!(rx.try_recv().is_err());
                // A send to a full channel blocks, then completes when read.
                let (tx2, done) = (tx.clone(), Arc::new(AtomicUsize::new(0)));
                let d2 = done.clone();
                for i in 0..cap as i32 {
                    tx.send(i).unwrap();
                }
                let h = go(move || {
                    tx2.send(100).unwrap();
                    d2.store(1, Ordering::SeqCst);
                });
                goro::time::sleep(Duration::from_millis(2));
                assert_eq!(done.load(Ordering::SeqCst), 0, "send to full chan did not block (cap {cap})");
                for i in 0..cap as i32 {
                    assert_eq!(rx.recv().unwrap(), i);
                }
                assert_eq!(rx.recv().unwrap(), 100);
                h.join().unwrap();
                // Closed: buffered values first, then Err.
                for i in 0..cap as i32 {
                    tx.send(i).unwrap();
                }
                tx.close();
                for i in 0..cap as i32 {
                    assert_eq!(rx.recv().unwrap(), i);
                }
                assert!(rx.recv().is_err());
                assert!(tx.send(1).is_err());
                // FIFO with one producer and one consumer.
                let (tx, rx) = chan::<i32>(cap);
                let p = go(move || (0..1000).for_each(|i| tx.send(i).unwrap()));
                for i in 0..1000 {
                    assert_eq!(rx.recv().unwrap(), i);
                }
                p.join().unwrap();
            }
        });
    }

    /// TestMultiConsumer: many consumers, nothing lost or duplicated.
    #[test]
    fn multi_consumer() {
        const NWORK: usize = 23;
        const NITER: usize = 27_183;
        let (sum, count) = goro::run(|| {
            let (q_tx, q_rx) = chan::<usize>(NWORK * 3);
            let (r_tx, r_rx) = chan::<usize>(NWORK * 3);
            for _ in 0..NWORK {
                let (q_rx, r_tx) = (q_rx.clone(), r_tx.clone());
                go(move || {
                    for v in &q_rx {
                        r_tx.send(v).unwrap();
                    }
                });
            }
            drop(r_tx);
            drop(q_rx);
            let p = go(move || {
                for i in 0..NITER {
                    q_tx.send(i).unwrap();
                }
            });
            let (mut sum, mut n) = (0, 0);
            for v in &r_rx {
                n += 1;
                sum += v;
            }
            p.join().unwrap();
            (sum, n)
        });
        assert_eq!(count, NITER);
        assert_eq!(sum, (NITER - 1) * NITER / 2);
    }

    /// TestSelectFairness: two always-ready channels, 10 000 selects.
    #[test]
    fn select_fairness() {
        const TRIALS: usize = 10_000;
        let (c1t, c1r) = chan::<u8>(TRIALS + 1);
        let (c2t, c2r) = chan::<u8>(TRIALS + 1);
        for _ in 0..=TRIALS {
            c1t.send(1).unwrap();
            c2t.send(2).unwrap();
        }
        let (_c3t, c3r) = chan::<u8>(0);
        let (_c4t, c4r) = chan::<u8>(0);
        let (mut cnt1, mut cnt2) = (0usize, 0usize);
        for _ in 0..TRIALS {
            let b = select! {
                recv(c3r) -> b => b.unwrap(),
                recv(c4r) -> b => b.unwrap(),
                recv(c1r) -> b => b.unwrap(),
                recv(c2r) -> b => b.unwrap(),
            };
            if b == 1 {
                cnt1 += 1;
            } else {
                cnt2 += 1;
            }
        }
        // Go's bound: the probability of a result outside it is ~1e-10.
        let r = cnt1 as f64 / TRIALS as f64;
        let e = (r - 0.5).abs();
        assert!(e <= 4.5 / (TRIALS as f64).sqrt(), "unfair select: in {TRIALS} trials, results were {cnt1}, {cnt2}");
    }
}

// https://github.com/golang/go/blob/master/src/runtime/chan_test.go
// (TestPseudoRandomSend: the receiver arrives after the select parked).
mod pseudo_random_send {
    use super::*;

    #[test]
    fn pseudo_random_send() {
        let rt = rt(1);
        rt.run(|| {
            let n = 100;
            let (tx, rx) = chan::<i32>(0);
            let (done_tx, done_rx) = chan::<[i32; 2]>(0);
            go(move || {
                let mut l = [0; 2];
                for _ in 0..n {
                    for _ in 0..3 {
                        goro::yield_now();
                    }
                    l[rx.recv().unwrap() as usize] += 1;
                }
                done_tx.send(l).unwrap();
            });
            for _ in 0..n {
                select! {
                    send(tx, 1) -> r => r.unwrap(),
                    send(tx, 0) -> r => r.unwrap(),
                }
            }
            let l = done_rx.recv().unwrap();
            assert!(l[0] >= n / 10 && l[1] >= n / 10, "Want pseudorandom, got {} zeros and {} ones", l[0], l[1]);
        })
        .unwrap();
    }
}

// Go by Example: "Timeouts", "Timers", "Tickers"; and Go's time/sleep_test.go
// (TestAfterStress, TestAfterFunc, the Go 1.23 Stop/Reset rules).
mod timers {
    use super::*;
    use crate::common::ms;
    use goro::time::{after, after_func, Ticker, Timer};

    #[test]
    fn gobyexample_timeouts() {
        goro::run(|| {
            let (tx1, c1) = chan::<&str>(1);
            go(move || {
                goro::time::sleep(ms(60));
                tx1.send("result 1").unwrap();
            });
            let first = select! {
                recv(c1) -> res => res.unwrap(),
                recv(after(ms(20))) -> _ => "timeout 1",
            };
            assert_eq!(first, "timeout 1");
            let (tx2, c2) = chan::<&str>(1);
            go(move || {
                goro::time::sleep(ms(10));
                tx2.send("result 2").unwrap();
            });
            let second = select! {
                recv(c2) -> res => res.unwrap(),
                recv(after(ms(500))) -> _ => "timeout 2",
            };
            assert_eq!(second, "result 2");
        });
    }

    #[test]
    fn gobyexample_timers() {
        goro::run(|| {
            let timer1 = Timer::new(ms(10));
            timer1.chan().recv().unwrap();
            let timer2 = Timer::new(ms(200));
            let c = timer2.chan().clone();
            let fired = go(move || c.recv_timeout(ms(400)).is_ok());
            assert!(timer2.stop(), "Timer 2 stopped");
            assert!(!fired.join().unwrap(), "a stopped timer never fires");
        });
    }

    #[test]
    fn gobyexample_tickers() {
        goro::run(|| {
            let ticker = Ticker::new(ms(5));
            let (done_tx, done) = chan::<bool>(0);
            let c = ticker.chan().clone();
            let h = go(move || {
                let mut ticks = 0;
                loop {
                    select! {
                        recv(done) -> _ => return ticks,
                        recv(c) -> t => { t.unwrap(); ticks += 1; },
                    }
                }
            });
            goro::time::sleep(ms(60));
            ticker.stop();
            done_tx.send(true).unwrap();
            let ticks = h.join().unwrap();
            assert!(ticks >= 3, "{ticks} ticks");
        });
    }

    #[test]
    fn after_stress_many_selects_with_after() {
        // A for-select loop creating an `after` per pass: each abandoned one
        // is disarmed when the select drops it.
        goro::run(|| {
            let (tx, rx) = chan::<i32>(0);
            go(move || {
                for i in 0..2000 {
                    tx.send(i).unwrap();
                }
            });
            let mut n = 0;
            loop {
                select! {
                    recv(rx) -> v => match v { Ok(_) => n += 1, Err(_) => break },
                    recv(after(Duration::from_secs(3600))) -> _ => unreachable!(),
                }
            }
            assert_eq!(n, 2000);
            // (That they are disarmed at once is tests/timer_abandon.rs: the
            // armed count is process-wide, and this binary runs in parallel.)
        });
    }

    #[test]
    fn after_func_and_go123_stop_reset() {
        goro::run(|| {
            let (tx, rx) = chan::<i32>(1);
            let t = after_func(ms(5), move || tx.send(1).unwrap());
            assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(1));
            assert!(!t.stop());
            // Go 1.23: after Reset returns, no stale value is received.
            let t = Timer::new(ms(1));
            goro::time::sleep(ms(10)); // fired, value buffered
            assert!(t.reset(Duration::from_secs(3600)));
            assert!(t.chan().try_recv().is_err(), "a stale value after Reset");
            // A fired, received timer's channel stays open and empty.
            let c = after(ms(1));
            c.recv().unwrap();
            assert!(c.recv_timeout(ms(20)).is_err());
            assert!(!c.is_closed());
        });
    }
}
