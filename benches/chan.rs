//! Channel micro-benchmarks: uncontended send/recv, unbuffered hand-off,
//! select over 4. `cargo bench --bench chan`
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("chan");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    let (tx, rx) = goro::chan::<u64>(1024);
    g.bench_function("uncontended_send_recv", |b| {
        b.iter(|| {
            tx.send(1).unwrap();
            rx.recv().unwrap()
        })
    });
    let rt = goro::Runtime::builder().workers(1).build().unwrap();
    g.bench_function("unbuffered_handoff", |b| {
        b.iter_custom(|iters| {
            rt.run(move || {
                let (tx, rx) = goro::chan::<u64>(0);
                goro::go(move || (0..iters).for_each(|i| tx.send(i).unwrap()));
                let t = std::time::Instant::now();
                for _ in 0..iters {
                    rx.recv().unwrap();
                }
                t.elapsed()
            })
            .unwrap()
        })
    });
    let chans: Vec<_> = (0..4).map(|_| goro::chan::<u64>(1024)).collect();
    g.bench_function("select_over_4_ready", |b| {
        b.iter(|| {
            chans[1].0.send(1).unwrap();
            goro::select! {
                recv(chans[0].1) -> v => v.unwrap(),
                recv(chans[1].1) -> v => v.unwrap(),
                recv(chans[2].1) -> v => v.unwrap(),
                recv(chans[3].1) -> v => v.unwrap(),
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
