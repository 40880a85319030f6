//! select! and Select. The macro must expand to safe code.
#![forbid(unsafe_code)]

use std::time::Duration;

use goro::{chan, never, select, RecvError, Select};

mod common;
use common::{rt, within};

#[test]
fn picks_the_ready_case() {
    let (tx1, rx1) = chan::<i32>(1);
    let (_tx2, rx2) = chan::<i32>(1);
    tx1.send(5).unwrap();
    let got = select! {
        recv(rx1) -> v => v.unwrap(),
        recv(rx2) -> _ => -1,
    };
    assert_eq!(got, 5);
}

#[test]
fn default_and_timeout() {
    let (_tx, rx) = chan::<i32>(0);
    let mut hit = 0;
    select! {
        recv(rx) -> _ => panic!("not ready"),
        default => hit += 1,
    }
    let t = std::time::Instant::now();
    select! {
        recv(rx) -> _ => panic!("not ready"),
        default(Duration::from_millis(20)) => hit += 1,
    }
    assert!(t.elapsed() >= Duration::from_millis(20));
    assert_eq!(hit, 2);
}

#[test]
fn closed_channel_is_ready() {
    let (tx, rx) = chan::<i32>(0);
    drop(tx);
    select! {
        recv(rx) -> v => assert_eq!(v, Err(RecvError)),
    }
}

#[test]
fn send_and_recv_on_one_channel_do_not_pair_with_themselves() {
    goro::run(|| {
        let (tx, rx) = chan::<i32>(0);
        let (tx_b, rx_b) = (tx.clone(), rx.clone());
        let h = goro::go(move || {
            select! {
                send(tx_b, 1) -> r => { r.unwrap(); "sent" },
                recv(rx_b) -> v => { assert_eq!(v, Ok(2)); "received" },
            }
        });
        // Give it time to park, then take its side.
        for _ in 0..10 {
            goro::yield_now();
        }
        let mine = select! {
            recv(rx) -> v => { assert_eq!(v, Ok(1)); "received" },
            send(tx, 2) -> r => { r.unwrap(); "sent" },
        };
        let theirs = h.join().unwrap();
        assert_ne!(mine, theirs);
    });
}

#[test]
fn same_channel_twice_and_never() {
    let (tx, rx) = chan::<i32>(2);
    tx.send(1).unwrap();
    let n = never::<i32>();
    let mut seen = 0;
    select! {
        recv(rx) -> v => seen += v.unwrap(),
        recv(rx) -> v => seen += 10 * v.unwrap(),
        recv(n) -> _ => unreachable!(),
    }
    assert!(seen == 1 || seen == 10);
}

#[test]
fn arms_may_reassign_channels() {
    let (tx, rx) = chan::<i32>(1);
    let mut a = rx;
    tx.send(1).unwrap();
    drop(tx);
    let mut closed = 0;
    for _ in 0..3 {
        select! {
            recv(a) -> v => if v.is_err() { closed += 1; a = never(); },
            default => {}
        }
    }
    assert_eq!(closed, 1);
}

#[test]
fn uniform_choice_among_ready_cases() {
    // Go's TestSelectFairness shape, with three always-ready channels.
    let chans: Vec<_> = (0..3).map(|_| chan::<u8>(1024)).collect();
    let mut counts = [0u32; 3];
    for _ in 0..9000 {
        for (tx, _) in &chans {
            if tx.is_empty() {
                tx.send(0).unwrap();
            }
        }
        select! {
            recv(chans[0].1) -> _ => counts[0] += 1,
            recv(chans[1].1) -> _ => counts[1] += 1,
            recv(chans[2].1) -> _ => counts[2] += 1,
        }
    }
    for c in counts {
        assert!((2700..=3300).contains(&c), "{counts:?}");
    }
}

#[test]
fn many_selectors_on_one_channel() {
    goro::run(|| {
        let (tx, rx) = chan::<usize>(0);
        let (done_tx, done_rx) = chan::<usize>(100);
        for _ in 0..50 {
            let (rx, done) = (rx.clone(), done_tx.clone());
            goro::go(move || {
                let never = never::<usize>();
                select! {
                    recv(rx) -> v => done.send(v.unwrap()).unwrap(),
                    recv(never) -> _ => unreachable!(),
                }
            });
        }
        for i in 0..50 {
            tx.send(i).unwrap();
        }
        let mut got: Vec<usize> = (0..50).map(|_| done_rx.recv().unwrap()).collect();
        got.sort();
        assert_eq!(got, (0..50).collect::<Vec<_>>());
    });
}

