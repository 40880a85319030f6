//! Tidy test: no module of `src/` names a module in a layer above its own.
//!
//! It reads every `src/**/*.rs`, finds the top-level modules each file names
//! through `crate::<module>` paths (and `crate::<Item>` for items the crate
//! root re-exports from a module), and checks each edge against `LAYERS`,
//! the table ARCHITECTURE.md mirrors. `super::` paths stay inside a folder
//! module; `#[cfg(test)]` code (after the first `#[cfg(test)]` of a file)
//! may reach anywhere. A module missing from the table fails the test: a new
//! module takes a layer on purpose (rust-analyzer's tidy tests, in spirit).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer of each top-level module, bottom (0) to top. A module may name a
/// module of a strictly lower layer, and the modules of `CORE` may name each
/// other. Keep in sync with ARCHITECTURE.md ("Layers").
const LAYERS: &[(&str, u32)] = &[
    // 0: names no other goro module (sharded counters, intrusive lists).
    ("shard", 0),
    ("list", 0),
    // 1: leaves: name only `shard`.
    ("loom", 1),
    ("wait", 1),
    ("stack", 1),
    // 2: the core: the coroutine control block, parking, the scheduler.
    ("park", 2),
    ("coroutine", 2),
    ("sched", 2),
    // 3: primitives built on parking.
    ("chan", 3),
    ("sync", 3),
    // 4: select over channels (algorithm, dynamic `Select`, macro glue).
    ("select", 4),
    ("select_macro", 4),
    // 5: timers (channel timers, sleep, the per-worker heap).
    ("time", 5),
    // 6: readers of the scheduler, and I/O.
    ("diag", 6),
    ("net", 6),
    // 7: the composition of it all: builder, `run`, the driver.
    ("runtime", 7),
    // 8: built on the whole runtime (goro::context, scopes, block_on).
    ("context", 8),
    ("scope", 8),
    ("block_on", 8),
    // A file placed by its public path, not its layer: `goro::sync::Group`
    // (Go's errgroup) uses `context`; `sync/mod.rs` only re-exports it.
    ("sync/group", 9),
];

/// The one allowed import cycle (ARCHITECTURE.md, "The core").
const CORE: &[&str] = &["park", "coroutine", "sched"];

/// Items of the crate root (lib.rs) a module may name, and which: the
/// composition root's late-bound edges (ARCHITECTURE.md, "Seams").
const ROOT_ITEMS: &[(&str, &str)] = &[("sched", "default_runtime")];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/chan/imp.rs` -> `chan`; `src/select.rs` -> `select`; a file with
/// a layer of its own in `LAYERS` (`src/sync/group.rs` -> `sync/group`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let own = rel.with_extension("").to_string_lossy().replace('\\', "/");
    if LAYERS.iter().any(|(m, _)| *m == own) {
        return own;
    }
    let first = rel.components().next().unwrap().as_os_str().to_str().unwrap();
    first.trim_end_matches(".rs").to_string()
}

/// The code of a file without comments, string contents, and test code.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap();
    let b = text.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i = text[i..].find("*/").map_or(b.len(), |j| i + j + 2);
        } else if b[i] == b'"' && (i == 0 || b[i - 1] != b'\'') {
            // Skip a string literal (escapes included); keep the quotes.
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i += 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// Every `crate::x` and `crate::{x, y::z}` head named in `code`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c == '$' || c.is_ascii_alphanumeric() || c == '_') {
            continue; // `$crate::` (a macro's expansion site) or `foo_crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for part in group.split(',') {
                let id = ident_at(part.trim());
                if !id.is_empty() {
                    names.insert(id.to_string());
                }
            }
        } else {
            let id = ident_at(rest);
            if !id.is_empty() {
                names.insert(id.to_string());
            }
        }
    }
    names
}

