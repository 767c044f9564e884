# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cache_seed (issue 15) against real libtorrent and rsync on loopback addresses: golden
runs the module in a process of its own (127.0.0.1), as an async task would, with the
torrent cache_torrent made; the nodes run model_cache_sync transport=p2p (127.0.0.2,
127.0.0.3). The seeder leaves when both nodes are done, when nobody comes, or at its
timeout; bad inputs are refused before it joins."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from harness import run_real
from test_model_cache_sync_local import W2V, assert_hub_reads_offline, files_and_links, make_cache
from test_model_cache_sync_p2p import COLLECTIONS, GOLDEN, NODES, finish, free_port, start

lt = pytest.importorskip("libtorrent")

from ansible_collections.indextts.deploy.plugins.module_utils import _torrent  # noqa: E402
from ansible_collections.indextts.deploy.plugins.modules import cache_seed, cache_torrent  # noqa: E402
from ansible_collections.indextts.deploy.tests.unit.plugins.module_utils.test_torrent import (  # noqa: E402
    make_ca, make_node_cert, pem, read_tree)

OUTSIDER = "127.0.0.9"


@pytest.fixture
def golden(tmp_path):
    src = tmp_path / "src"
    make_cache(src, "--weights-mb", "6", "--small-files", "20")
    return src


def make_torrent(src, where, **params):
    """What golden's play does first: cache_torrent."""
    result, failed = run_real(cache_torrent.main, dict(params, path=str(src), torrent=str(where / "cache.torrent"),
                                                       piece_size=65536))
    assert not failed, result
    return where / "cache.torrent"


