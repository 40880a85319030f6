//! Scheduler micro-benchmarks: spawn+join, yield round trip, park/unpark
//! hand-off. `cargo bench --bench sched`
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let rt = goro::Runtime::builder().workers(1).build().unwrap();
    let mut g = c.benchmark_group("sched");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    g.bench_function("spawn_join", |b| {
        b.iter_custom(|iters| {
            rt.run(move || {
                let t = std::time::Instant::now();
                for _ in 0..iters {
                    goro::go(|| 1u8).join().unwrap();
                }
                t.elapsed()
            })
            .unwrap()
        })
    });
    g.bench_function("yield_round_trip", |b| {
        b.iter_custom(|iters| {
            rt.run(move || {
                let h = goro::go(move || {
                    for _ in 0..iters {
                        goro::yield_now();
                    }
                });
                let t = std::time::Instant::now();
                for _ in 0..iters {
                    goro::yield_now();
                }
                let e = t.elapsed();
                h.join().unwrap();
                e
            })
            .unwrap()
        })
    });
    g.bench_function("park_unpark_handoff", |b| {
        // One round trip = two parks and two wakes through unbuffered channels.
        b.iter_custom(|iters| {
            rt.run(move || {
                let (atx, arx) = goro::chan::<u64>(0);
                let (btx, brx) = goro::chan::<u64>(0);
                goro::go(move || {
                    for v in &arx {
                        btx.send(v).unwrap();
                    }
                });
                let t = std::time::Instant::now();
                for i in 0..iters {
                    atx.send(i).unwrap();
                    brx.recv().unwrap();
                }
                t.elapsed()
            })
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