#[test]
fn dynamic_select() {
    let (tx1, rx1) = chan::<i32>(1);
    let (tx2, rx2) = chan::<i32>(0);
    let mut sel = Select::new();
    let a = sel.recv(&rx1);
    let b = sel.send(&tx2);
    assert!(sel.try_select().is_err());
    assert!(sel.select_timeout(Duration::from_millis(5)).is_err());
    tx1.send(3).unwrap();
    let op = sel.select();
    assert_eq!(op.index(), a);
    assert_eq!(op.recv(&rx1), Ok(3));
    // A send case becomes ready when a receiver waits.
    let h = std::thread::spawn(move || rx2.recv());
    let mut sel = Select::new();
    let _ = sel.recv(&rx1);
    let b2 = sel.send(&tx2);
    assert_eq!(b, b2);
    let op = sel.select();
    assert_eq!(op.index(), b2);
    op.send(&tx2, 9).unwrap();
    assert_eq!(h.join().unwrap(), Ok(9));
}

#[test]
fn select_parks_coroutines_and_threads_alike() {
    goro::run(|| {
        let (tx, rx) = chan::<i32>(0);
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(4).unwrap();
        });
        let n = never::<i32>();
        let v = select! {
            recv(rx) -> v => v.unwrap(),
            recv(n) -> _ => 0,
        };
        assert_eq!(v, 4);
        h.join().unwrap();
    });
}

// ---- Any expression as a case's channel (temporaries live for the select).

struct Ctx {
    done: goro::Receiver<()>,
}

impl Ctx {
    fn done(&self) -> &goro::Receiver<()> {
        &self.done
    }
}

fn pick(txs: &[goro::Sender<i32>], i: usize) -> &goro::Sender<i32> {
    &txs[i]
}

#[test]
fn temporaries_as_case_channels() {
    let (_tx, rx) = chan::<i32>(0);
    // A temporary receiver in a recv case: Go's `case <-time.After(d):`.
    let got = select! {
        recv(rx) -> _ => "value",
        recv(goro::time::after(Duration::from_millis(10))) -> _ => "timeout",
    };
    assert_eq!(got, "timeout");
    // A temporary receiver whose sender is gone.
    fn closed() -> goro::Receiver<u8> {
        chan::<u8>(0).1
    }
    let got = select! {
        recv(closed()) -> v => v,
    };
    assert_eq!(got, Err(RecvError), "a channel whose sender is gone is closed");
    // A temporary sender in a send case.
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| chan::<i32>(1)).unzip();
    select! {
        send(pick(&txs, 2), 7) -> r => r.unwrap(),
    }
    assert_eq!(rxs[2].try_recv(), Ok(7));
    select! {
        send(txs[1].clone(), 8) -> r => r.unwrap(),
    }
    assert_eq!(rxs[1].try_recv(), Ok(8));
}

#[test]
fn references_and_method_calls_as_case_channels() {
    let (tx, rx) = chan::<i32>(2);
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    let r1 = &rx;
    let r2 = &r1; // &&Receiver
    let a = select! { recv(r2) -> v => v.unwrap() };
    let b = select! { recv(&r2) -> v => v.unwrap() };
    assert_eq!((a, b), (1, 2));
    let t = &&tx;
    select! { send(t, 3) -> r => r.unwrap() }
    assert_eq!(rx.try_recv(), Ok(3));
    let (cancel, done) = chan::<()>(0);
    let ctx = Ctx { done };
    drop(cancel);
    let got = select! {
        recv(ctx.done()) -> v => v,
        default => Ok(()),
    };
    assert_eq!(got, Err(RecvError), "ctx.done() is closed");
}

#[test]
fn case_expressions_are_evaluated_once_in_order() {
    let order = std::cell::RefCell::new(Vec::new());
    let (tx, rx) = chan::<i32>(1);
    let (_tx2, rx2) = chan::<i32>(1);
    fn note<T>(order: &std::cell::RefCell<Vec<&'static str>>, name: &'static str, v: T) -> T {
        order.borrow_mut().push(name);
        v
    }
    tx.send(5).unwrap();
    let got = select! {
        recv(note(&order, "a", &rx2)) -> _ => 0,
        send(note(&order, "b", &tx), note(&order, "v", 6)) -> _ => 1,
        recv(note(&order, "c", &rx)) -> v => v.unwrap(),
    };
    assert!(got == 5 || got == 1, "{got}");
    assert_eq!(*order.borrow(), ["a", "b", "v", "c"]);
}

#[test]
fn arms_may_reassign_temporary_bound_channels() {
    // Go's nil-channel trick with a channel variable the arm reassigns,
    // next to a temporary in the same select.
    let (tx_a, mut a) = chan::<i32>(3);
    for i in 0..3 {
        tx_a.send(i).unwrap();
    }
    drop(tx_a);
    let mut sum = 0;
    loop {
        select! {
            recv(a) -> v => match v {
                Ok(v) => sum += v,
                Err(_) => a = never(),
            },
            recv(goro::time::after(Duration::from_millis(30))) -> _ => break,
        }
    }
    assert_eq!(sum, 3);
}

