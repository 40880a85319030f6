//! Swapping long-parked stacks out of memory (`RuntimeBuilder::
//! swap_parked_after`, `src/stack/swap.rs`): frames come back intact,
//! wakers racing the swap lose nothing, writers from other threads are not
//! lost, and stacks goro lends out are never swapped.

mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use goro::{chan, go, select, Runtime};

fn swap_rt(workers: usize, after: Duration) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .swap_parked_after(Some(after))
        .build()
        .expect("this test needs MADV_GUARD_INSTALL (Linux 6.13+), which CI has")
}

/// Polls `f` (from a coroutine) until true or `secs` pass.
fn eventually(secs: u64, what: &str, f: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        goro::time::sleep(ms(2));
    }
}

/// A frame worth checking: `n` words derived from `seed`.
fn pattern(seed: u64) -> [u64; 48] {
    let mut p = [0u64; 48];
    for (i, w) in p.iter_mut().enumerate() {
        *w = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i as u64 * 7919) | 1;
    }
    std::hint::black_box(p)
}

/// From a coroutine: parks `n` coroutines, each holding a `pattern` frame in
/// a two-case select, until all are parked and most of their stacks are
/// swapped out; hands the stats of that moment to `inspect`; then releases
/// them all (by closing the second case's channel) and returns how many
/// found their frame intact.
fn park_swap_release(n: u64, inspect: impl FnOnce(&goro::Stats)) -> u64 {
    let (start_tx, start_rx) = chan::<()>(0);
    let parked = Arc::new(AtomicU64::new(0));
    let hs: Vec<_> = (0..n)
        .map(|i| {
            let (start, parked) = (start_rx.clone(), parked.clone());
            go(move || {
                let (_own_tx, own) = chan::<u64>(0);
                let pad = pattern(i);
                parked.fetch_add(1, Ordering::Relaxed);
                select! {
                    recv(own) -> _ => unreachable!(),
                    recv(start) -> v => assert!(v.is_err()),
                }
                std::hint::black_box(&pad);
                pad == pattern(i)
            })
        })
        .collect();
    eventually(10, "all parked", || parked.load(Ordering::Relaxed) == n);
    eventually(10, "most swapped out", || goro::stats().stacks_swapped_out >= n * 9 / 10);
    inspect(&goro::stats());
    start_tx.close();
    hs.into_iter().map(|h| h.join().unwrap()).filter(|&ok| ok).count() as u64
}

#[test]
fn a_parked_stack_goes_out_and_comes_back_intact() {
    let rt = swap_rt(2, ms(10));
    within(30, "swap round trip", move || {
        rt.run(|| {
            let before = goro::stats();
            let (tx, rx) = chan::<u64>(0);
            let h = go(move || {
                let pad = pattern(7);
                let v = rx.recv().unwrap();
                std::hint::black_box(&pad);
                (v, pad == pattern(7))
            });
            eventually(5, "the parked stack is swapped out", || goro::stats().stack_swap_outs > before.stack_swap_outs);
            // The counters are process-wide (other tests swap too): give the
            // receiver's worker time for a few sweeps of its own.
            goro::time::sleep(ms(100));
            let s = goro::stats();
            assert!(s.stacks_swapped_out >= 1 && s.stack_bytes_swapped > 0, "{s:?}");
            // The handover writes into the receiver's op, which is in the
            // saved copy now: it edits the copy, the stack stays out until
            // the receiver runs.
            tx.send(41).unwrap();
            assert_eq!(h.join().unwrap(), (41, true));
            assert!(goro::stats().stack_swap_edits > before.stack_swap_edits);
        })
        .unwrap()
    });
}

/// Waiters on a `goro::sync::Mutex` keep their queue slot in their own
/// frame (`sync/waitq.rs`): a holder granting the lock writes into the
/// stack of a waiter that may be swapped out, which brings it back (a
/// fault, restored) and loses nothing.
#[test]
fn mutex_waiters_swapped_out_get_the_lock_in_turn() {
    const N: u64 = 40;
    let rt = swap_rt(2, ms(10));
    within(60, "swapped mutex waiters", move || {
        rt.run(|| {
            let before = goro::stats();
            let m = Arc::new(goro::sync::Mutex::new(Vec::new()));
            let parked = Arc::new(AtomicU64::new(0));
            let g = m.lock();
            let hs: Vec<_> = (0..N)
                .map(|i| {
                    let (m, parked) = (m.clone(), parked.clone());
                    go(move || {
                        let pad = pattern(i);
                        parked.fetch_add(1, Ordering::Relaxed);
                        m.lock().push(i);
                        std::hint::black_box(&pad);
                        pad == pattern(i)
                    })
                })
                .collect();
            eventually(10, "all waiters are queued", || parked.load(Ordering::Relaxed) == N);
            eventually(10, "waiters' stacks are swapped out", || {
                goro::stats().stack_swap_outs >= before.stack_swap_outs + N / 2
            });
            goro::time::sleep(ms(50));
            drop(g);
            let intact = hs.into_iter().map(|h| h.join().unwrap()).filter(|&ok| ok).count();
            assert_eq!(intact as u64, N);
            let mut got = m.lock().clone();
            got.sort_unstable();
            assert_eq!(got, (0..N).collect::<Vec<_>>());
            let s = goro::stats();
            // Granting touched swapped waiters' slots: restored by faults
            // (40 of 40 here when run alone).
            assert!(s.stack_swap_faults > before.stack_swap_faults, "{s:?}");
        })
        .unwrap()
    });
}

