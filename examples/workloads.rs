//! goro's ports of the peer workloads (`../shared/peers/WORKLOADS.md`),
//! line by line from `peers/go/main.go`.
//!
//! `cargo run --release --example workloads -- <workload> [N]` prints
//! `workload=<name> n=<N> result=<checksum> ms=<ms>` (the same line as the Go
//! program) and exits non-zero on a wrong checksum.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goro::sync::{Mutex, WaitGroup};
use goro::{chan, go, never, select, Receiver, Sender};

fn skynet(c: Sender<i64>, num: i64, size: i64, div: i64) {
    if size == 1 {
        c.send(num).unwrap();
        return;
    }
    let (rtx, rrx) = chan(0);
    for i in 0..div {
        let rtx = rtx.clone();
        go(move || skynet(rtx, num + i * (size / div), size / div, div));
    }
    let mut sum = 0;
    for _ in 0..div {
        sum += rrx.recv().unwrap();
    }
    c.send(sum).unwrap();
}

fn pingpong(n: i64) -> i64 {
    let (atx, arx) = chan::<i64>(0);
    let (btx, brx) = chan::<i64>(0);
    go(move || {
        for v in &arx {
            btx.send(v + 1).unwrap();
        }
    });
    let mut v = 0;
    for _ in 0..n {
        atx.send(v).unwrap();
        v = brx.recv().unwrap();
    }
    atx.close();
    v
}

fn mpmc(n: i64) -> i64 {
    const P: i64 = 4;
    const C: usize = 4;
    let (tx, rx) = chan::<i64>(1024);
    let wg = WaitGroup::new();
    for p in 0..P {
        wg.add(1);
        let (wg, tx) = (wg.clone(), tx.clone());
        go(move || {
            let mut v = p;
            while v < n {
                tx.send(v).unwrap();
                v += P;
            }
            wg.done();
        });
    }
    let (stx, srx) = chan::<i64>(C);
    for _ in 0..C {
        let (rx, stx) = (rx.clone(), stx.clone());
        go(move || {
            let mut s = 0;
            for v in &rx {
                s += v;
            }
            stx.send(s).unwrap();
        });
    }
    wg.wait();
    tx.close();
    (0..C).map(|_| srx.recv().unwrap()).sum()
}

fn selectw(n: i64) -> i64 {
    let chs: Vec<(Sender<i64>, Receiver<i64>)> = (0..4).map(|_| chan(0)).collect();
    for (p, (tx, _)) in chs.iter().enumerate() {
        let tx = tx.clone();
        go(move || {
            let mut v = p as i64;
            while v < n {
                tx.send(v).unwrap();
                v += 4;
            }
            tx.close();
        });
    }
    let (mut sum, mut open) = (0, 4);
    let [a, b, c, d]: [Receiver<i64>; 4] = chs.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>().try_into().unwrap();
    drop(chs);
    let (mut a, mut b, mut c, mut d) = (a, b, c, d);
    while open > 0 {
        select! {
            recv(a) -> v => match v { Ok(v) => sum += v, Err(_) => { a = never(); open -= 1; } },
            recv(b) -> v => match v { Ok(v) => sum += v, Err(_) => { b = never(); open -= 1; } },
            recv(c) -> v => match v { Ok(v) => sum += v, Err(_) => { c = never(); open -= 1; } },
            recv(d) -> v => match v { Ok(v) => sum += v, Err(_) => { d = never(); open -= 1; } },
        }
    }
    sum
}

fn ring(n: i64) -> i64 {
    const R: usize = 503;
    let chs: Vec<(Sender<i64>, Receiver<i64>)> = (0..R).map(|_| chan(0)).collect();
    let (done_tx, done_rx) = chan::<i64>(0);
    for i in 0..R {
        let (inp, out, done) = (chs[i].1.clone(), chs[(i + 1) % R].0.clone(), done_tx.clone());
        let id = i as i64 + 1;
        go(move || {
            for t in &inp {
                if t == 0 {
                    done.send(id).unwrap();
                    return;
                }
                out.send(t - 1).unwrap();
            }
        });
    }
    chs[0].0.send(n).unwrap();
    done_rx.recv().unwrap()
}

