// The monitor thread (Go's `sysmon`), one per runtime.
//
// Owns: the long-run warning (once per coroutine that holds its worker for
// more than 100 ms without parking while work waits behind it), the load
// window (`WorkerShared::load`), the held flags (`WorkerShared::held`: one
// coroutine ran a whole nap; placement avoids such a worker, and the
// unstarted coroutines already placed in its inbox move to the injector,
// `rescue_unstarted`), the missed-wake backstop, and the cadence
// of the watch (`Shared::watch`: the deadlock detector) and of the driver's
// stale-poll backstop. It reads what workers publish (atomics, the
// registries under their locks) and takes from no queue but a held
// worker's inbox (its unstarted coroutines): nothing on the resume path.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::{Duration, Instant};

use super::{Shared, WorkerShared};
use crate::coroutine::{F_WARNED, NEW, NOTIFIED, RUNNING};

/// The runtime's monitor (Go's `sysmon`): warns once per coroutine that holds
/// its worker for more than 100 ms without parking, and searches for partial
/// deadlocks when a join or lock wait began (diag/deadlock.rs, "When").
/// Sleeps longer while the runtime is idle (at most 100 ms).
pub(crate) fn run(rt: Weak<Shared>) {
    const LIMIT: Duration = Duration::from_millis(100);
    // How long one coroutine must hold a primary before the coroutines
    // queued behind it may go to a spare (idle.rs rule 5).
    const HELD_FOR_SPARE: Duration = Duration::from_millis(50);
    let mut seen: Vec<(u64, u64, Instant)> = Vec::new();
    let mut nap = Duration::from_millis(10);
    let mut last_resumes: Vec<u64> = Vec::new();
    let mut last_spawned: Vec<u64> = Vec::new();
    crate::park::mark_internal_thread();
    loop {
        // park_timeout: `Runtime::drop` unparks us so shutdown never waits a nap.
        std::thread::park_timeout(nap);
        let Some(rt) = rt.upgrade() else { return };
        if rt.shutdown.load(Ordering::Acquire) {
            return;
        }
        // The deadlock watch (`diag/deadlock.rs`: the global rule, partial
        // cycles) and the driver's backstop (rule 3 of net/poller.rs: nobody
        // polled for a while, every worker stuck in a long coroutine).
        let watch = rt.watch.pass(&rt);
        super::driver::get().maintain(Duration::from_millis(10));
        let ws = rt.workers();
        seen.resize(ws.len(), (0, 0, Instant::now()));
        last_resumes.resize(ws.len(), 0);
        last_spawned.resize(ws.len(), 0);
        let now = Instant::now();
        let mut busy = false;
        let (mut stuck_primaries, mut work_waits, mut held_long) = (0, false, false);
        for (i, w) in ws.iter().enumerate() {
            // Backstop: a worker asleep with wake requests in its inbox
            // missed a wake-up (each push is followed by an unpark, so this
            // should never fire; if it does, the cost is one nap, not a
            // hang).
            if w.parker.is_asleep() && !w.inbox.is_empty() {
                w.parker.unpark();
            }
            // Did it spawn since the last pass? (Used below.)
            let spawned = w.spawned.load(Ordering::Relaxed);
            let spawning = std::mem::replace(&mut last_spawned[i], spawned) != spawned;
            let id = w.running.load(Ordering::Relaxed);
            let n = w.resumes.load(Ordering::Relaxed);
            w.load.store(n.wrapping_sub(last_resumes[i]), Ordering::Relaxed);
            last_resumes[i] = n;
            let held = id != 0 && seen[i].0 == id && seen[i].1 == n;
            // Written on a change only: placement reads it at spawns.
            if w.held.load(Ordering::Relaxed) != held {
                w.held.store(held, Ordering::Relaxed);
            }
            if id == 0 {
                seen[i] = (0, n, now);
                continue;
            }
            busy = true;
            if !held {
                seen[i] = (id, n, now);
                continue;
            }
            // Stuck on one coroutine for a whole nap.
            if rt.idle.is_primary(i) {
                stuck_primaries += 1;
            }
            // New coroutines placed in its inbox before it was seen held
            // would wait for the hold to end: any worker may start them.
            if !w.inbox.is_empty() && rescue_unstarted(w, &rt) {
                work_waits = true;
            }
            // New work waiting (its own queue, or spawns from outside): let
            // an idle primary take it (thieves then see the victim as
            // stuck), or, below, call a spare.
            if !w.stealer.is_empty() || !rt.injector.is_empty() {
                work_waits = true;
            }
            // Coroutines queued behind a primary held this long (a blocking
            // call, not a spawn loop) may not wait for the other primaries
            // to run dry: they may call a spare too.
            // (A coroutine that spawned since the last pass is a spawn loop
            // on the CPU, not a blocked thread: a spare would only add a
            // thread competing for the cores.)
            if rt.idle.is_primary(i)
                && !spawning
                && !w.stealer.is_empty()
                && now.duration_since(seen[i].2) >= HELD_FOR_SPARE
            {
                held_long = true;
            }
            // Warn only if something is stuck behind it on this worker: a
            // coroutine alone on its worker (a panic printing a backtrace,
            // main's spawn loop while others can steal) hurts nobody.
            if now.duration_since(seen[i].2) >= LIMIT && work_stuck_behind(w, id, ws.len(), now) {
                warn_long_run(w, id, now.duration_since(seen[i].2));
            }
        }
        // Idle.rs rule 5: a spare only when every primary is held (a
        // primary merely busy with many coroutines will get to the work).
        if work_waits {
            if stuck_primaries >= rt.idle.primaries || held_long {
                rt.notify_work_or_call_spare();
            } else {
                rt.notify_work();
            }
        }
        nap = if busy || watch.urgent { Duration::from_millis(10) } else { (nap * 2).min(Duration::from_millis(100)) };
        if let Some(at_most) = watch.nap_at_most {
            nap = nap.min(at_most);
        }
    }
}

