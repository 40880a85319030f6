//! Partial deadlocks and dumps.
//!
//! Owns: the wait-for-cycle finder the monitor runs, the policy for what a
//! found cycle does ([`PartialDeadlockPolicy`]), `dump()`, and the SIGQUIT
//! dump thread.
//!
//! The *global* rule lives in `sched::Shared::{looks_deadlocked,
//! check_stall}` and is documented for users on `Runtime::run`: all workers
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
//! whose owner is known: `join` of a coroutine (exact), or a `Mutex` held by
//! a coroutine (the holder recorded when the wait began). The rest of the
//! program may run on, so Go's global rule never sees it. The wait-for graph
//! has at most one edge per parked coroutine, so cycles are found in one
//! linear pass. To avoid acting on a stale mutex holder, a cycle must be seen
//! on two consecutive monitor passes, with every member still parked and the
//! runtime's resume count of its members unchanged... (the members are
//! parked, so they cannot have run: a cycle seen twice is a cycle).
//!
//! Cost: nothing on the hot path; the monitor runs this every ~100 ms.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex as StdMutex, OnceLock, Weak};

use std::sync::atomic::AtomicUsize;

use super::WaitReason;

/// Parties parked right now on a wait whose owner is known (`join`,
/// `Mutex::lock`), process-wide. The monitor skips the cycle search while it
/// is zero, so programs that never block on those pay nothing.
pub(crate) static OWNER_WAITS: AtomicUsize = AtomicUsize::new(0);

/// Counts one owner-known wait while alive (also when unwinding).
pub(crate) struct OwnerWait;

impl OwnerWait {
    pub(crate) fn new() -> OwnerWait {
        OWNER_WAITS.fetch_add(1, Ordering::Relaxed);
        OwnerWait
    }
}

impl Drop for OwnerWait {
    fn drop(&mut self) {
        OWNER_WAITS.fetch_sub(1, Ordering::Relaxed);
    }
}
use crate::coroutine::{CoRef, F_PARTIAL, PARKED};
use crate::sched::Shared;

/// What the runtime does when it finds a partial deadlock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PartialDeadlockPolicy {
    /// Print the cycle on stderr once (the default).
    #[default]
    Report,
    /// Make the blocked calls of the cycle panic with the report, so `join`
    /// of a member surfaces it as `Err`.
    Panic,
    /// Do nothing.
    Ignore,
}

fn edge(c: &CoRef) -> Option<u64> {
    match *c.wait.lock() {
        WaitReason::Join { id } => Some(id),
        WaitReason::MutexLock { holder, .. } if holder != 0 => Some(holder),
        _ => None,
    }
}

/// Finds cycles among parked coroutines (one monitor pass). Returns the
/// cycles (as member lists) that were also seen on the previous pass.
pub(crate) fn find_cycles(rt: &Shared) -> Vec<Vec<CoRef>> {
    let all = rt.all_coroutines();
    let parked: HashMap<u64, &CoRef> = all
        .iter()
        .filter(|c| c.state.load(Ordering::Acquire) == PARKED && edge(c).is_some())
        .map(|c| (c.id, c))
        .collect();
    let mut done: HashSet<u64> = HashSet::new();
    let mut cycles: Vec<Vec<u64>> = Vec::new();
    for &start in parked.keys() {
        if done.contains(&start) {
            continue;
        }
        let mut path: Vec<u64> = Vec::new();
        let mut at = start;
        loop {
            if let Some(pos) = path.iter().position(|&x| x == at) {
                let mut cyc = path[pos..].to_vec();
                cyc.sort_unstable();
                cycles.push(cyc);
                break;
            }
            if done.contains(&at) {
                break;
            }
            let Some(c) = parked.get(&at) else { break };
            if c.has_flag(F_PARTIAL) {
                break; // already handled
            }
            path.push(at);
            match edge(c) {
                Some(next) => at = next,
                None => break,
            }
        }
        done.extend(path);
    }
    let mut prev = rt.partial_seen.lock();
    let confirmed: Vec<Vec<u64>> = cycles.iter().filter(|c| prev.contains(*c)).cloned().collect();
    *prev = cycles;
    confirmed
        .into_iter()
        .map(|cyc| cyc.iter().filter_map(|id| parked.get(id).map(|c| (*c).clone())).collect())
        .collect()
}

/// Describes a cycle for the report.
pub(crate) fn describe(cycle: &[CoRef]) -> String {
    let mut s = String::from("goro: partial deadlock: these coroutines wait on each other in a cycle:\n");
    for c in cycle {
        let _ = writeln!(s, "  coroutine {} [{}] spawned at {}", c.label(), *c.wait.lock(), c.spawned_at);
    }
    s
}

/// Monitor hook: find confirmed cycles and apply the policy.
pub(crate) fn check_partial(rt: &Shared) {
    if rt.config.partial_policy == PartialDeadlockPolicy::Ignore || OWNER_WAITS.load(Ordering::Relaxed) == 0 {
        rt.partial_seen.lock().clear();
        return;
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
                for c in &cycle {
                    rt.partial_reports.lock().insert(c.id, text.clone());
                    c.set_flag(F_PARTIAL | crate::coroutine::F_PARTIAL_PANIC);
                    c.wake();
                }
            }
            PartialDeadlockPolicy::Ignore => {}
        }
    }
}

/// A human-readable list of every coroutine of the current runtime (inside a
/// coroutine) or of the global default runtime: Go's goroutine dump, with
/// names and wait reasons.
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
        let what = if st == PARKED { c.wait.lock().to_string() } else { "runnable".to_string() };
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
