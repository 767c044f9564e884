# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Doubling-wave fan-out: which host a node pulls the model cache from."""

from ansible.errors import AnsibleFilterError


def fanout_wave(nodes, node):
    """The wave (0, 1, 2, ...) in which ``node`` syncs: wave w holds 2**w nodes."""
    nodes = list(nodes)
    if node not in nodes:
        raise AnsibleFilterError("fanout_wave: %r is not one of the nodes %r" % (node, nodes))
    return (nodes.index(node) + 1).bit_length() - 1


def fanout_source(nodes, node, origin):
    """The host ``node`` pulls from when ``nodes`` sync in doubling waves from ``origin``.

    Wave 0: the first node pulls from origin. Wave w: its 2**w nodes pull from the
    2**w - 1 nodes that already hold the cache and from origin, one node per source,
    so origin sends the cache once per wave instead of once per node.
    """
    nodes = list(nodes)
    wave = fanout_wave(nodes, node)
    first = (1 << wave) - 1
    sources = nodes[:first] + [origin]
    return sources[nodes.index(node) - first]


def cache_source(nodes, node, origin, synced=None, fixed="", fanout=True):
    """The host ``node`` pulls the model cache from, the whole choice: ``fixed`` when set;
    the origin without fan-out; else the fanout_source of its wave once that node has
    synced (``synced``: one flag per node of ``nodes``, in order), the origin otherwise."""
    nodes = list(nodes)
    if fixed:
        return fixed
    if not fanout:
        return origin
    synced = [bool(s) for s in (synced if synced is not None else [False] * len(nodes))]
    if len(synced) != len(nodes):
        raise AnsibleFilterError("cache_source: synced has %d flags for %d nodes; give one per node, in the order "
                                 "of the nodes" % (len(synced), len(nodes)))
    source = fanout_source(nodes, node, origin)
    return source if source == origin or synced[nodes.index(source)] else origin


class FilterModule(object):
    def filters(self):
        return {"fanout_source": fanout_source, "fanout_wave": fanout_wave, "cache_source": cache_source}
