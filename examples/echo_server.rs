//! TCP echo server, one coroutine per connection (Go's `io.Copy(conn, conn)`).
//! `cargo run --release --example echo_server [addr]` (default 127.0.0.1:7000)
fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:7000".into());
    goro::run(move || {
        let ln = goro::net::TcpListener::bind(&addr).expect("bind");
        eprintln!("echo server on {}", ln.local_addr().unwrap());
        for conn in ln.incoming() {
            match conn {
                Ok(c) => {
                    goro::go(move || {
                        let _ = std::io::copy(&mut &c, &mut &c);
                    });
                }
                Err(e) => eprintln!("accept: {e}"),
            }
        }
    });
}
