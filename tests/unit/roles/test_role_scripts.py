# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scripts roles install on hosts, on captured real output and bytes:
indextts-storage-check (ping, iscsiadm and multipathd output from the guest lab),
installed and run as on a node, and indextts-tgt-chap's requests (byte for byte what
tgtadm sends tgtd).

This machine's kernel has no iSCSI initiator and no dm-multipath, and it has no ping:
the check runs here with fake ping, iscsiadm and multipathd first on PATH that print
output captured from the real programs in the guest lab (molecule/guest runs the check
against the real ones). It runs as the role installs it: under /usr/bin/python3 (here
a Python without Ansible) with only the environment given, and the
collection's module_utils in a tree laid out as the role lays it out."""

import importlib.machinery
import importlib.util
import json
import os
import shutil
import socket
import subprocess
from unittest import mock

import pytest
import yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")
FIXTURES = os.path.join(ROOT, "tests", "unit", "plugins", "module_utils", "fixtures")


def load(path, name):
    loader = importlib.machinery.SourceFileLoader(name, os.path.join(ROOT, path))
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


check = load("roles/storage_network/files/indextts_storage_check.py", "storage_check")
chap = load("roles/iscsi_target/files/indextts_tgt_chap.py", "tgt_chap")


def fixture(*parts):
    with open(os.path.join(FIXTURES, *parts)) as f:
        return f.read()


def test_ping_output():
    assert check.parse_ping(fixture("ping", "ok.txt")) == (3, 3, 0.001328)
    assert check.parse_ping(fixture("ping", "too_big.txt")) == (1, 0, None)
    assert check.parse_ping(fixture("ping", "unreachable.txt")) == (0, 0, None)


def test_session_hosts():
    text = fixture("iscsiadm", "session.txt")
    assert check.session_hosts(text, "iqn.2026-11.io.indextts.lab:cache") == {"10.99.1.1", "10.99.2.1"}
    assert check.session_hosts(text, "iqn.2026-11.io.indextts.lab:cache1") == set()
    assert check.session_hosts("iscsiadm: No active sessions.\n", "iqn.2026-11.io.indextts.lab:cache") == set()


def test_tgt_request_is_byte_for_byte_what_tgtadm_sends():
    lines = [l for l in fixture("tgt", "tgtadm-delete-account.hex").splitlines() if l and not l.startswith("#")]
    expected = bytes.fromhex(lines[0]) + bytes.fromhex(lines[1])
    sent = []

    class FakeSocket:
        def __init__(self, *args):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

        def connect(self, path):
            sent.append(path)

        def sendall(self, data):
            sent.append(data)

        def recv(self, size, flags=0):
            return chap.RSP.pack(chap.NO_USER, chap.RSP.size)

    with mock.patch.object(socket, "socket", FakeSocket):
        try:
            chap.request(9, chap.MODE_ACCOUNT, chap.OP_DELETE, "user=nobody")
        except chap.TgtError as e:
            assert e.code == chap.NO_USER and str(e) == "can't find the account"
        else:
            raise AssertionError("tgtd's refusal was not raised")
    assert sent == ["/var/run/tgtd/socket.9", expected]


# -- indextts-storage-check as it runs on a node ---------------------------------------
TARGET = "iqn.2026-11.io.indextts.lab:cache"
PYTHON = "/usr/bin/python3"  # the shebang the role writes
FAKE = """#!/bin/sh
# Fake %(name)s: records its arguments, prints a capture of the real program's output.
echo "$*" >>"%(log)s"
%(body)s
"""
# ping: a payload above FAKE_MAX_PAYLOAD does not cross (the capture of ping -M do
# refusing a 9000-byte packet on an MTU-1500 path), anything else answers.
PING = """size=0; prev=
for a in "$@"; do [ "$prev" = -s ] && size=$a; prev=$a; done
if [ "$size" -gt "${FAKE_MAX_PAYLOAD:-100000}" ]; then cat "%(too_big)s"; exit 1; fi
cat "%(ok)s"
"""


def role_vars(role):
    with open(os.path.join(ROOT, "roles", role, "vars", "main.yml")) as f:
        return yaml.safe_load(f)


