//! A tour of goro: `cargo run --release --example tour`.
//!
//! Each step is a few lines of Go ported line by line: a spawn tree, a
//! producer with `select!` and a timeout, the prime sieve pipeline, a ticker,
//! a WaitGroup and a Mutex, a TCP echo on loopback, a panic isolated in its
//! coroutine, and a deadlock report. Then the runtime's counters.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goro::sync::{Mutex, WaitGroup};
use goro::{chan, go, select, Receiver, Sender};

fn tree(depth: u32, num: u64) -> u64 {
    if depth == 0 {
        return num;
    }
    let hs: Vec<_> = (0..10).map(|i| go(move || tree(depth - 1, num * 10 + i))).collect();
    hs.into_iter().map(|h| h.join().unwrap()).sum()
}

/// Go's classic concurrent prime sieve: one coroutine per prime.
fn sieve(n: usize) -> Vec<u64> {
    fn filter(input: Receiver<u64>, out: Sender<u64>, p: u64) {
        for v in &input {
            if v % p != 0 && out.send(v).is_err() {
                return;
            }
        }
    }
    let (tx, mut rx) = chan(0);
    go(move || (2..).try_for_each(|i| tx.send(i)));
    let mut primes = Vec::new();
    for _ in 0..n {
        let p = rx.recv().unwrap();
        primes.push(p);
        let (tx2, rx2) = chan(0);
        go(move || filter(rx, tx2, p));
        rx = rx2;
    }
    primes // dropping the last receiver winds the whole chain down
}

fn main() {
    goro::run(|| {
        // 1. A tree of 111 111 coroutines, spawned and joined.
        let t = Instant::now();
        let sum = tree(5, 0);
        println!("1. spawned and joined 111111 coroutines (sum {sum}) in {:?}", t.elapsed());

        // 2. A producer, and a consumer that selects with a timeout.
        let (tx, rx) = chan::<u32>(0);
        go(move || {
            for i in 1..=3 {
                tx.send(i * 10).unwrap();
                goro::time::sleep(Duration::from_millis(5));
            }
            // Sender dropped: the channel closes.
        });
        let mut got = Vec::new();
        loop {
            select! {
                recv(rx) -> v => match v {
                    Ok(v) => got.push(v),
                    Err(_) => break,
                },
                default(Duration::from_secs(1)) => {
                    println!("   timed out");
                    break;
                }
            }
        }
        println!("2. select received {got:?}, then saw the channel close");

        // 3. The prime sieve: a pipeline that grows one coroutine per prime.
        println!("3. sieve: first 15 primes {:?}", sieve(15));

        // 4. A ticker, stopped after three ticks.
        let ticker = goro::time::Ticker::new(Duration::from_millis(10));
        let t = Instant::now();
        for _ in 0..3 {
            ticker.chan().recv().unwrap();
        }
        ticker.stop();
        println!("4. three 10 ms ticks in {:?}", t.elapsed());

        // 5. A WaitGroup and a Mutex shared by 100 coroutines.
        let wg = WaitGroup::new();
        let count = Arc::new(Mutex::new(0));
        for _ in 0..100 {
            wg.add(1);
            let (wg, count) = (wg.clone(), count.clone());
            go(move || {
                for _ in 0..100 {
                    *count.lock() += 1;
                }
                wg.done();
            });
        }
        wg.wait();
        println!("5. 100 coroutines x 100 increments under a Mutex = {}", *count.lock());

        // 6. TCP echo on loopback: the reads park the coroutine, not the thread.
        let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ln.local_addr().unwrap();
        go(move || {
            let (conn, _) = ln.accept().unwrap();
            let _ = std::io::copy(&mut &conn, &mut &conn);
        });
        let conn = goro::net::TcpStream::connect(addr).unwrap();
        (&conn).write_all(b"hello, goro").unwrap();
        let mut buf = [0u8; 11];
        (&conn).read_exact(&mut buf).unwrap();
        println!("6. echoed over TCP: {:?}", String::from_utf8_lossy(&buf));

        // 7. A panic stays in its coroutine; join reports it.
        let h = goro::Builder::new().name("fragile").spawn(|| -> u32 { panic!("a coroutine panicked") }).unwrap();
        println!("7. join of a panicking coroutine: is_err = {}", h.join().is_err());

        let s = goro::stats();
        println!(
            "   stats: spawned {} context switches {} steals {} stacks in use {}",
            s.spawned, s.context_switches, s.steals, s.stacks_in_use
        );
    });

    // 8. A deadlock: instead of Go's one line, every blocked coroutine, where
    //    it was spawned and what it waits on.
    let rt = goro::Runtime::builder().name("tour").build().unwrap();
    let r = rt.run(|| {
        let (tx, rx) = chan::<u32>(0);
        let (done_tx, done_rx) = chan::<()>(0);
        goro::Builder::new()
            .name("waiter")
            .spawn(move || {
                let _ = rx.recv(); // nobody ever sends
                let _ = done_tx.send(());
            })
            .unwrap();
        let _ = done_rx.recv();
        drop(tx);
    });
    match r {
        Err(e) => println!("8. Runtime::run returned:\n{e}"),
        Ok(()) => println!("8. no deadlock?"),
    }
}
