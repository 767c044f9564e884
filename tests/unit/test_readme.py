# -*- coding: utf-8 -*-
"""The README's quick start, run line by line as written, in a fresh copy of the checkout.

The copy holds the files git tracks or would track (no .venv, .cache or .lab), as a
clone would. Three things differ from a user's first session, each because the real
thing cannot happen in a test:
- HOME is a temporary directory, so ~/mysite, ~/indextts-dist and ~/.ansible/collections
  are the test's own;
- the copy's .venv is this checkout's (its requirement files are dated before it, so
  `make venv` finds it up to date instead of installing from PyPI, which tests must not
  reach);
- the last line would run the pipeline against the example inventory's hosts, which
  must never be dialled: it gets --list-tasks, which loads the installed collection's
  playbook, every role and the inventory, and connects to nobody.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VENV = os.path.join(ROOT, ".venv")


def quick_start_lines():
    """The shell lines of the README's quick start, comments dropped."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        text = handle.read()
    section = text.split("## Quick start on real hosts", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]
    return [line for line in lines if line]


def fresh_copy(dest):
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        src = os.path.join(ROOT, name)
        if not os.path.lexists(src):  # deleted in the working tree, not yet committed
            continue
        os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, name), follow_symlinks=False)
    os.symlink(VENV, os.path.join(dest, ".venv"))
    for name in ("requirements.txt", "constraints.txt"):
        os.utime(os.path.join(dest, name), (946684800, 946684800))  # 2000-01-01


@pytest.mark.skipif(not os.path.exists(os.path.join(VENV, ".installed")),
                    reason="needs the checkout's .venv (make venv)")
def test_quick_start_runs_as_written(tmp_path):
    lines = quick_start_lines()
    assert lines[-1] == "ansible-playbook -i hosts.yml indextts.deploy.site"
    checkout, home = tmp_path / "indextts-deploy", tmp_path / "home"
    checkout.mkdir()
    home.mkdir()
    fresh_copy(str(checkout))
    script = "set -euo pipefail\n" + "\n".join(lines[:-1]) + "\n" + lines[-1] + " --list-tasks\n"

    # A user's shell: no Ansible settings from make, no .venv on PATH until the README
    # activates it.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANSIBLE_", "VIRTUAL_ENV", "MOLECULE_", "PYTEST_"))}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if not p.startswith(VENV))
    env["HOME"] = str(home)
    done = subprocess.run(["bash", "-c", script], cwd=str(checkout), env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output

    installed = home / ".ansible" / "collections" / "ansible_collections" / "indextts" / "deploy"
    assert (installed / "MANIFEST.json").is_file(), output
    assert not (installed / "MANIFEST.json").is_symlink()
    assert (home / "mysite" / "hosts.yml").is_file()
    # ansible-doc -l lists the collection's modules from the installed artifact
    assert re.search(r"^indextts\.deploy\.model_cache_sync\s", done.stdout, re.M), output
    # the playbook comes from the installed collection, and every stage's play loads
    assert "playbook: %s" % (installed / "playbooks" / "site.yml") in done.stdout, output
    for play in ("golden", "tts_nodes", "iscsi_storage", "tts_proxy"):
        assert re.search(r"^\s*play #\d+ \(%s\)" % play, done.stdout, re.M), output
    assert "indextts.deploy.model_cache : " in done.stdout, output
    # nothing asked of Galaxy, no warning a newcomer would have to learn to ignore
    assert "galaxy.ansible.com" not in output
    assert "[WARNING]" not in output, output