fn timers(n: i64) -> i64 {
    // Side probe (stderr, with GORO_TIMERS_PROBE=1; not part of the timed
    // workload): lateness of sleep(1ms) while the load runs.
    let probe = std::env::var_os("GORO_TIMERS_PROBE").is_some();
    let probe = go(move || {
        if !probe {
            return;
        }
        let mut late: Vec<u128> = (0..150)
            .map(|_| {
                let t = Instant::now();
                goro::time::sleep(Duration::from_millis(1));
                t.elapsed().as_micros().saturating_sub(1000)
            })
            .collect();
        late.sort_unstable();
        eprintln!(
            "timers: sleep(1ms) lateness under load: p50 {} us, p99 {} us",
            late[late.len() / 2],
            late[late.len() * 99 / 100]
        );
    });
    let wg = WaitGroup::new();
    let count = Arc::new(Mutex::new(0i64));
    for i in 0..n {
        wg.add(1);
        let (wg, count) = (wg.clone(), count.clone());
        go(move || {
            let mut x = (i.wrapping_mul(2654435761) + 1) as u32;
            for _ in 0..10 {
                x = x.wrapping_mul(1664525).wrapping_add(1013904223);
                goro::time::sleep(Duration::from_millis(1 + ((x >> 16) % 20) as u64));
                *count.lock() += 1;
            }
            wg.done();
        });
    }
    wg.wait();
    probe.join().unwrap();
    let c = *count.lock();
    c
}

fn idle(n: i64) -> i64 {
    let (start_tx, start_rx) = chan::<()>(0);
    let wg = WaitGroup::new();
    // Coroutines that reached their select (each parks right there). The
    // peers wait for N *spawned* (Go's NumGoroutine, tokio's alive tasks)
    // and sleep 50 ms, by when theirs have all run up to the park; goro
    // starts spawned coroutines later, so it waits for N *started* instead:
    // every stack is touched and parked before the release, as in the peers.
    let parked = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    for _ in 0..n {
        wg.add(1);
        let (wg, start, parked) = (wg.clone(), start_rx.clone(), parked.clone());
        go(move || {
            // Keep the Sender alive: Go's make(chan int) stays open.
            let (_own_tx, own) = chan::<i64>(0);
            parked.fetch_add(1, Ordering::Relaxed);
            select! {
                recv(own) -> _ => {},
                recv(start) -> _ => {},
            }
            wg.done();
        });
    }
    eprintln!("idle: spawned after {:?}, {} parked", t0.elapsed(), parked.load(Ordering::Relaxed));
    while (parked.load(Ordering::Relaxed) as i64) < n {
        goro::time::sleep(Duration::from_millis(1));
    }
    goro::time::sleep(Duration::from_millis(50));
    let s = goro::stats();
    eprintln!(
        "idle: {} coroutines parked after {:?}, VmRSS {} KiB ({} stacks swapped out, {} KiB in their copies)",
        parked.load(Ordering::Relaxed),
        t0.elapsed(),
        proc_status("VmRSS:"),
        s.stacks_swapped_out,
        s.stack_bytes_swapped / 1024
    );
    let t1 = Instant::now();
    start_tx.close();
    let closed = t1.elapsed();
    wg.wait();
    let s = goro::stats();
    eprintln!(
        "idle: close took {closed:?}, all done {:?} after it, VmRSS {} KiB ({} stacks swapped out in {} windows, {} swapped back by faults, {} restore windows)",
        t1.elapsed(),
        proc_status("VmRSS:"),
        s.stack_swap_outs,
        s.stack_swap_windows,
        s.stack_swap_faults,
        s.stack_restore_windows
    );
    n
}

fn generate(ch: Sender<i64>) {
    let mut i = 2;
    while ch.send(i).is_ok() {
        i += 1;
    }
}

fn filter(inp: Receiver<i64>, out: Sender<i64>, prime: i64) {
    while let Ok(i) = inp.recv() {
        if i % prime != 0 && out.send(i).is_err() {
            return;
        }
    }
}

