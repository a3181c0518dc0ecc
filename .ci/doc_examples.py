#!/usr/bin/env python3
"""Every public type of every crate under crates/ has an example in its documentation.

Reads the HTML that `cargo doc --no-deps` wrote (target/doc by default): each page of a
struct, enum, trait, type alias or union of a crate's own must show a Rust code block in
its top documentation. Prints the types without one, per crate, and fails if there is any.

    python3 .ci/doc_examples.py [--doc-dir target/doc] [--count]

`--count` prints the per-crate counts and exits 0 (for reports).
"""
import argparse
import pathlib
import re
import sys
import time

KINDS = ("struct", "enum", "trait", "type", "union")
PAGE = re.compile(r"^(%s)\.(\w+)\.html$" % "|".join(KINDS))
TOP_DOC = re.compile(r'<details class="toggle top-doc"[^>]*>(.*?)</details>', re.S)
EXAMPLE = "rust-example-rendered"
REDIRECT = 'http-equiv="refresh"'


def crates(root):
    for manifest in sorted(root.glob("crates/*/Cargo.toml")):
        name = re.search(r'^name\s*=\s*"([^"]+)"', manifest.read_text(), re.M)
        if name:
            yield name.group(1).replace("-", "_")


def missing(doc_dir, crate):
    """(pages, the items of `crate` whose top documentation has no Rust example)."""
    base = doc_dir / crate
    pages, without = 0, []
    for page in sorted(base.rglob("*.html")):
        match = PAGE.match(page.name)
        if not match:
            continue
        html = page.read_text(encoding="utf-8", errors="replace")
        if REDIRECT in html[:400]:
            continue  # a private module's path to a re-exported item: documented where it lands
        pages += 1
        top = TOP_DOC.search(html)
        if top is None or EXAMPLE not in top.group(1):
            module = "::".join(page.relative_to(doc_dir).parent.parts)
            without.append(f"{match.group(1)} {module}::{match.group(2)}")
    return pages, without


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doc-dir", default="target/doc", type=pathlib.Path)
    parser.add_argument("--count", action="store_true", help="print counts, never fail")
    args = parser.parse_args()
    started = time.monotonic()
    root = pathlib.Path(__file__).resolve().parent.parent
    doc_dir = args.doc_dir if args.doc_dir.is_absolute() else root / args.doc_dir
    total = 0
    for crate in crates(root):
        if not (doc_dir / crate).is_dir():
            print(f"{crate}: no documentation in {doc_dir} (run cargo doc --no-deps first)")
            total += 1
            continue
        pages, without = missing(doc_dir, crate)
        total += len(without)
        print(f"{crate}: {pages} public types, {len(without)} without an example")
        if not args.count:
            for item in without:
                print(f"    {item}")
    took = time.monotonic() - started
    if total and not args.count:
        print(f"{total} public types without an example in their documentation ({took:.1f} s)")
        return 1
    print(f"done in {took:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
