fn main() {
    let rt = goro::Runtime::builder().workers(1).build().unwrap();
    let n: u64 = std::env::args().nth(1).map(|a| a.parse().unwrap()).unwrap_or(5_000_000);
    rt.run(move || {
        let h = goro::go(move || {
            for _ in 0..n {
                goro::yield_now();
            }
        });
        let t = std::time::Instant::now();
        for _ in 0..n {
            goro::yield_now();
        }
        h.join().unwrap();
        let el = t.elapsed();
        println!("yield round trip: {:.1} ns", el.as_nanos() as f64 / n as f64);
    })
    .unwrap();
    if std::env::args().nth(2).as_deref() == Some("yield") {
        return;
    }
    let rt = goro::Runtime::builder().workers(2).build().unwrap();
    rt.run(move || {
        let t = std::time::Instant::now();
        let n = 200_000;
        for _ in 0..n {
            goro::go(|| 1).join().unwrap();
        }
        println!("spawn+join: {:.1} ns", t.elapsed().as_nanos() as f64 / n as f64);
    })
    .unwrap();
}