/// Is other work waiting for worker `w`, held by coroutine `running`, to get
/// its thread back? A wake request or placed coroutine in its inbox, a timer
/// of its heap due, (a single worker: nobody can steal them) unstarted
/// coroutines in its deque, or another started coroutine homed there that
/// is runnable: a pinned started coroutine that is RUNNING or NOTIFIED but
/// not the running one sits in that worker's `runnext`, `ready` or
/// `yielded` (coroutine.rs, park state), which only the worker can read.
/// Called only once a coroutine has held its worker past the limit, so the
/// registry walk costs nothing on the scheduling path.
fn work_stuck_behind(w: &WorkerShared, running: u64, workers: usize, now: Instant) -> bool {
    let due = w.next_timer.load(Ordering::Relaxed);
    if !w.inbox.is_empty()
        || (workers == 1 && !w.stealer.is_empty())
        || (due != u64::MAX && super::clock_nanos(now) >= due)
    {
        return true;
    }
    w.registry.lock().iter().any(|c| c.id != running && matches!(c.state.load(Ordering::Relaxed), RUNNING | NOTIFIED))
}

/// Moves the unstarted coroutines of held worker `w`'s inbox (placed there
/// by a spawner, `WorkerLocal::push_new`) to the runtime's injector, where
/// any primary may take them; puts its wake requests (for coroutines homed
/// there, which only it may run) back. Whether it moved any.
///
/// Safe against the worker popping its inbox at the same time (its hold
/// just ended): each entry is taken once, by it or by us; a wake request
/// that comes back behind newer ones is applied all the same (they are for
/// different coroutines: one outstanding request per coroutine). An
/// unstarted coroutine is `NEW` until whoever took it from a queue starts
/// it, and nobody else holds it meanwhile.
fn rescue_unstarted(w: &WorkerShared, rt: &Shared) -> bool {
    let mut moved = false;
    let mut back = Vec::new();
    for _ in 0..w.inbox.len() {
        let co = loop {
            match w.inbox.steal() {
                crossbeam_deque::Steal::Success(co) => break Some(co),
                crossbeam_deque::Steal::Retry => continue,
                crossbeam_deque::Steal::Empty => break None,
            }
        };
        let Some(co) = co else { break };
        if co.state.load(Ordering::Acquire) == NEW {
            rt.injector.push(co);
            moved = true;
        } else {
            back.push(co);
        }
    }
    if !back.is_empty() {
        for co in back {
            w.inbox.push(co);
        }
        // As `request_wake` does: it may have gone to sleep meanwhile.
        w.parker.unpark_if_sleeping();
    }
    if moved {
        rt.notify_work();
    }
    moved
}

fn warn_long_run(w: &WorkerShared, id: u64, held: Duration) {
    let co = w.registry.lock().iter().find(|c| c.id == id).cloned();
    if let Some(co) = co {
        if co.flags.fetch_or(F_WARNED, Ordering::AcqRel) & F_WARNED == 0 {
            eprintln!(
                "goro: coroutine {} (spawned at {}) has held worker {} for {} ms without parking; \
                 the coroutines sharing that worker cannot run. Move blocking calls or long CPU work \
                 into goro::blocking(..), or call goro::yield_now() in long loops.",
                co.label(),
                co.spawned_at,
                w.index,
                held.as_millis()
            );
        }
    }
}
