# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scripts roles install on hosts, on captured real output and bytes:
indextts-storage-check's parsers (ping, iscsiadm, multipathd output from the guest
lab) and indextts-tgt-chap's requests (byte for byte what tgtadm sends tgtd)."""

import importlib.machinery
import importlib.util
import os
import socket
from unittest import mock

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


def test_session_portals():
    text = fixture("iscsiadm", "session.txt")
    assert check.parse_session_portals(text, "iqn.2026-11.io.indextts.lab:cache") == {"10.99.1.1", "10.99.2.1"}
    assert check.parse_session_portals(text, "iqn.2026-11.io.indextts.lab:cache1") == set()


def test_multipath_paths():
    text = fixture("multipathd", "paths_one_failed.txt")
    assert check.parse_multipath_paths(text) == {"indextts-cache": (1, 2)}


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
