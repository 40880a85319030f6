//! The blocking pool: `goro::blocking(f)` runs `f` on a separate thread while
//! the calling coroutine parks, so its home worker keeps running the others.
//!
//! Owns: a small elastic pool of threads shared by all runtimes. A job goes to
//! an idle pool thread if there is one, else a new thread is started (up to
//! `MAX_THREADS`, after which jobs queue). Pool threads that stay idle for
//! `KEEP_ALIVE` exit, so an idle program holds no extra threads for long.
//!
//! The caller parks on a one-shot slot (`Done`) through `park.rs`, so the same
//! call works from a plain thread (which then just blocks).

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::park::{self, Waiter};
use crate::wait::WaitReason;

const MAX_THREADS: usize = 512;
const KEEP_ALIVE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    state: Mutex<PoolState>,
    cv: Condvar,
}

struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

fn pool() -> &'static Pool {
    static POOL: std::sync::OnceLock<Pool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState { queue: VecDeque::new(), threads: 0, idle: 0 }),
        cv: Condvar::new(),
    })
}

fn submit(job: Job) {
    let p = pool();
    let mut st = p.state.lock();
    st.queue.push_back(job);
    if st.idle > 0 {
        st.idle -= 1;
        p.cv.notify_one();
        return;
    }
    if st.threads < MAX_THREADS {
        st.threads += 1;
        drop(st);
        let spawned = std::thread::Builder::new().name("goro-blocking".into()).spawn(pool_thread);
        if spawned.is_err() {
            // Could not start a thread: an existing one will take the job.
            p.state.lock().threads -= 1;
        }
    }
}

fn pool_thread() {
    crate::park::mark_internal_thread();
    let p = pool();
    let mut st = p.state.lock();
    loop {
        if let Some(job) = st.queue.pop_front() {
            drop(st);
            job();
            st = p.state.lock();
            continue;
        }
        st.idle += 1;
        let timed_out = p.cv.wait_for(&mut st, KEEP_ALIVE).timed_out();
        if timed_out {
            // Nobody took us off the idle count: leave.
            if st.queue.is_empty() {
                st.idle -= 1;
                st.threads -= 1;
                return;
            }
            st.idle -= 1;
        }
    }
}

struct Done<R> {
    slot: Mutex<Option<Result<R, Box<dyn Any + Send>>>>,
    waiter: Waiter,
}

/// Runs a blocking call (file I/O, a C library, heavy CPU) on the blocking
/// pool while the calling coroutine parks, so the coroutines sharing its home
/// worker keep running. Returns `f`'s value; a panic in `f` is resumed here.
///
/// On a plain OS thread it works the same (the thread blocks until done).
///
/// ```
/// let n = goro::run(|| goro::blocking(|| std::fs::read_dir(".").unwrap().count()));
/// assert!(n > 0);
/// ```
#[track_caller]
pub fn blocking<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let done = Arc::new(Done { slot: Mutex::new(None), waiter: Waiter::current() });
    let rt = crate::sched::with_worker(|w| w.rt.clone());
    if let Some(rt) = &rt {
        rt.blocking_jobs.fetch_add(1, Ordering::SeqCst);
    }
    let d2 = done.clone();
    let rt2 = rt.clone();
    submit(Box::new(move || {
        crate::sched::set_ambient(rt2.clone());
        let r = panic::catch_unwind(AssertUnwindSafe(f));
        crate::sched::set_ambient(None);
        *d2.slot.lock() = Some(r);
        if let Some(rt) = &rt2 {
            rt.blocking_jobs.fetch_sub(1, Ordering::SeqCst);
        }
        d2.waiter.wake();
    }));
    loop {
        if let Some(r) = done.slot.lock().take() {
            return match r {
                Ok(v) => v,
                Err(p) => crate::coroutine::resume_unwind(p),
            };
        }
        park::park(WaitReason::Blocking);
    }
}
