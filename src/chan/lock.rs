//! The channel lock: a mutex whose uncontended unlock is a plain store.
//!
//! Owns: [`ChanMutex`], the lock of every channel (`imp.rs`), and
//! [`RawLock`], its raw form that `select` takes on several channels at
//! once.
//!
//! Why not `parking_lot::Mutex`: a hand-off on a channel takes its lock
//! twice (the party that completes, the party that queues), and a mutex
//! that can put waiters to sleep usually pays a locked read-modify-write on
//! unlock too, to learn whether anyone sleeps. On a ping-pong those four
//! locked instructions were a seventh of the time per message. Here unlock
//! is a Release store of "unlocked" followed by a plain load of the sleeper
//! count, and it pays a system call only when someone sleeps.
//!
//! Protocol (Dekker's, made asymmetric):
//!  * unlock: store `state = 0`; *light barrier*; load `sleepers`; if
//!    non-zero, `futex_wake(state)`.
//!  * a locker that has spun in vain: `sleepers += 1`; *heavy barrier*; then,
//!    until it holds the lock: try to take it, else `futex_wait(state, 1)`.
//!
//! Either the unlocker's load sees the sleeper (and wakes it), or the
//! sleeper's next look at `state` sees the unlock: never neither, provided
//! the two barriers together order each side's store before its load. With
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` the heavy barrier forces a
//! full barrier on every running thread of the process, so the light one is
//! only a compiler fence (the scheme of liburcu and of Folly's
//! `asymmetricHeavyBarrier`). Where the kernel lacks it, the light barrier
//! is a full fence and the heavy one a full fence after the increment. The
//! choice is made once, before the first channel exists (`ChanMutex::new`),
//! so every unlock agrees with every sleeper. `GORO_CHAN_BARRIER=fence` in
//! the environment forces the fallback (its test runs that way).
//!
//! Waiting uses a futex on Linux. Elsewhere the sleeper waits with
//! `std::thread::park` on a short timeout ladder instead (there is no
//! futex to hand the address to), which is correct, only slower when
//! contended.
//!
//! A spinning phase comes first: channel critical sections are a few dozen
//! instructions, so a contended lock is almost always free again within a
//! microsecond. The lock is not fair (nor is Go's `runtime.lock`); a sleeper
//! that loses the race after a wake goes back to sleep and is woken again
//! by the next unlock, since it still counts as a sleeper.

use std::cell::UnsafeCell;
use std::sync::atomic::{compiler_fence, AtomicU8, Ordering};

// The protocol's atomics: std's, or loom's in the model checker's build
// (`crate::loom`; the checks are in `lock_loom.rs`). `BARRIER` is not part
// of the protocol (decided once before any lock exists) and stays std.
use crate::loom::atomic::{fence, AtomicU32};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;

/// Spins before sleeping: 240 `pause`s in all (a few microseconds), in
/// four rounds of 16 looks that pause 1, 2, 4 and 8 times between looks.
#[cfg(not(all(test, goro_loom)))]
const SPINS: u32 = 64;
/// Under the model checker: one look, so both the spin and the sleep paths
/// are explored without blowing up the state space.
#[cfg(all(test, goro_loom))]
const SPINS: u32 = 1;

/// How unlock and sleep order their store and load (module doc).
static BARRIER: AtomicU8 = AtomicU8::new(UNDECIDED);
const UNDECIDED: u8 = 0;
/// `membarrier` is registered: unlock needs only a compiler fence.
const ASYMMETRIC: u8 = 1;
/// No `membarrier`: unlock fences.
const SYMMETRIC: u8 = 2;

/// Decides the barrier scheme once for the process.
#[cold]
fn decide_barrier() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let forced = std::env::var_os("GORO_CHAN_BARRIER").is_some_and(|v| v == "fence");
        let mode = if !forced && sys::register_membarrier() { ASYMMETRIC } else { SYMMETRIC };
        BARRIER.store(mode, Ordering::SeqCst);
    });
}

/// The raw lock: a state word and a count of parties asleep (or about to
/// sleep) on it.
#[derive(Debug)]
pub(crate) struct RawLock {
    state: AtomicU32,
    sleepers: AtomicU32,
}

/// Proof of one acquisition of a [`RawLock`] (zero-sized), handed back to
/// `unlock`.
#[derive(Debug)]
pub(crate) struct Held(());

impl RawLock {
    fn new() -> RawLock {
        if BARRIER.load(Ordering::Acquire) == UNDECIDED {
            decide_barrier();
        }
        RawLock { state: AtomicU32::new(UNLOCKED), sleepers: AtomicU32::new(0) }
    }

    #[inline]
    pub(crate) fn lock(&self) -> Held {
        if self.state.compare_exchange_weak(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_contended();
        }
        Held(())
    }

    #[cold]
    fn lock_contended(&self) {
        for i in 0..SPINS {
            if self.state.load(Ordering::Relaxed) == UNLOCKED
                && self.state.compare_exchange_weak(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_ok()
            {
                return;
            }
            for _ in 0..(1 << (i / 16).min(3)) {
                std::hint::spin_loop();
            }
        }
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        // The heavy barrier (module doc). In the fallback it is a full
        // fence, not the `SeqCst` increment alone: a `SeqCst` read-modify-
        // write is no fence for the *later* Relaxed load of `state` (C11
        // lets that load read a stale LOCKED while the unlocker's load reads
        // a stale 0 sleepers: a store-buffering lost wake-up; on AArch64 an
        // LL/SC increment really lets the load pass its store). x86's locked
        // add is a full barrier anyway. Found by `lock_loom.rs`.
        if BARRIER.load(Ordering::Relaxed) == ASYMMETRIC {
            sys::heavy_barrier();
        } else {
            fence(Ordering::SeqCst);
        }
        let mut naps = 0u32;
        loop {
            if self.state.load(Ordering::Relaxed) == UNLOCKED
                && self.state.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_ok()
            {
                break;
            }
            sys::wait(&self.state, LOCKED, naps);
            naps = naps.saturating_add(1);
        }
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// # Safety
    ///
    /// `held` is this lock's current acquisition (the caller holds it).
    #[inline]
    pub(crate) unsafe fn unlock(&self, held: Held) {
        let _ = held;
        // Saved stack copies edited under this lock are released first
        // (stack/swap.rs note 5).
        if crate::stack::swap::enabled() {
            crate::stack::swap::end_edits();
        }
        self.state.store(UNLOCKED, Ordering::Release);
        // The store above must be ordered before the load below against a
        // sleeper's increment and look (module doc): a compiler fence
        // suffices when sleepers use `membarrier`, a full fence otherwise.
        if BARRIER.load(Ordering::Relaxed) == ASYMMETRIC {
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            sys::wake_one(&self.state);
        }
    }
}

/// A mutex over `T` built on [`RawLock`].
pub(crate) struct ChanMutex<T> {
    raw: RawLock,
    data: UnsafeCell<T>,
}

// SAFETY: the lock gives one thread at a time access to `data`, which moves
// between threads with it: as `std::sync::Mutex`, Send + Sync for T: Send.
unsafe impl<T: Send> Send for ChanMutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for ChanMutex<T> {}

impl<T> ChanMutex<T> {
    pub(crate) fn new(v: T) -> ChanMutex<T> {
        ChanMutex { raw: RawLock::new(), data: UnsafeCell::new(v) }
    }

    #[inline]
    pub(crate) fn lock(&self) -> ChanMutexGuard<'_, T> {
        let held = self.raw.lock();
        ChanMutexGuard { m: self, held: Some(held) }
    }

    /// The raw lock, for a caller that locks and unlocks by hand (`select`).
    pub(crate) fn raw(&self) -> &RawLock {
        &self.raw
    }

    /// The protected data; dereference it only while holding the lock.
    pub(crate) fn data_ptr(&self) -> *mut T {
        self.data.get()
    }
}

/// A held [`ChanMutex`].
pub(crate) struct ChanMutexGuard<'a, T> {
    m: &'a ChanMutex<T>,
    held: Option<Held>,
}

impl<T> std::ops::Deref for ChanMutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: we hold the lock.
        unsafe { &*self.m.data.get() }
    }
}

impl<T> std::ops::DerefMut for ChanMutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: we hold the lock, through `&mut self`: exclusive.
        unsafe { &mut *self.m.data.get() }
    }
}

impl<T> Drop for ChanMutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if let Some(h) = self.held.take() {
            // SAFETY: `h` is this guard's acquisition.
            unsafe { self.m.raw.unlock(h) };
        }
    }
}

#[cfg(all(goro_linux, not(all(test, goro_loom))))]
mod sys {
    use std::sync::atomic::AtomicU32;

    // <linux/membarrier.h>
    const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
    const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    fn membarrier(cmd: libc::c_int) -> libc::c_long {
        // SAFETY: membarrier takes two integers and touches no memory of ours.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_uint, 0 as libc::c_int) }
    }

    /// Registers this process for expedited private membarriers; false if
    /// the kernel (or a seccomp filter) does not offer them.
    pub(super) fn register_membarrier() -> bool {
        let q = membarrier(MEMBARRIER_CMD_QUERY);
        q >= 0
            && q & MEMBARRIER_CMD_PRIVATE_EXPEDITED as libc::c_long != 0
            && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0
    }

    pub(super) fn heavy_barrier() {
        let r = membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
        // Registered before the first lock existed; it cannot fail later.
        assert!(r == 0, "goro: membarrier failed after registration: {}", std::io::Error::last_os_error());
    }

    /// Sleeps while `*word == expected` (or until woken, or spuriously).
    pub(super) fn wait(word: &AtomicU32, expected: u32, _naps: u32) {
        // SAFETY: FUTEX_WAIT reads the u32 at a valid, aligned address that
        // outlives the call (we borrow it); no timeout.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                expected,
                std::ptr::null::<libc::timespec>(),
            );
        }
    }

    pub(super) fn wake_one(word: &AtomicU32) {
        // SAFETY: FUTEX_WAKE only uses the address as a key.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1);
        }
    }
}

#[cfg(all(not(goro_linux), not(all(test, goro_loom))))]
mod sys {
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    pub(super) fn register_membarrier() -> bool {
        false
    }

    pub(super) fn heavy_barrier() {}

    /// No futex: nap on a ladder from 10 µs to 1 ms, re-checking between
    /// naps (the caller loops until it holds the lock).
    pub(super) fn wait(word: &AtomicU32, expected: u32, naps: u32) {
        if word.load(std::sync::atomic::Ordering::Relaxed) == expected {
            std::thread::park_timeout(Duration::from_micros(10u64 << naps.min(7)));
        }
    }

    pub(super) fn wake_one(_word: &AtomicU32) {}
}

/// Under the model checker: no `membarrier` (loom cannot model a barrier
/// forced onto other threads), so the checked mode is the fence fallback,
/// and the futex is loom's stand-in (`crate::loom::futex`).
#[cfg(all(test, goro_loom))]
mod sys {
    use crate::loom::atomic::AtomicU32;

    pub(super) fn register_membarrier() -> bool {
        false
    }

    pub(super) fn heavy_barrier() {
        unreachable!("no membarrier under loom");
    }

    pub(super) fn wait(word: &AtomicU32, expected: u32, _naps: u32) {
        crate::loom::futex::wait(word, expected);
    }

    pub(super) fn wake_one(_word: &AtomicU32) {
        crate::loom::futex::wake();
    }
}

#[cfg(all(test, goro_loom))]
#[path = "lock_loom.rs"]
mod loom_tests;

#[cfg(all(test, not(goro_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Four threads (more than this box has cores) add to a counter under
    /// the lock: none of the 400 000 increments may be lost, and nobody may
    /// sleep for ever (a lost wake-up hangs this test).
    #[test]
    fn contended_counter() {
        let m = Arc::new(ChanMutex::new(0u64));
        let ts: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..100_000u64 {
                        *m.lock() += 1;
                        if i % 1000 == 0 {
                            // Hold it a while now and then, so others sleep.
                            let g = m.lock();
                            std::thread::sleep(std::time::Duration::from_micros(50));
                            drop(g);
                        }
                    }
                })
            })
            .collect();
        // A lost wake-up would hang a sleeper: fail instead of hanging.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for t in ts {
                t.join().unwrap();
            }
            done_tx.send(()).unwrap();
        });
        done_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the lockers did not finish in 60 s: a lost wake-up?");
        assert_eq!(*m.lock(), 400_000);
        if std::env::var_os("GORO_CHAN_BARRIER").is_some() {
            assert_eq!(BARRIER.load(Ordering::Relaxed), SYMMETRIC, "the fallback was asked for");
        }
    }

    /// The same under the fallback barrier (full fences, no membarrier),
    /// which the kernel here would not pick by itself: the test binary runs
    /// itself again with the fallback forced.
    #[test]
    fn contended_counter_with_fences() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "chan::lock::tests::contended_counter", "--test-threads=1"])
            .env("GORO_CHAN_BARRIER", "fence")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("1 passed"), "{text}");
    }
}
