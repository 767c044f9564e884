#!/usr/bin/env bash
# Pack the lab's IndexTTS2 stand-in (tests/fixtures/indextts2_app) as a source archive,
# the way a git host packs a commit: one top-level directory. Reproducible (sorted,
# fixed times and owners), so the role sees the same release until the fixture changes.
#   tests/lab/app-archive.sh OUT.tar.gz
set -euo pipefail
out=${1:?usage: app-archive.sh OUT.tar.gz}
here=$(cd "$(dirname "$0")/../fixtures" && pwd)
mkdir -p "$(dirname "$out")"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --exclude=__pycache__ \
    -C "$here" -cf - indextts2_app | gzip -n >"$out.tmp"
if cmp -s "$out.tmp" "$out"; then rm "$out.tmp"; else mv "$out.tmp" "$out"; fi