/// Items lib.rs re-exports, by the module they come from (`pub use
/// chan::{Sender, ...}` makes `crate::Sender` an edge to `chan`).
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let code = code_of(lib);
    for stmt in code.split(';') {
        let Some(i) = stmt.find("pub use ") else { continue };
        let path = stmt[i + "pub use ".len()..].trim();
        let module = ident_at(path).to_string();
        let tail = &path[module.len()..];
        let items: Vec<&str> = match tail.find('{') {
            Some(j) => tail[j + 1..].trim_end_matches('}').split(',').collect(),
            None => vec![tail.rsplit("::").next().unwrap_or("")],
        };
        for it in items {
            let it = it.trim();
            let name = it.rsplit(" as ").next().unwrap().rsplit("::").next().unwrap().trim();
            if !name.is_empty() && name != "self" {
                map.insert(name.to_string(), module.clone());
            }
        }
    }
    map
}

/// The edges of `src/` that break the layering, as messages.
fn violations(src: &Path) -> Vec<String> {
    let layer: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let reexports = root_reexports(&lib);
    let mut files = Vec::new();
    rs_files(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for f in &files {
        let m = module_of(src, f);
        if m == "lib" {
            continue; // the crate root wires every layer
        }
        let Some(&lm) = layer.get(m.as_str()) else {
            bad.push(format!("{}: module `{m}` has no layer in tests/layering.rs (and ARCHITECTURE.md)", f.display()));
            continue;
        };
        let code = code_of(&std::fs::read_to_string(f).unwrap());
        for name in crate_paths(&code) {
            let target = if layer.contains_key(name.as_str()) {
                name.clone()
            } else if let Some(module) = reexports.get(&name) {
                module.clone()
            } else if ROOT_ITEMS.contains(&(m.as_str(), name.as_str())) {
                continue;
            } else if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) && name != "self" {
                bad.push(format!("{}: `crate::{name}` names an item of the crate root", f.display()));
                continue;
            } else {
                continue; // a root re-export from outside the crate's modules (none today)
            };
            if target == m {
                continue;
            }
            let lt = layer[target.as_str()];
            let core = CORE.contains(&m.as_str()) && CORE.contains(&target.as_str());
            if !(lt < lm || core) {
                bad.push(format!(
                    "{}: `{m}` (layer {lm}) names `{target}` (layer {lt}) through `crate::{name}`",
                    f.display()
                ));
            }
        }
    }
    bad
}

#[test]
fn no_module_names_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(bad.is_empty(), "layering violations (see ARCHITECTURE.md, \"Layers\"):\n  {}", bad.join("\n  "));
}

#[test]
fn the_checker_sees_an_upward_edge() {
    let dir = std::env::temp_dir().join(format!("goro-layering-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sched")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub use chan::{Sender, chan};\n").unwrap();
    std::fs::write(
        src.join("sched/mod.rs"),
        "// crate::net in a comment is fine\nuse crate::wait::WaitReason;\nfn f() { crate::time::sleep(); }\n",
    )
    .unwrap();
    std::fs::write(src.join("time.rs"), "use crate::{chan::imp, Sender};\n#[cfg(test)]\nuse crate::runtime;\n")
        .unwrap();
    std::fs::write(src.join("stack.rs"), "fn f() { let _ = crate::Sender::<u8>::new; }\n").unwrap();
    let bad = violations(&src);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(bad.len(), 2, "{bad:#?}");
    assert!(bad[0].contains("`sched` (layer 2) names `time` (layer 5)"), "{bad:#?}");
    assert!(bad[1].contains("`stack` (layer 1) names `chan` (layer 3) through `crate::Sender`"), "{bad:#?}");
}

// ---------------------------------------------------------------------------
// The `#[doc(hidden)] pub` surface.
//
// Internals reach the user's crate only where a macro expansion must name
// them. `select!` names what `lib.rs`'s `__private` re-exports (and its own
// `#[macro_export]` helper macros); nothing else is `#[doc(hidden)]`, so a
// new hidden item fails here until it is argued into one of these lists.

/// Every `#[doc(hidden)]` item the crate may have: (file under `src/`, item
/// name).
const HIDDEN: &[(&str, &str)] = &[
    // The one surface `select!`'s expansion names (see `PRIVATE_SURFACE`).
    ("lib.rs", "__private"),
    // `select!`'s helper macros: `#[macro_export]` puts them at the crate
    // root, where the expansion calls them as `$crate::__select_*!`.
    ("select_macro.rs", "__select_munch"),
    ("select_macro.rs", "__select_emit"),
    ("select_macro.rs", "__select_bind"),
    ("select_macro.rs", "__select_mode"),
    ("select_macro.rs", "__select_dispatch"),
    // Fault-injection and counting hooks of `tests/stack_guard.rs` and
    // `tests/stack_growth.rs` (an integration test cannot reach
    // `pub(crate)`); not part of `select!`.
    ("stack/mod.rs", "__fail_next_guard_installs"),
    ("stack/mod.rs", "__force_mprotect_guards"),
    ("stack/mod.rs", "__unguarded_slots"),
    ("stack/mod.rs", "__deep_reclaims"),
    ("stack/mod.rs", "__probes"),
    ("stack/mod.rs", "__guard_install_calls"),
    ("stack/mod.rs", "__guard_batches_work"),
    ("stack/mod.rs", "__cold_give_backs"),
];

/// What `goro::__private` re-exports: exactly the names the expansion of
/// `select!` uses (`lib.rs` says why each is there).
const PRIVATE_SURFACE: &[&str] = &["CaseRef", "Mode", "recv_case", "select", "send_case"];

/// Every `.rs` file of `src/`, in path order, as (path relative to `src/`
/// with `/` separators, its code without comments).
fn code_files(src: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rs_files(src, &mut files);
    files.sort();
    files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(src).unwrap().to_string_lossy().replace('\\', "/");
            (rel, code_of(&std::fs::read_to_string(f).unwrap()))
        })
        .collect()
}

