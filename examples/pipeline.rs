//! Ports the bounded-parallelism program of the Go blog's "Go Concurrency
//! Patterns: Pipelines and cancellation" (Sameer Ajmani, 2014,
//! <https://go.dev/blog/pipelines>, `bounded.go`): `MD5All` walks a
//! directory tree, a fixed number of digester coroutines read and hash the
//! files, and the first error cancels every stage through a `done` signal.
//!
//! `cargo run --release --example pipeline [DIR]` prints what the Go program
//! prints: `<md5 in hex>  <path>` for every regular file under `DIR`
//! (default: this crate's `src/`), sorted by path, the format of `md5sum`.
//! The output does not depend on timing.
//!
//! Go → goro: the blog's `done` channel, closed by `defer close(done)`, is a
//! `goro::context` whose `CancelFn` is dropped when `md5_all` returns (Go's
//! `defer cancel()`); `case <-done:` is `recv(ctx.done()) -> _`. Reading a
//! file is a blocking system call: Go's runtime hides it, goro runs it in
//! `goro::blocking`, and so the directory reads. `wg.Wait(); close(c)` is
//! kept; dropping the digesters' `Sender`s would close `c` as well. Go's
//! `crypto/md5` is a small MD5 below (the crate has no MD5 dependency).
//! `tests/examples_run.rs` checks known digests, the error path and
//! cancellation of the walk.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use goro::context::{self, Context};
use goro::sync::WaitGroup;
use goro::{chan, Receiver, Sender};

/// Go's `walkFiles`: sends the path of each regular file under `root` on the
/// returned channel, and the walk's result on the second, stopping early
/// with "walk canceled" when `ctx` is done.
pub fn walk_files(ctx: &Context, root: &Path) -> (Receiver<PathBuf>, Receiver<io::Result<()>>) {
    let (paths_tx, paths) = chan::<PathBuf>(0);
    let (errc_tx, errc) = chan::<io::Result<()>>(1);
    let (ctx, root) = (ctx.clone(), root.to_path_buf());
    goro::go(move || {
        // Go: defer close(paths): paths_tx is dropped when this closure ends.
        let _ = errc_tx.send(walk(&ctx, root, &paths_tx));
    });
    (paths, errc)
}

fn walk(ctx: &Context, dir: PathBuf, paths: &Sender<PathBuf>) -> io::Result<()> {
    let mut entries = goro::blocking(move || -> io::Result<Vec<(PathBuf, std::fs::FileType)>> {
        std::fs::read_dir(&dir)?.map(|e| e.and_then(|e| Ok((e.path(), e.file_type()?)))).collect()
    })?;
    entries.sort_by(|a, b| a.0.cmp(&b.0)); // filepath.Walk visits in lexical order
    for (path, ty) in entries {
        if ty.is_dir() {
            walk(ctx, path, paths)?;
        } else if ty.is_file() {
            goro::select! {
                send(paths, path) -> r => if r.is_err() { return Err(io::Error::other("walk canceled")) },
                recv(ctx.done()) -> _ => return Err(io::Error::other("walk canceled")),
            }
        }
    }
    Ok(())
}

/// Go's `result`.
pub struct Digest {
    path: PathBuf,
    sum: io::Result<[u8; 16]>,
}

/// Go's `digester`: hashes files from `paths` until it is closed or `ctx`
/// is done.
pub fn digester(ctx: &Context, paths: &Receiver<PathBuf>, c: &Sender<Digest>) {
    for path in paths {
        let p = path.clone();
        let sum = goro::blocking(move || std::fs::read(p).map(|data| md5(&data)));
        goro::select! {
            send(c, Digest { path, sum }) -> r => if r.is_err() { return }, // md5_all has returned
            recv(ctx.done()) -> _ => return,
        }
    }
}

/// Go's `MD5All`: the MD5 of every regular file under `root`, or the first
/// error. On an error it returns at once; the cancelled context stops the
/// walk and the digesters.
pub fn md5_all(root: &Path) -> io::Result<BTreeMap<PathBuf, [u8; 16]>> {
    // Go: done := make(chan struct{}); defer close(done)
    let (ctx, _cancel) = context::background().with_cancel();
    let (paths, errc) = walk_files(&ctx, root);
    let (c_tx, c) = chan::<Digest>(0);
    let wg = WaitGroup::new();
    const NUM_DIGESTERS: usize = 20;
    for _ in 0..NUM_DIGESTERS {
        let (ctx, paths, c_tx) = (ctx.clone(), paths.clone(), c_tx.clone());
        wg.go(move || digester(&ctx, &paths, &c_tx));
    }
    goro::go(move || {
        wg.wait();
        c_tx.close();
    });
    let mut m = BTreeMap::new();
    for r in &c {
        m.insert(r.path, r.sum?);
    }
    errc.recv().expect("the walker always reports")?;
    Ok(m)
}

/// MD5 (RFC 1321), in place of Go's `crypto/md5`.
pub fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14,
        20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6,
        10, 15, 21,
    ];
    let k: Vec<u32> = (0..64).map(|i| ((i as f64 + 1.0).sin().abs() * 4294967296.0) as u32).collect();
    let mut h: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    for block in msg.chunks(64) {
        let m: Vec<u32> = block.chunks(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect();
        let [mut a, mut b, mut c, mut d] = h;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 16];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
    }
    out
}

/// `%x` of a digest.
pub fn hex(sum: &[u8; 16]) -> String {
    sum.iter().map(|b| format!("{b:02x}")).collect()
}

#[allow(dead_code)] // the test includes this file as a module
fn main() {
    let root = std::env::args().nth(1).unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/src").to_string());
    goro::run(move || match md5_all(Path::new(&root)) {
        Err(e) => println!("{e}"),
        Ok(m) => {
            // Go: sort.Strings(paths), byte order ("loom.rs" before "loom/..."),
            // which is not the component order of a PathBuf map.
            let mut paths: Vec<_> = m.iter().collect();
            paths.sort_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
            for (path, sum) in paths {
                println!("{}  {}", hex(sum), path.display());
            }
        }
    });
}
