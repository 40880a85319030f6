//! goro::net on loopback and Unix sockets.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use goro::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};

mod common;
use common::{rt, within};

fn echo_server(ln: TcpListener) {
    goro::go(move || {
        while let Ok((s, _)) = ln.accept() {
            goro::go(move || {
                let _ = std::io::copy(&mut &s, &mut &s);
            });
        }
    });
}

#[test]
fn echo_many_clients_byte_for_byte() {
    goro::run(|| {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ln.local_addr().unwrap();
        echo_server(ln);
        let hs: Vec<_> = (0..200u32)
            .map(|c| {
                goro::go(move || {
                    let s = TcpStream::connect(addr).unwrap();
                    s.set_nodelay(true).unwrap();
                    let mut got = Vec::new();
                    for m in 0..20u32 {
                        let msg: Vec<u8> = (0..97).map(|i| (c * 31 + m * 7 + i) as u8).collect();
                        (&s).write_all(&msg).unwrap();
                        let mut back = vec![0; msg.len()];
                        (&s).read_exact(&mut back).unwrap();
                        assert_eq!(back, msg);
                        got.extend(back);
                    }
                    got.len()
                })
            })
            .collect();
        let total: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 200 * 20 * 97);
    });
}

#[test]
fn two_thousand_connections_at_once() {
    goro::run(|| {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ln.local_addr().unwrap();
        echo_server(ln);
        let conns: Vec<TcpStream> = (0..2000).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for (i, c) in conns.iter().enumerate() {
            (&*c).write_all(&(i as u32).to_le_bytes()).unwrap();
        }
        for (i, c) in conns.iter().enumerate() {
            let mut b = [0u8; 4];
            (&*c).read_exact(&mut b).unwrap();
            assert_eq!(u32::from_le_bytes(b), i as u32);
        }
    });
}

/// Reads until end of stream or an error (at most 100 bytes); returns how
/// many bytes came.
fn bytes_until_closed(s: &TcpStream) -> usize {
    let mut buf = [0u8; 100];
    let mut n = 0;
    loop {
        match (&*s).read(&mut buf[n..]) {
            Ok(0) | Err(_) => return n,
            Ok(k) => n += k,
        }
    }
}

#[test]
fn abrupt_disconnect_mid_message() {
    goro::run(|| {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ln.local_addr().unwrap();
        let server = goro::go(move || bytes_until_closed(&ln.accept().unwrap().0));
        let c = TcpStream::connect(addr).unwrap();
        (&c).write_all(&[1, 2, 3]).unwrap();
        drop(c);
        assert_eq!(server.join().unwrap(), 3);
    });
}

#[test]
fn read_timeout_and_connect_refused() {
    goro::run(|| {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ln.local_addr().unwrap();
        let c = TcpStream::connect(addr).unwrap();
        let (_s, _) = ln.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        let t = std::time::Instant::now();
        let e = (&c).read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert!(c.set_read_timeout(Some(Duration::ZERO)).is_err());
        drop(ln);
        drop(_s);
        let free = { TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap() };
        assert!(TcpStream::connect(free).is_err());
    });
}

#[test]
fn close_wakes_blocked_accept() {
    goro::run(|| {
        let ln = std::sync::Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let l2 = ln.clone();
        let h = goro::go(move || l2.accept().is_err());
        goro::time::sleep(Duration::from_millis(20));
        ln.close().unwrap();
        assert!(h.join().unwrap());
        assert!(ln.accept().is_err());
    });
}

#[test]
fn shutdown_ends_the_peer_read() {
    goro::run(|| {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
        let (s, peer) = ln.accept().unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!((&s).read(&mut [0u8; 4]).unwrap(), 0);
    });
}

#[test]
fn udp_round_trip_in_coroutines_and_threads() {
    let body = || {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.send_to(b"ping", b.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr().unwrap()));
        b.connect(from).unwrap();
        b.send(b"pong").unwrap();
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"pong");
    };
    goro::run(body);
    body();
}

