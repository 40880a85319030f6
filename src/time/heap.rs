// The per-worker timer heap: deadlines armed on a worker fire from that
// worker's loop, with no lock shared with other workers.
//
// Owns: one heap per worker thread (a thread-local, installed when the
// worker starts through the driver seam, `sched/driver.rs`, and handed off
// when it exits), holding two kinds of entries: the wake of a parked
// coroutine (`park_deadline`) and a channel timer (`time::after`, `Timer`,
// `Ticker`) armed on this worker.
//
// Rules:
//  1. An entry is *live* while its `seq` equals its coroutine's `timer_seq`
//     (wakes; only the home worker writes it) or its timer's armed seq
//     (channel timers). Stale entries (woken otherwise, stopped, reset) are
//     skipped when they come up; when the heap has doubled it is compacted
//     (amortised O(1)).
//  2. `WorkerShared::timers_pending` counts live wake entries exactly (the
//     deadlock detector reads it). A park that returns for another reason
//     disarms its entry (`disarm_wake`).
//  3. `WorkerShared::next_timer` is the earliest live deadline, lowered as
//     timers are armed and recomputed after they fire (a disarmed early
//     entry may leave it early until then: a long-run warning too many,
//     never one too few).
//  4. No `RefCell` borrow is held while an entry fires: firing may arm the
//     next tick of a ticker here.
//  5. A worker that exits (its runtime is dropped) passes its live channel
//     timers to the timer thread, so their receivers still get them.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::ChanTimer;
use crate::coroutine::{CoInner, CoRef};
use crate::sched::{clock_nanos, WorkerShared};

struct WakeTimer {
    at: Instant,
    seq: u64,
    what: Due,
}

enum Due {
    /// Live while `co.timer_seq == seq` (only this worker writes it).
    Wake(CoRef),
    /// Live while the timer's armed seq equals `seq`.
    Chan(ChanTimer),
}

impl WakeTimer {
    fn live(&self) -> bool {
        match &self.what {
            Due::Wake(co) => co.timer_seq.get() == self.seq,
            Due::Chan(t) => t.armed_seq() == self.seq,
        }
    }
}
impl PartialEq for WakeTimer {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for WakeTimer {}
impl PartialOrd for WakeTimer {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for WakeTimer {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct Heap {
    shared: Arc<WorkerShared>,
    timers: BinaryHeap<Reverse<WakeTimer>>,
    seq: u64,
    /// Heap size that triggers the next compaction (stale entries).
    compact_at: usize,
}

thread_local! {
    /// This worker thread's heap (None off the workers).
    static HEAP: RefCell<Option<Heap>> = const { RefCell::new(None) };
}

/// A worker thread starts: it gets a heap.
pub(crate) fn install(shared: &Arc<WorkerShared>) {
    HEAP.with(|h| {
        *h.borrow_mut() = Some(Heap { shared: shared.clone(), timers: BinaryHeap::new(), seq: 0, compact_at: 1024 })
    });
}

/// A worker thread exits: its live channel timers go to the timer thread
/// (rule 5); wakes are dropped with their coroutines.
pub(crate) fn hand_off() {
    let Some(heap) = HEAP.with(|h| h.borrow_mut().take()) else { return };
    for Reverse(t) in heap.timers {
        if let Due::Chan(c) = t.what {
            if c.armed_seq() == t.seq {
                super::schedule_on_driver(t.at, t.seq, c);
            }
        }
    }
}

/// Whether this worker's heap holds any entry (live or stale).
#[inline]
pub(crate) fn has_timers() -> bool {
    HEAP.with(|h| h.borrow().as_ref().is_some_and(|h| !h.timers.is_empty()))
}

fn push(h: &mut Heap, t: WakeTimer) {
    let at = t.at;
    h.timers.push(Reverse(t));
    if h.timers.len() >= h.compact_at {
        // Amortised O(1): compact only when the heap has doubled.
        h.timers.retain(|t| t.0.live());
        h.compact_at = (2 * h.timers.len()).max(1024);
    }
    let at = clock_nanos(at);
    if at < h.shared.next_timer.load(Ordering::Relaxed) {
        h.shared.next_timer.store(at, Ordering::Relaxed);
    }
}

/// Arms a wake of `co`, the coroutine running on this worker, at `at`.
pub(crate) fn add_wake(at: Instant, co: CoRef) {
    HEAP.with(|h| {
        let mut h = h.borrow_mut();
        let Some(h) = h.as_mut() else { return };
        h.seq += 1;
        let seq = h.seq;
        co.timer_seq.set(seq);
        h.shared.timers_pending.fetch_add(1, Ordering::SeqCst);
        push(h, WakeTimer { at, seq, what: Due::Wake(co) });
    })
}

/// Arms channel timer `t` (generation `seq`) on this worker; gives it back
/// off the workers.
pub(crate) fn add_chan(at: Instant, seq: u64, t: ChanTimer) -> Result<(), ChanTimer> {
    HEAP.with(|h| match h.borrow_mut().as_mut() {
        Some(h) => {
            push(h, WakeTimer { at, seq, what: Due::Chan(t) });
            Ok(())
        }
        None => Err(t),
    })
}

/// The park that armed a wake returned: the entry goes stale (rule 2).
pub(crate) fn disarm_wake(co: &CoInner) {
    if co.timer_seq.get() != 0 {
        co.timer_seq.set(0);
        HEAP.with(|h| {
            if let Some(h) = h.borrow().as_ref() {
                h.shared.timers_pending.fetch_sub(1, Ordering::SeqCst);
            }
        });
    }
}

/// Fires the due entries (rule 4: no borrow held while one fires).
pub(crate) fn fire() {
    let now = Instant::now();
    loop {
        let t = HEAP.with(|h| {
            let mut h = h.borrow_mut();
            let h = h.as_mut()?;
            let Reverse(t) = match h.timers.peek() {
                Some(t) if t.0.at <= now => h.timers.pop()?,
                _ => return None,
            };
            if let Due::Wake(co) = &t.what {
                if co.timer_seq.get() == t.seq {
                    co.timer_seq.set(0);
                    h.shared.timers_pending.fetch_sub(1, Ordering::SeqCst);
                } else {
                    return Some(None); // stale: skip
                }
            }
            Some(Some(t))
        });
        let Some(t) = t else { break };
        let Some(t) = t else { continue };
        match t.what {
            Due::Wake(co) => co.wake(),
            Due::Chan(c) => c.fire(t.at, t.seq, now),
        }
    }
    // Rule 3: publish the earliest live deadline.
    let next = next_deadline();
    HEAP.with(|h| {
        if let Some(h) = h.borrow().as_ref() {
            h.shared.next_timer.store(next.map_or(u64::MAX, clock_nanos), Ordering::Relaxed);
        }
    });
}

/// The earliest live deadline (stale entries at the top are dropped).
pub(crate) fn next_deadline() -> Option<Instant> {
    HEAP.with(|h| {
        let mut h = h.borrow_mut();
        let h = h.as_mut()?;
        while let Some(t) = h.timers.peek() {
            if t.0.live() {
                return Some(t.0.at);
            }
            h.timers.pop();
        }
        None
    })
}
