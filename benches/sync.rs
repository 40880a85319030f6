//! `goro::sync` micro-benchmarks: a contended `Mutex` whose waiter parks
//! each round (the queue's slot lives in the waiter's frame,
//! `sync/waitq.rs`). `cargo bench --bench sync`
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let rt = goro::Runtime::builder().workers(1).build().unwrap();
    let mut g = c.benchmark_group("sync");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    // One round: main holds the lock and yields, the other coroutine tries
    // it and parks; main unlocks and yields, the other takes the lock,
    // counts and yields back.
    g.bench_function("mutex_park_round", |b| {
        b.iter_custom(|iters| {
            rt.run(move || {
                let m = Arc::new(goro::sync::Mutex::new(0u64));
                let m2 = m.clone();
                let h = goro::go(move || {
                    for _ in 0..iters {
                        *m2.lock() += 1;
                        goro::yield_now();
                    }
                });
                let t = std::time::Instant::now();
                for _ in 0..iters {
                    let g = m.lock();
                    goro::yield_now();
                    drop(g);
                    goro::yield_now();
                }
                let e = t.elapsed();
                h.join().unwrap();
                assert_eq!(*m.lock(), iters);
                e
            })
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