/// A socket path `name` in a directory of this test process, free to bind.
fn socket_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("goro-test-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn unix_sockets() {
    let path = socket_path("s.sock");
    goro::run(move || {
        let ln = UnixListener::bind(&path).unwrap();
        let h = goro::go(move || {
            let (s, _) = ln.accept().unwrap();
            let mut b = [0u8; 5];
            (&s).read_exact(&mut b).unwrap();
            (&s).write_all(&b).unwrap();
        });
        let c = UnixStream::connect(&path).unwrap();
        (&c).write_all(b"hello").unwrap();
        let mut b = [0u8; 5];
        (&c).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hello");
        h.join().unwrap();
        let (x, y) = UnixStream::pair().unwrap();
        (&x).write_all(b"z").unwrap();
        let mut one = [0u8; 1];
        (&y).read_exact(&mut one).unwrap();
        assert_eq!(&one, b"z");
    });
}

#[test]
fn plain_threads_block_normally() {
    let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = ln.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (s, _) = ln.accept().unwrap();
        let mut b = [0u8; 3];
        (&s).read_exact(&mut b).unwrap();
        b
    });
    let c = TcpStream::connect(addr).unwrap();
    (&c).write_all(b"abc").unwrap();
    assert_eq!(&t.join().unwrap(), b"abc");
}

/// A runtime whose workers are all busy with coroutines that never sleep
/// still polls the network (every 61st scheduling tick): a reader parked on
/// a socket gets its data while the spinners keep yielding.
#[test]
fn busy_workers_still_poll() {
    let rt = rt(2);
    let got = rt
        .run(|| {
            let ln = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = ln.local_addr().unwrap();
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let spinners: Vec<_> = (0..4)
                .map(|_| {
                    let stop = stop.clone();
                    goro::go(move || {
                        let mut n = 0u64;
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            n += 1;
                            goro::yield_now();
                        }
                        n
                    })
                })
                .collect();
            let reader = goro::go(move || {
                let (s, _) = ln.accept().unwrap();
                let mut buf = [0u8; 5];
                (&s).read_exact(&mut buf).unwrap();
                buf
            });
            // The writer is a plain thread: only polling can wake the reader.
            let w = std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                std::thread::sleep(Duration::from_millis(20));
                s.write_all(b"hello").unwrap();
                s
            });
            let t = std::time::Instant::now();
            let buf = reader.join().unwrap();
            let waited = t.elapsed();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let spins: u64 = spinners.into_iter().map(|h| h.join().unwrap()).sum();
            drop(w.join().unwrap());
            assert!(spins > 0);
            assert!(waited < Duration::from_secs(5), "the reader starved for {waited:?}");
            buf
        })
        .unwrap();
    assert_eq!(&got, b"hello");
}

/// A short read marks the socket drained, so the next read parks without a
/// system call; data and end-of-stream arriving later must still wake it,
/// and our own `shutdown` must not leave a reader parked.
#[test]
fn reads_after_a_short_read_still_see_data_and_eof() {
    goro::run(|| {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ln.local_addr().unwrap();
        let server = goro::go(move || {
            let (s, _) = ln.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                let n = (&s).read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            // EOF repeats without an edge: reads keep returning 0.
            assert_eq!((&s).read(&mut buf).unwrap(), 0);
            got
        });
        let c = TcpStream::connect(addr).unwrap();
        for part in [&b"ab"[..], b"cd", b"ef"] {
            (&c).write_all(part).unwrap();
            goro::time::sleep(Duration::from_millis(15));
        }
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(server.join().unwrap(), b"abcdef");

        // Our own read shutdown wakes a reader parked on a drained socket.
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = ln.local_addr().unwrap();
        let peer = goro::go(move || ln.accept().unwrap().0);
        let c = std::sync::Arc::new(TcpStream::connect(addr).unwrap());
        let p = peer.join().unwrap();
        (&p).write_all(b"x").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!((&*c).read(&mut buf).unwrap(), 1);
        let c2 = c.clone();
        let reader = goro::go(move || (&*c2).read(&mut [0u8; 16]).unwrap());
        goro::time::sleep(Duration::from_millis(20));
        c.shutdown(Shutdown::Read).unwrap();
        assert_eq!(reader.join().unwrap(), 0);
    });
}

