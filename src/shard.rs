// Design notes for maintainers.
//
// Owns: `Counter`, a count that many threads change and few read, split
// into cache-line-sized shards so that changes do not fight over one line.
//
// Why: a counter bumped on every spawn and every exit by every worker (the
// runtime's live coroutines, the stacks in use) is one cache line that the
// workers take from each other on every change. On skynet (a million
// spawns on two workers) the two such counters took 18% of the run, each
// `lock` instruction waiting for the line to come back from the other core.
//
// Invariants:
//  1. A thread always changes the same shard (its index is chosen once,
//     round-robin, at its first change), so on a worker thread the line
//     stays in its own cache. Threads beyond `SHARDS` share shards: still
//     correct, just contended.
//  2. A shard may go negative (a stack taken on one thread and freed on
//     another): only the sum means anything.
//  3. `sum` is exact once the changes it must see happened before it
//     (each is a read-modify-write, so none is lost); taken while changes
//     race, it is some value the count passed through or will pass through,
//     never one that misses a change that happened before the call.
//
// No lock; nothing is taken under anything.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

/// Shards per counter: enough that the workers of a big machine rarely share
/// one, few enough that `sum` stays a handful of loads.
const SHARDS: usize = 16;

#[repr(align(128))]
struct Shard(AtomicI64);

/// A sharded count (module note).
pub(crate) struct Counter {
    shards: [Shard; SHARDS],
}

impl Counter {
    pub(crate) const fn new() -> Counter {
        Counter { shards: [const { Shard(AtomicI64::new(0)) }; SHARDS] }
    }

    /// Adds `n` (negative to take away). Release: a reader whose `sum` saw
    /// this change sees what the caller did before it.
    #[inline]
    pub(crate) fn add(&self, n: i64) {
        self.shards[my_shard()].0.fetch_add(n, Ordering::AcqRel);
    }

    /// The count (invariant 3); never below zero for a count of things.
    pub(crate) fn sum(&self) -> u64 {
        let s: i64 = self.shards.iter().map(|s| s.0.load(Ordering::Acquire)).sum();
        s.max(0) as u64
    }
}

/// This thread's shard (invariant 1).
#[inline]
fn my_shard() -> usize {
    thread_local!(static MINE: Cell<usize> = const { Cell::new(usize::MAX) });
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    MINE.try_with(|m| {
        let i = m.get();
        if i != usize::MAX {
            return i;
        }
        let i = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
        m.set(i);
        i
    })
    // A thread-local being torn down (a stack freed by a thread-local's
    // destructor): any shard is correct.
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::Counter;

    #[test]
    fn changes_on_many_threads_sum_exactly() {
        static C: Counter = Counter::new();
        std::thread::scope(|s| {
            for t in 0..24 {
                s.spawn(move || {
                    for _ in 0..10_000 {
                        C.add(1);
                    }
                    // Half the threads take back what others added: shards go
                    // negative (invariant 2), the sum does not.
                    if t % 2 == 1 {
                        for _ in 0..15_000 {
                            C.add(-1);
                        }
                    }
                });
            }
        });
        assert_eq!(C.sum(), 24 * 10_000 - 12 * 15_000);
    }
}
