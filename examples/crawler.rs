// Ports the Go tour's "Exercise: Web Crawler" (https://go.dev/tour/concurrency/10),
// solved the way Go code does it today: a fake fetcher map, a `context`
// with a timeout, an `errgroup` with `SetLimit` for bounded parallelism,
// and a `select` on `ctx.Done()` inside each fetch. It crawls level by
// level (so no task waits for a slot held by its own parent) and prints
// each level sorted, so the output is deterministic:
//
//   found: https://golang.org/ "The Go Programming Language"
//   not found: https://golang.org/cmd/
//   found: https://golang.org/pkg/ "Packages"
//   found: https://golang.org/pkg/fmt/ "Package fmt"
//   found: https://golang.org/pkg/os/ "Package os"
//   crawl with a 1 ms budget: context deadline exceeded
//
// Run: cargo run --example crawler

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use goro::context::{self, Context, ContextError};
use goro::sync::{Group, Mutex};

type Page = Option<(&'static str, &'static [&'static str])>;

/// The tour's `fakeFetcher`: title and links of each known page.
fn fake_web(url: &str) -> Page {
    Some(match url {
        "https://golang.org/" => {
            ("The Go Programming Language", &["https://golang.org/pkg/", "https://golang.org/cmd/"])
        }
        "https://golang.org/pkg/" => (
            "Packages",
            &[
                "https://golang.org/",
                "https://golang.org/cmd/",
                "https://golang.org/pkg/fmt/",
                "https://golang.org/pkg/os/",
            ],
        ),
        "https://golang.org/pkg/fmt/" => ("Package fmt", &["https://golang.org/", "https://golang.org/pkg/"]),
        "https://golang.org/pkg/os/" => ("Package os", &["https://golang.org/", "https://golang.org/pkg/"]),
        _ => return None,
    })
}

/// Fetches `url` (a 10 ms round trip) unless `ctx` is done first.
fn fetch(ctx: &Context, url: &str) -> Result<Page, ContextError> {
    goro::select! {
        recv(goro::time::after(Duration::from_millis(10))) -> _ => Ok(fake_web(url)),
        recv(ctx.done()) -> _ => Err(ctx.err().expect("done")),
    }
}

/// Crawls from `root` down to `depth` levels, at most 2 fetches at once,
/// giving up when `budget` has passed.
fn crawl(root: &str, depth: usize, budget: Duration) -> Result<Vec<String>, ContextError> {
    let (ctx, _cancel) = context::background().with_timeout(budget); // defer cancel()
    let mut seen = HashSet::from([root.to_string()]);
    let mut level = vec![root.to_string()];
    let mut lines = Vec::new();
    for _ in 0..depth {
        let (g, gctx) = Group::with_context(&ctx);
        g.set_limit(2);
        let pages = Arc::new(Mutex::new(BTreeMap::new()));
        for url in level.drain(..) {
            let (gctx, pages) = (gctx.clone(), pages.clone());
            g.go(move || {
                let page = fetch(&gctx, &url)?;
                pages.lock().insert(url, page);
                Ok(())
            });
        }
        g.wait()?;
        for (url, page) in pages.lock().iter() {
            match page {
                Some((title, links)) => {
                    lines.push(format!("found: {url} {title:?}"));
                    level.extend(links.iter().filter(|l| seen.insert(l.to_string())).map(|l| l.to_string()));
                }
                None => lines.push(format!("not found: {url}")),
            }
        }
    }
    Ok(lines)
}

fn main() {
    goro::run(|| {
        for line in crawl("https://golang.org/", 4, Duration::from_secs(5)).expect("in time") {
            println!("{line}");
        }
        match crawl("https://golang.org/", 4, Duration::from_millis(1)) {
            Ok(_) => println!("crawl with a 1 ms budget: finished?"),
            Err(e) => println!("crawl with a 1 ms budget: {e}"),
        }
    });
}
