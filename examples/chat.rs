//! A chat server, the classic CSP service: one coroutine per client reading
//! lines, one broadcaster coroutine owning the client list, channels between.
//! `cargo run --release --example chat [addr]`, then `nc 127.0.0.1 7001`.
use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;

enum Event {
    Join(u64, Arc<goro::net::TcpStream>),
    Leave(u64),
    Say(u64, String),
}

fn broadcaster(events: goro::Receiver<Event>) {
    let mut clients: Vec<(u64, Arc<goro::net::TcpStream>)> = Vec::new();
    for ev in &events {
        let (from, line) = match ev {
            Event::Join(id, c) => {
                clients.push((id, c));
                (id, format!("* client {id} joined\n"))
            }
            Event::Leave(id) => {
                clients.retain(|(i, _)| *i != id);
                (id, format!("* client {id} left\n"))
            }
            Event::Say(id, text) => (id, format!("{id}: {text}\n")),
        };
        for (id, c) in &clients {
            if *id != from {
                let _ = (&**c).write_all(line.as_bytes());
            }
        }
    }
}

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:7001".into());
    goro::run(move || {
        let ln = goro::net::TcpListener::bind(&addr).expect("bind");
        eprintln!("chat on {}", ln.local_addr().unwrap());
        let (tx, rx) = goro::chan::<Event>(64);
        goro::go(move || broadcaster(rx));
        let mut next = 0;
        while let Ok((c, _)) = ln.accept() {
            next += 1;
            let (id, tx, c) = (next, tx.clone(), Arc::new(c));
            goro::go(move || {
                tx.send(Event::Join(id, c.clone())).ok();
                for line in BufReader::new(&*c).lines() {
                    match line {
                        Ok(l) => {
                            tx.send(Event::Say(id, l)).ok();
                        }
                        Err(_) => break,
                    }
                }
                tx.send(Event::Leave(id)).ok();
            });
        }
    });
}
