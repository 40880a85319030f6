fn main() {
    let t = std::time::Instant::now();
    let v = goro::run(|| {
        let hs: Vec<_> = (0..100_000u64).map(|i| goro::go(move || i * 2)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    println!("sum={v} {:?}", t.elapsed());
    fn tree(depth: u32, num: u64) -> u64 {
        if depth == 0 {
            return num;
        }
        let hs: Vec<_> = (0..10).map(|i| goro::go(move || tree(depth - 1, num * 10 + i))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    }
    let t = std::time::Instant::now();
    let v = goro::run(|| tree(6, 0));
    println!("tree={v} {:?} stats={:?}", t.elapsed(), goro::stats());
    // yield
    let v = goro::run(|| {
        let h = goro::go(|| {
            for _ in 0..1000 {
                goro::yield_now();
            }
            1
        });
        for _ in 0..1000 {
            goro::yield_now();
        }
        h.join().unwrap()
    });
    println!("yield {v}");
    let r = goro::Runtime::builder().build().unwrap();
    let e = r.run(|| -> i32 { panic!("boom") });
    println!("panic -> {:?}", e.is_err());
}
