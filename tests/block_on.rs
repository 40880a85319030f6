//! `goro::block_on`: futures from executor-agnostic crates on coroutines
//! and plain threads, thousands of coroutines pending at once, wakes from a
//! plain thread, streams, cancellation and deadlock verdicts.
//!
//! Every test runs under a watchdog that aborts the process on a hang.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::{SinkExt, StreamExt};
use goro::RunError;

mod common;
use common::{rt, watchdog};

#[test]
fn oneshot_and_mpsc_across_coroutines() {
    let _w = watchdog(30, "oneshot_and_mpsc_across_coroutines");
    let (a, b) = rt(2)
        .run(|| {
            let (tx, rx) = oneshot::channel::<u32>();
            let h = goro::go(move || goro::block_on(rx).unwrap() * 2);
            goro::time::sleep(Duration::from_millis(10)); // it is parked in block_on by now
            tx.send(21).unwrap();
            let a = h.join().unwrap();

            let (mut tx, mut rx) = mpsc::channel::<u64>(4);
            let producer = goro::go(move || {
                for i in 0..1000 {
                    goro::block_on(tx.send(i)).unwrap();
                }
            });
            let mut sum = 0;
            while let Some(v) = goro::block_on(rx.next()) {
                sum += v;
            }
            producer.join().unwrap();
            (a, sum)
        })
        .unwrap();
    assert_eq!(a, 42);
    assert_eq!(b, 499_500);
}

#[test]
fn async_channel_bounded_between_coroutines() {
    let _w = watchdog(30, "async_channel_bounded_between_coroutines");
    let got = rt(2)
        .run(|| {
            let (tx, rx) = async_channel::bounded::<u32>(2);
            let producer = goro::go(move || {
                for i in 0..500 {
                    goro::block_on(tx.send(i)).unwrap();
                }
            });
            let consumer = goro::go(move || {
                let mut v = Vec::new();
                while let Ok(x) = goro::block_on(rx.recv()) {
                    v.push(x);
                }
                v
            });
            producer.join().unwrap();
            consumer.join().unwrap()
        })
        .unwrap();
    assert_eq!(got, (0..500).collect::<Vec<_>>());
}

#[test]
fn five_thousand_coroutines_pending_at_once() {
    const N: usize = 5000;
    let _w = watchdog(30, "five_thousand_coroutines_pending_at_once");
    let sum = rt(2)
        .run(|| {
            let parked = Arc::new(AtomicUsize::new(0));
            let mut senders = Vec::with_capacity(N);
            let mut handles = Vec::with_capacity(N);
            for i in 0..N {
                let (tx, rx) = oneshot::channel::<usize>();
                senders.push(tx);
                let parked = parked.clone();
                handles.push(goro::go(move || {
                    parked.fetch_add(1, Ordering::SeqCst);
                    goro::block_on(rx).unwrap() + i
                }));
            }
            // Wait until every one has entered block_on and parked.
            while parked.load(Ordering::SeqCst) < N || goro::stats().parked < N as u64 {
                goro::time::sleep(Duration::from_millis(5));
            }
            let blocked = goro::coroutines().iter().filter(|c| c.wait == goro::WaitReason::Future).count();
            assert!(blocked >= N, "{blocked} coroutines shown in block_on");
            for tx in senders {
                tx.send(1).unwrap();
            }
            handles.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
        })
        .unwrap();
    assert_eq!(sum, N + N * (N - 1) / 2);
}

#[test]
fn woken_from_a_plain_thread() {
    let _w = watchdog(30, "woken_from_a_plain_thread");
    // Longer than the deadlock grace period: the waker is held by a thread
    // goro cannot see, which must not be reported as a deadlock.
    let v = rt(2)
        .run(|| {
            let (tx, rx) = oneshot::channel::<&'static str>();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(800));
                tx.send("from a thread").unwrap();
            });
            let v = goro::block_on(rx).unwrap();
            t.join().unwrap();
            v
        })
        .unwrap();
    assert_eq!(v, "from a thread");
}

#[test]
fn block_on_on_a_plain_thread() {
    let _w = watchdog(30, "block_on_on_a_plain_thread");
    let (tx, rx) = oneshot::channel::<u8>();
    let h = goro::go(move || {
        goro::time::sleep(Duration::from_millis(20));
        tx.send(9).unwrap();
    });
    assert_eq!(goro::block_on(rx), Ok(9));
    h.join().unwrap();
    assert_eq!(goro::block_on(async { 5 }), 5);
}

#[test]
fn stream_driven_by_block_on() {
    let _w = watchdog(30, "stream_driven_by_block_on");
    let out = rt(2)
        .run(|| {
            let (mut tx, rx) = mpsc::channel::<u32>(0);
            goro::go(move || {
                for i in 1..=10 {
                    goro::block_on(tx.send(i)).unwrap();
                }
            });
            let mut evens = rx.filter(|x| futures::future::ready(x % 2 == 0)).map(|x| x * 10);
            let mut out = Vec::new();
            while let Some(v) = goro::block_on(evens.next()) {
                out.push(v);
            }
            out
        })
        .unwrap();
    assert_eq!(out, vec![20, 40, 60, 80, 100]);
}

/// Counts its polls; ready once woken `wakes` times by itself.
struct SelfWaking {
    polls: usize,
    wakes: usize,
}

impl Future for SelfWaking {
    type Output = usize;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.polls += 1;
        if self.polls > self.wakes {
            return Poll::Ready(self.polls);
        }
        // Many wakes for one pending poll: one re-poll follows.
        for _ in 0..3 {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

#[test]
fn redundant_wakes_cause_one_poll() {
    let _w = watchdog(30, "redundant_wakes_cause_one_poll");
    assert_eq!(goro::block_on(SelfWaking { polls: 0, wakes: 5 }), 6);
    let polls = rt(1).run(|| goro::block_on(SelfWaking { polls: 0, wakes: 5 })).unwrap();
    assert_eq!(polls, 6);
}

#[test]
fn cancelled_while_pending_drops_the_future() {
    let _w = watchdog(30, "cancelled_while_pending_drops_the_future");
    rt(2)
        .run(|| {
            let (tx, rx) = oneshot::channel::<()>();
            let h = goro::go(move || goro::block_on(rx));
            goro::time::sleep(Duration::from_millis(10));
            assert!(!tx.is_canceled());
            h.cancel();
            assert!(h.join().unwrap_err().is::<goro::Cancelled>());
            // The receiver (inside the future) was dropped by the unwind.
            assert!(tx.is_canceled());
        })
        .unwrap();
}

#[test]
fn a_future_nobody_can_wake_is_a_deadlock() {
    let _w = watchdog(30, "a_future_nobody_can_wake_is_a_deadlock");
    match rt(1).run(|| goro::block_on(futures::future::pending::<()>())) {
        Err(RunError::Deadlock(report)) => {
            assert!(report.to_string().contains("block_on of a future"), "{report}");
        }
        other => panic!("expected a deadlock, got {:?}", other.map(|_| ())),
    }
}