fn sieve(n: i64) -> i64 {
    let (tx, mut rx) = chan(0);
    go(move || generate(tx));
    let mut sum = 0;
    for _ in 0..n {
        let prime = rx.recv().unwrap();
        sum += prime;
        let (tx1, rx1) = chan(0);
        go(move || filter(rx, tx1, prime));
        rx = rx1;
    }
    sum
}

fn first_primes_sum(n: i64) -> i64 {
    let (mut found, mut sum, mut k) = (0, 0, 2i64);
    while found < n {
        if (2..).take_while(|d| d * d <= k).all(|d| k % d != 0) {
            sum += k;
            found += 1;
        }
        k += 1;
    }
    sum
}

fn echo(c: i64) -> i64 {
    const MSGS: usize = 200;
    const SIZE: usize = 64;
    let ln = Arc::new(goro::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let l2 = ln.clone();
    go(move || {
        while let Ok((conn, _)) = l2.accept() {
            go(move || {
                let _ = std::io::copy(&mut &conn, &mut &conn);
            });
        }
    });
    let addr = ln.local_addr().unwrap();
    let wg = WaitGroup::new();
    let (ttx, trx) = chan::<i64>(c as usize);
    for _ in 0..c {
        wg.add(1);
        let (wg, ttx) = (wg.clone(), ttx.clone());
        go(move || {
            let conn = goro::net::TcpStream::connect(addr).unwrap();
            let mut buf = [0u8; SIZE];
            let mut got = 0;
            for _ in 0..MSGS {
                (&conn).write_all(&buf).unwrap();
                (&conn).read_exact(&mut buf).unwrap();
                got += SIZE as i64;
            }
            ttx.send(got).unwrap();
            wg.done();
        });
    }
    wg.wait();
    ln.close().unwrap();
    (0..c).map(|_| trx.recv().unwrap()).sum()
}

/// As the Rust peers write it (`../shared/peers/rust`): the pad goes to
/// `black_box` by reference (by value would copy it into a second 128-byte
/// slot of every frame), and the recursive call grows on demand.
#[inline(never)]
fn deep(n: i64) -> i64 {
    let mut pad = [0i64; 16];
    pad[(n % 16) as usize] = n;
    std::hint::black_box(&mut pad);
    if n == 0 {
        return 0;
    }
    goro::stack::maybe_grow(32 * 1024, 1 << 20, || deep(n - 1)) + pad[(n % 16) as usize] - n + 1
}

/// Not a peer workload (goro only): `n` coroutines each wait in
/// `select { own channel, shared quit channel }`, the shape of a server's
/// connection loop (`case <-ctx.Done()`). Each of 10 rounds sends one value
/// to every coroutine, newest first; each then selects again. Every wake
/// takes the coroutine's losing case off `quit`'s queue, which holds all
/// `n` of them: Go does that in O(1) (a doubly linked list of sudogs), so a
/// round must cost O(n), not O(n^2). Result: the values received.
fn quit(n: i64) -> i64 {
    const ROUNDS: i64 = 10;
    let (quit_tx, quit_rx) = chan::<()>(0);
    let (done_tx, done_rx) = chan::<i64>(n as usize);
    let mut owns = Vec::new();
    for _ in 0..n {
        let (tx, rx) = chan::<i64>(0);
        owns.push(tx);
        let (quit, done) = (quit_rx.clone(), done_tx.clone());
        go(move || {
            let mut got = 0;
            loop {
                select! {
                    recv(rx) -> v => got += v.unwrap(),
                    recv(quit) -> _ => break,
                }
            }
            done.send(got).unwrap();
        });
    }
    for r in 0..ROUNDS {
        for tx in owns.iter().rev() {
            tx.send(r).unwrap();
        }
    }
    quit_tx.close();
    (0..n).map(|_| done_rx.recv().unwrap()).sum()
}

fn proc_status(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// Not a peer workload (goro only): `quit` with the dynamic `Select` and a
/// send-readiness case. `n` coroutines each wait for their own channel or
/// for room in one shared full channel (a producer waiting to hand off);
/// each of 10 rounds sends one value to every coroutine, newest first.
/// Every wake takes the coroutine's observer entry off the shared channel,
/// which holds all `n` of them: O(1) each, so a round must cost O(n).
/// Dropping the senders ends them. Result: the values received.
fn observe(n: i64) -> i64 {
    const ROUNDS: i64 = 10;
    let (full_tx, _full_rx) = chan::<i64>(1);
    full_tx.send(0).unwrap();
    let (done_tx, done_rx) = chan::<i64>(n as usize);
    let mut owns = Vec::new();
    for _ in 0..n {
        let (tx, rx) = chan::<i64>(0);
        owns.push(tx);
        let (full, done) = (full_tx.clone(), done_tx.clone());
        go(move || {
            let mut got = 0;
            loop {
                let mut sel = goro::Select::new();
                let mine = sel.recv(&rx);
                sel.send(&full);
                let op = sel.select();
                assert_eq!(op.index(), mine, "the shared channel never has room");
                match op.recv(&rx) {
                    Ok(v) => got += v,
                    Err(_) => break,
                }
            }
            done.send(got).unwrap();
        });
    }
    for r in 0..ROUNDS {
        for tx in owns.iter().rev() {
            tx.send(r).unwrap();
        }
    }
    drop(owns);
    (0..n).map(|_| done_rx.recv().unwrap()).sum()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(w) = args.get(1).cloned() else {
        eprintln!("usage: workloads <workload> [N]");
        std::process::exit(2);
    };
    let default = match w.as_str() {
        "skynet" => 1_000_000,
        "pingpong" => 1_000_000,
        "mpmc" => 10_000_000,
        "select" => 4_000_000,
        "ring" => 10_000_000,
        "timers" => 10_000,
        "idle" => 1_000_000,
        "sieve" => 3_000,
        "echo" => 500,
        "deep" => 100_000,
        "quit" => 20_000,
        "observe" => 20_000,
        _ => {
            eprintln!("unknown workload {w}");
            std::process::exit(2);
        }
    };
    let n: i64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(default);
    let mut b = goro::Runtime::builder();
    if std::env::var_os("GORO_MIGRATE").is_some() {
        // SAFETY: these workloads hold nothing thread-bound (no thread-locals,
        // Rc, std guards) across a blocking goro call, which is what
        // migration requires. Used to measure Go-style migration.
        b = unsafe { b.migrate_started(true) };
    }
    let rt = b.build().unwrap_or_else(|e| panic!("{e}"));
    let ms = Arc::new(AtomicU64::new(0));
    let ms2 = ms.clone();
    let w2 = w.clone();
    let (got, want) = rt
        .run(move || {
            let t0 = Instant::now();
            let r = match w2.as_str() {
                "skynet" => {
                    let (tx, rx) = chan(0);
                    go(move || skynet(tx, 0, n, 10));
                    (rx.recv().unwrap(), n * (n - 1) / 2)
                }
                "pingpong" => (pingpong(n), n),
                "mpmc" => (mpmc(n), n * (n - 1) / 2),
                "select" => (selectw(n), n * (n - 1) / 2),
                "ring" => (ring(n), n % 503 + 1),
                "timers" => (timers(n), 10 * n),
                "idle" => (idle(n), n),
                "sieve" => (sieve(n), first_primes_sum(n)),
                "echo" => (echo(n), n * 200 * 64),
                "deep" => (go(move || deep(n)).join().unwrap(), n),
                "quit" => (quit(n), n * 45),
                "observe" => (observe(n), n * 45),
                _ => unreachable!(),
            };
            ms2.store(t0.elapsed().as_micros() as u64, Ordering::SeqCst);
            if std::env::var_os("GORO_STATS").is_some() {
                eprintln!("{:?}", goro::stats());
            }
            r
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let ms = ms.load(Ordering::SeqCst) as f64 / 1000.0;
    println!("workload={w} n={n} result={got} ms={ms:.1}");
    if got != want {
        eprintln!("wrong result: want {want}");
        std::process::exit(1);
    }
}