@pytest.fixture
def node(tmp_path):
    """A node's view: the check and the collection's module_utils where the role installs
    them (LIB), fake tools on PATH."""
    if not os.access(PYTHON, os.X_OK):
        pytest.skip("%s is missing" % PYTHON)
    lib = tmp_path / "lib"
    utils = os.path.join(ROOT, "plugins", "module_utils")
    # What the role copies: every .py file of module_utils, packages included, no byte code.
    for top, dirs, files in os.walk(utils):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        dest = lib / "ansible_collections" / "indextts" / "deploy" / "plugins" / "module_utils" / os.path.relpath(top, utils)
        dest.mkdir(parents=True, exist_ok=True)
        for name in files:
            if name.endswith(".py"):
                shutil.copy(os.path.join(top, name), str(dest / name))
    script = tmp_path / "indextts-storage-check"
    with open(os.path.join(ROOT, "roles", "storage_network", "files", "indextts_storage_check.py")) as f:
        script.write_text("#!%s\n%s\n" % (PYTHON, f.read()))
    script.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()

    class Node:
        log = tmp_path / "calls.log"

        def tool(self, name, body):
            path = bin_dir / name
            path.write_text(FAKE % {"name": name, "log": self.log, "body": body})
            path.chmod(0o755)

        def prints(self, name, *capture, rc=0):
            self.tool(name, "cat '%s'; exit %d" % (os.path.join(FIXTURES, *capture), rc))

        def calls(self):
            """The arguments each fake tool was called with, one line per call."""
            return self.log.read_text().splitlines() if self.log.exists() else []

        def run(self, *args, lib=str(lib), max_payload=None):
            env = {"PATH": "%s:/usr/bin:/bin" % bin_dir, "INDEXTTS_DEPLOY_LIB": lib, "LANG": "C.UTF-8"}
            if max_payload is not None:
                env["FAKE_MAX_PAYLOAD"] = str(max_payload)
            return subprocess.run([str(script), "--from", "node1", "--count", "3"] + list(args),
                                  env=env, capture_output=True, text=True, check=False, timeout=60)

    n = Node()
    n.tool("ping", PING % {"ok": os.path.join(FIXTURES, "ping", "ok.txt"),
                           "too_big": os.path.join(FIXTURES, "ping", "too_big.txt")})
    n.prints("iscsiadm", "iscsiadm", "session.txt")
    n.prints("multipathd", "multipathd", "paths.txt")
    n.textfile = tmp_path / "prom" / "indextts_storage.prom"
    return n


def test_the_check_finds_its_parsers_where_the_role_installs_them():
    """In the one tree roles/indextts installs (library), which the re-sync timer uses too."""
    lib = role_vars("indextts")["__indextts_library"]
    assert role_vars("model_cache")["__model_cache_timer_lib"] == "{{ __indextts_library }}"
    assert check.LIB == os.environ.get("INDEXTTS_DEPLOY_LIB", lib)


def test_healthy_node(node):
    done = node.run("--peer", "10.99.1.1", "--peer", "10.99.2.1", "--target", TARGET, "--expect-paths", "2",
                    "--textfile", str(node.textfile))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["10.99.1.1: loss 0%, rtt 1.33 ms, MTU 9000 ok",
                                        "10.99.2.1: loss 0%, rtt 1.33 ms, MTU 9000 ok"]
    metrics = node.textfile.read_text().splitlines()
    for line in ['indextts_storage_iscsi_session_up{peer="10.99.1.1",target="%s"} 1' % TARGET,
                 'indextts_storage_iscsi_session_up{peer="10.99.2.1",target="%s"} 1' % TARGET,
                 'indextts_storage_mtu_ok{peer="10.99.2.1",mtu="9000"} 1',
                 'indextts_storage_multipath_active_paths{map="indextts-cache"} 2',
                 "indextts_storage_check_success 1"]:
        assert line in metrics
    calls = node.calls()
    assert "--mode session" in calls
    assert "show paths raw format %m %d %t %T" in calls


def test_one_path_failed_and_one_session_missing(node):
    node.prints("multipathd", "multipathd", "paths_one_failed.txt")
    node.prints("iscsiadm", "iscsiadm", "session_one.txt")
    done = node.run("--peer", "10.99.1.1", "--peer", "10.99.2.1", "--target", TARGET, "--expect-paths", "2", "--json")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["failures"] == [
        "node1 -> 10.99.2.1: no iSCSI session to %s; see journalctl -u iscsid, then "
        "iscsiadm -m node -T %s -p 10.99.2.1 --login" % (TARGET, TARGET),
        "multipath map indextts-cache has 1 of 2 expected paths active; multipath -ll indextts-cache "
        "shows which path failed"]
    assert result["findings"][-1] == {"multipath": {"indextts-cache": {"active": 1, "total": 2}}}
    assert [f["session"] for f in result["findings"][:2]] == [True, False]


def test_no_multipathd(node):
    node.tool("multipathd", "echo 'error -111 receiving packet'; exit 1")
    done = node.run("--peer", "10.99.1.1", "--expect-paths", "2")
    assert done.returncode == 1
    assert "FAIL no dm-multipath map (is multipathd running? multipath -ll)" in done.stdout.splitlines()


def test_a_path_that_fragments(node):
    done = node.run("--peer", "10.99.1.1", "--mtu", "9000", max_payload=1500 - 28)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "10.99.1.1: loss 0%, rtt 1.33 ms, MTU 1500 NOT OK",
        "FAIL node1 -> 10.99.1.1: a 9000-byte packet does not cross unfragmented (the largest that does is "
        "1500 bytes); set MTU 9000 on every hop of the storage path"]
    assert not any(c.startswith("show paths") or c == "--mode session" for c in node.calls())


def test_without_the_parsers_it_says_how_to_get_them(node, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = node.run("--peer", "10.99.1.1", lib=str(empty))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("indextts-storage-check: cannot import the collection's module_utils from %s" % empty)
    assert done.stderr.rstrip().endswith("run the indextts.deploy.storage_network role again to install them")
