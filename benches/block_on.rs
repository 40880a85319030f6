//! block_on overhead: a future that is pending once (waking itself) and
//! then ready, so each iteration pays one pending poll, one wake, one park
//! and one more poll. Inside a coroutine, and on a plain thread for
//! comparison. `cargo bench --bench block_on`
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

/// Pending on the first poll (after waking its own waker), ready on the
/// second.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("block_on");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    g.bench_function("ready_thread", |b| b.iter(|| goro::block_on(async { 1u64 })));
    g.bench_function("pending_once_thread", |b| b.iter(|| goro::block_on(YieldOnce(false))));
    let rt = goro::Runtime::builder().workers(1).build().unwrap();
    g.bench_function("pending_once_coroutine", |b| {
        b.iter_custom(|iters| {
            rt.run(move || {
                let t = std::time::Instant::now();
                for _ in 0..iters {
                    goro::block_on(YieldOnce(false));
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
