//! The model-checking facade: where the protocols that `scripts/loom.sh`
//! checks take their atomics from.
//!
//! Owns: nothing at run time. In every normal build [`atomic`] is a plain
//! re-export of `std::sync::atomic`, so the channel lock (`chan/lock.rs`),
//! the selector (`chan/imp.rs`) and the wait queue (`sync/waitq.rs`)
//! compile to exactly the std types. In the lib's unit-test build with
//! `--cfg goro_loom` they are loom's, and the `loom_tests` modules beside those
//! files run the real code under the model checker. This module also holds
//! the few stand-ins that real code needs there (a futex) and the model of
//! the park/wake protocol (`park_model`), whose real code (corosensei
//! switches, thread-locals, crossbeam queues) cannot run under loom.
//!
//! Invariants: only `cfg(all(test, goro_loom))` changes anything here; loom
//! objects exist only inside `loom::model` runs (outside one, creating a
//! channel panics in such a build, so that build runs the models only).
//! Lock order: none (the futex stand-in's lock is a leaf).
//!
//! Why `all(test, goro_loom)` and harnesses inside `src/` rather than in
//! `tests/loom_*.rs`: loom is a dev-dependency, which only the lib's own
//! unit-test build links; an integration test links the lib built without
//! it. And the code under test (`RawLock`, `Selector`, the grant's
//! publication) is crate-private: an integration test could only reach it
//! by widening visibility. So the harnesses are `#[cfg(all(test, goro_loom))]`
//! modules next to the code they check, and one command runs them all:
//! `cargo test --lib -- loom` (see `scripts/loom.sh`).

/// `std::sync::atomic`, or loom's under the model checker.
pub(crate) mod atomic {
    #[cfg(all(test, goro_loom))]
    pub(crate) use ::loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicUsize};
    #[cfg(not(all(test, goro_loom)))]
    pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicUsize};
}

/// A stand-in for the kernel's futex under loom (`chan/lock.rs`'s `sys`):
/// one wait queue for every address (as a futex hash bucket shared by all
/// words: wake-ups may be spurious, which every caller tolerates).
/// `wait` checks the word and enqueues atomically with respect to `wake`,
/// as the kernel does under its bucket lock. The word is read Relaxed:
/// weaker than the kernel's read (which follows a full barrier), so the
/// model can only find more lost wake-ups than the real thing, not fewer.
#[cfg(all(test, goro_loom))]
pub(crate) mod futex {
    use ::loom::sync::atomic::AtomicU32;
    use ::loom::sync::{Condvar, Mutex};
    use std::sync::atomic::Ordering;

    struct Bucket {
        /// Bumped by each wake; a waiter sleeps until it changes.
        wakes: Mutex<u64>,
        cv: Condvar,
    }

    ::loom::lazy_static! {
        static ref BUCKET: Bucket = Bucket { wakes: Mutex::new(0), cv: Condvar::new() };
    }

    /// `FUTEX_WAIT`: sleeps while `*word == expected`, until a `wake`.
    pub(crate) fn wait(word: &AtomicU32, expected: u32) {
        let mut g = BUCKET.wakes.lock().unwrap();
        if word.load(Ordering::Relaxed) != expected {
            return;
        }
        let seen = *g;
        while *g == seen {
            g = BUCKET.cv.wait(g).unwrap();
        }
    }

    /// `FUTEX_WAKE` (of one or more: see the type doc).
    pub(crate) fn wake() {
        *BUCKET.wakes.lock().unwrap() += 1;
        BUCKET.cv.notify_all();
    }
}

/// Runs `f` under loom with this crate's default bound: at most 3
/// preemptions per execution (`LOOM_MAX_PREEMPTIONS` overrides), which keeps
/// every model here within seconds to a minute on 2 cores while covering the
/// interleavings that matter (each protocol's race is two or three
/// preemptions deep).
#[cfg(all(test, goro_loom))]
pub(crate) fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut b = ::loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

#[cfg(all(test, goro_loom))]
mod park_model;
