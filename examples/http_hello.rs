//! A minimal HTTP/1.1 server with keep-alive, one coroutine per connection
//! (Go's `net/http` hello world, enough for curl and wrk).
//! `cargo run --release --example http_hello [addr]` (default 127.0.0.1:8080)
use std::io::{Read, Write};

const BODY: &str = "Hello, World!\n";

fn serve(c: goro::net::TcpStream) {
    let mut buf = vec![0u8; 8192];
    let mut have = 0;
    loop {
        // Answer every complete request in the buffer (pipelining welcome).
        while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            let req = &buf[..end];
            let close = req.windows(17).any(|w| w.eq_ignore_ascii_case(b"connection: close"));
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{BODY}",
                BODY.len(),
                if close { "Connection: close\r\n" } else { "" }
            );
            if (&c).write_all(resp.as_bytes()).is_err() || close {
                return;
            }
            buf.copy_within(end + 4..have, 0);
            have -= end + 4;
        }
        if have == buf.len() {
            return; // request head too large
        }
        match (&c).read(&mut buf[have..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
    }
}

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".into());
    goro::run(move || {
        let ln = goro::net::TcpListener::bind(&addr).expect("bind");
        eprintln!("http_hello on http://{}", ln.local_addr().unwrap());
        while let Ok((c, _)) = ln.accept() {
            goro::go(move || serve(c));
        }
    });
}
