// The global deadlock report: what `Runtime::run` returns (and `run`
// panics with) when the global rule (`deadlock.rs`) finds that nothing can
// run again. Collected once, at the verdict, from the registries.

use std::fmt;
use std::panic::Location;
use std::sync::atomic::Ordering;

use crate::coroutine::{F_MAIN, PARKED};
use crate::sched::Shared;
use crate::wait::WaitReason;

/// One blocked coroutine in a [`DeadlockReport`].
///
/// ```
/// use goro::{RunError, Runtime};
/// let rt = Runtime::builder().workers(1).build().unwrap();
/// let (_tx, rx) = goro::chan::<()>(0);
/// let Err(RunError::Deadlock(report)) = rt.run(move || rx.recv()) else { panic!("no deadlock") };
/// let main: &goro::BlockedCoroutine = &report.blocked[0];
/// assert!(main.is_main);
/// assert!(main.wait_text().starts_with("recv on chan#"));
/// ```
#[derive(Debug, Clone)]
pub struct BlockedCoroutine {
    /// Coroutine id.
    pub id: u64,
    /// Its name, if any.
    pub name: Option<String>,
    /// Where it was spawned (`file:line:col`).
    pub spawned_at: String,
    /// What it waits on.
    pub wait: WaitReason,
    /// Where it called the blocking operation it waits in (the user's line,
    /// via `#[track_caller]`), if known.
    pub wait_at: Option<&'static Location<'static>>,
    /// Is it the main coroutine of the `run`?
    pub is_main: bool,
    /// For a join: the joined coroutine's name, if it has one.
    pub joins_name: Option<String>,
}

impl BlockedCoroutine {
    /// The wait as the report prints it, with where it was called from
    /// (`join of #12 "worker" at src/main.rs:42:17`, ...).
    ///
    /// ```
    /// use goro::{RunError, Runtime};
    /// let rt = Runtime::builder().workers(1).build().unwrap();
    /// let r = rt.run(|| goro::Builder::new().name("stuck").spawn(|| goro::never::<()>().recv()).unwrap().join());
    /// let Err(RunError::Deadlock(report)) = r else { panic!("no deadlock") };
    /// assert!(report.blocked[0].wait_text().starts_with("join of #"));
    /// assert!(report.blocked[0].wait_text().contains("\"stuck\""));
    /// ```
    pub fn wait_text(&self) -> String {
        let at = crate::diag::At(self.wait_at);
        match (&self.wait, &self.joins_name) {
            (WaitReason::Join { id }, Some(n)) => format!("join of #{id} \"{n}\"{at}"),
            (w, _) => format!("{w}{at}"),
        }
    }

    /// The text identical waiters are grouped by: a lock waiter queued
    /// behind another party drops that party's id, so a queue of 10 000 on
    /// one lock is one line.
    fn group_text(&self) -> String {
        match self.wait.lock_wait() {
            Some((label, wait_for)) if wait_for.ahead.is_some() => {
                format!("{label} queued{}", crate::diag::At(self.wait_at))
            }
            _ => self.wait_text(),
        }
    }
}

/// What the deadlock detector found: every blocked coroutine and what it
/// waits on. `Display` prints one line per coroutine, grouping identical ones.
///
/// ```
/// use goro::{RunError, Runtime};
/// let rt = Runtime::builder().workers(1).build().unwrap();
/// let (_tx, rx) = goro::chan::<()>(0);
/// let Err(RunError::Deadlock(report)) = rt.run(move || rx.recv()) else { panic!("no deadlock") };
/// assert!(!report.is_empty());
/// assert_eq!(report.blocked.len(), 1);
/// println!("{report}"); // one line per blocked coroutine
/// ```
#[derive(Debug, Clone, Default)]
pub struct DeadlockReport {
    /// The blocked coroutines, main first.
    pub blocked: Vec<BlockedCoroutine>,
}

impl DeadlockReport {
    pub(crate) fn collect(rt: &Shared) -> DeadlockReport {
        let all = rt.all_coroutines();
        let names: std::collections::HashMap<u64, String> =
            all.iter().filter_map(|c| c.name.as_deref().map(|n| (c.id, n.to_string()))).collect();
        let mut blocked: Vec<BlockedCoroutine> = all
            .iter()
            .filter(|c| c.state.load(Ordering::Acquire) == PARKED)
            .map(|c| {
                let wait = c.wait.get();
                BlockedCoroutine {
                    id: c.id,
                    name: c.name.as_deref().map(str::to_string),
                    spawned_at: c.spawned_at.to_string(),
                    wait,
                    wait_at: c.wait_site(),
                    is_main: c.has_flag(F_MAIN),
                    joins_name: match wait {
                        WaitReason::Join { id } => names.get(&id).cloned(),
                        _ => None,
                    },
                }
            })
            .collect();
        blocked.sort_by_key(|b| (!b.is_main, b.id));
        DeadlockReport { blocked }
    }

    /// True if no coroutine is blocked.
    ///
    /// ```
    /// assert!(goro::DeadlockReport::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.blocked.is_empty()
    }
}

impl fmt::Display for DeadlockReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Group by (name, spawn site, wait text) so 10 000 identical workers
        // are one line; a lone member shows its full wait text.
        struct Group<'a> {
            first: &'a BlockedCoroutine,
            key: String,
            ids: Vec<u64>,
        }
        let mut groups: Vec<Group<'_>> = Vec::new();
        for b in &self.blocked {
            let key = b.group_text();
            let same = |g: &&mut Group<'_>| {
                !b.is_main && g.first.name == b.name && g.first.spawned_at == b.spawned_at && g.key == key
            };
            match groups.iter_mut().find(same) {
                Some(g) => g.ids.push(b.id),
                None => groups.push(Group { first: b, key, ids: vec![b.id] }),
            }
        }
        for g in groups {
            let at = &g.first.spawned_at;
            let who = match &g.first.name {
                _ if g.first.is_main => "main".to_string(),
                Some(name) if !name.is_empty() => format!("\"{name}\""),
                _ => String::new(),
            };
            if let [id] = g.ids[..] {
                writeln!(f, "  coroutine #{id} {who} [{}] spawned at {at}", g.first.wait_text())?;
            } else {
                writeln!(f, "  {} coroutines {who} [{}] spawned at {at} (ids #{}..)", g.ids.len(), g.key, g.ids[0])?;
            }
        }
        Ok(())
    }
}
