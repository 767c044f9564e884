# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""transport=p2p (issue 15) against real libtorrent and rsync on loopback addresses:
golden seeds its cache in place (127.0.0.1), nodes run the module in processes of
their own (127.0.0.2, 127.0.0.3, as the play runs them), and huggingface_hub offline
judges every node's cache."""

import json
import os
import subprocess
import sys
import time

import pytest

from test_model_cache_sync_local import W2V, assert_hub_reads_offline, files_and_links, make_cache

lt = pytest.importorskip("libtorrent")

from ansible_collections.indextts.deploy.plugins.module_utils import _torrent  # noqa: E402
from ansible_collections.indextts.deploy.tests.unit.plugins.module_utils.test_torrent import free_port  # noqa: E402,F401

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")
GOLDEN, NODES = "127.0.0.1", ["127.0.0.2", "127.0.0.3"]


def publish_torrent(src, where):
    """What golden's role does: the torrent of src's regular files and its manifest."""
    files = _torrent.regular_files(str(src))
    torrent = where / "cache.torrent"
    torrent.write_bytes(_torrent.make_torrent(str(src), files, "indextts-cache", piece_size=64 * 1024))
    with open(_torrent.manifest_path(str(torrent)), "w") as f:
        json.dump(_torrent.manifest(str(src), files), f)
    return torrent


