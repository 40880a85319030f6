//! Stacks: segmented growth with maybe_grow, deep unwinding, many deep
//! coroutines, memory given back, and overflow reports (in child processes).

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use goro::stack::{maybe_grow, remaining};

mod common;
use common::{overflow, rt, DropCount};

/// `stats().stack_segments` is process-wide: tests that use segments and
/// assert on that count take turns.
static SEGMENT_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn segment_lock() -> std::sync::MutexGuard<'static, ()> {
    SEGMENT_TESTS.lock().unwrap_or_else(|e| e.into_inner())
}

fn deep_sum(n: u64) -> u64 {
    maybe_grow(32 * 1024, 1 << 20, || {
        let mut pad = [0u64; 16];
        pad[(n % 16) as usize] = n;
        let pad = std::hint::black_box(pad);
        if n == 0 {
            0
        } else {
            deep_sum(n - 1) + pad[(n % 16) as usize]
        }
    })
}

#[test]
fn a_million_levels_with_maybe_grow() {
    let _turn = segment_lock();
    let v = goro::run(|| {
        let s = deep_sum(1_000_000);
        (s, goro::stats().stack_segments)
    });
    assert_eq!(v.0, 1_000_000 * 1_000_001 / 2);
    assert_eq!(v.1, 0, "segments are returned when the recursion unwinds");
    // And on a plain thread.
    let t = std::thread::Builder::new().stack_size(256 * 1024).spawn(|| deep_sum(200_000)).unwrap();
    assert_eq!(t.join().unwrap(), 200_000 * 200_001 / 2);
}

#[test]
fn remaining_shrinks_with_depth() {
    goro::run(|| {
        let top = remaining();
        assert!(top > 100 * 1024 && top <= 8 * 1024 * 1024, "{top}");
        fn inner(d: usize) -> usize {
            let pad = std::hint::black_box([0u8; 1024]);
            if d == 0 {
                remaining() + pad[0] as usize
            } else {
                inner(d - 1)
            }
        }
        assert!(inner(10) < top);
    });
}

