//! Placement when there are more workers than cores (idle.rs rule 5): new
//! work goes only to as many workers as the process has cores; the others
//! (spares) serve only when a primary is held by a coroutine that does not
//! park.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use goro::{chan, go, Receiver, Runtime, Sender};

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn filter(inp: Receiver<u64>, out: Sender<u64>, prime: u64, threads: Arc<Mutex<HashSet<std::thread::ThreadId>>>) {
    threads.lock().unwrap().insert(std::thread::current().id());
    while let Ok(i) = inp.recv() {
        if i % prime != 0 && out.send(i).is_err() {
            return;
        }
    }
}

/// The prime sieve, a pipeline grown one stage at a time, with four more
/// workers than cores: its stages run on at most `cores` threads. Before
/// rule 5 the spawner placed stages on every idle worker, and each hop
/// between threads that were not all on a core at once waited for the
/// kernel (GORO_WORKERS=8 made the sieve 10x slower than 2 workers on a
/// 2-core box); this test saw the stages on all `cores + 4` threads.
#[test]
fn pipeline_stays_on_as_many_workers_as_cores() {
    let _w = common::watchdog(60, "pipeline_stays_on_as_many_workers_as_cores");
    let workers = cores() + 4;
    let rt = Runtime::builder().workers(workers).build().unwrap();
    let threads = Arc::new(Mutex::new(HashSet::new()));
    let t2 = threads.clone();
    let sum = rt
        .run(move || {
            let (tx, mut rx) = chan::<u64>(0);
            go(move || {
                let mut i = 2;
                while tx.send(i).is_ok() {
                    i += 1;
                }
            });
            let mut sum = 0;
            for _ in 0..1500 {
                let prime = rx.recv().unwrap();
                sum += prime;
                let (tx1, rx1) = chan(0);
                let t = t2.clone();
                go(move || filter(rx, tx1, prime, t));
                rx = rx1;
            }
            sum
        })
        .unwrap();
    let expect: u64 = (2u64..).filter(|&k| (2..k).take_while(|d| d * d <= k).all(|d| k % d != 0)).take(1500).sum();
    assert_eq!(sum, expect);
    let used = threads.lock().unwrap().len();
    assert!(used <= cores(), "sieve stages ran on {used} worker threads; the process has {} cores", cores());
}

/// Spares serve blocking work: with every primary held by a coroutine that
/// blocks its thread (no `goro::blocking`), a new coroutine still runs on
/// a spare, called by the monitor, long before any primary is free again.
#[test]
fn spare_runs_work_while_primaries_block() {
    let _w = common::watchdog(60, "spare_runs_work_while_primaries_block");
    let n = cores();
    let rt = Runtime::builder().workers(n + 1).build().unwrap();
    let (blockers_done, quick_saw) = rt
        .run(move || {
            let done = Arc::new(AtomicUsize::new(0));
            let started = Arc::new(AtomicUsize::new(0));
            let (tx, rx) = chan::<usize>(1);
            let mut hs = Vec::new();
            for _ in 0..n {
                let (done, started, tx) = (done.clone(), started.clone(), tx.clone());
                hs.push(go(move || {
                    // The last blocker to start spawns the quick coroutine:
                    // by then every primary is held (main parked below), so
                    // only a spare can run it before a blocker returns.
                    if started.fetch_add(1, Ordering::SeqCst) + 1 == n {
                        let d = done.clone();
                        go(move || tx.send(d.load(Ordering::SeqCst)).unwrap());
                    }
                    std::thread::sleep(Duration::from_secs(3));
                    done.fetch_add(1, Ordering::SeqCst);
                }));
            }
            drop(tx);
            let saw = rx.recv().unwrap();
            for h in hs {
                h.join().unwrap();
            }
            (done.load(Ordering::SeqCst), saw)
        })
        .unwrap();
    assert_eq!(blockers_done, n);
    assert_eq!(quick_saw, 0, "the quick coroutine only ran after a primary was free again");
}

