//! Pingpong: two coroutines, two unbuffered channels, N round trips.
//! `cargo run --release --example pingpong [N]`
fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let (v, ms) = goro::run(move || {
        let t = std::time::Instant::now();
        let (atx, arx) = goro::chan::<u64>(0);
        let (btx, brx) = goro::chan::<u64>(0);
        goro::go(move || {
            for v in &arx {
                btx.send(v + 1).unwrap();
            }
        });
        let mut v = 0;
        for _ in 0..n {
            atx.send(v).unwrap();
            v = brx.recv().unwrap();
        }
        drop(atx);
        (v, t.elapsed().as_secs_f64() * 1000.0)
    });
    println!("workload=pingpong n={n} result={v} ms={ms:.1}");
    assert_eq!(v, n);
}
