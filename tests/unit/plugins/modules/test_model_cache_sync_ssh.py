# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_cache_sync over real SSH: a private sshd on 127.0.0.1 with this test's own
host key, authorised key and log, and the real rsync and ssh at both ends.

What only SSH shows: the dry run and the snapshot and ref stages share one
connection, each further parallel run of the content stage opens its own, the cipher
negotiated is the one preferred for this CPU, and nothing of the shared connection is
left behind. sshd's log (LogLevel DEBUG1) is the witness.
"""

import os
import subprocess
import tempfile
import time

import pytest

from ansible_collections.indextts.deploy.plugins.module_utils import _rsync
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache import plan, state, transport

from sshd_server import SSHD, Sshd
from test_model_cache_sync_local import (assert_hub_reads_offline, files_and_links, make_cache,
                                         resume_a_killed_runs_temporary_file, sync, tree)

pytestmark = pytest.mark.skipif(SSHD is None or os.geteuid() != 0,
                                reason="needs sshd (openssh-server; .ci/host-setup.sh installs it) and root")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


def logins_during(sshd, action):
    """(what action returned, the SSH logins sshd accepted meanwhile, its log lines)."""
    before = len(sshd.log_lines())
    out = action()
    time.sleep(0.3)  # sshd's log line of a login that ended last
    lines = sshd.log_lines()[before:]
    return out, sum(1 for line in lines if "Accepted publickey for root" in line), lines


def leftovers():
    """Directories and processes of this test process's shared SSH connections that are
    still around (the module runs in this process: its directories carry our pid).
    Whatever other runs on the machine left is not ours to count."""
    mine = "%s%d-" % (transport.SSH_DIR_PREFIX, os.getpid())
    dirs = [d for d in os.listdir(tempfile.gettempdir()) if d.startswith(mine)]
    procs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if mine in cmdline:
            procs.append(cmdline)
    return dirs, procs


def test_stages_share_a_connection_and_each_further_run_has_its_own(sshd, tmp_path):
    src = tmp_path / "src"
    # w2v-bert's weights (72 MB) and MaskGCT's (40 MB) are over STREAM_MIN_BYTES
    # and over FILES_FROM_LIMIT paths make the first run walk the tree, excluding the other run's file
    make_cache(src, "--weights-mb", "160", "--small-files", str(plan.FILES_FROM_LIMIT + 100))
    dest = tmp_path / "dest"
    assert leftovers() == ([], [])

    (result, failed), logins, _lines = logins_during(
        sshd, lambda: sync(src, dest, streams=2, **sshd.params()))
    assert not failed, result
    content = [r["run"] for r in result["stats"]["runs"] if "content" in r["run"]]
    assert sorted(content) == ["sync (content stage, run 1 of 2)", "sync (content stage, run 2 of 2)"]
    # dry run, plan and first content run: one login (the plan is published locally); the second run: one
    assert logins == 2
    # every file moved once (the walking run left out the other run's file)
    regular = [p for p, v in tree(src).items() if isinstance(v, tuple) and os.path.isfile(os.path.join(src, p))]
    assert result["stats"]["files_transferred"] == len(regular)
    assert files_and_links(dest) == files_and_links(src)
    assert result["verified_blobs"] == 4
    assert_hub_reads_offline(str(dest / "hf_cache"))
    assert leftovers() == ([], [])

    (again, failed), logins, _lines = logins_during(
        sshd, lambda: sync(src, dest, streams=2, **sshd.params()))
    assert not failed and again["changed"] is False
    assert logins == 1


def test_new_revision_stages_reuse_the_connection_of_the_dry_run(sshd, tmp_path):
    src = tmp_path / "src"
    make_cache(src, "--weights-mb", "8", "--small-files", "10")
    dest = tmp_path / "dest"
    sync(src, dest, **sshd.params())
    make_cache(src, "--new-revision", "facebook/w2v-bert-2.0", "--change-percent", "5")
    (result, failed), logins, _lines = logins_during(sshd, lambda: sync(src, dest, **sshd.params()))
    assert not failed, result
    stages = [r["run"] for r in result["stats"]["runs"]]
    # the plan's run and the content's, side by side, over the dry run's connection
    assert stages[0] == "dry run of the sync"
    assert sorted(stages[1:3]) == ["planning snapshots and refs (read once from src)", "sync (content stage)"]
    assert stages[3:] == ["publishing the planned snapshots", "publishing the planned refs"]
    assert logins == 1
    assert len(result["seeded_blobs"]) == 1 and result["stats"]["matched_bytes"] > 0
    assert_hub_reads_offline(str(dest / "hf_cache"))
    assert leftovers() == ([], [])


def test_cipher_negotiated_is_the_one_preferred_for_this_cpu(sshd, tmp_path):
    src = tmp_path / "src"
    make_cache(src, "--weights-mb", "1", "--small-files", "0")
    (result, failed), _logins, lines = logins_during(sshd, lambda: sync(src, tmp_path / "dest", **sshd.params()))
    assert not failed, result
    preferred = _rsync.cipher_preference(transport.read_cpuinfo())
    expected = preferred[0] if preferred else "chacha20-poly1305@openssh.com"  # ssh's own first choice
    assert any("kex: client->server cipher: %s " % expected in line for line in lines), \
        [line for line in lines if "cipher" in line]


def test_a_killed_runs_temporary_file_is_resumed_not_sent_again(sshd, tmp_path):
    src = tmp_path / "src"
    make_cache(src, "--weights-mb", "8", "--small-files", "5")
    result, size = resume_a_killed_runs_temporary_file(src, tmp_path / "dest", **sshd.params())
    # rsync took the kept half as the basis: about half the blob matched, not sent
    assert result["stats"]["matched_bytes"] >= size // 2 - 128 * 1024, result["stats"]


def test_a_killed_runs_ssh_connection_is_closed_by_the_next_run(sshd, tmp_path):
    """Issue 13, finding 5: a whole-tree kill leaves the control master (ControlPersist)
    and its directory; the next run closes and removes them, and only those."""
    src = tmp_path / "src"
    make_cache(src, "--weights-mb", "1", "--small-files", "3")
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tempfile.mkdtemp(prefix="%s%d-" % (transport.SSH_DIR_PREFIX, dead.pid))
    other = tempfile.mkdtemp(prefix=transport.SSH_DIR_PREFIX)  # no pid in the name: not ours to judge
    try:
        result, failed = sync(src, tmp_path / "dest", **sshd.params())
        assert not failed, result
        assert "closed the SSH connection of an earlier run (%s)" % stale in result["leftovers"]
        assert not os.path.exists(stale)
        assert os.path.isdir(other)
    finally:
        if os.path.isdir(stale):
            os.rmdir(stale)
        os.rmdir(other)


def test_a_seed_never_sits_under_a_final_name(sshd, tmp_path):
    """Issue 13, finding 4: the seed of a new blob (old content) waits in the module's
    state dir, where rsync takes it as the basis; the blob's final name appears only
    with the new content. A kill leaves no old content under a new hash name."""
    from unittest import mock
    from ansible.module_utils import basic
    src = tmp_path / "src"
    make_cache(src, "--weights-mb", "8", "--small-files", "10")
    dest = tmp_path / "dest"
    result, failed = sync(src, dest, **sshd.params())
    assert not failed, result
    make_cache(src, "--new-revision", "facebook/w2v-bert-2.0", "--change-percent", "5")
    seen = []
    real_run = basic.AnsibleModule.run_command

    def observe(module, args, **kwargs):
        if "--dry-run" not in args and any(a.startswith("--link-dest=") for a in args):
            seeds = dest / state.STATE_DIR / state.SEEDS_DIR
            found = [os.path.relpath(os.path.join(d, f), str(seeds)) for d, _s, fs in os.walk(str(seeds)) for f in fs]
            seen.append((found, [os.path.exists(os.path.join(str(dest), rel)) for rel in found]))
        return real_run(module, args, **kwargs)

    with mock.patch.object(basic.AnsibleModule, "run_command", observe):
        result, failed = sync(src, dest, **sshd.params())
    assert not failed, result
    assert len(result["seeded_blobs"]) == 1 and result["stats"]["matched_bytes"] > 0
    new_blob = result["seeded_blobs"][0]["blob"]
    assert seen == [([new_blob], [False])]  # seeded in the state dir, nothing under the final name yet
    assert not (dest / state.STATE_DIR / state.SEEDS_DIR).exists()
    assert_hub_reads_offline(str(dest / "hf_cache"))

    # What a kill during that content stage leaves: a seed. The next run clears it.
    seed = dest / state.STATE_DIR / state.SEEDS_DIR / new_blob
    seed.parent.mkdir(parents=True)
    os.link(str(dest / result["seeded_blobs"][0]["basis"]), str(seed))
    result, failed = sync(src, dest, **sshd.params())
    assert not failed and result["changed"] is False
    assert result["leftovers"] == ["removed the seeds of an earlier run"]
    assert not seed.exists()