/// Coroutines queued behind a primary that blocks its thread do not wait
/// for the other primaries to run dry: after the primary has been held for
/// a while a spare is called even though another primary is merely busy
/// (here: a coroutine that keeps yielding, never idle, never stuck). Without
/// that, the queued coroutine waited out the whole blocking call.
#[test]
fn spare_serves_a_blocked_primarys_queue_while_others_are_busy() {
    use std::sync::atomic::AtomicBool;
    let _w = common::watchdog(60, "spare_serves_a_blocked_primarys_queue_while_others_are_busy");
    let n = cores();
    let rt = Runtime::builder().workers(n + 1).build().unwrap();
    let (blocker_done, quick_saw) = rt
        .run(move || {
            let done = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let (tx, rx) = chan::<usize>(1);
            let (d, s) = (done.clone(), stop.clone());
            let blocker = go(move || {
                // Keep every other primary busy without ever holding it.
                for _ in 1..n {
                    let s = s.clone();
                    go(move || {
                        while !s.load(Ordering::SeqCst) {
                            goro::yield_now();
                        }
                    });
                }
                let d2 = d.clone();
                go(move || tx.send(d2.load(Ordering::SeqCst)).unwrap());
                std::thread::sleep(Duration::from_secs(3));
                d.fetch_add(1, Ordering::SeqCst);
            });
            let saw = rx.recv().unwrap();
            stop.store(true, Ordering::SeqCst);
            blocker.join().unwrap();
            (done.load(Ordering::SeqCst), saw)
        })
        .unwrap();
    assert_eq!(blocker_done, 1);
    assert_eq!(quick_saw, 0, "the coroutine queued behind the blocked primary waited for it");
}

/// Whether placed work can be checked here: with one core every worker
/// but one is a spare, which takes no placed work (the test then says so
/// and checks nothing).
fn placed_work_checkable() -> bool {
    let ok = cores() >= 2;
    if !ok {
        eprintln!("one core: every worker but one is a spare, which takes no placed work; nothing to check");
    }
    ok
}

type PerThread = Arc<Mutex<std::collections::HashMap<std::thread::ThreadId, usize>>>;

/// An echo server's accept loop, run by the calling coroutine: one
/// coroutine per connection, each counted in `served` under the thread it
/// runs on.
fn accept_loop(ln: goro::net::TcpListener, served: PerThread) {
    for conn in ln.incoming() {
        let conn = conn.unwrap();
        let served = served.clone();
        go(move || {
            *served.lock().unwrap().entry(std::thread::current().id()).or_default() += 1;
            let _ = std::io::copy(&mut &conn, &mut &conn);
        });
    }
}

/// Connects `conns` clients one at a time (a plain thread's blocking
/// calls) and waits for each one's echo, so each connection's coroutine
/// has started and parked in its next read before the next connection
/// arrives. Returns the open streams.
fn sequential_clients(addr: std::net::SocketAddr, conns: std::ops::Range<usize>) -> Vec<std::net::TcpStream> {
    use std::io::{Read, Write};
    conns
        .map(|i| {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(&[i as u8]).unwrap();
            let mut b = [0u8];
            c.read_exact(&mut b).unwrap();
            assert_eq!(b[0], i as u8);
            c
        })
        .collect()
}

/// `conns` sequential connections to an echo server on a runtime of
/// `workers`: how many each worker thread served.
fn connections_per_thread(workers: usize, conns: usize) -> Vec<usize> {
    let rt = Runtime::builder().workers(workers).build().unwrap();
    rt.run(move || {
        let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ln.local_addr().unwrap();
        let served = PerThread::default();
        let s2 = served.clone();
        go(move || accept_loop(ln, s2));
        let clients = goro::blocking(move || sequential_clients(addr, 0..conns));
        assert_eq!(clients.len(), conns);
        let v: Vec<usize> = served.lock().unwrap().values().copied().collect();
        v
    })
    .unwrap()
}

/// A server's connection coroutines spread over the workers. The accept
/// loop spawns each one, which starts at once on the loop's worker (the
/// loop parks in `accept`, so nothing is ever left for a thief) and lives
/// there; before spawn placement counted the coroutines parked on sockets,
/// all 64 connections here started on one worker while the other idled
/// (`echo` with its clients and accept loop on one worker: 1.2-1.6 s
/// instead of 0.8).
#[test]
fn connection_coroutines_spread_over_the_workers() {
    const CONNS: usize = 64;
    let _w = common::watchdog(60, "connection_coroutines_spread_over_the_workers");
    if !placed_work_checkable() {
        return;
    }
    let per_thread = connections_per_thread(2, CONNS);
    assert_eq!(per_thread.iter().sum::<usize>(), CONNS, "{per_thread:?}");
    assert!(
        per_thread.len() == 2 && per_thread.iter().all(|&n| n >= CONNS / 4),
        "connections per worker thread: {per_thread:?} (each of the 2 workers should serve at least {})",
        CONNS / 4
    );
}

