#!/bin/bash
# Run `ansible-test sanity` on a copy of the collection laid out as ansible-test
# requires (ansible_collections/<namespace>/<name>). The copy holds the files git
# tracks plus new ones it does not ignore, so the result matches a clean clone.
# ansible-test keeps its per-test virtualenvs under ~/.ansible/test, not in the copy.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
root="$top/.cache/sanity"
tree="$root/ansible_collections/indextts/deploy"
case "$tree" in */.cache/sanity/ansible_collections/indextts/deploy) ;; *) exit 1 ;; esac
rm -rf --one-file-system "$root"
mkdir -p "$tree"
cd "$top"
git ls-files -z --cached --others --exclude-standard \
    | rsync -a --from0 --files-from=- ./ "$tree/"
cd "$tree"
python=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
exec ansible-test sanity --venv --python "$python" "$@"