#[test]
fn many_parked_selects_cost_less_than_a_page_each_and_wake_intact() {
    const N: u64 = 2000;
    let rt = swap_rt(2, ms(10));
    within(60, "many swapped selects", move || {
        rt.run(|| {
            let intact = park_swap_release(N, |s| {
                let each = s.stack_bytes_swapped / s.stacks_swapped_out;
                // Unoptimised frames (a debug build) are several times
                // larger: 7.2 KB there.
                let bound = if cfg!(debug_assertions) { 12_000 } else { 3000 };
                assert!(each < bound, "a swapped select keeps {each} bytes: {s:?}");
            });
            assert_eq!(intact, N);
        })
        .unwrap()
    });
}

#[test]
fn senders_racing_swap_outs_lose_nothing() {
    const RECEIVERS: usize = 64;
    const VALUES: u64 = 150;
    let rt = swap_rt(2, ms(1));
    within(120, "racing senders", move || {
        rt.run(|| {
            let before = goro::stats();
            let mut txs = Vec::new();
            let mut hs = Vec::new();
            for r in 0..RECEIVERS {
                let (tx, rx) = chan::<u64>(0);
                let (tx2, rx2) = chan::<u64>(1);
                txs.push((tx, tx2));
                hs.push(go(move || {
                    let pad = pattern(r as u64);
                    let (mut next, mut sum) = (0u64, 0u64);
                    while next < VALUES {
                        // Even values come by a plain recv, odd ones
                        // through a select on the other channel.
                        let v = if next % 2 == 0 {
                            rx.recv().unwrap()
                        } else {
                            select! {
                                recv(rx2) -> v => v.unwrap(),
                                recv(goro::never::<u64>()) -> _ => unreachable!(),
                            }
                        };
                        assert_eq!(v, next, "receiver {r}: out of order or lost");
                        sum += v;
                        next += 1;
                        assert!(pad == pattern(r as u64), "receiver {r}: its frame changed");
                    }
                    sum
                }));
            }
            // Plain threads send, with pauses long enough for the receivers
            // to be swapped out between values.
            let senders: Vec<_> = txs
                .chunks(RECEIVERS / 4)
                .map(|chunk| {
                    let chunk = chunk.to_vec();
                    std::thread::spawn(move || {
                        for v in 0..VALUES {
                            for (tx, tx2) in chunk.iter() {
                                if v % 2 == 1 {
                                    tx2.send(v).unwrap();
                                } else {
                                    tx.send(v).unwrap();
                                }
                            }
                            if v % 8 == 0 {
                                std::thread::sleep(Duration::from_millis(3));
                            }
                        }
                    })
                })
                .collect();
            let total: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            for s in senders {
                s.join().unwrap();
            }
            assert_eq!(total, RECEIVERS as u64 * (VALUES * (VALUES - 1) / 2));
            let s = goro::stats();
            assert!(s.stack_swap_outs - before.stack_swap_outs >= 50, "too few swaps to test anything: {s:?}");
            assert!(s.stack_swap_edits > before.stack_swap_edits, "no waker met a swapped stack: {s:?}");
        })
        .unwrap()
    });
}

#[test]
fn a_thread_writing_into_a_parked_stack_is_not_lost() {
    const WRITERS: usize = 8;
    const WRITES: u64 = 400;
    let rt = swap_rt(2, ms(1));
    within(60, "scoped writers", move || {
        rt.run(|| {
            let hs: Vec<_> = (0..WRITERS)
                .map(|_| {
                    go(|| {
                        let mut counter = 0u64;
                        let (tx, rx) = chan::<()>(0);
                        std::thread::scope(|s| {
                            let c = &mut counter;
                            s.spawn(move || {
                                for _ in 0..WRITES {
                                    // SAFETY-free: a plain write through a
                                    // `&mut` into the parked coroutine's frame.
                                    *std::hint::black_box(&mut *c) += 1;
                                    std::thread::sleep(Duration::from_micros(200));
                                }
                                tx.send(()).unwrap();
                            });
                            // Parked here (swappable) while the thread writes.
                            rx.recv().unwrap();
                        });
                        counter
                    })
                })
                .collect();
            for h in hs {
                assert_eq!(h.join().unwrap(), WRITES);
            }
            // The writers' stores met swapped stacks (faults), not copies.
            assert!(goro::stats().stack_swap_faults > 0);
        })
        .unwrap()
    });
}