def start(src, dest, node, torrent, members, workdir, **swarm):
    args = workdir / ("args-%s.json" % node)
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "src": str(src), "dest": str(dest), "transport": "p2p",
        "swarm": dict({"torrent": str(torrent), "address": node, "port": free_port(node),
                       "peers": members, "stall_timeout": 10, "timeout": 120, "linger": 10}, **swarm)}}))
    env = dict(os.environ, PYTHONPATH=COLLECTIONS, LANG="C")
    return subprocess.Popen([sys.executable, "-m", "ansible_collections.indextts.deploy.plugins.modules.model_cache_sync",
                             str(args)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc):
    out, err = proc.communicate(timeout=300)
    result = json.loads(out)
    assert not result.get("failed"), (result, err)
    return result


@pytest.fixture
def golden(tmp_path):
    src = tmp_path / "src"
    make_cache(src, "--weights-mb", "6", "--small-files", "20")
    return src


def test_two_nodes_fetch_the_cache_from_the_swarm_and_a_rerun_joins_none(golden, tmp_path):
    torrent = publish_torrent(golden, tmp_path)
    with _torrent.Swarm(GOLDEN, allowed=NODES) as seeder:
        seeder.seed(torrent.read_bytes(), str(golden))
        port = seeder.port
        procs = {}
        for node in NODES:
            others = ["%s:%d" % (GOLDEN, port)]
            procs[node] = start(golden, tmp_path / node, node, torrent, others, tmp_path)
        results = dict((node, finish(p)) for node, p in procs.items())
    with open(_torrent.manifest_path(str(torrent))) as f:
        wanted = sum(size for size, _mtime, _mode in json.load(f).values())
    for node, result in results.items():
        swarm = result["swarm"]
        assert swarm["outcome"] == "done" and swarm["fallback"] is None, swarm
        assert swarm["bytes_wanted"] == wanted
        assert swarm["downloaded"] >= wanted  # every file came from the swarm, none by rsync
        assert swarm["failed"] == 0 and 0 <= swarm["redundant"] <= swarm["downloaded"] - wanted
        # The plan (links and refs, by rsync from src) was read while the swarm ran: its
        # run ended first (runs are listed as they end).
        names = [r["run"] for r in result["stats"]["runs"]]
        # The swarm's run is its download and landing; lingering (within linger, 10 s)
        # goes on beside the rest of the run, not in front of it.
        run = result["stats"]["runs"][names.index("swarm (content)")]["seconds"]
        assert swarm["land_seconds"] >= 0 and 0 <= swarm["linger_seconds"] <= 10 + 1, swarm
        # (each figure rounded to the millisecond: 0.659 + 0.181 <= 0.84 failed once in floats)
        assert swarm["seconds"] + swarm["land_seconds"] - 0.002 <= run < swarm["seconds"] + swarm["land_seconds"] + 1, (
            swarm, run)
        assert names.index("planning snapshots and refs (read once from src)") < names.index("swarm (content)"), names
        assert result["changed"] is True
        # Content, links, sizes and mtimes as on golden (the manifest's mtimes).
        assert files_and_links(tmp_path / node) == files_and_links(golden)
        assert_hub_reads_offline(str(tmp_path / node / "hf_cache"))
        assert not os.path.exists(tmp_path / node / ".locks" / "indextts-sync" / "swarm")
    # Nothing to fetch: no swarm (no seeder runs now), and no change.
    again = finish(start(golden, tmp_path / NODES[0], NODES[0], torrent, ["%s:%d" % (GOLDEN, port)], tmp_path))
    assert again["changed"] is False and again["swarm"] is None


def test_with_an_origin_each_node_takes_a_share_from_golden_and_the_rest_from_the_other(golden, tmp_path):
    torrent = publish_torrent(golden, tmp_path)
    ports = dict((node, free_port(node)) for node in NODES)
    with _torrent.Swarm(GOLDEN, allowed=NODES) as seeder:
        seeder.seed(torrent.read_bytes(), str(golden))
        procs = dict((node, start(golden, tmp_path / node, node, torrent,
                                  ["%s:%d" % (n, ports[n]) for n in NODES if n != node], tmp_path,
                                  port=ports[node], origin="%s:%d" % (GOLDEN, seeder.port))) for node in NODES)
        results = dict((node, finish(p)) for node, p in procs.items())
        uploaded = list(seeder.progress().values())[0]["uploaded"]
    with open(_torrent.manifest_path(str(torrent))) as f:
        wanted = sum(size for size, _mtime, _mode in json.load(f).values())
    for node, result in results.items():
        swarm = result["swarm"]
        assert swarm["outcome"] == "done" and swarm["fallback"] is None, swarm
        assert 0 < swarm["from_origin"] < wanted and swarm["downloaded"] >= wanted, swarm  # a share from golden
        assert files_and_links(tmp_path / node) == files_and_links(golden)
        assert_hub_reads_offline(str(tmp_path / node / "hf_cache"))
        state = tmp_path / node / ".locks" / "indextts-sync"
        assert not os.path.exists(state / "swarm") and not os.path.exists(state / "swarm-origin")
    assert wanted <= uploaded <= 1.1 * wanted  # golden sent the cache about once, not twice


def test_a_node_fetches_only_what_it_lacks_and_the_rest_by_rsync(golden, tmp_path):
    torrent = publish_torrent(golden, tmp_path)
    dest = tmp_path / "node"
    subprocess.run(["cp", "-a", str(golden), str(dest)], check=True)
    # The node lacks one blob; golden gains a revision the torrent does not hold.
    blobs = dest / W2V / "blobs"
    lacking = sorted(blobs.iterdir(), key=lambda p: -p.stat().st_size)[0]
    lacking_size = lacking.stat().st_size
    lacking.unlink()
    make_cache(golden, "--new-revision", "facebook/w2v-bert-2.0", "--change-percent", "5")
    with _torrent.Swarm(GOLDEN, allowed=NODES) as seeder:
        seeder.seed(torrent.read_bytes(), str(golden))
        result = finish(start(golden, dest, NODES[0], torrent, ["%s:%d" % (GOLDEN, seeder.port)], tmp_path))
    swarm = result["swarm"]
    assert swarm["outcome"] == "done" and swarm["files"] == 1, swarm
    assert swarm["bytes_wanted"] == lacking_size
    assert swarm["downloaded"] < 2 * swarm["bytes_wanted"]
    assert files_and_links(dest) == files_and_links(golden)  # the new revision came by rsync
    assert_hub_reads_offline(str(dest / "hf_cache"))


def test_a_stalled_swarm_falls_back_to_rsync_and_says_so(golden, tmp_path):
    torrent = publish_torrent(golden, tmp_path)
    dest = tmp_path / "node"
    # A peer that accepts nothing: the swarm makes no progress.
    result = finish(start(golden, dest, NODES[0], torrent, ["%s:%d" % (GOLDEN, free_port(GOLDEN))], tmp_path,
                          stall_timeout=3))
    swarm = result["swarm"]
    assert swarm["outcome"] == "stalled"
    assert swarm["fallback"].startswith("the swarm stalled after"), swarm
    assert "fetching the content with rsync" in json.dumps(result["warnings"])
    assert files_and_links(dest) == files_and_links(golden)
    assert_hub_reads_offline(str(dest / "hf_cache"))


def test_a_bad_swarm_is_refused_before_anything_is_written(golden, tmp_path):
    torrent = publish_torrent(golden, tmp_path)
    cases = [({"address": "node1"}, "swarm.address 'node1' is not an IP address"),
             ({"peers": ["10.0.0.1"]}, "swarm.peers entry '10.0.0.1'"),
             ({"origin": "10.0.0.1"}, "swarm.origin '10.0.0.1': not a peer address"),
             ({"origin": "10.0.0.1:6881", "peers": ["10.0.0.1:6881", "10.0.0.2:6881"]},
              "swarm.origin 10.0.0.1:6881 is also in swarm.peers"),
             ({"ssl_cert": str(torrent)}, "parameters are required together: ssl_cert, ssl_key"),
             ({"manifest": str(tmp_path / "none.json")}, "swarm.manifest %s does not exist" % (tmp_path / "none.json"))]
    for swarm, message in cases:
        proc = start(golden, tmp_path / "node", NODES[0], torrent, [], tmp_path, **swarm)
        out, _err = proc.communicate(timeout=60)
        result = json.loads(out)
        assert result.get("failed") and message in result["msg"], (swarm, result)
        assert not os.path.exists(tmp_path / "node")


def test_p2p_without_libtorrent_names_the_package(monkeypatch):
    """libtorrent is present here; its absence is simulated (a node without python3-libtorrent)."""
    from ansible_collections.indextts.deploy.plugins.module_utils._model_cache import swarm
    monkeypatch.setattr(_torrent, "HAS_LIBTORRENT", False)
    assert "install python3-libtorrent" in swarm.swarm_problem({"torrent": "/t"})


@pytest.mark.parametrize("peer_is", ["a seed it lost touch with", "gone"])
def test_a_lingering_node_calls_the_peers_it_knows_nothing_of(tmp_path, peer_is):
    """Two nodes whose connection broke off while both fetched each finish knowing
    nothing of the other: the lingering one calls it again, and leaves once it sees it
    a seed (or refusing: gone) instead of staying the whole linger (seen in the
    fan-out bench: two nodes stayed 30 s)."""
    from ansible_collections.indextts.deploy.plugins.module_utils._model_cache.swarm import SwarmTransport

    src = tmp_path / "src"
    make_cache(src, "--weights-mb", "1", "--small-files", "3")
    torrent = publish_torrent(src, tmp_path).read_bytes()
    me, other = NODES
    linger = 20

    class Node(object):  # what linger() reads of the transport
        swarm = {"linger": linger}

    with _torrent.Swarm(me, allowed=[other]) as node, _torrent.Swarm(other, allowed=[me]) as peer:
        key = node.seed(torrent, str(src))  # finished: it has every file
        port = free_port(other)
        if peer_is == "gone":
            peer.close()
        else:
            peer.seed(torrent, str(src))
            port = peer.port
        started = time.monotonic()
        SwarmTransport.linger(Node(), node, key, [(other, port)])
        took = time.monotonic() - started
        assert took < linger / 2, (took, node.messages[-3:])
        assert other in (node.left(key) if peer_is == "gone" else node.satisfied(key))
