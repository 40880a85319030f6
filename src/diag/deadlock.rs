//! Partial deadlocks and dumps.
//!
//! Owns: the wait-for-cycle finder the monitor runs, the policy for what a
//! found cycle does ([`PartialDeadlockPolicy`]), `dump()`, and the SIGQUIT
//! dump thread.
//!
//! The *global* rule lives in `global.rs` (the watch the runtime installs in
//! each `Shared`; the report is `report.rs`) and is documented for users on `Runtime::run`: all workers
//! asleep, no timer, blocking job or socket wait, and zero *active* plain
//! threads, stable for a 500 ms grace period with nothing resumed and no
//! plain thread woken. A plain thread (not a worker or other goro thread)
//! registers on its first goro call and is active except while parked in an
//! untimed goro wait (`park.rs` keeps the count; the waker re-counts it
//! before it runs). Threads that never called goro are covered by the grace
//! period only. A registered thread blocked outside goro for ever prevents
//! every verdict: a false negative by design, never a false positive.
//!
//! A *partial* deadlock is a cycle of coroutines each waiting on something
//! whose owner is known: `join` of a coroutine (exact), or a `Mutex` or
//! `RwLock` (`diag::LockWait`: the holders if first in line, else the party
//! queued just ahead; the lock rewrites the record under its queue lock
//! whenever that changes). The rest of the program may run on, so the
//! global rule never sees it. Each such wait needs *every* one of its
//! targets to move (a writer needs all read holders to leave), so any cycle
//! of wait-for edges is a deadlock (no knot needed). A writer waiting on
//! several readers has several edges, so a pass finds the strongly connected
//! components (Tarjan, linear) and reports each one that has a cycle. Plain
//! threads are unknown owners: they have no node, so they break cycles
//! (false negatives only). A record can be stale only between a grant and
//! the wake that follows the unlock (the grantee is still parked for a
//! moment), so a cycle is acted on only when seen on two consecutive passes
//! with every member parked; and between a cancel and the moment its home
//! resumes the cancelled coroutine to unwind, which may be long (its worker
//! held by another coroutine), so such a coroutine is no node at all
//! (`F_CANCEL_WAKE`, set by the cancel, cleared when it parks again while
//! unwinding, a real wait then).
//!
//! When: a cycle can only form when some party parks on a join or a lock,
//! or a lock rewrites a waiter's record; each bumps `OWNER_EPOCH`. The
//! monitor searches when the epoch moved (and once more on its next pass:
//! a party counted just before it switched out may not have looked parked
//! yet), and, while a cycle waits for its confirming second sighting, every
//! `SEARCH_EVERY`; never while nothing waits on a join or a lock
//! (`OWNER_WAITS`). Its nap is at most 100 ms idle, so a cycle is reported
//! about 100 ms + `SEARCH_EVERY` after it forms at worst (busy: ~20 ms).
//! `Runtime::run` runs [`final_check`] when main returns with leftovers,
//! before cancelling them, so a cycle still standing then is reported.
//! Checks are serialized (`CHECKING`), so a cycle is reported once.
//!
//! Cost: nothing on the hot path (a Relaxed increment on the slow paths of
//! join and lock waits); no search at all while the epoch stands still.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex as StdMutex, OnceLock, Weak};

use crate::wait::{At, PartialDeadlockPolicy, WaitReason, OWNER_WAITS};

/// Minimum time between two searches, and the delay of the confirming one.
pub(crate) const SEARCH_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// Serializes checks (monitor passes and `final_check`): a cycle is
/// confirmed and reported by one of them only.
static CHECKING: StdMutex<()> = StdMutex::new(());

use crate::coroutine::{CoRef, F_CANCEL_WAKE, F_PARTIAL, PARKED};
use crate::sched::Shared;

/// The coroutines a wait waits for: its wait-for edges.
fn edges(w: &WaitReason) -> Vec<u64> {
    match w {
        WaitReason::Join { id } => vec![*id],
        _ => w.lock_wait().map_or_else(Vec::new, |(_, wait_for)| wait_for.edges().collect()),
    }
}