#[test]
fn a_goro_scope_parent_is_never_swapped() {
    // A scope's child hands the parent's buffer to the kernel (read(2) from
    // a pipe). Were the parent's stack swapped out, that read would fail
    // with EFAULT; a parent inside a scope is never swapped.
    let rt = swap_rt(2, ms(2));
    within(30, "scope parent", move || {
        rt.run(|| {
            let (mut r, mut w) = std::io::pipe().unwrap();
            w.write_all(&[7u8; 64]).unwrap();
            let mut buf = [0u8; 64];
            let (tx, rx) = chan::<usize>(0);
            goro::scope(|s| {
                let buf = &mut buf;
                let r = &mut r;
                s.go(move || {
                    goro::time::sleep(ms(60)); // the parent is parked by now, long
                    let n = r.read(buf).expect("read into the parent's stack");
                    tx.send(n).unwrap();
                });
                assert_eq!(rx.recv().unwrap(), 64);
            });
            assert_eq!(buf, [7u8; 64]);
        })
        .unwrap()
    });
}

#[test]
fn a_bad_swap_setting_in_the_environment_is_a_clear_error() {
    // Read only at build; another test's runtime may be building at the
    // same time, so use a process of our own.
    let out = run_child_test("env_child", &[("GORO_SWAP_PARKED_MS", "soon")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("GORO_SWAP_PARKED_MS=\"soon\" is not a number of milliseconds"), "{text}");
}

#[test]
#[ignore = "run by a_bad_swap_setting_in_the_environment_is_a_clear_error"]
fn env_child() {
    let e = Runtime::builder().build().unwrap_err();
    println!("{e}");
}

/// The figures `windows_child` prints on its line starting with `key`. The
/// child runs once for all tests that read it, alone in a process of its
/// own: its stacks are carved fresh, one after another, and no other test
/// swaps meanwhile (the counters are process-wide).
fn child_figures(key: &str) -> Vec<u64> {
    static OUT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = OUT.get_or_init(|| {
        let out = run_child_test("windows_child", &[]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "the child failed: {text}{}", String::from_utf8_lossy(&out.stderr));
        text
    });
    let line = text.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no figures: {text}"));
    line.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect()
}

/// `windows_child`'s (stacks swapped out, windows) on its line `key`.
fn windows_figures(key: &str) -> (u64, u64) {
    let v = child_figures(key);
    assert!(v[0] >= 900, "too few swaps to test anything: {v:?}");
    (v[0], v[1])
}

#[test]
fn adjacent_parked_stacks_share_a_window() {
    let (outs, windows) = windows_figures("windows ");
    // One window per run of up to 64 adjacent slots (swap.rs note 6); one
    // per stack before.
    assert!(windows * 8 <= outs, "{windows} windows for {outs} swap-outs: the batch did not share them");
}

#[test]
fn a_mass_wake_brings_adjacent_stacks_back_in_shared_windows() {
    // The child's release wakes all 1000 at once, and they queue on their
    // one worker in slot order.
    let (outs, windows) = windows_figures("restores ");
    // One window per run of adjacent slots queued together (swap.rs note
    // 8); one per stack before.
    assert!(windows * 8 <= outs, "{windows} restore windows for {outs} swapped stacks: the wake did not share them");
}

#[test]
#[ignore = "run by adjacent_parked_stacks_share_a_window"]
fn windows_child() {
    const N: u64 = 1000;
    let rt = swap_rt(1, ms(10));
    rt.run(|| {
        let mut rss_parked = 0;
        let intact = park_swap_release(N, |s| {
            println!("windows {} {}", s.stack_swap_outs, s.stack_swap_windows);
            rss_parked = vm_rss_kib();
        });
        assert_eq!(intact, N, "frames damaged by a shared window");
        let s = goro::stats();
        println!("restores {} {}", s.stack_swap_outs, s.stack_restore_windows);
        let (slots, calls) = goro::stack::__cold_give_backs();
        println!("cold {slots} {calls} {} {}", vm_rss_kib().saturating_sub(rss_parked), s.stack_swap_outs);
    })
    .unwrap();
}

/// This process's resident memory now, in KiB.
fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn restored_stacks_go_back_cold_a_batch_at_a_time() {
    let v = child_figures("cold ");
    let (slots, calls, grew_kib, outs) = (v[0], v[1], v[2], v[3]);
    let line = format!("{v:?}");
    // Every swapped stack (each swapped once here: it parks once) came back
    // for its coroutine's end, a page or two each; its slot then went back
    // cold (stack invariant 8), all but the last batch's (at most 64 wait
    // on the worker).
    assert!(outs >= 900, "too few swaps to test anything: {line}");
    assert!(slots + 64 >= outs, "{slots} slots went back cold of {outs} swapped stacks: {line}");
    // One call per batch of 64 (one per slot before).
    assert!(calls * 8 <= slots, "{calls} calls gave back {slots} slots: {line}");
    // And the pages really went: 1000 restored pages kept would be 4000 KiB.
    assert!(grew_kib < 1500, "resident memory grew by {grew_kib} KiB over the mass wake: {line}");
}

/// How many bytes of the alternate signal stack `f` leaves touched, run on
/// a plain thread that installs a patterned one of its own.
fn alt_stack_bytes_used(f: impl FnOnce()) -> usize {
    const SIZE: usize = 64 * 1024;
    let mut alt = vec![0xA5u8; SIZE];
    let ss = libc::stack_t { ss_sp: alt.as_mut_ptr().cast(), ss_flags: 0, ss_size: SIZE };
    // SAFETY: a plain C struct, all zeroes a valid value (the call fills it).
    let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: `alt` outlives its use as this thread's signal stack: the old
    // one (std's) is put back below, before `alt` is read or freed.
    assert_eq!(unsafe { libc::sigaltstack(&ss, &mut old) }, 0);
    f();
    // SAFETY: std's stack again, which it keeps until the thread ends.
    assert_eq!(unsafe { libc::sigaltstack(&old, std::ptr::null_mut()) }, 0);
    // Signal stacks grow down from the top: the lowest changed byte.
    SIZE - alt.iter().position(|&b| b != 0xA5).unwrap_or(SIZE)
}

#[test]
fn restoring_on_a_plain_threads_fault_fits_a_small_signal_stack() {
    // A plain thread that touches a swapped-out stack runs goro's fault
    // handler, and the restore, on its own alternate signal stack: std's,
    // 8 KiB on x86-64 Linux (SIGSTKSZ). A restore once overflowed it in an
    // unoptimised build (a 1 KiB array on the handler's path). Measured in
    // a child process of its own, so that the swap and the fault are this
    // test's (the counters are process-wide).
    let out = run_child_test("alt_stack_child", &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "the child failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    let line = text.lines().find(|l| l.starts_with("altstack ")).unwrap_or_else(|| panic!("no figures: {text}"));
    let v: Vec<usize> = line.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
    let (used, faults) = (v[0], v[1]);
    assert!(faults > 0, "the write met no swapped stack: {line}");
    // Part of it is the kernel's signal frame (the saved registers and
    // vector state: 1.8 KiB here, ~3.5 KiB with AVX-512), which the kernel
    // states as AT_MINSIGSTKSZ. goro's own frames measured 0.7 KiB
    // optimised and 1.7 KiB unoptimised; with the array that overflowed
    // std's stack, 2.7 and 7.1 KiB.
    // SAFETY: getauxval reads the process's auxiliary vector.
    let frame = match unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize {
        0 => 2048, // an older kernel: MINSIGSTKSZ
        n => n,
    };
    let budget = if cfg!(debug_assertions) { 3 * 1024 } else { 1536 };
    assert!(used >= frame, "no signal was handled on the writer's stack: {line}");
    assert!(
        used <= frame + budget,
        "a restore by fault used {used} bytes of a signal stack: more than the kernel's frame ({frame}) + {budget}"
    );
}

#[test]
#[ignore = "run by restoring_on_a_plain_threads_fault_fits_a_small_signal_stack"]
fn alt_stack_child() {
    let rt = swap_rt(1, ms(1));
    let used = within(60, "the plain writer", move || {
        rt.run(|| {
            // The frame lives in a spawned coroutine (main is never swapped).
            go(|| {
                let mut counter = 0u64;
                let (tx, rx) = chan::<usize>(0);
                let used = std::thread::scope(|s| {
                    let c = &mut counter;
                    s.spawn(move || {
                        let used = alt_stack_bytes_used(|| {
                            // Wait until the parked frame is out, then write.
                            let end = Instant::now() + Duration::from_secs(10);
                            while goro::stats().stacks_swapped_out == 0 && Instant::now() < end {
                                std::thread::sleep(Duration::from_millis(2));
                            }
                            *std::hint::black_box(&mut *c) += 1;
                        });
                        tx.send(used).unwrap();
                    });
                    // Parked here (swappable) while the thread waits, then writes.
                    rx.recv().unwrap()
                });
                assert_eq!(counter, 1, "the write into the swapped frame was lost");
                used
            })
            .join()
            .unwrap()
        })
        .unwrap()
    });
    println!("altstack {used} {}", goro::stats().stack_swap_faults);
}
