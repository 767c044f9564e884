#!/usr/bin/env bash
# Start the REAL IndexTTS2 web UI on CPU, offline, against a read-only model dir, and
# make it speak through its own HTTP API.
#
#   tests/lab/indextts2/smoke.sh COMMIT WEIGHTS_DIR PORT [VERSION]
#
# COMMIT:      env from host-env.sh (~/.cache/indextts-deploy/env-<commit>)
# WEIGHTS_DIR: from make_weights.py (WEIGHTS_DIR/checkpoints, WEIGHTS_DIR/hf_cache)
# VERSION:     passed as --version (v2.5.0 only: 2 or 2.5); empty for v2.0.0
#
# The app runs in a private network namespace with only loopback (unshare -n:
# any attempt to reach the internet fails fast) and a private mount namespace
# where WEIGHTS_DIR is bind-mounted read-only (root ignores chmod).  Prints the
# time from exec to HTTP 200 on /, the RSS then, the speech check's JSON line.
# Env: SMOKE_TEXT, SMOKE_VOICE, SMOKE_KEEP=1 (leave the server running), SMOKE_RW=1
set -euo pipefail
COMMIT=${1:?usage: $0 COMMIT WEIGHTS_DIR PORT [VERSION]}
W=$(cd "${2:?}" && pwd)
PORT=${3:?}
VERSION=${4:-}
HERE=$(cd "$(dirname "$0")" && pwd)
ENVDIR=$HOME/.cache/indextts-deploy/env-$COMMIT
PY=$ENVDIR/.venv/bin/python
VOICE=${SMOKE_VOICE:-$HERE/../../../roles/indextts2/files/reference_voice.wav}
TEXT=${SMOKE_TEXT:-Hello world, this is a test.}
LOG=${SMOKE_LOG:-/tmp/indextts-smoke-$COMMIT-$PORT.log}
OUT=/tmp/indextts-smoke-$COMMIT-$PORT.wav

vargs=()
[ -n "$VERSION" ] && vargs=(--version "$VERSION")
# shellcheck disable=SC2016 # expanded by the namespaced sh, which gets W exported
ro='mount --bind "$W" "$W" && mount -o remount,bind,ro "$W" && '
[ "${SMOKE_RW:-0}" = 1 ] && ro=''

cd "$ENVDIR"
t0=$(date +%s.%N)
export W
# shellcheck disable=SC2016
unshare -n -m --propagation private sh -c 'ip link set lo up && '"$ro"'exec "$@"' sh \
  env CUDA_VISIBLE_DEVICES= HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 USE_MODELSCOPE=false \
      GRADIO_ANALYTICS_ENABLED=False HF_HUB_CACHE="$W/hf_cache" \
  "$PY" webui.py --host 127.0.0.1 --port "$PORT" --model_dir "$W/checkpoints" "${vargs[@]}" \
  > "$LOG" 2>&1 &
pid=$!
cleanup() { [ "${SMOKE_KEEP:-0}" = 1 ] || kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT
# the namespaced server is reached through its own netns: run the client there too
nsenter_py() { nsenter -t "$(pgrep -P "$pid" -f webui.py || echo "$pid")" -n "$@"; }
code=000
while kill -0 "$pid" 2>/dev/null; do
  code=$(nsenter_py curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/" || true)
  [ "$code" = 200 ] && break
  sleep 1
done
if [ "$code" != 200 ]; then
  echo "smoke: web UI died before answering; last log lines:" >&2; tail -30 "$LOG" >&2; exit 1
fi
t1=$(date +%s.%N)
app=$(pgrep -P "$pid" -f webui.py || echo "$pid")
rss=$(awk '/VmRSS/{print int($2/1024)}' "/proc/$app/status")
echo "smoke: HTTP 200 after $(printf '%.1f' "$(echo "$t1 - $t0" | bc)") s, RSS ${rss} MiB (pid $app)"
nsenter_py "$PY" "$HERE/../../../roles/indextts2/files/indextts2_speech_check.py" \
  --url "http://127.0.0.1:$PORT" --voice "$VOICE" --text "$TEXT" --out "$OUT" \
  --config "$W/checkpoints/config.yaml" --timeout 600
rss2=$(awk '/VmRSS/{print int($2/1024)}' "/proc/$app/status")
echo "smoke: RSS after synthesis ${rss2} MiB; wav $OUT; log $LOG"
