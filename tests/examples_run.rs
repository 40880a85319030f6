//! The Go ports in `examples/` (worker_pools, rate_limiting, pipeline,
//! fake_search, for_select), checked without `cargo run`: each example file
//! is compiled into this test as a module (its `main` unused) and its
//! functions are called with short durations, so the examples cannot rot
//! and the check costs milliseconds. Only lower-bound timing asserts.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../examples/worker_pools.rs"]
mod worker_pools;

#[allow(dead_code)]
#[path = "../examples/rate_limiting.rs"]
mod rate_limiting;

#[allow(dead_code)]
#[path = "../examples/pipeline.rs"]
mod pipeline;

#[allow(dead_code)]
#[path = "../examples/fake_search.rs"]
mod fake_search;

#[allow(dead_code)]
#[path = "../examples/for_select.rs"]
mod for_select;

type Out = Arc<dyn Fn(String) + Send + Sync>;

/// An `Out` that keeps the lines, and the lines kept.
fn collect() -> (Out, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l2 = lines.clone();
    (Arc::new(move |s| l2.lock().unwrap().push(s)), lines)
}

/// Waits (up to 5 s) until the runtime has only the main coroutine left.
fn settles_to_main_only() -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if goro::num_coroutines() == 1 {
            return true;
        }
        goro::time::sleep(Duration::from_millis(1));
    }
    false
}

#[test]
fn worker_pools_prints_gos_lines() {
    let _w = common::watchdog(30, "worker_pools_prints_gos_lines");
    let (out, lines) = collect();
    let mut results = goro::run(move || worker_pools::worker_pools(5, 3, Duration::from_millis(1), out));
    results.sort();
    assert_eq!(results, [2, 4, 6, 8, 10]);
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 10, "{lines:?}");
    for j in 1..=5 {
        let find = |what: String| {
            (0..lines.len())
                .filter(|&i| lines[i].starts_with("worker ") && lines[i].ends_with(&what))
                .collect::<Vec<_>>()
        };
        let started = find(format!(" started  job {j}"));
        let finished = find(format!(" finished job {j}"));
        assert!(started.len() == 1 && finished.len() == 1, "job {j}: {lines:?}");
        assert!(started[0] < finished[0], "job {j} finished before it started: {lines:?}");
        // The same worker starts and finishes a job.
        assert_eq!(lines[started[0]].split(' ').nth(1), lines[finished[0]].split(' ').nth(1));
    }
}

#[test]
fn rate_limiting_holds_the_rate_after_the_burst() {
    let _w = common::watchdog(30, "rate_limiting_holds_the_rate_after_the_burst");
    let every = Duration::from_millis(5);
    let (out, lines) = collect();
    let [steady, bursty] = goro::run(move || rate_limiting::rate_limiting(every, out));
    assert_eq!(steady.len(), 5);
    assert_eq!(bursty.len(), 5);
    for (i, t) in steady.iter().enumerate() {
        assert!(*t >= every * (i as u32 + 1), "steady request {} served at {t:?}", i + 1);
    }
    // The first three bursty requests take buffered tokens; the fourth and
    // fifth wait for the refill ticker.
    assert!(bursty[3] >= every, "{bursty:?}");
    assert!(bursty[4] >= every * 2, "{bursty:?}");
    let lines = lines.lock().unwrap().clone();
    let reqs: Vec<_> = lines.iter().map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" ")).collect();
    let want: Vec<_> = (1..=5).chain(1..=5).map(|i| format!("request {i}")).collect();
    assert_eq!(reqs, want);
}

fn scratch_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("goro-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("sub")).unwrap();
    d
}

