# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dm-multipath's multipathd, as the collection reads it: the one argv and the one
parser of ``multipathd show paths raw format ...``, for the iscsi_initiator role (through
the multipath_paths filter), the guest scenario's checks and indextts-storage-check, the
storage_network role's health check, which imports this file on the node outside Ansible
(so: standard library only). Captured from multipath-tools 0.9.4 (Debian 12) in the guest
lab, in tests/unit/.../fixtures/multipathd."""

# What each wildcard of the raw format is called in a parsed path (multipath-tools'
# print.c): %m the map's alias, %d the path's device, %t its state in the device-mapper
# table, %T the path checker's.
WILDCARDS = {"%m": "map", "%d": "device", "%t": "dm_state", "%T": "checker_state"}
PATHS_FORMAT = "%m %d %t %T"
# The checker states %T prints with a space in them (print.c, snprint_chk_state).
SPACED_CHECKER_STATES = ("i/o pending", "i/o timeout")
# What %m prints for a path that is in no map.
NO_MAP = "[orphan]"
# The header line multipathd prints without ``raw`` (its column names), never data.
_HEADERS = {"map": "multipath", "device": "dev", "dm_state": "dm_st", "checker_state": "chk_st"}


def _fields(fmt):
    fields = fmt.split()
    unknown = [f for f in fields if f not in WILDCARDS]
    if unknown or not fields:
        raise ValueError("multipathd format %r: only space-separated %s are understood"
                         % (fmt, ", ".join(sorted(WILDCARDS))))
    return [WILDCARDS[f] for f in fields]


def paths_argv(multipathd="multipathd", fmt=PATHS_FORMAT):
    """The command whose output parse_paths() reads."""
    _fields(fmt)
    return [multipathd, "show", "paths", "raw", "format", fmt]


def parse_paths(text, fmt=PATHS_FORMAT):
    """``multipathd show paths raw format FMT`` -> one dict per path, keyed by the names
    of WILDCARDS that FMT holds, plus ``active`` (the path carries I/O: active in the
    map and ready for the checker; only with %t and %T in FMT). ``map`` is None for a path
    in no map. %T's two states with a space (``i/o pending``, ``i/o timeout``) are read
    whole where %T ends FMT. Lines with another number of fields (an error, an empty
    line, another format's output) and the header are not paths."""
    names = _fields(fmt)
    paths = []
    for line in text.splitlines():
        values = line.split()
        if (names[-1] == "checker_state" and len(values) == len(names) + 1
                and " ".join(values[-2:]) in SPACED_CHECKER_STATES):
            values[-2:] = [" ".join(values[-2:])]
        if len(values) != len(names):
            continue
        path = dict(zip(names, values))
        if all(path[n] == _HEADERS[n] for n in names):
            continue
        if "map" in path and path["map"] == NO_MAP:
            path["map"] = None
        if "dm_state" in path and "checker_state" in path:
            path["active"] = path["dm_state"] == "active" and path["checker_state"] == "ready"
        paths.append(path)
    return paths


def map_path_counts(paths):
    """parse_paths()'s paths -> {map: {"active": n, "total": n}}, paths in no map left out."""
    maps = {}
    for path in paths:
        if path.get("map") is None:
            continue
        counts = maps.setdefault(path["map"], {"active": 0, "total": 0})
        counts["active"] += bool(path.get("active"))
        counts["total"] += 1
    return maps
