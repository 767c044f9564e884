# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.indextts.deploy.plugins.filter.fanout import cache_source, fanout_source, fanout_wave

NODES = ["n%d" % i for i in range(1, 16)]


def test_first_waves():
    assert [fanout_source(NODES, n, "golden") for n in NODES[:7]] == \
        ["golden", "n1", "golden", "n1", "n2", "n3", "golden"]
    assert [fanout_wave(NODES, n) for n in NODES[:8]] == [0, 1, 1, 2, 2, 2, 2, 3]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 15])
def test_each_source_serves_once_per_wave_and_only_after_it_synced(count):
    nodes = NODES[:count]
    for wave in range(4):
        members = [n for n in nodes if fanout_wave(nodes, n) == wave]
        sources = [fanout_source(nodes, n, "golden") for n in members]
        assert len(sources) == len(set(sources))  # no source serves twice at once
        for source in sources:
            assert source == "golden" or fanout_wave(nodes, source) < wave
    golden_sends = sum(1 for n in nodes if fanout_source(nodes, n, "golden") == "golden")
    waves = fanout_wave(nodes, nodes[-1]) + 1
    assert golden_sends <= waves  # once per wave at most, not once per node
    if count + 1 & count == 0:  # full waves (1, 3, 7, 15 nodes): exactly once per wave
        assert golden_sends == waves


def test_unknown_node_is_a_clear_error():
    with pytest.raises(AnsibleFilterError, match="'x' is not one of the nodes"):
        fanout_source(NODES, "x", "golden")


@pytest.mark.parametrize("synced, fixed, fanout, expected", [
    ([False] * 5, "", True, "golden"),            # node5's wave source n2 has not synced yet
    ([True, True, False, False, False], "", True, "n2"),  # it has
    ([True] * 5, "", False, "golden"),           # fan-out off: always the origin
    ([True] * 5, "mirror", True, "mirror"),      # a fixed source wins
    (None, "", True, "golden"),                  # no flags: nobody has synced
])
def test_cache_source_is_the_whole_choice(synced, fixed, fanout, expected):
    assert cache_source(NODES[:5], "n5", "golden", synced=synced, fixed=fixed, fanout=fanout) == expected


def test_cache_source_pulls_the_first_node_of_a_wave_from_the_origin():
    assert cache_source(NODES[:3], "n1", "golden", synced=[True, True, True]) == "golden"


def test_cache_source_wants_one_flag_per_node():
    with pytest.raises(AnsibleFilterError, match="synced has 2 flags for 5 nodes"):
        cache_source(NODES[:5], "n5", "golden", synced=[True, False])