// ---- Fairness of parked selects (Go's TestPseudoRandomSend).

#[test]
fn parked_select_picks_its_cases_at_random() {
    let rt = rt(1);
    rt.run(|| {
        let (tx, rx) = chan::<i32>(0);
        let n = 100;
        goro::go(move || {
            for _ in 0..n {
                // Both cases are the same unbuffered channel; the receiver
                // comes only after this select has parked on both.
                select! {
                    send(tx, 0) -> r => r.unwrap(),
                    send(tx, 1) -> r => r.unwrap(),
                }
            }
        });
        let mut got = [0; 2];
        for _ in 0..n {
            for _ in 0..3 {
                goro::yield_now(); // the select runs and parks
            }
            got[rx.recv().unwrap() as usize] += 1;
        }
        assert!(got[0] > 10 && got[1] > 10, "want both values, got {got:?} zeros/ones");
    })
    .unwrap();
}

#[test]
fn parked_select_fairness_between_receive_cases() {
    goro::run(|| {
        let (tx, rx) = chan::<u8>(0);
        let (rx_a, rx_b) = (rx.clone(), rx);
        let mut got = [0; 2];
        for _ in 0..100 {
            let tx = tx.clone();
            let s = goro::go(move || {
                goro::yield_now();
                tx.send(1).unwrap();
            });
            select! {
                recv(rx_a) -> _ => got[0] += 1,
                recv(rx_b) -> _ => got[1] += 1,
            }
            s.join().unwrap();
        }
        assert!(got[0] > 10 && got[1] > 10, "{got:?}");
    });
}

// ---- Dynamic Select: send cases park like receive cases.

#[test]
fn dynamic_select_send_case_parks_until_a_receiver_comes() {
    goro::run(|| {
        let (tx, rx) = chan::<i32>(0);
        let (_tx2, rx2) = chan::<i32>(0);
        let h = goro::go(move || {
            goro::time::sleep(Duration::from_millis(20));
            rx.recv().unwrap()
        });
        let t = std::time::Instant::now();
        let mut sel = Select::new();
        let s = sel.send(&tx);
        let _r = sel.recv(&rx2);
        let op = sel.select();
        assert_eq!(op.index(), s);
        op.send(&tx, 42).unwrap();
        assert_eq!(h.join().unwrap(), 42);
        assert!(t.elapsed() >= Duration::from_millis(15));
    });
}

#[test]
fn dynamic_select_registers_one_observer_and_does_not_spin() {
    // A select parked on a send case for 100 ms must not wake every
    // millisecond (it polled before): count its context switches.
    goro::run(|| {
        let (tx, _rx) = chan::<i32>(0);
        let before = goro::stats().context_switches;
        let mut sel = Select::new();
        sel.send(&tx);
        assert!(sel.select_timeout(Duration::from_millis(100)).is_err());
        let switches = goro::stats().context_switches - before;
        assert!(switches < 10, "{switches} context switches while parked");
    });
}

#[test]
fn dynamic_select_send_and_recv_on_one_channel_do_not_pair() {
    goro::run(|| {
        let (tx, rx) = chan::<i32>(0);
        let mut sel = Select::new();
        sel.send(&tx);
        sel.recv(&rx);
        assert!(sel.select_timeout(Duration::from_millis(30)).is_err(), "paired with itself");
    });
}

#[test]
fn dynamic_select_can_be_reused() {
    let (tx, rx) = chan::<i32>(4);
    for i in 0..4 {
        tx.send(i).unwrap();
    }
    let mut sel = Select::new();
    let r = sel.recv(&rx);
    let mut got = Vec::new();
    for _ in 0..4 {
        let op = sel.select();
        assert_eq!(op.index(), r);
        got.push(op.recv(&rx).unwrap());
    }
    assert_eq!(got, [0, 1, 2, 3]);
}

