#!/usr/bin/env bash
# Build or update a wheelhouse that can install IndexTTS2 releases offline.
#
#   tests/lab/indextts2/wheelhouse.sh SRC_DIR_OR_ARCHIVE...
#
# Target: CPython 3.11 on x86_64 Debian 12 (glibc 2.36), i.e. cp311 wheels with
# manylinux tags <= 2_36.  Afterwards, on a host without any index:
#
#   pip install --no-index --find-links "$WHEELHOUSE" '<release dir>[webui]'
#
# The requirement set is the release's own uv.lock (`uv export --frozen --extra
# webui`), with the PyTorch-index local versions (+cu128) mapped to the plain
# PyPI version (the same CUDA build).  Plus the project's build backend (from
# pyproject [build-system].requires) and pip/setuptools/wheel.
#
# Idempotent: a requirement with a matching wheel already in the wheelhouse is
# not looked up again, so a rerun with everything present makes no network
# request.  sdist-only packages are built into wheels here (cached).
#
# Env:
#   INDEXTTS_WHEELHOUSE   destination (default ~/.cache/indextts-deploy/wheelhouse)
#   INDEXTTS_INDEX_URL    package index (default https://pypi.org/simple)
#   INDEXTTS_EXTRAS       extras to export (default: webui)
#   UV                    uv binary (default: uv on PATH, else /work/main/.venv/bin/uv)
#   PYTHON                a CPython 3.11 used to run pip (default python3)
#   INDEXTTS_WHEELHOUSE_PARALLEL  pip runs and sdist builds at once (default 4)
set -euo pipefail

WH=${INDEXTTS_WHEELHOUSE:-$HOME/.cache/indextts-deploy/wheelhouse}
INDEX_URL=${INDEXTTS_INDEX_URL:-https://pypi.org/simple}
EXTRAS=${INDEXTTS_EXTRAS:-webui}
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ -z "${UV:-}" ]; then
  UV=$(command -v uv || true)
  [ -n "$UV" ] || UV=$HERE/../../../.venv/bin/uv