#[test]
fn ten_thousand_coroutines_recursing() {
    let _turn = segment_lock();
    let sum = goro::run(|| {
        let hs: Vec<_> = (0..10_000u64).map(|i| goro::go(move || deep_sum(200 + i % 100))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    let want: u64 = (0..10_000u64).map(|i| (200 + i % 100) * (201 + i % 100) / 2).sum();
    assert_eq!(sum, want);
}

fn deep_panic(n: u32, c: &Arc<AtomicUsize>) -> u32 {
    maybe_grow(32 * 1024, 256 * 1024, || {
        let _guard = DropCount(c.clone());
        if n == 0 {
            panic!("bottom reached");
        }
        deep_panic(n - 1, c) + 1
    })
}

#[test]
fn panic_unwinds_through_segments() {
    let _turn = segment_lock();
    let drops = Arc::new(AtomicUsize::new(0));
    let d2 = drops.clone();
    let err = goro::run(move || goro::go(move || deep_panic(100_000, &d2)).join().unwrap_err());
    assert_eq!(err.downcast_ref::<&str>(), Some(&"bottom reached"));
    assert_eq!(drops.load(Ordering::SeqCst), 100_001);
    assert_eq!(goro::stats().stack_segments, 0);
}

#[test]
fn many_idle_coroutines_cost_little() {
    goro::run(|| {
        let (tx, rx) = goro::chan::<()>(0);
        let hs: Vec<_> = (0..50_000)
            .map(|_| {
                let rx = rx.clone();
                goro::go(move || {
                    let _ = rx.recv();
                })
            })
            .collect();
        while goro::num_coroutines() < 50_001 {
            goro::yield_now();
        }
        let s = goro::stats();
        assert!(s.stacks_in_use >= 50_000, "{s:?}");
        assert!(s.stack_bytes_reserved >= 50_000 * 256 * 1024);
        tx.close();
        for h in hs {
            h.join().unwrap();
        }
    });
}

/// Child bodies, selected by env var (the test re-runs its own binary).
#[test]
fn child_bodies() {
    match std::env::var("GORO_STACK_CHILD").as_deref() {
        Ok("overflow") => {
            goro::run(|| {
                let h =
                    goro::Builder::new().name("deep-diver").stack_size(64 * 1024).spawn(|| overflow(1 << 30)).unwrap();
                h.join().unwrap()
            });
        }
        Ok("segv") => {
            goro::run(|| {
                goro::go(|| {
                    let p = std::hint::black_box(std::ptr::null::<u64>());
                    // SAFETY: not safe at all: this child exists to crash.
                    unsafe { std::ptr::read_volatile(p) }
                })
                .join()
                .unwrap()
            });
        }
        Ok("thread-overflow") => {
            // goro's handler is installed by the runtime's workers...
            rt(1).run(|| goro::go(|| 1).join().unwrap()).unwrap();
            #[allow(unconditional_recursion)]
            fn boom(n: u64) -> u64 {
                let frame = std::hint::black_box([n as u8; 1024]);
                boom(n + 1) + frame[3] as u64
            }
            // ...and a plain thread's overflow must still get Rust's report.
            std::thread::Builder::new().name("plain".into()).spawn(|| boom(0)).unwrap().join().ok();
            unreachable!("the overflow must abort");
        }
        Ok("probe_batch") => {
            let (batched, big) = alone(|| {
                const N: usize = 640;
                let before = (goro::stack::__probes().0, goro::stack::__deep_reclaims());
                // All alive at once, so each runs on a fresh slot, and
                // ten batches of 64 end: one deep stack, the rest
                // parked until the close.
                let deep = goro::go(go_deep);
                let (tx, rx) = goro::chan::<()>(0);
                let hs: Vec<_> = (1..N)
                    .map(|_| {
                        let rx = rx.clone();
                        goro::go(move || {
                            let _ = rx.recv();
                        })
                    })
                    .collect();
                deep.join().unwrap();
                tx.close();
                for h in hs {
                    h.join().unwrap();
                }
                let batched = (goro::stack::__probes().0 - before.0, goro::stack::__deep_reclaims() - before.1);
                // A big stack is probed alone, as it ends: a deep one
                // gives its pages back at once.
                let before = goro::stack::__deep_reclaims();
                goro::Builder::new().stack_size(4 << 20).spawn(go_deep).unwrap().join().unwrap();
                (batched, goro::stack::__deep_reclaims() - before)
            });
            let (probes, reclaims) = batched;
            println!("probes {probes} reclaims {reclaims} big {big}");
        }
        Ok("probe_sparse") => {
            let (calls, pages) = alone(|| {
                const N: usize = 640;
                // All alive at once on fresh neighbouring slots; then
                // every tenth ends: one batch of 64 slots, ten slots
                // (800 pages) apart.
                let (txs, hs): (Vec<_>, Vec<_>) = (0..N)
                    .map(|_| {
                        let (tx, rx) = goro::chan::<()>(0);
                        (tx, goro::go(move || rx.recv().is_err()))
                    })
                    .unzip();
                let before = goro::stack::__probes();
                let mut rest = Vec::new();
                for (i, (tx, h)) in txs.into_iter().zip(hs).enumerate() {
                    if i % 10 == 0 {
                        tx.close();
                        assert!(h.join().unwrap());
                    } else {
                        rest.push((tx, h));
                    }
                }
                // The 65th slot's free flushes the batch of 64.
                let (tx, h) = rest.pop().unwrap();
                tx.close();
                assert!(h.join().unwrap());
                let after = goro::stack::__probes();
                let probed = (after.0 - before.0, after.1 - before.1);
                for (tx, h) in rest {
                    tx.close();
                    assert!(h.join().unwrap());
                }
                probed
            });
            println!("sparse calls {calls} pages {pages}");
        }
        Ok("deferred") => {
            let (at_return, after_idle) = alone(|| {
                let before = goro::stack::__deep_reclaims();
                // Some 24 MiB of recursion through 1 MiB segments, then
                // back: the joiner runs next on this worker, before it
                // idles.
                assert_eq!(goro::go(|| segments_deep(24 * 1024)).join().unwrap(), 24 * 1024);
                let at_return = goro::stack::__deep_reclaims() - before;
                // The worker has nothing to do while this sleeps.
                goro::time::sleep(std::time::Duration::from_millis(20));
                (at_return, goro::stack::__deep_reclaims() - before)
            });
            println!("deferred {at_return} {after_idle}");
        }
        Ok("reclaim") => {
            let counts = alone(|| {
                let shallow = || goro::go(|| std::hint::black_box(7u64)).join().unwrap();
                for _ in 0..200 {
                    shallow();
                }
                let after_shallow = goro::stack::__deep_reclaims();
                goro::Builder::new().stack_size(256 * 1024).spawn(go_deep).unwrap().join().unwrap();
                let after_deep = goro::stack::__deep_reclaims();
                // The next coroutine reuses that slot (LIFO): its deep
                // pages were given back, so it is shallow again.
                for _ in 0..200 {
                    shallow();
                }
                (after_shallow, after_deep, goro::stack::__deep_reclaims())
            });
            println!("reclaims {counts:?}");
        }
        _ => {}
    }
}

/// Recurses `n` levels of a 1 KiB frame through 1 MiB segments.
fn segments_deep(n: u64) -> u64 {
    let mut pad = [1u8; 1024];
    std::hint::black_box(&mut pad);
    if n == 0 {
        return 0;
    }
    goro::stack::maybe_grow(64 * 1024, 1 << 20, || segments_deep(n - 1)) + pad[7] as u64
}

/// Writes 96 KiB of stack, past the kept top of a freed slot (`KEEP`, 32
/// KiB), so the slot counts as deep. By reference: `black_box([..])` by
/// value copies the array twice more in a debug build, past a 256 KiB stack.
fn go_deep() {
    let mut pad = [1u8; 96 * 1024];
    std::hint::black_box(&mut pad);
    pad[5] = 2;
    std::hint::black_box(&pad);
}

/// Runs child `which`, which must succeed, and returns the numbers on its
/// stdout line after `prefix`.
fn child_numbers(which: &str, prefix: &str) -> Vec<u64> {
    let out = run_child(which);
    let (stdout, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "status {:?}, stderr: {err}", out.status);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once(prefix))
        .unwrap_or_else(|| panic!("stdout: {stdout}, stderr: {err}"))
        .1;
    line.split(' ').filter_map(|w| w.parse().ok()).collect()
}

/// Runs `f` as the main coroutine of a one-worker runtime; in a child
/// process of its own, nothing else frees stacks meanwhile.
fn alone<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    goro::Runtime::builder().workers(1).build().unwrap().run(f).unwrap()
}

fn run_child(which: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_bodies", "--nocapture", "--test-threads=1"])
        .env("GORO_STACK_CHILD", which)
        .output()
        .unwrap()
}

#[test]
fn overflow_names_the_coroutine_and_aborts() {
    use std::os::unix::process::ExitStatusExt;
    let out = run_child("overflow");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc_sigabrt()), "status {:?}, stderr: {err}", out.status);
    assert!(err.contains("\"deep-diver\" has overflowed its stack (stack size 65536 bytes)"), "{err}");
    assert!(err.contains("stack_size") && err.contains("maybe_grow"), "{err}");
}

