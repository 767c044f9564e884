# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_torrent.Swarm's view of its peers (issue 15), with real libtorrent on loopback
addresses: which peers want nothing more from a seeder (satisfied()), also after they
left, and which left a node after it finished (left()). What cache_seed waits for and
what model_cache_sync's linger reads."""

import os
import time

import pytest

from ansible_collections.indextts.deploy.plugins.module_utils import _torrent
from test_torrent import NAME, make_cache

GOLDEN, NODE1, NODE2 = "127.0.0.1", "127.0.0.2", "127.0.0.3"


@pytest.fixture
def cache(tmp_path, lt):
    root = str(tmp_path / "golden")
    content = make_cache(root)
    return root, content, _torrent.make_torrent(root, _torrent.regular_files(root), NAME, piece_size=32768)


def watch(swarm, key, until, seconds=10):
    """satisfied() a few times a second, as cache_seed calls it, until ``until(set)``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen = swarm.satisfied(key)
        if until(seen):
            return seen
        time.sleep(_torrent.OBSERVE_SECONDS)
    return swarm.satisfied(key)


def test_a_node_that_fetched_everything_and_left_at_once_is_satisfied(tmp_path, cache, swarms):
    root, _content, torrent = cache
    golden = swarms(GOLDEN, allowed=[NODE1])
    key = golden.seed(torrent, root)
    assert golden.satisfied(key) == set()
    node = swarms(NODE1, allowed=[GOLDEN])
    node.fetch(torrent, str(tmp_path / "n1"), [(GOLDEN, golden.port)])
    assert node.wait(30, 10) == _torrent.DONE
    node.close()  # at once: golden closed it as a seed already, or reads so from its alerts
    assert watch(golden, key, lambda seen: NODE1 in seen) == {NODE1}
    assert golden.connected(key) == set()


def test_a_node_that_skips_files_is_satisfied_once_it_has_the_rest(tmp_path, cache, swarms):
    root, content, torrent = cache
    golden = swarms(GOLDEN, allowed=[NODE1])
    key = golden.seed(torrent, root)
    node = swarms(NODE1, allowed=[GOLDEN])
    wanted = max(content, key=lambda rel: len(content[rel]))
    node_key = node.fetch(torrent, str(tmp_path / "n1"), [(GOLDEN, golden.port)],
                          skip=[rel for rel in content if rel != wanted])
    seen = set()
    deadline = time.monotonic() + 30
    while NODE1 not in seen and time.monotonic() < deadline:
        node.progress()
        seen = golden.satisfied(key)
        if not node.progress()[node_key]["finished"]:
            assert NODE1 not in seen  # not while it still fetches
        time.sleep(0.05)
    assert seen == {NODE1}
    assert NODE1 in golden.connected(key)  # it stays: it is no seed, and did not say upload-only
    assert os.path.getsize(str(tmp_path / "n1" / wanted)) == len(content[wanted])
    node.close()
    assert golden.satisfied(key) == {NODE1}  # it stays satisfied after it left


def test_a_connected_peer_that_never_wants_anything_is_satisfied_after_a_moment(tmp_path, cache, swarms):
    """Two nodes that each want one file, another one: neither wants anything of the
    other's, neither is a seed, and both stay connected (no upload-only message)."""
    root, content, torrent = cache
    by_size = sorted(content, key=lambda rel: len(content[rel]))
    golden = swarms(GOLDEN, allowed=[NODE1, NODE2])
    key = golden.seed(torrent, root)
    node1 = swarms(NODE1, allowed=[GOLDEN, NODE2])
    node2 = swarms(NODE2, allowed=[GOLDEN, NODE1])
    key1 = node1.fetch(torrent, str(tmp_path / "n1"), [(GOLDEN, golden.port), (NODE2, node2.port)],
                       skip=[rel for rel in content if rel != by_size[-1]])
    node2.fetch(torrent, str(tmp_path / "n2"), [(GOLDEN, golden.port), (NODE1, node1.port)],
                skip=[rel for rel in content if rel != by_size[-2]])
    assert node1.wait(30, 10) == _torrent.DONE and node2.wait(30, 10) == _torrent.DONE
    assert NODE2 in node1.connected(key1)
    finished = time.monotonic()
    seen = watch(node1, key1, lambda seen: NODE2 in seen)
    assert seen == {GOLDEN, NODE2} and NODE2 in node1.connected(key1)
    assert time.monotonic() - finished <= _torrent.SETTLE_SECONDS + 1
    assert watch(golden, key, lambda seen: seen == {NODE1, NODE2}) == {NODE1, NODE2}


def test_a_node_sees_which_peers_left_it_after_it_finished(tmp_path, cache, swarms):
    root, _content, torrent = cache
    golden = swarms(GOLDEN, allowed=[NODE1, NODE2])
    golden.seed(torrent, root)
    node1 = swarms(NODE1, allowed=[GOLDEN, NODE2])
    node2 = swarms(NODE2, allowed=[GOLDEN, NODE1])
    key1 = node1.fetch(torrent, str(tmp_path / "n1"), [(GOLDEN, golden.port), (NODE2, node2.port)])
    key2 = node2.fetch(torrent, str(tmp_path / "n2"), [(GOLDEN, golden.port), (NODE1, node1.port)])
    assert node1.wait(30, 10) == _torrent.DONE and node2.wait(30, 10) == _torrent.DONE
    # golden: seen as a seed while it served, or (a download quicker than a look) it
    # closed this node as a seed when the node finished
    assert GOLDEN in node1.satisfied(key1) | node1.left(key1)
    # both finished: they keep their connection (golden closed each as it finished)
    deadline = time.monotonic() + 5
    while NODE2 not in node1.connected(key1) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert NODE2 in node1.connected(key1) and NODE2 not in node1.left(key1)
    node2.close()
    deadline = time.monotonic() + 5
    while NODE2 not in node1.left(key1) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert NODE2 in node1.left(key1)
    assert key2  # node2's own view went with it
