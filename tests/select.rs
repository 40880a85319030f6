//! select! and Select. The macro must expand to safe code.
#![forbid(unsafe_code)]

use std::time::Duration;

use goro::{chan, never, select, RecvError, Select};

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