/// Several coroutines reading one socket (Go programs share a UDP socket
/// between goroutines): every datagram is received, none is left behind
/// by a reader that consumed the edge, and nobody hangs.
#[test]
fn many_readers_share_one_udp_socket() {
    let rt = rt(2);
    rt.run(|| {
        let sock = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let addr = sock.local_addr().unwrap();
        const READERS: usize = 4;
        const ROUNDS: usize = 50;
        let (tx, rx) = goro::chan::<u8>(READERS * ROUNDS);
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let (sock, tx) = (sock.clone(), tx.clone());
                goro::go(move || {
                    let mut buf = [0u8; 4];
                    for _ in 0..ROUNDS {
                        let (n, _) = sock.recv_from(&mut buf).unwrap();
                        assert_eq!(n, 1);
                        tx.send(buf[0]).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        // At most BATCH datagrams in flight, so the loopback receive buffer
        // never drops one (UDP may): a lost datagram must mean a lost wake.
        const BATCH: usize = 8;
        let out = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut got: Vec<u8> = Vec::new();
        for i in 0..READERS * ROUNDS {
            out.send_to(&[(i % 251) as u8], addr).unwrap();
            if i % BATCH == BATCH - 1 {
                for _ in 0..BATCH {
                    let v = rx.recv_timeout(Duration::from_secs(10)).expect("a datagram was never received");
                    got.push(v);
                }
                if i % 3 == 0 {
                    goro::time::sleep(Duration::from_micros(200)); // readers park in between
                }
            }
        }
        got.extend(rx.iter());
        for h in readers {
            h.join().unwrap();
        }
        got.sort_unstable();
        let mut want: Vec<u8> = (0..READERS * ROUNDS).map(|i| (i % 251) as u8).collect();
        want.sort_unstable();
        assert_eq!(got, want);
    })
    .unwrap();
}

/// A worker that sleeps in the netpoller (a coroutine waits on a socket
/// that stays quiet) is woken for work queued from a plain thread, over and
/// over: the waker's unpark must not miss the sleeper's move from plain
/// sleep to polling. A missed one leaves the worker in `epoll_wait` for
/// good; the watchdog turns that into a failure.
#[test]
fn wakes_reach_a_worker_asleep_in_the_poller() {
    const ROUNDS: u32 = 20_000;
    let sum = within(60, "a wake was lost: the worker stayed in the poller", || {
        rt(1)
            .run(|| {
                let ln = TcpListener::bind("127.0.0.1:0").unwrap();
                let quiet = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
                let (_peer, _) = ln.accept().unwrap();
                // Keeps a socket waiter around, so the idle worker polls.
                let reader = goro::go(move || (&quiet).read(&mut [0u8; 1]).map(|_| ()));
                let (to_tx, to_rx) = goro::chan::<u32>(0);
                let (back_tx, back_rx) = goro::chan::<u32>(0);
                let feeder = std::thread::spawn(move || {
                    let mut sum = 0u64;
                    for i in 0..ROUNDS {
                        to_tx.send(i).unwrap();
                        sum += back_rx.recv().unwrap() as u64;
                    }
                    sum
                });
                for v in &to_rx {
                    back_tx.send(v + 1).unwrap();
                }
                let sum = feeder.join().unwrap();
                drop(_peer);
                let _ = reader.join();
                sum
            })
            .unwrap()
    });
    assert_eq!(sum, (1..=ROUNDS as u64).sum::<u64>());
}

/// The peer's last bytes and its close arrive together, while the reader
/// is parked: one event says both. The read after the short read of the
/// bytes must still see the end of stream (no further edge will come for
/// it), many times over. The watchdog turns a hang into a failure.
#[test]
fn end_of_stream_arriving_with_the_last_bytes() {
    within(60, "a reader missed the end of stream that came with its data", || {
        goro::run(|| {
            let ln = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = ln.local_addr().unwrap();
            for _ in 0..50 {
                let c = TcpStream::connect(addr).unwrap();
                let (s, _) = ln.accept().unwrap();
                let server = goro::go(move || bytes_until_closed(&s));
                // Let the server park in its read first.
                goro::time::sleep(Duration::from_millis(5));
                (&c).write_all(&[1, 2, 3]).unwrap();
                drop(c);
                assert_eq!(server.join().unwrap(), 3);
            }
        });
    });
}

/// Writes to `w` until a write fails (the peer never reads, so the socket
/// buffers fill and the writer parks); returns the error and how many bytes
/// went in first.
fn write_until_error(mut w: impl Write) -> (std::io::Error, usize) {
    let chunk = [7u8; 64 * 1024];
    let mut n = 0;
    loop {
        match w.write(&chunk) {
            Ok(k) => n += k,
            Err(e) => return (e, n),
        }
    }
}

/// `UnixStream` shares its reads, writes, timeouts and shutdown with
/// `TcpStream`; each is checked here on a Unix pair, through the owned
/// `Read`/`Write` impls as well as the `&` ones.
#[test]
fn unix_stream_timeouts_shutdown_and_owned_io() {
    goro::run(|| {
        let (mut x, mut y) = UnixStream::pair().unwrap();
        // Owned Read/Write.
        x.write_all(b"abc").unwrap();
        let mut b = [0u8; 3];
        y.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"abc");

        // Read timeout: nothing comes, the read gives up with TimedOut.
        y.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        let t = std::time::Instant::now();
        let e = y.read(&mut b).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert_eq!(y.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(y.set_write_timeout(Some(Duration::ZERO)).unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
        y.set_read_timeout(None).unwrap();

        // Write timeout: the peer never reads, the buffers fill, the
        // parked writer gives up with TimedOut.
        x.set_write_timeout(Some(Duration::from_millis(30))).unwrap();
        let (e, n) = write_until_error(&x);
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(n > 0);

        // Shutdown: the peer drains what was written, then reads end of stream.
        x.shutdown(Shutdown::Write).unwrap();
        let mut sink = Vec::new();
        let got = (&y).read_to_end(&mut sink).unwrap();
        assert_eq!(got, n);
        assert!(sink.iter().all(|&c| c == 7));
    });
}

#[test]
fn tcp_write_timeout() {
    goro::run(|| {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
        let (_s, _) = ln.accept().unwrap();
        assert_eq!(c.write_timeout().unwrap(), None);
        c.set_write_timeout(Some(Duration::from_millis(30))).unwrap();
        assert_eq!(c.write_timeout().unwrap(), Some(Duration::from_millis(30)));
        let (e, n) = write_until_error(&c);
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(n > 0);
        assert!(c.set_write_timeout(Some(Duration::ZERO)).is_err());
        assert_eq!(c.write_timeout().unwrap(), Some(Duration::from_millis(30)));
    });
}

#[test]
fn unix_listener_close_wakes_blocked_accept() {
    let path = socket_path("c.sock");
    goro::run(move || {
        let ln = std::sync::Arc::new(UnixListener::bind(&path).unwrap());
        let l2 = ln.clone();
        let h = goro::go(move || l2.accept().is_err());
        goro::time::sleep(Duration::from_millis(20));
        ln.close().unwrap();
        assert!(h.join().unwrap());
        assert!(ln.accept().is_err());
        let _ = std::fs::remove_file(&path);
    });
}
