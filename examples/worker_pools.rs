//! Ports Go by Example's "Worker Pools" (<https://gobyexample.com/worker-pools>):
//! three workers take five jobs from a buffered `jobs` channel, "work" a
//! second on each, and send `j * 2` on `results`.
//!
//! `cargo run --release --example worker_pools` prints what the Go program
//! prints, in about 2 s: `worker W started  job J` and `worker W finished job
//! J` lines (which worker takes which job, and the order of the lines, depend
//! on timing, as in Go).
//!
//! Go → goro: `jobs <-chan int` is a `Receiver`, `results chan<- int` a
//! `Sender`; `for j := range jobs` is `for j in &jobs`; `close(jobs)` is
//! `jobs_tx.close()` (dropping the last `Sender` would close it too).
//! `tests/examples_run.rs` runs `worker_pools` with a short job time.

use std::sync::Arc;
use std::time::Duration;

use goro::{chan, Receiver, Sender};

/// Where an example's lines go: `println!` in `main`, a `Vec` in the test.
pub type Out = Arc<dyn Fn(String) + Send + Sync>;

fn worker(id: usize, jobs: Receiver<u64>, results: Sender<u64>, job_time: Duration, out: Out) {
    for j in &jobs {
        out(format!("worker {id} started  job {j}"));
        goro::time::sleep(job_time);
        out(format!("worker {id} finished job {j}"));
        results.send(j * 2).unwrap();
    }
}

/// Go's `main`, with the job time as a parameter (Go's is one second).
/// Returns the results in the order they arrived.
pub fn worker_pools(num_jobs: u64, num_workers: usize, job_time: Duration, out: Out) -> Vec<u64> {
    let (jobs_tx, jobs) = chan::<u64>(num_jobs as usize);
    let (results_tx, results) = chan::<u64>(num_jobs as usize);
    for w in 1..=num_workers {
        let (jobs, results_tx, out) = (jobs.clone(), results_tx.clone(), out.clone());
        goro::go(move || worker(w, jobs, results_tx, job_time, out));
    }
    for j in 1..=num_jobs {
        jobs_tx.send(j).unwrap();
    }
    jobs_tx.close();
    (0..num_jobs).map(|_| results.recv().unwrap()).collect()
}

#[allow(dead_code)] // the test includes this file as a module
fn main() {
    goro::run(|| {
        worker_pools(5, 3, Duration::from_secs(1), Arc::new(|line| println!("{line}")));
    });
}
