#!/usr/bin/env bash
# Run `ansible-test sanity` on a copy of the collection laid out as ansible-test
# requires (ansible_collections/<namespace>/<name>). The copy holds the files git
# tracks plus new ones it does not ignore, so the result matches a clean clone.
# ansible-test runs from its own virtualenv (.cache/sanity-venv), where
# --requirements installs the pinned linters each sanity test needs from PyPI.
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
# The copy lies inside this (git-ignored) checkout: give it its own git index so
# ansible-test lists its files rather than deferring to the outer repository.
git init -q . && git add -A
venv="$top/.cache/sanity-venv"
ansible_core=$(grep -E '^ansible-core==' "$top/requirements.txt")
if [ "$("$venv/bin/ansible-test" --version 2>/dev/null)" != "ansible-test version ${ansible_core#*==}" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$ansible_core"
fi
# ansible-test bootstraps pip in its per-test virtualenvs with a script it downloads
# from a host outside the package index; give it the offline stand-in instead.
pip_version=$(grep -oP "pip='\K[0-9.]+" "$("$venv/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py")
mkdir -p ~/.ansible/test/cache
cp "$top/tests/lab/get_pip_offline.py" ~/.ansible/test/cache/"get_pip_${pip_version//./_}.py"
python=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PATH="$venv/bin:$PATH" exec ansible-test sanity --requirements --python "$python" "$@"