/// The same with 8 workers: connections accepted one at a time reach every
/// primary (as many as the box has cores, up to 8) and no spare (spares
/// take no placed work, idle.rs rule 5), and none serves over 3/4 of them.
/// On a box with more than 4 cores this is the sampled path of
/// `io_lighter_worker` (two primaries looked at per spawn; its unit tests
/// cover the sampling itself).
#[test]
fn connection_coroutines_spread_over_many_workers() {
    const CONNS: usize = 96;
    let _w = common::watchdog(60, "connection_coroutines_spread_over_many_workers");
    if !placed_work_checkable() {
        return;
    }
    let primaries = cores().min(8);
    let per_thread = connections_per_thread(8, CONNS);
    assert_eq!(per_thread.iter().sum::<usize>(), CONNS, "{per_thread:?}");
    let busiest = per_thread.iter().copied().max().unwrap_or(0);
    assert!(
        per_thread.len() == primaries && busiest <= CONNS * 3 / 4,
        "connections per worker thread: {per_thread:?} ({primaries} primaries should each serve some, none over {})",
        CONNS * 3 / 4
    );
}

/// A coroutine spins (a blocking call made outside `goro::blocking`) on the
/// worker the accept loop is not on, until a plain client thread has had
/// `CONNS` sequential echoes or 3 s have passed; whether the client
/// finished first, and how many echoes it had. The spin starts at once
/// (the client waits 300 ms, long enough for the monitor to see the hold)
/// or, with `spin_after`, once the client has had that many echoes.
///
/// Either way the client goes on only once the spinner is in its loop.
/// Before it waited for that, a loaded box could let the held worker
/// start the next connection's coroutine between the spinner's wake and
/// its loop; started there, that coroutine can never move, so its echo
/// waited for the spin to end (1 run in 20 of this binary beside two
/// spinning shells). That is the documented limit of a hold, not what the
/// tests below check.
fn echoes_beside_a_held_worker(spin_after: Option<usize>) -> (bool, usize) {
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;
    const CONNS: usize = 40;
    let rt = Runtime::builder().workers(2).build().unwrap();
    rt.run(move || {
        let ln = goro::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ln.local_addr().unwrap();
        let (acc_tx, acc_rx) = chan::<std::thread::ThreadId>(1);
        go(move || {
            acc_tx.send(std::thread::current().id()).unwrap();
            accept_loop(ln, PerThread::default());
        });
        let accept_thread = acc_rx.recv().unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let spinning = Arc::new(AtomicBool::new(false));
        let (go_tx, go_rx) = chan::<()>(1);
        let (d2, s2) = (done.clone(), spinning.clone());
        let client = std::thread::spawn(move || {
            let in_loop = || {
                let t0 = Instant::now();
                while !s2.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(10) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            };
            let first = spin_after.unwrap_or(0);
            if spin_after.is_none() {
                in_loop();
                std::thread::sleep(Duration::from_millis(300));
            }
            let mut conns = sequential_clients(addr, 0..first);
            go_tx.send(()).unwrap();
            in_loop();
            conns.extend(sequential_clients(addr, first..CONNS));
            d2.store(true, Ordering::SeqCst);
            conns.len()
        });
        // The spinner must hold the worker the accept loop is not on:
        // spawned from the blocking pool (the runtime's injector, any
        // worker may start it) until one starts there.
        let (where_tx, where_rx) = chan::<bool>(64);
        let spinner = loop {
            let (d, tx, go_rx, spinning) = (done.clone(), where_tx.clone(), go_rx.clone(), spinning.clone());
            let h = goro::blocking(move || {
                go(move || {
                    if std::thread::current().id() == accept_thread {
                        tx.send(false).unwrap();
                        return false;
                    }
                    tx.send(true).unwrap();
                    if spin_after.is_some() {
                        go_rx.recv().unwrap();
                    }
                    spinning.store(true, Ordering::SeqCst);
                    let t0 = Instant::now();
                    while !d.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(3) {
                        std::hint::spin_loop();
                    }
                    d.load(Ordering::SeqCst)
                })
            });
            if where_rx.recv().unwrap() {
                break h;
            }
        };
        let served_while_held = spinner.join().unwrap();
        let echoed = goro::blocking(move || client.join().unwrap());
        (served_while_held, echoed)
    })
    .unwrap()
}