/// Six selects observe one full channel; the first, a middle one and the
/// last leave by their own channels, so their observer entries come off
/// the channel's list from both ends and the middle. A freed slot then
/// wakes exactly the other three, through their send cases.
#[test]
fn dynamic_select_observers_leave_from_anywhere_and_the_rest_are_woken() {
    let _w = common::watchdog(30, "dynamic_select_observers_leave_from_anywhere_and_the_rest_are_woken");
    goro::run(|| {
        let (full_tx, full_rx) = chan::<usize>(1);
        full_tx.send(99).unwrap();
        let mut own = Vec::new();
        let mut handles: Vec<Option<goro::JoinHandle<&str>>> = Vec::new();
        for id in 0..6 {
            let (tx, rx) = chan::<()>(0);
            own.push(tx);
            let full_tx = full_tx.clone();
            handles.push(Some(goro::go(move || {
                let mut sel = Select::new();
                let mine = sel.recv(&rx);
                let send = sel.send(&full_tx);
                let op = sel.select();
                if op.index() == mine {
                    op.recv(&rx).unwrap();
                    "own"
                } else {
                    assert_eq!(op.index(), send);
                    op.send(&full_tx, id).unwrap();
                    "send"
                }
            })));
        }
        let parked = || goro::coroutines().iter().filter(|c| c.state == goro::CoroutineState::Parked).count();
        while parked() < 6 {
            goro::time::sleep(Duration::from_millis(1));
        }
        for i in [0, 2, 5] {
            own[i].send(()).unwrap();
        }
        for i in [0, 2, 5] {
            assert_eq!(handles[i].take().unwrap().join().unwrap(), "own");
        }
        // One slot frees: every remaining observer is claimed; each then
        // sends (the later ones wait for room as we drain).
        let mut got = vec![full_rx.recv().unwrap()];
        for _ in 0..3 {
            got.push(full_rx.recv().unwrap());
        }
        got.sort();
        assert_eq!(got, [1, 3, 4, 99]);
        for i in [1, 3, 4] {
            assert_eq!(handles[i].take().unwrap().join().unwrap(), "send");
        }
    });
}

// ---- A cancelled select drops a won value after releasing its locks.

struct TouchOnDrop(goro::Sender<u8>);

impl Drop for TouchOnDrop {
    fn drop(&mut self) {
        // Uses a channel the cancelled select also waits on.
        let _ = self.0.try_send(1);
    }
}

#[test]
fn cancelled_select_drops_its_won_value_after_unlocking() {
    let ok = within(20, "the runtime hung cancelling the select", || {
        let r = rt(1).run(|| {
            let (tx, rx) = chan::<TouchOnDrop>(0);
            let (tx2, rx2) = chan::<u8>(1);
            let h = goro::go(move || {
                select! {
                    recv(rx) -> _ => {},
                    recv(rx2) -> _ => {},
                }
            });
            goro::yield_now(); // it parks on both channels
                               // Completes the hand-off and queues it; cancelled before it
                               // runs, it unwinds with the value in its case.
            tx.send(TouchOnDrop(tx2)).ok().unwrap();
            h.cancel();
            assert!(h.join().unwrap_err().is::<goro::Cancelled>());
        });
        r.is_ok()
    });
    assert!(ok);
}

/// A select's losing case leaves the other channel's queue from wherever it
/// stands (first, middle, last; `chan/imp.rs` invariant 8): the parties
/// still queued keep their order, and none is lost or served twice.
#[test]
fn losing_cases_leave_a_shared_queue_from_anywhere() {
    const K: usize = 7;
    rt(2)
        .run(|| {
            let parked = || goro::coroutines().iter().filter(|c| c.state == goro::CoroutineState::Parked).count();
            let (shared_tx, shared_rx) = chan::<usize>(0);
            let (out_tx, out_rx) = chan::<(usize, &'static str, usize)>(K);
            let mut owns = Vec::new();
            for i in 0..K {
                let (tx, rx) = chan::<usize>(0);
                owns.push(tx);
                let (shared, out) = (shared_rx.clone(), out_tx.clone());
                goro::go(move || {
                    select! {
                        recv(rx) -> v => out.send((i, "own", v.unwrap())).unwrap(),
                        recv(shared) -> v => out.send((i, "shared", v.unwrap())).unwrap(),
                    }
                });
                // Queued in spawn order: each parks before the next starts.
                while parked() < i + 1 {
                    goro::yield_now();
                }
            }
            // The first, a middle and the last queued on `shared` win
            // through their own channels; their results come after their
            // selects took the losing cases off `shared`'s queue.
            for i in [0, 3, K - 1] {
                owns[i].send(100 + i).unwrap();
            }
            let mut own: Vec<_> = (0..3).map(|_| out_rx.recv().unwrap()).collect();
            own.sort();
            assert_eq!(own, [(0, "own", 100), (3, "own", 103), (K - 1, "own", 100 + K - 1)]);
            // The rest are served by `shared` in the order they queued: the
            // n-th value sent goes to the n-th of them.
            for v in 0..K - 3 {
                shared_tx.send(v).unwrap();
            }
            let mut rest: Vec<_> = (0..K - 3).map(|_| out_rx.recv().unwrap()).collect();
            rest.sort(); // they report concurrently; the pairs show the order
            assert_eq!(rest, [(1, "shared", 0), (2, "shared", 1), (4, "shared", 2), (5, "shared", 3)]);
            assert!(shared_tx.try_send(9).is_err(), "nobody may be left on the queue");
        })
        .unwrap();
}
