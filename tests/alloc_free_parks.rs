//! A park on a channel allocates nothing (`chan/imp.rs` invariant 6): the
//! waiting op lives in the parked party's frame and its channel's queue
//! links it in place (invariant 8). Counted with a global allocator of
//! this test binary's own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Runs `f` as the main coroutine of a fresh one-worker runtime. The count
/// is process-wide: the tests of this binary take turns, or one would
/// count the other's allocations.
fn on_one_worker<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    goro::Runtime::builder().workers(1).build().unwrap().run(f).unwrap()
}

/// The allocations made while `f` runs, and what it returned.
fn allocs_in<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCS.load(Ordering::SeqCst);
    let r = f();
    (ALLOCS.load(Ordering::SeqCst) - before, r)
}

/// `N` hand-offs, each over a channel never used before, so each park is
/// its channel's first: the queue of a fresh channel must not allocate
/// (a `VecDeque` queue allocated its buffer on each first park).
#[test]
fn parking_on_fresh_channels_allocates_nothing() {
    const N: usize = 2000;
    let (allocs, got) = on_one_worker(|| {
        let pairs: Vec<_> = (0..N).map(|_| goro::chan::<usize>(0)).collect();
        let (txs, rxs): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        let (done_tx, done_rx) = goro::chan::<usize>(1);
        // One worker: the receiver parks on each channel before the
        // sender comes (the sender yields first), every time.
        let h = goro::go(move || {
            let mut sum = 0;
            for rx in &rxs {
                sum += rx.recv().unwrap();
            }
            done_tx.send(sum).unwrap();
            rxs
        });
        goro::yield_now(); // let it start and park on the first channel
        let counted = allocs_in(|| {
            for (i, tx) in txs.iter().enumerate() {
                tx.send(i).unwrap();
                goro::yield_now(); // let it park on the next one
            }
            done_rx.recv().unwrap()
        });
        drop(h.join().unwrap());
        counted
    });
    assert_eq!(got, N * (N - 1) / 2);
    // Nothing per park; a few stray ones (the monitor thread's) at most.
    assert!(allocs < N / 10, "{allocs} allocations for {N} parks on fresh channels");
}

/// A spawn on a recycled (warm) stack allocates nothing from the global
/// allocator: its control block comes from goro's own slab
/// (`coroutine/block.rs`; it was one allocation per spawn), the result lives
/// in the block (a separate `Arc`'d packet was another), and a `()` result
/// boxes for free.
#[test]
fn a_warm_spawn_allocates_nothing() {
    const N: usize = 2000;
    let (allocs, sum) = on_one_worker(|| {
        // Warm up: stacks recycled into this worker's cache, the registry
        // grown, the slab's first chunk carved.
        for _ in 0..64 {
            goro::go(|| ()).join().unwrap();
        }
        allocs_in(|| {
            let mut sum = 0;
            for i in 0..N {
                goro::go(|| ()).join().unwrap();
                sum += i;
            }
            sum
        })
    });
    assert_eq!(sum, N * (N - 1) / 2);
    // A few stray ones (the monitor thread's) at most.
    assert!(allocs < N / 10, "{allocs} allocations for {N} spawns");
}

/// The first park on a fresh `goro::sync::Mutex` allocates nothing: its
/// queue is a list through the waiting parties' own slots (a `VecDeque`
/// queue allocated its buffer on each lock's first contended park).
#[test]
fn parking_on_fresh_mutexes_allocates_nothing() {
    const N: usize = 2000;
    let (allocs, count) = on_one_worker(|| {
        let locks: Vec<_> = (0..N).map(|_| std::sync::Arc::new(goro::sync::Mutex::new(0u64))).collect();
        let (done_tx, done_rx) = goro::chan::<()>(1);
        // The child takes each lock in turn; main holds them all and lets
        // go of one at a time, so each of the child's parks is that
        // mutex's first.
        let (child_locks, child_done) = (locks.clone(), done_tx);
        let h = goro::go(move || {
            for m in &child_locks {
                *m.lock() += 1;
            }
            drop(child_done);
        });
        let mut guards: Vec<_> = locks.iter().map(|m| m.lock()).collect();
        guards.reverse();
        let (allocs, ()) = allocs_in(|| {
            while let Some(g) = guards.pop() {
                goro::yield_now(); // the child parks on this fresh lock
                drop(g); // and takes it, then parks on the next one
            }
        });
        assert!(done_rx.recv().is_err());
        h.join().unwrap();
        (allocs, locks.iter().map(|m| *m.lock()).sum::<u64>())
    });
    assert_eq!(count, N as u64);
    assert!(allocs < N / 10, "{allocs} allocations for {N} first parks on fresh mutexes");
}

/// A park on a contended `goro::sync::Mutex` allocates nothing either: the
/// waiting party's slot lives in its own frame (`sync/waitq.rs`), where an
/// `Arc` per park used to.
#[test]
fn parking_on_a_contended_mutex_allocates_nothing() {
    const N: u64 = 2000;
    let (allocs, count) = on_one_worker(|| {
        let m = std::sync::Arc::new(goro::sync::Mutex::new(0u64));
        let m2 = m.clone();
        // One worker: each round, main holds the lock while the child
        // tries it and parks; main's unlock lets it in.
        let h = goro::go(move || {
            for _ in 0..N {
                *m2.lock() += 1;
                goro::yield_now();
            }
        });
        let round = || {
            let g = m.lock();
            goro::yield_now(); // the child parks on the lock
            drop(g);
            goro::yield_now(); // the child takes it, counts, lets go
        };
        for _ in 0..8 {
            round(); // warm up: the queue's buffer, the registry
        }
        let (allocs, ()) = allocs_in(|| {
            for _ in 8..N {
                round();
            }
        });
        h.join().unwrap();
        let count = *m.lock();
        (allocs, count)
    });
    assert_eq!(count, N);
    // Nothing per park; a few stray ones (the monitor thread's) at most.
    assert!(allocs < N as usize / 10, "{allocs} allocations for {} parks on a contended mutex", N - 8);
}