/// Placement never hands a new coroutine to a worker held by one coroutine
/// (a blocking call made outside `goro::blocking`): only that worker may
/// start it, so it would wait for the hold to end. Before placement skipped
/// held workers, connections 17 and on went to the spinning worker's inbox,
/// the client waited for an echo that could not come, and the spinner gave
/// up after 3 s.
#[test]
fn connections_are_not_placed_on_a_worker_held_by_one_coroutine() {
    let _w = common::watchdog(60, "connections_are_not_placed_on_a_worker_held_by_one_coroutine");
    if !placed_work_checkable() {
        return;
    }
    let (served_while_held, echoed) = echoes_beside_a_held_worker(None);
    assert_eq!(echoed, 40);
    assert!(served_while_held, "the client's echoes waited for the spinning worker to be free");
}

/// A coroutine placed on a worker just before its hold began (the monitor
/// sees a hold only after a whole nap) is handed to another worker by the
/// monitor: it has not started, so any worker may start it. Here the spin
/// begins right after the 16th echo, so the next connection goes to the
/// spinning worker; before the monitor moved such coroutines, it waited
/// there until the spinner gave up after 3 s.
#[test]
fn a_coroutine_placed_just_before_a_hold_is_started_elsewhere() {
    let _w = common::watchdog(60, "a_coroutine_placed_just_before_a_hold_is_started_elsewhere");
    if !placed_work_checkable() {
        return;
    }
    let (served_while_held, echoed) = echoes_beside_a_held_worker(Some(16));
    assert_eq!(echoed, 40);
    assert!(served_while_held, "a connection placed on the spinning worker waited for it to be free");
}

/// A loop that spawns for a while without parking holds its worker; what it
/// has queued is a growing backlog, and another worker starts some of it
/// while the loop still runs (thieves see the loop's spawns as activity and
/// wait `BACKLOG`, 3 ms, not the 20 ms they give a worker whose thread
/// seems descheduled).
///
/// Each attempt spawns for 15 ms, under the 20 ms a thief would wait with
/// the old rule, so with that rule every attempt fails. Up to ten
/// attempts: the other worker's thread must also get a core within the 15
/// ms. With one spinning shell beside the binary, a single attempt failed
/// 4 runs in 30; with two, three attempts in a row failed once in 30 (the
/// binary's held-worker tests spin on both cores meanwhile).
#[test]
fn a_spawn_loop_shares_its_backlog_while_it_runs() {
    const ATTEMPTS: usize = 10;
    if !placed_work_checkable() {
        return;
    }
    let rt = goro::Runtime::builder().workers(2).build().unwrap();
    let tries = rt
        .run(|| {
            let me = std::thread::current().id();
            let mut tries = Vec::new();
            for _ in 0..ATTEMPTS {
                let elsewhere = Arc::new(AtomicBool::new(false));
                let start = Instant::now();
                let mut spawned = 0usize;
                let mut handles = Vec::new();
                // 15 ms of spawning, or until a spawned one started elsewhere.
                while start.elapsed() < Duration::from_millis(15) && !elsewhere.load(Ordering::Relaxed) {
                    let elsewhere = elsewhere.clone();
                    handles.push(go(move || {
                        if std::thread::current().id() != me {
                            elsewhere.store(true, Ordering::Relaxed);
                        }
                    }));
                    spawned += 1;
                }
                let seen = elsewhere.load(Ordering::Relaxed);
                // Parks: the backlog drains.
                for h in handles {
                    h.join().unwrap();
                }
                tries.push(spawned);
                if seen {
                    return None;
                }
                // Idle between attempts: the loop's worker finds its deque
                // empty (a new deque epoch), so no thief carries its first
                // look at this backlog into the next attempt (with the old
                // rule, ten back-to-back attempts added up to its 20 ms).
                goro::time::sleep(Duration::from_millis(25));
            }
            Some(tries)
        })
        .unwrap();
    if let Some(spawned) = tries {
        panic!(
            "in each of {ATTEMPTS} attempts, none of the coroutines spawned in 15 ms ({spawned:?}) started on the other worker while the loop ran"
        );
    }
}
