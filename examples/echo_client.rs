//! Echo load client: C connections each send M messages of 64 bytes and read
//! each echo back, checking every byte.
//! `cargo run --release --example echo_client [addr] [C] [M]`
use std::io::{Read, Write};

fn main() {
    let mut a = std::env::args().skip(1);
    let addr = a.next().unwrap_or_else(|| "127.0.0.1:7000".into());
    let c: usize = a.next().and_then(|s| s.parse().ok()).unwrap_or(500);
    let m: usize = a.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let t = std::time::Instant::now();
    let total = goro::run(move || {
        let hs: Vec<_> = (0..c)
            .map(|i| {
                let addr = addr.clone();
                goro::go(move || {
                    let s = goro::net::TcpStream::connect(addr.as_str()).expect("connect");
                    let mut buf = [0u8; 64];
                    for k in 0..m {
                        let msg = [(i + k) as u8; 64];
                        (&s).write_all(&msg).unwrap();
                        (&s).read_exact(&mut buf).unwrap();
                        assert_eq!(buf, msg);
                    }
                    m * 64
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
    });
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{total} bytes echoed by {c} connections in {:.1} ms ({:.0} round trips/s)",
        secs * 1e3,
        (c * m) as f64 / secs
    );
}
