#!/usr/bin/env python3
"""List goro's public items whose rustdoc has no example (code block).

Reads the HTML that `cargo doc --no-deps` writes (stable rustdoc; the JSON
output and `--show-coverage` are nightly-only). An item counts as covered
when its own doc block holds a Rust code block (`example-wrap`): module
pages, free items (fn, struct, enum, trait, macro, const, type), inherent
methods, and a trait's own methods. Trait-impl methods (Clone, Drop, ...)
are not counted. Redirect pages (re-export aliases) are skipped.

Run `cargo doc --no-deps` first, then: scripts/doc_coverage.py [DOC_DIR]
(default: $CARGO_TARGET_DIR/doc/goro or target/doc/goro). Prints one
missing item per line, then a summary.
Exit status 0 always; pass --fail to exit 1 when something is missing.
"""
import os
import re
import sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
fail = "--fail" in sys.argv
target = os.environ.get("CARGO_TARGET_DIR", "target")
root = args[0] if args else os.path.join(target, "doc", "goro")

KINDS = ("struct.", "enum.", "fn.", "trait.", "macro.", "constant.", "type.", "static.", "union.")
EX = 'class="example-wrap'


def top_doc(html):
    """The item's own doc block (before the first section header)."""
    i = html.find('<details class="toggle top-doc"')
    if i < 0:
        i = html.find('<div class="docblock">')
        if i < 0:
            return ""
    j = re.search(r'<h2 id="[^"]*" class="section-header"', html[i:])
    j = i + j.start() if j else -1
    return html[i: j if j >= 0 else len(html)]


def methods(html, start_id):
    """(name, docblock) for each method section between start_id and the next h2."""
    i = html.find(f'id="{start_id}"')
    if i < 0:
        return []
    j = re.search(r'<h2 id="[^"]*" class="section-header"', html[i + 10:])
    j = i + 10 + j.start() if j else -1
    body = html[i: j if j >= 0 else len(html)]
    out = []
    parts = re.split(r'<section id="((?:tymethod|method)\.[A-Za-z0-9_]+(?:-\d+)?)"', body)
    for k in range(1, len(parts), 2):
        name = parts[k].split(".", 1)[1]
        chunk = parts[k + 1]
        # only the doc of this method: up to the next method toggle
        end = chunk.find("</details>")
        out.append((name, chunk[: end if end >= 0 else len(chunk)]))
    return out


def read(rel):
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return f.read()


# The pages to check come from rustdoc's own lists (all.html for items, the
# crate page for modules), so stale pages of items since removed, which
# rustdoc leaves behind in target/doc, are not counted.
index = read("index.html")
pages = [("index.html", "mod", "goro")]
for sub in sorted(set(re.findall(r'href="((?:[a-z_0-9]+/)+)index.html"', index))):
    pages.append((sub + "index.html", "mod", "goro::" + sub.strip("/").replace("/", "::")))
for href in sorted(set(re.findall(r'href="([^"#]+\.html)"', read("all.html")))):
    d, f = os.path.split(href)
    if not f.startswith(KINDS):
        continue
    kind, name = f[:-5].split(".", 1)
    pages.append((href, kind, "::".join(["goro"] + ([d.replace("/", "::")] if d else []) + [name])))

total = 0
missing = []
for rel, kind, name in pages:
    html = read(rel)
    if 'http-equiv="refresh"' in html:
        continue
    total += 1
    if EX not in top_doc(html):
        missing.append(f"{kind} {name}")
    if kind in ("struct", "enum", "union", "type"):
        for m, doc in methods(html, "implementations-list"):
            total += 1
            if EX not in doc:
                missing.append(f"method {name}::{m}")
    if kind == "trait":
        for sec in ("required-methods", "provided-methods"):
            for m, doc in methods(html, sec):
                total += 1
                if EX not in doc:
                    missing.append(f"method {name}::{m}")

for m in sorted(missing):
    print(m)
print(f"# {len(missing)} of {total} public items have no example")
sys.exit(1 if fail and missing else 0)
