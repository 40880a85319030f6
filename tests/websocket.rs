//! A blocking protocol crate runs unchanged on goro sockets: tungstenite's
//! synchronous WebSocket server and client over `goro::net::{TcpListener,
//! TcpStream}` (std `Read`/`Write`), 50 clients on 2 workers, loopback only.

use goro::net::{TcpListener, TcpStream};
use tungstenite::{Error, Message};

mod common;
use common::{rt, watchdog};

const CLIENTS: usize = 50;
const MESSAGES: usize = 20;

/// Echoes text and binary messages until the client closes; returns how
/// many it echoed.
fn serve(stream: TcpStream) -> usize {
    let mut ws = tungstenite::accept(stream).expect("server handshake");
    let mut echoed = 0;
    loop {
        match ws.read() {
            Ok(m) if m.is_text() || m.is_binary() => {
                ws.send(m).expect("echo");
                echoed += 1;
            }
            Ok(_) => {} // ping/pong/close: tungstenite answers by itself
            Err(Error::ConnectionClosed | Error::AlreadyClosed) => return echoed,
            Err(e) => panic!("server: {e}"),
        }
    }
}

fn client(addr: std::net::SocketAddr, k: usize) -> Vec<String> {
    let stream = TcpStream::connect(addr).expect("connect");
    let (mut ws, _resp) = tungstenite::client(format!("ws://{addr}/echo"), stream).expect("client handshake");
    let mut got = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        ws.send(Message::text(format!("client {k} message {i}"))).expect("send");
        let reply = ws.read().expect("read reply");
        got.push(reply.to_text().expect("text reply").to_string());
    }
    ws.close(None).expect("close");
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(Error::ConnectionClosed | Error::AlreadyClosed) => break,
            Err(e) => panic!("client {k} closing: {e}"),
        }
    }
    got
}

#[test]
fn tungstenite_echo_over_goro_sockets() {
    let _w = watchdog(30, "tungstenite_echo_over_goro_sockets");
    let rt = rt(2);
    let (replies, echoed) = rt
        .run(|| {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().unwrap();
            let server = goro::go(move || {
                let conns: Vec<_> = (0..CLIENTS)
                    .map(|_| {
                        let (s, _) = listener.accept().expect("accept");
                        goro::go(move || serve(s))
                    })
                    .collect();
                conns.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
            });
            let clients: Vec<_> = (0..CLIENTS).map(|k| goro::go(move || client(addr, k))).collect();
            let replies: Vec<Vec<String>> = clients.into_iter().map(|h| h.join().unwrap()).collect();
            (replies, server.join().unwrap())
        })
        .unwrap();
    assert_eq!(echoed, CLIENTS * MESSAGES);
    for (k, got) in replies.iter().enumerate() {
        let want: Vec<String> = (0..MESSAGES).map(|i| format!("client {k} message {i}")).collect();
        assert_eq!(got, &want);
    }
}