/// Finds cycles among parked coroutines (one monitor pass). Returns the
/// cycles (as member lists) that were also seen on the previous pass.
pub(crate) fn find_cycles(rt: &Shared) -> Vec<Vec<CoRef>> {
    let all = rt.all_coroutines();
    // Nodes: parked coroutines with an owner-known wait, not yet handled.
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut nodes: Vec<(&CoRef, Vec<u64>)> = Vec::new();
    for c in &all {
        // A cancelled one whose wake is pending will unwind, whatever its
        // stale record says (F_CANCEL_WAKE).
        if c.state.load(Ordering::Acquire) != PARKED || c.has_flag(F_PARTIAL | F_CANCEL_WAKE) {
            continue;
        }
        let out = edges(&c.wait.get());
        if !out.is_empty() {
            index.insert(c.id, nodes.len());
            nodes.push((c, out));
        }
    }
    let adj: Vec<Vec<usize>> =
        nodes.iter().map(|(_, out)| out.iter().filter_map(|id| index.get(id).copied()).collect()).collect();
    let cycles: Vec<Vec<u64>> = strongly_connected(&adj)
        .into_iter()
        .filter(|comp| comp.len() > 1 || adj[comp[0]].contains(&comp[0]))
        .map(|comp| {
            let mut ids: Vec<u64> = comp.iter().map(|&i| nodes[i].0.id).collect();
            ids.sort_unstable();
            ids
        })
        .collect();
    let mut prev = rt.partial_seen.lock();
    let confirmed: Vec<Vec<u64>> = cycles.iter().filter(|c| prev.contains(*c)).cloned().collect();
    *prev = cycles;
    confirmed
        .into_iter()
        .map(|cyc| cyc.iter().filter_map(|id| index.get(id).map(|&i| nodes[i].0.clone())).collect())
        .collect()
}