def seed(torrent, src, peers, workdir, **params):
    """cache_seed in a process of its own, as an async task runs it; returns (process, port)
    once it listens (a probe from an address it does not allow)."""
    port = free_port(GOLDEN)
    args = workdir / "args-seed.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(
        {"torrent": str(torrent), "path": str(src), "address": GOLDEN, "port": port, "peers": peers}, **params)}))
    env = dict(os.environ, PYTHONPATH=COLLECTIONS, LANG="C")
    proc = subprocess.Popen([sys.executable, "-m", "ansible_collections.indextts.deploy.plugins.modules.cache_seed",
                             str(args)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.socket() as probe:
                probe.bind((OUTSIDER, 0))
                probe.connect((GOLDEN, port))
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                out, err = proc.communicate()
                pytest.fail("the seeder did not listen: %s %s" % (out, err))
            time.sleep(0.1)


def seeded(proc):
    out, err = proc.communicate(timeout=120)
    result = json.loads(out)
    assert not result.get("failed"), (result, err)
    return result


def cache_bytes(torrent):
    return sum(size for size, _mtime, _mode in json.loads(torrent.with_suffix(".torrent.json").read_text()).values())


def test_two_nodes_sync_from_the_seeder_and_it_leaves_when_both_are_done(golden, tmp_path):
    torrent = make_torrent(golden, tmp_path)
    # node 2 lacks one blob only: it skips the rest of the torrent, and is done when it has that
    partial = tmp_path / NODES[1]
    subprocess.run(["cp", "-a", str(golden), str(partial)], check=True)
    max((partial / W2V / "blobs").iterdir(), key=lambda p: p.stat().st_size).unlink()
    ports = dict((node, free_port(node)) for node in NODES)
    started = time.monotonic()
    seeder, port = seed(torrent, golden, ["%s:%d" % (node, ports[node]) for node in NODES], tmp_path)
    nodes = {}
    for node in NODES:
        members = ["%s:%d" % (GOLDEN, port)] + ["%s:%d" % (other, ports[other]) for other in NODES if other != node]
        nodes[node] = start(golden, tmp_path / node, node, torrent, members, tmp_path, port=ports[node])
    result = seeded(seeder)
    left = time.monotonic() - started
    assert result["outcome"] == "all peers done", result
    assert result["peers_done"] == NODES and result["peers_missing"] == []
    assert result["changed"] is False
    assert result["uploaded"] >= cache_bytes(torrent)  # node 1 needs every file, and node 2 has none to give
    assert result["port"] == port and result["info_hash"] == str(
        lt.torrent_info(lt.bdecode(torrent.read_bytes())).info_hashes().v2)
    assert any("peer_blocked_alert" in e and OUTSIDER in e for e in result["events"]), result["events"]
    for node, proc in nodes.items():
        synced = finish(proc)
        assert synced["swarm"]["outcome"] == "done" and synced["swarm"]["fallback"] is None, synced["swarm"]
        assert files_and_links(tmp_path / node) == files_and_links(golden)
        assert_hub_reads_offline(str(tmp_path / node / "hf_cache"))
    # the seeder left long before its idle_timeout (120 s), and the nodes long before their linger (10 s)
    assert left < 30 and time.monotonic() - started < 30, left


def test_the_seeder_stays_for_a_node_with_all_it_asked_for_until_it_closes_the_connection(golden, tmp_path):
    """A node's link to its origin (model_cache_sync's swarm.origin) has its share long
    before the node has the rest, and may ask for more (pieces a node that finished
    without them does not bring): golden serves it until the node closes the link."""
    torrent = make_torrent(golden, tmp_path)
    data = torrent.read_bytes()
    seeder, port = seed(torrent, golden, [NODES[0]], tmp_path)  # by address: the link calls golden
    files = _torrent.torrent_files(data)
    with _torrent.Swarm(NODES[0], allowed=[GOLDEN]) as link:
        key = link.fetch(data, str(tmp_path / "share"), [(GOLDEN, port)], skip=files[1:])
        assert link.wait(30, 10) == _torrent.DONE
        time.sleep(3)
        assert seeder.poll() is None, seeder.communicate()  # golden stays: all asked for, still connected
        got, want = read_tree(str(tmp_path / "share")), read_tree(str(golden))
        assert got[files[0]] == want[files[0]]
        # the rest, asked for now, from the same golden
        link._handles[key].prioritize_files([4] * len(files))
        deadline = time.monotonic() + 30
        while link.progress()[key]["total_done"] < cache_bytes(torrent) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert link.progress()[key]["total_done"] == cache_bytes(torrent)
    result = seeded(seeder)
    assert result["outcome"] == "all peers done" and result["peers_done"] == [NODES[0]], result
    assert result["seconds"] < 20


def test_with_no_peer_coming_the_seeder_leaves_idle(golden, tmp_path):
    torrent = make_torrent(golden, tmp_path)
    started = time.monotonic()
    seeder, _port = seed(torrent, golden, NODES, tmp_path, idle_timeout=2)
    result = seeded(seeder)
    assert result["outcome"] == "idle" and result["uploaded"] == 0, result
    assert result["peers_done"] == [] and result["peers_missing"] == NODES
    assert 2 <= result["seconds"] < 4 and time.monotonic() - started < 10


def test_the_seeder_leaves_at_its_timeout(golden, tmp_path):
    torrent = make_torrent(golden, tmp_path)
    seeder, _port = seed(torrent, golden, [NODES[0] + ":1"], tmp_path, idle_timeout=60, timeout=2)
    result = seeded(seeder)
    assert result["outcome"] == "timed out" and 2 <= result["seconds"] < 4, result
    assert result["peers_missing"] == [NODES[0]]


def test_an_ssl_torrent_reaches_a_node_with_a_certificate_of_the_deployment_ca(golden, tmp_path):
    ca = make_ca("deployment CA")
    (tmp_path / "ca.pem").write_bytes(pem(ca[0]))
    torrent = make_torrent(golden, tmp_path, ca_cert=str(tmp_path / "ca.pem"))
    assert lt.torrent_info(lt.bdecode(torrent.read_bytes())).ssl_cert()
    golden_cert, golden_key = make_node_cert(ca, str(tmp_path / "certs" / "golden"), "golden", "indextts-cache")
    node_cert, node_key = make_node_cert(ca, str(tmp_path / "certs" / "node"), "node", "indextts-cache")
    node_port = free_port(NODES[0])
    seeder, port = seed(torrent, golden, ["%s:%d" % (NODES[0], node_port)], tmp_path,
                        ssl_cert=golden_cert, ssl_key=golden_key)
    node = start(golden, tmp_path / "node", NODES[0], torrent, ["%s:%d" % (GOLDEN, port)], tmp_path, port=node_port,
                 ssl_cert=node_cert, ssl_key=node_key)
    result = seeded(seeder)
    assert result["outcome"] == "all peers done" and result["peers_done"] == [NODES[0]], result
    assert result["uploaded"] >= cache_bytes(torrent)
    synced = finish(node)
    assert synced["swarm"]["outcome"] == "done" and synced["swarm"]["fallback"] is None, synced["swarm"]
    assert files_and_links(tmp_path / "node") == files_and_links(golden)


def test_check_mode_checks_and_does_not_join(golden, tmp_path):
    torrent = make_torrent(golden, tmp_path)
    port = free_port(GOLDEN)
    result, failed = run_real(cache_seed.main, {"torrent": str(torrent), "path": str(golden), "address": GOLDEN,
                                                "port": port, "peers": NODES}, check_mode=True)
    assert not failed, result
    assert result["outcome"] is None and result["port"] is None and result["changed"] is False
    assert result["peers_missing"] == NODES and result["info_hash"]
    with socket.socket() as s:
        s.bind((GOLDEN, port))  # nobody listens there


def test_bad_inputs_are_refused_before_joining(golden, tmp_path, monkeypatch):
    ca = make_ca("deployment CA")
    (tmp_path / "ca.pem").write_bytes(pem(ca[0]))
    plain = make_torrent(golden, tmp_path)
    (tmp_path / "ssl").mkdir()
    ssl = make_torrent(golden, tmp_path / "ssl", ca_cert=str(tmp_path / "ca.pem"))
    cert, key = make_node_cert(ca, str(tmp_path / "certs"), "golden", "indextts-cache")
    (tmp_path / "garbage.torrent").write_bytes(b"d4:infod6:lengthi-1eee")
    other = tmp_path / "other"
    make_cache(other, "--weights-mb", "1", "--small-files", "2", "--seed", "7")
    touched = golden / "checkpoints" / "gpt.pth"
    cases = [
        ({"torrent": "cache.torrent"}, "torrent must be an absolute path, got 'cache.torrent'"),
        ({"torrent": str(tmp_path / "none.torrent")}, "torrent %s does not exist on this host; make it with "
         "indextts.deploy.cache_torrent" % (tmp_path / "none.torrent")),
        ({"torrent": str(tmp_path / "garbage.torrent")}, "torrent %s is not a torrent" % (tmp_path / "garbage.torrent")),
        ({"torrent": str(tmp_path / "ca.pem")}, "is not a torrent"),
        ({"path": str(tmp_path / "none")}, "path %s is not a directory on this host" % (tmp_path / "none")),
        ({"path": "/"}, "path / is a system directory"),
        ({"path": str(other)}, "path %s is not the cache torrent %s was made of" % (other, plain)),
        ({"address": "golden"}, "address 'golden' is not an IP address"),
        ({"peers": []}, "peers is empty"),
        ({"peers": ["node1"]}, "peers entry 'node1' is not a node's address"),
        ({"peers": ["127.0.0.2:0"]}, "peers entry '127.0.0.2:0'"),
        ({"port": 0}, "port must be a TCP port from 1 to 65535, got 0"),
        ({"port": 70000}, "port must be a TCP port from 1 to 65535, got 70000"),
        ({"timeout": 0}, "timeout must be 1 or more seconds"),
        ({"idle_timeout": -1}, "idle_timeout must be 1 or more seconds"),
        ({"upload_limit": -5}, "upload_limit must be 0 (no limit) or more"),
        ({"ssl_cert": cert}, "parameters are required together: ssl_cert, ssl_key"),
        ({"torrent": str(ssl)}, "torrent %s is an SSL torrent (it carries a CA certificate): give ssl_cert" % ssl),
        ({"ssl_cert": cert, "ssl_key": key}, "torrent %s is not an SSL torrent" % plain),
        ({"torrent": str(ssl), "ssl_cert": key, "ssl_key": key}, "ssl_cert %s is not a PEM certificate" % key),
        ({"torrent": str(ssl), "ssl_cert": cert, "ssl_key": str(tmp_path / "none.key")},
         "ssl_key %s cannot be read" % (tmp_path / "none.key")),
    ]
    base = {"torrent": str(plain), "path": str(golden), "address": GOLDEN, "port": free_port(GOLDEN), "peers": NODES}
    for params, message in cases:
        result, failed = run_real(cache_seed.main, dict(base, **params))
        assert failed and message in result["msg"], (params, result)
        assert result.get("port") is None and result.get("outcome") is None, params
    # a cache changed since the torrent was made: the manifest beside the torrent says so
    touched.write_bytes(touched.read_bytes())
    os.utime(touched, ns=(1, 10 ** 9))
    result, failed = run_real(cache_seed.main, base)
    assert failed and "checkpoints/gpt.pth (modified since the torrent was made)" in result["msg"], result
    monkeypatch.setattr(_torrent, "HAS_LIBTORRENT", False)
    result, failed = run_real(cache_seed.main, base)
    assert failed and "install python3-libtorrent" in result["msg"]


def test_a_port_in_use_is_named(golden, tmp_path):
    torrent = make_torrent(golden, tmp_path)
    with socket.socket() as taken:
        taken.bind((GOLDEN, 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result, failed = run_real(cache_seed.main, {"torrent": str(torrent), "path": str(golden), "address": GOLDEN,
                                                    "port": port, "peers": NODES})
    assert failed and "cannot listen on %s:%d" % (GOLDEN, port) in result["msg"], result
    assert "choose another port" in result["msg"]
