#!/usr/bin/env bash
# Every crate under crates/ is publishable (issue 13.4): its manifest has what crates.io asks
# for (description, license, repository, keywords, categories, and a `version` beside every
# path dependency), and `cargo package` builds its archive from the files `include` names.
# No verify build (that would rebuild every crate in another profile): the compile is what the
# other steps check. A full check is
#   cargo publish --workspace --exclude levee-workspace --exclude reference-shop --dry-run
# which needs crates.io and builds each crate from its package.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

# 1. The manifests: crates.io's fields, and a version on every levee path dependency.
python3 - <<'EOF'
import json, subprocess, sys
meta = json.loads(subprocess.check_output(
    ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"]))
bad = []
for pkg in meta["packages"]:
    if not pkg["manifest_path"].split("/")[-3:-2] == ["crates"]:
        continue
    name = pkg["name"]
    if pkg.get("publish") == []:
        bad.append(f"{name}: publish = false")
    for field in ("description", "license", "repository"):
        if not pkg.get(field):
            bad.append(f"{name}: no `{field}`")
    for field in ("keywords", "categories"):
        if not pkg.get(field):
            bad.append(f"{name}: no `{field}`")
    for dep in pkg["dependencies"]:
        if dep.get("path") and dep["kind"] != "dev" and dep["req"] == "*":
            bad.append(f"{name}: path dependency `{dep['name']}` has no version")
if bad:
    print("not publishable:\n  " + "\n  ".join(bad), file=sys.stderr)
    sys.exit(1)
EOF

# 2. The archives, in dependency order (siblings resolve from the local packages). The tests
# are left out of the packages on purpose (`include`), so cargo's note about each one is
# dropped; any other warning is shown and fails the step.
# Offline first (the index cache holds what the build used); crates.io if that is not enough.
package() {
    cargo package --workspace --exclude levee-workspace --exclude reference-shop \
        --no-verify --allow-dirty "$@" 2>&1
}
out=$(package --offline) || out=$(package) || { echo "$out"; exit 1; }
warnings=$(echo "$out" | grep '^warning' | grep -v '^warning: ignoring test' || true)
echo "$out" | grep -E '^ *(Packaging|Packaged)'
if [ -n "$warnings" ]; then
    echo "$warnings" >&2
    exit 1
fi
echo "publish check: $((SECONDS - started)) s"