#[test]
fn other_faults_stay_segfaults() {
    use std::os::unix::process::ExitStatusExt;
    let out = run_child("segv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(11), "status {:?}, stderr: {err}", out.status);
    assert!(!err.contains("overflowed"), "{err}");
}

fn libc_sigabrt() -> i32 {
    6
}

#[test]
fn plain_thread_overflow_still_reported_by_std() {
    use std::os::unix::process::ExitStatusExt;
    let out = run_child("thread-overflow");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc_sigabrt()), "status {:?}, stderr: {err}", out.status);
    assert!(err.contains("thread 'plain'") && err.contains("has overflowed its stack"), "{err}");
}

/// Recursion that keeps crossing the same segment boundary: each crossing
/// reuses the thread's hot segment; values and the segment count stay right.
#[test]
fn crossing_one_boundary_many_times() {
    let _turn = segment_lock();
    let v = goro::run(|| {
        let mut s = 0u64;
        for i in 0..100_000u64 {
            // A red zone the stack never has: every call takes a segment.
            s += maybe_grow(usize::MAX, 64 * 1024, || {
                assert!(remaining() > 32 * 1024, "a segment has room: {}", remaining());
                deep_sum(i % 8)
            });
        }
        (s, goro::stats().stack_segments)
    });
    assert_eq!(v.0, (0..100_000u64).map(|i| (i % 8) * (i % 8 + 1) / 2).sum::<u64>());
    assert_eq!(v.1, 0);
}

/// 640 coroutines end on slots never probed: one `mincore` per run of
/// neighbouring slots of each batch of 64, not one per slot (invariant 4 of
/// `stack/mod.rs`), and a deep one among them still gives its pages back;
/// a big stack (over 1 MiB) is probed alone, at once.
#[test]
fn fresh_slots_are_probed_a_batch_at_a_time() {
    let nums = child_numbers("probe_batch", "probes ");
    assert!(nums[0] <= 640 / 8, "{} mincore calls to probe 640 freed slots", nums[0]);
    assert_eq!(nums[1], 1, "deep stacks given back (calls, deep, big): {nums:?}");
    assert_eq!(nums[2], 1, "a big deep stack given back as it ended (calls, deep, big): {nums:?}");
}

/// 64 slots freed ten slots apart are asked about one by one, not with
/// calls spanning the 800 pages between them (invariant 4's `PROBE_GAP`):
/// the walk across the gaps cost the `timers` workload more than the calls.
#[test]
fn slots_freed_far_apart_are_probed_without_walking_the_gaps() {
    let nums = child_numbers("probe_sparse", "sparse calls ");
    let (calls, pages) = (nums[0], nums[1]);
    assert!(pages <= 4 * 64, "{pages} pages walked to probe 64 slots 800 pages apart ({calls} calls)");
    assert!(calls >= 64, "64 slots freed, {calls} mincore calls asked about them");
}

/// A recursion through some twenty 1 MiB segments gives their pages back
/// when its worker runs out of work, not on its way out (invariant 4 of
/// `stack/mod.rs`, `flush_idle`): what runs next does not wait for it.
#[test]
fn deep_segments_are_given_back_when_the_worker_idles() {
    let nums = child_numbers("deferred", "deferred ");
    let (at_return, after_idle) = (nums[0], nums[1]);
    assert_eq!(at_return, 0, "deep stacks given back before the worker idled: {at_return}");
    assert!(after_idle >= 16, "deep stacks given back once the worker idled: {after_idle}");
}

#[test]
fn a_deep_stack_gives_its_memory_back_a_shallow_one_keeps_it() {
    let out = run_child("reclaim");
    let (stdout, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "status {:?}, stderr: {err}", out.status);
    assert!(stdout.contains("reclaims (0, 1, 1)"), "stdout: {stdout}, stderr: {err}");
}
