#!/usr/bin/env bash
# The real IndexTTS2's lab assets for one pinned release, cached between runs:
#   tests/lab/indextts2/assets.sh ARCHIVE WHEELHOUSE WEIGHTS_DIR [MODEL_VERSION]
# 1. WHEELHOUSE: every wheel the release's uv.lock needs (with the webui extra), from
#    PyPI, for golden to install from (lab hosts reach no package index).
# 2. A venv of the release on this host (wheelhouse only) to run its model classes.
# 3. WEIGHTS_DIR: tiny random weights made with those classes, laid out as golden
#    holds them (checkpoints/ + a Hugging Face hub cache hf_cache/).
# Each step is skipped when its result is complete; results appear under their final
# name only when complete.
set -euo pipefail
archive=${1:?usage: assets.sh ARCHIVE WHEELHOUSE WEIGHTS_DIR [MODEL_VERSION]}
wheelhouse=${2:?usage: assets.sh ARCHIVE WHEELHOUSE WEIGHTS_DIR [MODEL_VERSION]}
weights=${3:?usage: assets.sh ARCHIVE WHEELHOUSE WEIGHTS_DIR [MODEL_VERSION]}
version=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
[ -f "$archive" ] || { echo "assets: no IndexTTS2 source archive $archive (see ../shared/indextts2-src)" >&2; exit 2; }
commit=$(basename "$archive" .tar.gz); commit=${commit#index-tts-}
INDEXTTS_SRC_ARCHIVES=$(dirname "$archive")
export INDEXTTS_WHEELHOUSE=$wheelhouse INDEXTTS_SRC_ARCHIVES
export INDEXTTS_INSTALLER=${INDEXTTS_INSTALLER:-uv}
env_dir=$HOME/.cache/indextts-deploy/env-$commit
if [ -z "$version" ]; then
    # The release's default model version: 2.5 where webui.py offers --version 2.5.
    webui=$(tar -xzOf "$archive" "index-tts-$commit/webui.py")
    if grep -q '"--version".*default="2.5"' <<<"$webui"; then version=2.5; else version=2; fi
fi

echo "assets: wheelhouse for $commit (first run: ~4.5 GB from PyPI, 2-4 min)"
bash "$here/wheelhouse.sh" "$archive"
echo "assets: the release's venv on this host (first run: ~2-3 min)"
bash "$here/host-env.sh" "$commit"
if [ -f "$weights/.complete" ]; then
    echo "assets: weights ready in $weights"
    exit 0
fi
echo "assets: tiny random weights for model version $version (first run: ~1 min)"
rm -rf --one-file-system "$weights.tmp"
"$env_dir/.venv/bin/python" "$here/make_weights.py" --src "$env_dir" --version "$version" --out "$weights.tmp"
touch "$weights.tmp/.complete"
mv -T "$weights.tmp" "$weights"
echo "assets: weights ready in $weights ($(du -sh "$weights" | cut -f1))"