fi
[ $# -ge 1 ] || { echo "usage: $0 SRC_DIR_OR_ARCHIVE..." >&2; exit 2; }
[ -x "$UV" ] || { echo "wheelhouse: uv not found (set UV=)" >&2; exit 2; }

mkdir -p "$WH" "$WH/.work"
WORK=$(mktemp -d "$WH/.work/run.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# pip must not see this host's own config (constraints, local find-links and
# indexes): the wheelhouse has to be reproducible from the index alone.
pipx() {
  env -u PIP_FIND_LINKS -u PIP_CONSTRAINT -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL \
    PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    "$PYTHON" -m pip "$@"
}

t0=$(date +%s)
# ---- phase 1: requirement set from each release's uv.lock
i=0
for src in "$@"; do
  i=$((i+1))
  if [ -f "$src" ]; then
    d=$WORK/src$i; mkdir -p "$d"
    tar -xzf "$src" -C "$d" --wildcards '*/pyproject.toml' '*/uv.lock'
    src=$(dirname "$(find "$d" -name uv.lock | head -1)")
  fi
  [ -f "$src/uv.lock" ] || { echo "wheelhouse: $src has no uv.lock" >&2; exit 2; }
  extra_args=()
  for e in $EXTRAS; do extra_args+=(--extra "$e"); done
  (cd "$src" && "$UV" export --frozen --no-hashes --no-emit-project --no-header \
      --no-annotate "${extra_args[@]}" ) > "$WORK/req$i.txt"
  "$PYTHON" - "$src/pyproject.toml" >> "$WORK/req$i.txt" <<'EOF'
import sys, tomllib
d = tomllib.load(open(sys.argv[1], "rb"))
for r in d.get("build-system", {}).get("requires", []):
    print(r)
EOF
done
cat "$WORK"/req*.txt > "$WORK/all.txt"
printf 'pip\nsetuptools\nwheel\n' >> "$WORK/all.txt"

# Pure helper: evaluate markers for the target, map local versions, decide
# what is missing from the wheelhouse.  Writes pinned.txt (name==ver already
# pinned), loose.txt (ranges, resolved with deps: build backends), missing.txt.
"$PYTHON" - "$WORK" "$WH" <<'EOF'
import sys, os, re
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename
from pip._vendor.packaging.version import Version
from pip._vendor.packaging.specifiers import SpecifierSet
work, wh = sys.argv[1:3]
env = {"python_version": "3.11", "python_full_version": "3.11.2", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython",
       "extra": ""}
have = {}
for f in os.listdir(wh):
    if f.endswith(".whl"):
        try:
            n, v, _, _ = parse_wheel_filename(f)
        except Exception:
            continue
        have.setdefault(canonicalize_name(n), []).append(v)
pinned, loose, missing = {}, {}, []
for line in open(os.path.join(work, "all.txt")):
    line = line.split("#")[0].strip()
    if not line or line.startswith("-"):
        continue
    r = Requirement(line)
    if r.marker and not r.marker.evaluate(env):
        continue
    name = canonicalize_name(r.name)
    specs = list(r.specifier)
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        v = Version(specs[0].version)
        pinned[(name, v.public)] = r.name
    else:
        loose[name] = str(r.specifier)
with open(os.path.join(work, "pinned.txt"), "w") as f:
    for (name, ver), orig in sorted(pinned.items()):
        ok = any(hv.public == ver for hv in have.get(name, []))
        f.write(f"{name}=={ver}\n")
        if not ok:
            missing.append(f"{name}=={ver}")
with open(os.path.join(work, "missing.txt"), "w") as f:
    f.write("".join(m + "\n" for m in missing))
with open(os.path.join(work, "loose.txt"), "w") as f:
    for name, spec in sorted(loose.items()):
        if not any(v in SpecifierSet(spec) for v in have.get(name, [])):
            f.write(f"{name}{spec}\n")
print(f"wheelhouse: requirements: {len(pinned)} pinned, {len(loose)} unpinned (build tools), "
      f"{len(missing)} pinned missing from {wh}")
EOF

# pip does not expand --platform to older glibc tags: list them all.
PLAT=(--only-binary=:all: --python-version 3.11 --implementation cp
      --abi cp311 --abi abi3 --abi none)
for g in $(seq 36 -1 5); do PLAT+=(--platform "manylinux_2_${g}_x86_64"); done
PLAT+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64
       --platform manylinux1_x86_64 --platform linux_x86_64 --platform any)

# ---- phase 2: download binary wheels for what is missing
n_missing=$(wc -l < "$WORK/missing.txt")
# pip spends more of a download in its own Python (hashing, unpacking the index pages)
# than on the wire: PARALLEL pip runs at once, each with a share of the list (largest
# files spread: the list is sorted, torch and the nvidia-* wheels fall into different
# shares). A fresh wheelhouse of one pin took 575 s with one pip run (beside the guest
# lab); of both pins, 4 runs at once and the sdists built side by side: 223 s.
PARALLEL=${INDEXTTS_WHEELHOUSE_PARALLEL:-4}
echo "wheelhouse: downloading $n_missing wheel(s) from $INDEX_URL ($PARALLEL pip runs at once)"
# download_list LIST: pip download LIST into the wheelhouse; a requirement without a
# usable wheel stops pip: it goes to LIST.nowheel and pip runs again (skipping files
# it already has).
download_list() {
  local todo=$1 bad
  : > "$todo.nowheel"
  while [ -s "$todo" ]; do
    if pipx download -q --no-deps --index-url "$INDEX_URL" --dest "$WH" "${PLAT[@]}" \
          -r "$todo" > "$todo.log" 2>&1; then
      return 0
    fi
    bad=$(sed -n 's/.*No matching distribution found for \([^ ]*\).*/\1/p' "$todo.log" | head -1)
    if [ -z "$bad" ] || ! grep -qxF "$bad" "$todo"; then
      echo "wheelhouse: ERROR: pip download failed:" >&2; tail -5 "$todo.log" >&2; return 1
    fi
    echo "$bad" >> "$todo.nowheel"
    grep -vxF "$bad" "$todo" > "$todo.next" || true
    mv "$todo.next" "$todo"
  done
}
# pip refuses two versions of one name in one run (the union of two pins has
# e.g. numpy 1.26.2 and 2.2.6): each share holds a name at most once (the n-th
# version of a name goes to round n), and rounds run one after the other.
rounds=$(awk -F'==' -v work="$WORK" -v k="$PARALLEL" \
    '{n = ++seen[$1]; if (n > m) m = n; print > (work "/todo." n "." (NR % k) ".txt")}
     END {print m + 0}' "$WORK/missing.txt")
for round in $(seq 1 "$rounds"); do
  pids=()
  for share in "$WORK"/todo."$round".*.txt; do
    download_list "$share" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || exit 1; done
done
cat "$WORK"/todo.*.txt.nowheel > "$WORK/nowheel.txt" 2>/dev/null || : > "$WORK/nowheel.txt"

# ---- phase 3: build wheels from sdists for packages without a usable wheel
n_build=$(wc -l < "$WORK/nowheel.txt")
if [ "$n_build" -gt 0 ]; then
  echo "wheelhouse: building $n_build wheel(s) from sdist: $(tr '\n' ' ' < "$WORK/nowheel.txt")"
else
  echo "wheelhouse: building 0 wheels from sdist"
fi
SD=$WH/.sdist; mkdir -p "$SD"
# build_one N REQ: the sdist of REQ into .sdist, then its wheel into the wheelhouse;
# what went wrong in $WORK/build.N.failed. The builds run side by side, PARALLEL at a
# time (one after the other, the 8 sdists of the two pins took 194 s).
build_one() {
  local n=$1 req=$2 name=${2%%==*}
  if ! pipx download -q --no-deps --no-binary=:all: --index-url "$INDEX_URL" --dest "$SD" \
        "$req" > "$WORK/sd.$n.log" 2>&1; then
    echo "$req (no wheel for cp311/manylinux<=2_36 and no sdist: $(tail -1 "$WORK/sd.$n.log"))" \
      > "$WORK/build.$n.failed"
    return
  fi
  # pip wheel builds with isolation; its build dependencies come from the index
  if ! pipx wheel -q --no-deps --index-url "$INDEX_URL" --wheel-dir "$WH" "$req" \
        --no-binary "$name" --find-links "$SD" > "$WORK/bw.$n.log" 2>&1; then
    echo "$req (sdist build failed: $(grep -m1 -iE 'error' "$WORK/bw.$n.log" || tail -1 "$WORK/bw.$n.log"))" \
      > "$WORK/build.$n.failed"
  fi
}
n=0
while read -r req; do
  [ -n "$req" ] || continue
  n=$((n + 1))
  while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do wait -n || true; done
  build_one "$n" "$req" &
done < "$WORK/nowheel.txt"
wait
failed=()
for f in "$WORK"/build.*.failed; do
  if [ -e "$f" ]; then failed+=("$(cat "$f")"); fi
done

# ---- phase 4: build tools with their dependencies (hatchling etc., unpinned)
n_loose=$(grep -c . "$WORK/loose.txt" || true)
if [ "$n_loose" -gt 0 ]; then
  echo "wheelhouse: resolving $n_loose build tool requirement(s): $(tr '\n' ' ' < "$WORK/loose.txt")"
  pipx download -q --index-url "$INDEX_URL" --find-links "$WH" --dest "$WH" "${PLAT[@]}" \
      -r "$WORK/loose.txt" > "$WORK/bt.log" 2>&1 \
    || failed+=("build tools: $(grep -m1 -E 'ERROR' "$WORK/bt.log" || tail -1 "$WORK/bt.log")")
else
  echo "wheelhouse: build tools present"
fi

if [ ${#failed[@]} -gt 0 ]; then
  for f in "${failed[@]}"; do echo "wheelhouse: ERROR: cannot get $f" >&2; done
  exit 1
fi

# ---- phase 5: verify (offline dry-run resolution per release)
"$PYTHON" - "$WORK" "$WH" <<'EOF'
import sys, os
from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename
work, wh = sys.argv[1:3]
have = set()
for f in os.listdir(wh):
    if f.endswith(".whl"):
        n, v, _, _ = parse_wheel_filename(f)
        have.add(f"{canonicalize_name(n)}=={v.public}")
missing = [l.strip() for l in open(os.path.join(work, "pinned.txt")) if l.strip() not in have]
if missing:
    print("wheelhouse: ERROR: still missing: " + " ".join(missing), file=sys.stderr)
    sys.exit(1)
EOF
n=$(find "$WH" -maxdepth 1 -name "*.whl" | wc -l)
echo "wheelhouse: ok: $n wheels, $(du -sh "$WH" | cut -f1) in $WH ($(( $(date +%s) - t0 )) s)"