/// The `#[doc(hidden)]` items of `src/`, as (file, name), in file order.
fn hidden_items(src: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (rel, code) in code_files(src) {
        for (at, _) in code.match_indices("#[doc(hidden)]") {
            let mut rest = code[at + "#[doc(hidden)]".len()..].trim_start();
            // Further attributes (`#[macro_export]`, `#[derive(..)]`, ...).
            while let Some(r) = rest.strip_prefix("#[") {
                rest = r[r.find(']').map_or(r.len(), |j| j + 1)..].trim_start();
            }
            // Visibility, then the item keyword, then its name.
            if let Some(r) = rest.strip_prefix("pub") {
                rest = r.trim_start();
                if rest.starts_with('(') {
                    rest = rest[rest.find(')').map_or(rest.len(), |j| j + 1)..].trim_start();
                }
            }
            for kw in ["unsafe ", "const ", "fn ", "struct ", "enum ", "union ", "trait ", "type ", "mod ", "static "] {
                if let Some(r) = rest.strip_prefix(kw) {
                    rest = r.trim_start();
                }
            }
            let rest = rest.strip_prefix("macro_rules!").map_or(rest, str::trim_start);
            out.push((rel.clone(), ident_at(rest).to_string()));
        }
    }
    out
}

/// The names `pub mod __private { .. }` in `lib` re-exports, sorted; `None`
/// if it holds anything but `pub use` items.
fn private_surface(lib: &str) -> Option<Vec<String>> {
    let code = code_of(lib);
    let start = code.find("pub mod __private {")? + "pub mod __private {".len();
    let body = &code[start..start + code[start..].find("\n}")?];
    let mut names = Vec::new();
    for item in body.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let path = item.strip_prefix("pub use ")?;
        let list = match path.find('{') {
            Some(i) => path[i + 1..].trim_end_matches('}'),
            None => path.rsplit("::").next().unwrap(),
        };
        names.extend(list.split(',').map(|n| n.trim().rsplit(" as ").next().unwrap().to_string()));
    }
    names.retain(|n| !n.is_empty());
    names.sort();
    Some(names)
}