/// The strongly connected components of a graph given as adjacency lists
/// (Tarjan's algorithm, with an explicit stack: the graph may have
/// thousands of nodes).
fn strongly_connected(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    struct Walk {
        /// Visit order of each node (UNSEEN before), and the lowest order
        /// reachable from it through the current search tree.
        order: Vec<usize>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        /// The recursion, made explicit: (node, next edge to follow).
        calls: Vec<(usize, usize)>,
        next: usize,
    }
    impl Walk {
        fn visit(&mut self, v: usize) {
            self.order[v] = self.next;
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            self.calls.push((v, 0));
        }
    }
    let n = adj.len();
    let mut t = Walk {
        order: vec![UNSEEN; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        calls: Vec::new(),
        next: 0,
    };
    let mut out = Vec::new();
    for root in 0..n {
        if t.order[root] != UNSEEN {
            continue;
        }
        t.visit(root);
        while let Some((v, e)) = t.calls.pop() {
            if let Some(&w) = adj[v].get(e) {
                t.calls.push((v, e + 1));
                if t.order[w] == UNSEEN {
                    t.visit(w);
                } else if t.on_stack[w] {
                    t.low[v] = t.low[v].min(t.order[w]);
                }
                continue;
            }
            // All of v's edges followed: v roots a component, or passes its
            // low point up to its caller.
            if t.low[v] == t.order[v] {
                let mut comp = Vec::new();
                while let Some(w) = t.stack.pop() {
                    t.on_stack[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                out.push(comp);
            }
            if let Some(&(u, _)) = t.calls.last() {
                t.low[u] = t.low[u].min(t.low[v]);
            }
        }
    }
    out
}

/// Describes a cycle for the report.
pub(crate) fn describe(cycle: &[CoRef]) -> String {
    let mut s = String::from("goro: partial deadlock: these coroutines wait on each other in a cycle:\n");
    for c in cycle {
        let _ = writeln!(
            s,
            "  coroutine {} [{}{}] spawned at {}",
            c.label(),
            c.wait.get(),
            At(c.wait_site()),
            c.spawned_at
        );
    }
    s
}

/// Monitor hook: find confirmed cycles and apply the policy. Returns true if
/// a cycle was seen once and awaits its confirming sighting.
pub(crate) fn check_partial(rt: &Shared) -> bool {
    let _one = CHECKING.lock().unwrap_or_else(|e| e.into_inner());
    if rt.config.partial_policy == PartialDeadlockPolicy::Ignore || OWNER_WAITS.sum() == 0 {
        rt.partial_seen.lock().clear();
        return false;
    }
    for cycle in find_cycles(rt) {
        let text = describe(&cycle);
        match rt.config.partial_policy {
            PartialDeadlockPolicy::Report => {
                eprint!("{text}");
                for c in &cycle {
                    c.set_flag(F_PARTIAL);
                }
            }
            PartialDeadlockPolicy::Panic => {
                let text: Arc<str> = text.into();
                // Every member is marked before any is woken: a member that
                // unwinds releases its locks, and a member granted one
                // before it was marked would carry on as if nothing
                // happened.
                for c in &cycle {
                    rt.partial_reports.lock().insert(c.id, text.clone());
                    c.set_flag(F_PARTIAL | crate::coroutine::F_PARTIAL_PANIC);
                }
                for c in &cycle {
                    c.wake();
                }
            }
            PartialDeadlockPolicy::Ignore => {}
        }
    }
    !rt.partial_seen.lock().is_empty()
}

/// One last search when main has returned, before the leftovers are
/// cancelled: a cycle still standing is reported (seen twice,
/// `SEARCH_EVERY` apart, as the monitor would). Called by `Runtime::run`.
pub(crate) fn final_check(rt: &Shared) {
    if rt.config.partial_policy == PartialDeadlockPolicy::Ignore || OWNER_WAITS.sum() == 0 {
        return;
    }
    let mut pending = check_partial(rt);
    for _ in 0..2 {
        if !pending {
            return;
        }
        crate::park::park_deadline(
            WaitReason::Other("checking for a partial deadlock"),
            Some(std::time::Instant::now() + SEARCH_EVERY),
        );
        pending = check_partial(rt);
    }
}

/// A human-readable list of every coroutine of the current runtime (inside a
/// coroutine) or of the global default runtime: Go's goroutine dump, with
/// names and wait reasons.
///
/// ```
/// goro::run(|| {
///     let (_tx, rx) = goro::chan::<()>(0);
///     let h = goro::Builder::new().name("consumer").spawn(move || rx.recv()).unwrap();
///     // Wait until it has started and parked.
///     let parked = |id| goro::coroutines().iter().any(|c| c.id == id && c.state == goro::CoroutineState::Parked);
///     while !parked(h.id()) {
///         goro::yield_now();
///     }
///     let text = goro::diag::dump();
///     // goro: 2 coroutines (2 live, counting unstarted)
///     //   coroutine #1 [Runnable] spawned at ...
///     //   coroutine #2 "consumer" [recv on chan#1 (cap 0, 0 queued, 1 senders alive) at ...] spawned at ...
///     assert!(text.contains("\"consumer\" [recv on chan#"));
///     h.cancel();
/// });
/// ```
pub fn dump() -> String {
    let mut s = String::new();
    let list = super::coroutines();
    let _ = writeln!(s, "goro: {} coroutines ({} live, counting unstarted)", list.len(), super::num_coroutines());
    for c in list {
        let _ = writeln!(s, "  {c}");
    }
    s
}

pub(crate) fn dump_runtime(rt: &Shared) -> String {
    let mut s = String::new();
    let all = rt.all_coroutines();
    let _ = writeln!(s, "goro: runtime {:?}: {} started coroutines", rt.config.name, all.len());
    for c in all {
        let st = c.state.load(Ordering::Acquire);
        let what = if st == PARKED { format!("{}{}", c.wait.get(), At(c.wait_site())) } else { "runnable".to_string() };
        let _ = writeln!(s, "  coroutine {} [{}] spawned at {}", c.label(), what, c.spawned_at);
    }
    s
}

static QUIT_RUNTIMES: StdMutex<Vec<Weak<Shared>>> = StdMutex::new(Vec::new());
static QUIT_PIPE: OnceLock<i32> = OnceLock::new();

extern "C" fn on_sigquit(_: libc::c_int) {
    if let Some(&fd) = QUIT_PIPE.get() {
        let b = 1u8;
        // SAFETY: write(2) is async-signal-safe; one byte from a local.
        unsafe { libc::write(fd, &b as *const u8 as *const libc::c_void, 1) };
    }
}

/// Dumps `rt` on stderr whenever the process gets SIGQUIT (from a helper
/// thread, not the signal handler).
pub(crate) fn dump_on_sigquit(rt: &Arc<Shared>) {
    QUIT_RUNTIMES.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::downgrade(rt));
    QUIT_PIPE.get_or_init(|| {
        let mut fds = [0i32; 2];
        // SAFETY: pipe(2) into a local array; the read end goes to our thread,
        // the write end to the signal handler; both live for the process.
        unsafe {
            if libc::pipe(fds.as_mut_ptr()) != 0 {
                return -1;
            }
            let r = fds[0];
            std::thread::Builder::new()
                .name("goro-sigquit".into())
                .spawn(move || loop {
                    let mut b = 0u8;
                    // SAFETY: blocking read of one byte into a local.
                    if libc::read(r, &mut b as *mut u8 as *mut libc::c_void, 1) <= 0 {
                        return;
                    }
                    let rts = QUIT_RUNTIMES.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    for rt in rts.iter().filter_map(Weak::upgrade) {
                        eprint!("{}", dump_runtime(&rt));
                    }
                })
                .ok();
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigquit as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGQUIT, &sa, std::ptr::null_mut());
        }
        fds[1]
    });
}

#[cfg(test)]
mod tests {
    use super::strongly_connected;

    #[test]
    fn components_with_cycles() {
        // 0 -> 1 -> 2 -> 0 (a cycle), 3 -> 0 (waits on it), 4 -> 4 (itself),
        // 5 -> 3 and 5 -> 4 (several edges), 6 (alone).
        let adj = vec![vec![1], vec![2], vec![0], vec![0], vec![4], vec![3, 4], vec![]];
        let mut comps: Vec<Vec<usize>> = strongly_connected(&adj)
            .into_iter()
            .map(|mut c| {
                c.sort_unstable();
                c
            })
            .collect();
        comps.sort();
        assert_eq!(comps, vec![vec![0, 1, 2], vec![3], vec![4], vec![5], vec![6]]);
    }
}