#[test]
fn pipeline_md5_all_matches_known_digests() {
    let _w = common::watchdog(30, "pipeline_md5_all_matches_known_digests");
    let d = scratch_dir("md5");
    let files: [(&str, &str, &str); 4] = [
        ("empty", "", "d41d8cd98f00b204e9800998ecf8427e"),
        ("sub/abc", "abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("sub/fox", "The quick brown fox jumps over the lazy dog", "9e107d9d372bb6826bd81d3542a419d6"),
        (
            "sub/digits",
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a",
        ),
    ];
    for (name, text, _) in &files {
        std::fs::write(d.join(name), text).unwrap();
    }
    let d2 = d.clone();
    let (m, settled) = goro::run(move || {
        let m = pipeline::md5_all(&d2).unwrap();
        (m, settles_to_main_only())
    });
    assert_eq!(m.len(), files.len());
    for (name, _, want) in &files {
        assert_eq!(pipeline::hex(&m[&d.join(name)]), *want, "{name}");
    }
    assert!(settled, "the walker, the digesters or the closer outlived md5_all");
    let err = goro::run(|| pipeline::md5_all(Path::new("/nonexistent/goro-pipeline")).unwrap_err());
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn pipeline_walk_stops_when_cancelled() {
    let _w = common::watchdog(30, "pipeline_walk_stops_when_cancelled");
    let d = scratch_dir("walk");
    for i in 0..5 {
        std::fs::write(d.join(format!("f{i}")), "x").unwrap();
    }
    let d2 = d.clone();
    let (first, res) = goro::run(move || {
        let (ctx, cancel) = goro::context::background().with_cancel();
        let (paths, errc) = pipeline::walk_files(&ctx, &d2);
        let first = paths.recv().unwrap();
        cancel.cancel(); // Go: close(done)
        (first, errc.recv().unwrap())
    });
    assert_eq!(first, d.join("f0"), "the walk visits in lexical order");
    assert_eq!(res.unwrap_err().to_string(), "walk canceled");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn fake_search_first_replica_wins_and_losers_end() {
    let _w = common::watchdog(30, "fake_search_first_replica_wins_and_losers_end");
    use fake_search::{first, fixed_search, format_results, google};
    let fast = Duration::ZERO;
    let slow = Duration::from_millis(30);
    let (got, settled) = goro::run(move || {
        let got = first("golang", &[fixed_search("web1", slow), fixed_search("web2", fast)]);
        // Go's losing replica blocks on `c <- ...` for ever; here its send fails.
        (got, settles_to_main_only())
    });
    assert_eq!(got, "web2 result for \"golang\"\n");
    assert!(settled, "a losing replica never ended");

    let (out, lines) = collect();
    let results = goro::run(move || {
        let kinds = [
            [fixed_search("web1", fast), fixed_search("web2", slow)],
            [fixed_search("image1", slow), fixed_search("image2", fast)],
            [fixed_search("video1", fast), fixed_search("video2", slow)],
        ];
        google("golang", &kinds, Duration::from_secs(10), out)
    });
    let mut sorted = results.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["image2 result for \"golang\"\n", "video1 result for \"golang\"\n", "web1 result for \"golang\"\n"]
    );
    assert!(lines.lock().unwrap().is_empty());
    assert!(format_results(&results).starts_with('[') && format_results(&results).ends_with("\n]"));

    let (out, lines) = collect();
    let results = goro::run(move || {
        let never = Duration::from_secs(3600);
        let kinds = [
            [fixed_search("web1", fast), fixed_search("web2", fast)],
            [fixed_search("image1", fast), fixed_search("image2", fast)],
            [fixed_search("video1", never), fixed_search("video2", never)],
        ];
        google("golang", &kinds, Duration::from_millis(20), out)
    });
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(*lines.lock().unwrap(), ["timed out"]);
}

#[test]
fn for_select_merge_drains_both_inputs() {
    let _w = common::watchdog(30, "for_select_merge_drains_both_inputs");
    let (out, lines) = collect();
    let got = goro::run(move || {
        let a = for_select::as_chan(vec![1, 3, 5, 7], Duration::from_millis(2));
        let b = for_select::as_chan(vec![2, 4, 6, 8], Duration::from_millis(2));
        for_select::merge(a, b, out).iter().collect::<Vec<_>>()
    });
    let odd: Vec<_> = got.iter().copied().filter(|v| v % 2 == 1).collect();
    let even: Vec<_> = got.iter().copied().filter(|v| v % 2 == 0).collect();
    assert_eq!(odd, [1, 3, 5, 7]);
    assert_eq!(even, [2, 4, 6, 8]);
    let mut lines = lines.lock().unwrap().clone();
    lines.sort();
    assert_eq!(lines, ["a is done", "b is done"]);
}

#[test]
fn for_select_disables_a_finished_input() {
    let _w = common::watchdog(30, "for_select_disables_a_finished_input");
    let (out, lines) = collect();
    let got = goro::run(move || {
        // `a` is drained and closed while `b` cannot send yet, so the merge
        // sees `a` closed first and must disable its case: without the
        // nil-channel trick the closed `a` stays ready and the loop prints
        // "a is done" again on every turn until `b` ends.
        let (ta, a) = goro::chan::<i32>(2);
        ta.send(1).unwrap();
        ta.send(3).unwrap();
        drop(ta);
        let (gate_tx, gate) = goro::chan::<()>(0);
        let (tb, b) = goro::chan::<i32>(0);
        goro::go(move || {
            gate.recv().unwrap();
            for v in [2, 4, 6, 8] {
                tb.send(v).unwrap();
            }
        });
        let c = for_select::merge(a, b, out);
        let mut got = vec![c.recv().unwrap(), c.recv().unwrap()];
        goro::time::sleep(Duration::from_millis(2)); // the merge loop turns on the closed `a`
        gate_tx.send(()).unwrap();
        got.extend(c.iter());
        got
    });
    assert_eq!(got, [1, 3, 2, 4, 6, 8]);
    assert_eq!(*lines.lock().unwrap(), ["a is done", "b is done"]);
}