#[test]
fn doc_hidden_only_where_a_macro_needs_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let unexpected: Vec<String> = hidden_items(&src)
        .into_iter()
        .filter(|(f, n)| !HIDDEN.iter().any(|(hf, hn)| hf == f && hn == n))
        .map(|(f, n)| format!("src/{f}: `{n}`"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "#[doc(hidden)] items outside the select! surface (make them pub(crate), or route what a macro \
         needs through `goro::__private`, and list it in tests/layering.rs):\n  {}",
        unexpected.join("\n  ")
    );
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    assert_eq!(
        private_surface(&lib).expect("lib.rs: `pub mod __private` holds only `pub use` items"),
        PRIVATE_SURFACE,
        "goro::__private re-exports more or less than select! names"
    );
}

#[test]
fn the_checker_sees_a_hidden_item() {
    let dir = std::env::temp_dir().join(format!("goro-hidden-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("park")).unwrap();
    std::fs::write(
        src.join("park/mod.rs"),
        "/// doc\n#[doc(hidden)]\n#[derive(Debug)]\npub struct Leak;\n// #[doc(hidden)] in a comment\n\
         impl Leak {\n    #[doc(hidden)]\n    pub(crate) fn also(&self) {}\n}\n",
    )
    .unwrap();
    std::fs::write(
        src.join("lib.rs"),
        "#[doc(hidden)]\npub mod __private {\n    pub use crate::select::{recv_case, Mode};\n    \
         pub use crate::park::Leak;\n}\n",
    )
    .unwrap();
    let found = hidden_items(&src);
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let want = [("lib.rs", "__private"), ("park/mod.rs", "Leak"), ("park/mod.rs", "also")];
    assert_eq!(found, want.map(|(f, n)| (f.to_string(), n.to_string())));
    assert_eq!(private_surface(&lib).unwrap(), ["Leak", "Mode", "recv_case"]);
    assert_eq!(private_surface("#[doc(hidden)]\npub mod __private {\n    pub fn f() {}\n}\n"), None);
}

// ---------------------------------------------------------------------------
// One wake path (ARCHITECTURE.md, "The one wake path").
//
// `RuntimeBuilder::migrate_started` is a documented no-op: the builder
// records it and no code reads it, so no park or wake can branch on it.

/// Every place in `src/` that reads the `migrate_started` flag: any
/// mention outside `runtime.rs`, and in `runtime.rs` any `.migrate_started`
/// that is not an assignment (`self.migrate_started = on`) or a call of
/// the builder method itself.
fn mode_flag_reads(src: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (rel, code) in code_files(src) {
        for (at, _) in code.match_indices("migrate_started") {
            let after = code[at + "migrate_started".len()..].trim_start();
            let before = code[..at].trim_end();
            let fine = rel == "runtime.rs"
                && ((before.ends_with("self.") && after.starts_with('=') && !after.starts_with("=="))
                    || before.ends_with("fn")
                    || (!before.ends_with('.') && after.starts_with(':')));
            if !fine {
                let line = code[..at].matches('\n').count() + 1;
                out.push(format!("src/{rel}:{line}"));
            }
        }
    }
    out
}

#[test]
fn no_code_reads_the_migrate_started_flag() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let reads = mode_flag_reads(&src);
    assert!(
        reads.is_empty(),
        "`migrate_started` is read (a second wake protocol? ARCHITECTURE.md, \"The one wake path\"):\n  {}",
        reads.join("\n  ")
    );
}

#[test]
fn the_checker_sees_a_flag_read() {
    let dir = std::env::temp_dir().join(format!("goro-flag-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sched")).unwrap();
    std::fs::write(
        src.join("runtime.rs"),
        "struct B {\n    migrate_started: bool,\n}\nfn new() -> B {\n    B { migrate_started: false }\n}\n\
         impl B {\n    pub unsafe fn migrate_started(mut self, on: bool) -> Self {\n        \
         self.migrate_started = on;\n        self\n    }\n    fn build(&self) -> bool {\n        \
         self.migrate_started == true\n    }\n}\n",
    )
    .unwrap();
    std::fs::write(
        src.join("sched/mod.rs"),
        "// migrate_started in a comment\nfn f(s: &S) { if s.migrate_started {} }\n",
    )
    .unwrap();
    let reads = mode_flag_reads(&src);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(reads, ["src/runtime.rs:13", "src/sched/mod.rs:2"]);
}
