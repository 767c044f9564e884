# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kills at random moments (issue 13): the module as the re-sync timer runs it (its own
process, real rsync; from a local src, and over SSH from a real sshd on 127.0.0.1, where
the new revision's blob is seeded from the old one), killed alone or with its whole
process tree (rsync and ssh included) while it syncs a new revision. After every kill a reader of dest sees a consistent cache (the
old revision, or the new one), judged by huggingface_hub offline; the next run completes
the new revision and leaves nothing behind; no byte of what dest held before is lost."""

import glob
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from ansible_collections.indextts.deploy.plugins.module_utils._model_cache import state

from test_model_cache_sync_local import W2V, assert_hub_reads_offline, files_and_links, make_cache, read_ref
from test_model_cache_sync_ssh import sshd  # noqa: F401 pylint: disable=unused-import

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")
TRIALS = 12


def start(src, dest, workdir, params=None):
    """The module in its own process group, as the timer's service runs it."""
    args = workdir / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(
        {"src": str(src), "dest": str(dest), "lock_timeout": 60}, **(params or {}))}))
    env = dict(os.environ, PYTHONPATH=COLLECTIONS, LANG="C")
    return subprocess.Popen([sys.executable, "-m", "ansible_collections.indextts.deploy.plugins.modules.model_cache_sync",
                             str(args)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def digests(root):
    """sha256 of every regular file under root (the module's state and rsync's
    temporary files left out: an orphaned rsync renames those at any moment)."""
    found = {}
    for rel, value in files_and_links(root).items():
        if isinstance(value, tuple) and not state.TEMP_RE.match(os.path.basename(rel)):
            with open(os.path.join(str(root), rel), "rb") as f:
                found[rel] = (value[0], hashlib.sha256(f.read()).hexdigest())
    return found


def leftovers(dest):
    """rsync temporary files, partial files, seeds and plans under dest."""
    found = []
    for dirpath, dirnames, filenames in os.walk(str(dest)):
        for name in filenames:
            path = os.path.relpath(os.path.join(dirpath, name), str(dest))
            if (state.TEMP_RE.match(name) or state.PARTIAL_DIR in path
                    or "/%s/" % state.SEEDS_DIR in "/" + path
                    or "/%s/" % state.PLAN_DIR in "/" + path):
                found.append(path)
    return found


def ssh_dirs(pid):
    """The SSH control directories a run of this pid made (transport.SSH_DIR_PREFIX)."""
    return glob.glob(os.path.join(tempfile.gettempdir(), "indextts-ssh-%d-*" % pid))


@pytest.mark.parametrize("over", ["local", "ssh"])
def test_kills_at_random_moments_leave_a_consistent_cache_and_lose_nothing(tmp_path, request, over):
    params = request.getfixturevalue("sshd").params() if over == "ssh" else {}
    rng = random.Random(1322)
    src = tmp_path / "src"
    make_cache(src, "--weights-mb", "96", "--small-files", "300")
    base = tmp_path / "base"
    proc = start(src, base, tmp_path, params)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    rev = make_cache(src, "--new-revision", "facebook/w2v-bert-2.0", "--change-percent", "5")
    # How long a full run takes: kills fall anywhere in it, the plan and publication included.
    timing = tmp_path / "timing"
    subprocess.run(["cp", "-a", str(base), str(timing)], check=True)
    started = time.monotonic()
    proc = start(src, timing, tmp_path, params)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    full = time.monotonic() - started
    if over == "ssh":
        assert json.loads(proc.stdout.read())["seeded_blobs"], "the new revision's blob was not seeded"

    wanted = digests(src)
    survived, lost = 0, 0
    for trial in range(TRIALS):
        dest = tmp_path / ("dest%d" % trial)
        subprocess.run(["cp", "-a", str(base), str(dest)], check=True)
        before = digests(dest)
        whole_tree = trial % 2 == 1
        proc = start(src, dest, tmp_path, params)
        killed = proc.pid
        time.sleep(rng.uniform(0.05, full))
        if proc.poll() is None:
            if whole_tree:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        proc.wait(timeout=60)
        time.sleep(0.2)  # an orphaned rsync (module killed alone) may still be finishing
        # A reader right after the kill: the old revision or the new one, whole.
        assert read_ref(dest, W2V) in (rev["old_commit"], rev["commit"]), trial
        assert_hub_reads_offline(str(dest / "hf_cache"))
        after = digests(dest)
        # Lost: a file dest held that is gone, or changed into anything but src's content
        # (refs/main moving to the new commit is the sync, not a loss).
        lost += sum(size for rel, (size, digest) in before.items()
                    if after.get(rel) not in ((size, digest), wanted.get(rel)))
        # The next run (waiting for an orphaned rsync's lock holder, if any) completes it.
        proc = start(src, dest, tmp_path, params)
        assert proc.wait(timeout=300) == 0, (trial, proc.stdout.read(), proc.stderr.read())
        assert read_ref(dest, W2V) == rev["commit"]
        assert_hub_reads_offline(str(dest / "hf_cache"))
        assert leftovers(dest) == [], trial
        assert ssh_dirs(killed) == [] and ssh_dirs(proc.pid) == [], trial  # control masters closed
        assert files_and_links(dest) == files_and_links(src)
        survived += 1
    print("%s: faults survived %d/%d, bytes lost %d, full run %.2f s" % (over, survived, TRIALS, lost, full))
    assert (survived, lost) == (TRIALS, 0)
