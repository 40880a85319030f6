//! Stack micro-benchmarks: maybe_grow when no segment is needed, when every
//! call needs one (a segment switch: the thread's hot segment, or, above
//! its size, a slab round trip), and `remaining`.
//! `cargo bench --bench stack`
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("stack");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    g.bench_function("maybe_grow_no_segment", |b| {
        b.iter(|| goro::stack::maybe_grow(32 * 1024, 1 << 20, || std::hint::black_box(1u32)))
    });
    // A red zone no stack has: every call switches to a segment and back.
    g.bench_function("maybe_grow_segment_hot", |b| {
        b.iter(|| goro::stack::maybe_grow(usize::MAX, 1 << 20, || std::hint::black_box(1u32)))
    });
    g.bench_function("maybe_grow_segment_2mib_slab", |b| {
        b.iter(|| goro::stack::maybe_grow(usize::MAX, 2 << 20, || std::hint::black_box(1u32)))
    });
    g.bench_function("remaining", |b| b.iter(goro::stack::remaining));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
