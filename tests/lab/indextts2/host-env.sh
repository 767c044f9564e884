#!/usr/bin/env bash
# Install a pinned IndexTTS2 release into a venv on THIS host, offline, from the wheelhouse.
#
#   tests/lab/indextts2/host-env.sh COMMIT      (40-hex, archive in $INDEXTTS_SRC_ARCHIVES)
#
# Result: ~/.cache/indextts-deploy/env-<commit>/            release source (webui.py, indextts/, ...)
#         ~/.cache/indextts-deploy/env-<commit>/.venv/      python3 -m venv + '<src>[webui]'
# plus generated example WAVs (examples/*.wav, tests/sample_prompt.wav) so the
# v2.5.0 web UI fetches nothing at start.  Idempotent: a complete env is kept
# (marker .venv/.indextts-installed); remove the dir to rebuild.
#
# Env: INDEXTTS_WHEELHOUSE (default ~/.cache/indextts-deploy/wheelhouse)
#      INDEXTTS_SRC_ARCHIVES (default /work/shared/indextts2-src)
#      INDEXTTS_INSTALLER=pip|uv (default pip; uv = `uv pip install --offline`, faster)
#      PYTHON (default python3, must be 3.11)
set -euo pipefail
COMMIT=${1:?usage: $0 COMMIT}
WH=${INDEXTTS_WHEELHOUSE:-$HOME/.cache/indextts-deploy/wheelhouse}
ARCH=${INDEXTTS_SRC_ARCHIVES:-/work/shared/indextts2-src}/index-tts-$COMMIT.tar.gz
ENVDIR=$HOME/.cache/indextts-deploy/env-$COMMIT
INSTALLER=${INDEXTTS_INSTALLER:-pip}
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
UV=${UV:-$(command -v uv || echo "$HERE/../../../.venv/bin/uv")}

if [ -f "$ENVDIR/.venv/.indextts-installed" ]; then
  echo "host-env: $ENVDIR ready"; exit 0
fi
[ -f "$ARCH" ] || { echo "host-env: no archive $ARCH" >&2; exit 2; }
t0=$(date +%s)
rm -rf "$ENVDIR"; mkdir -p "$ENVDIR"
tar -xzf "$ARCH" -C "$ENVDIR" --strip-components=1
echo "host-env: source unpacked ($(( $(date +%s) - t0 )) s)"

# the release's own lock as constraints: pyproject ranges alone would let the
# resolver take the newest wheel in a union wheelhouse (e.g. packaging 26 vs 25)
CONS=$ENVDIR/.indextts-constraints.txt
(cd "$ENVDIR" && "$UV" export --frozen --extra webui --no-hashes --no-emit-project \
    --no-header --no-annotate) | sed 's/+cu[0-9]*//' > "$CONS"

t1=$(date +%s)
"$PYTHON" -m venv "$ENVDIR/.venv"
if [ "$INSTALLER" = uv ]; then
  env -u PIP_FIND_LINKS "$UV" pip install --python "$ENVDIR/.venv/bin/python" --offline \
      --no-index --no-sources --find-links "$WH" -c "$CONS" -q "${ENVDIR}[webui]"
else
  env -u PIP_FIND_LINKS -u PIP_CONSTRAINT -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL \
    PIP_CONFIG_FILE=/dev/null PIP_NO_CACHE_DIR=1 \
    "$ENVDIR/.venv/bin/python" -m pip install -q --no-index --find-links "$WH" -c "$CONS" "${ENVDIR}[webui]"
fi
echo "host-env: installed with $INSTALLER ($(( $(date +%s) - t1 )) s)"

# example WAVs the web UI lists (v2.5.0 downloads each missing one at every start)
"$ENVDIR/.venv/bin/python" - "$ENVDIR" "$HERE/make_voice.py" <<'EOF'
import json, os, subprocess, sys
root, mk = sys.argv[1:3]
names = {"voice_01.wav"}
cases = os.path.join(root, "examples", "cases.jsonl")
for line in open(cases, encoding="utf-8"):
    line = line.strip()
    if line:
        c = json.loads(line)
        names.update(c[k] for k in ("prompt_audio", "emo_audio") if c.get(k))
targets = [os.path.join(root, "examples", n) for n in sorted(names)]
targets.append(os.path.join(root, "tests", "sample_prompt.wav"))
for i, p in enumerate(targets):
    if not os.path.exists(p):
        os.makedirs(os.path.dirname(p), exist_ok=True)
        subprocess.run([sys.executable, mk, p, "--seed", str(i + 1)], check=True)
print(f"host-env: {len(targets)} example WAVs present")
EOF
touch "$ENVDIR/.venv/.indextts-installed"
echo "host-env: ok: $ENVDIR ($(du -sh "$ENVDIR" | cut -f1), $(( $(date +%s) - t0 )) s)"
