# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The parser of multipathd's paths, on output captured from multipath-tools 0.9.4 in the
guest lab (fixtures/multipathd): paths.txt and paths_one_failed.txt in the format everyone
uses ("%m %d %t %T"; the guest scenario writes them with INDEXTTS_CAPTURE_DIR set),
paths_one_failed_mtT.txt in the "%m %t %T" format the health check used before."""

import os

import pytest

from ansible_collections.indextts.deploy.plugins.module_utils import _multipath as mp

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "multipathd")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def test_both_paths_up():
    paths = mp.parse_paths(fixture("paths.txt"))
    assert paths == [
        {"map": "indextts-cache", "device": "sdb", "dm_state": "active", "checker_state": "ready", "active": True},
        {"map": "indextts-cache", "device": "sda", "dm_state": "active", "checker_state": "ready", "active": True},
    ]
    assert mp.map_path_counts(paths) == {"indextts-cache": {"active": 2, "total": 2}}


def test_one_path_failed():
    paths = mp.parse_paths(fixture("paths_one_failed.txt"))
    assert [(p["device"], p["dm_state"], p["checker_state"], p["active"]) for p in paths] == [
        ("sdb", "active", "ready", True), ("sda", "failed", "faulty", False)]
    assert mp.map_path_counts(paths) == {"indextts-cache": {"active": 1, "total": 2}}


def test_another_format():
    paths = mp.parse_paths(fixture("paths_one_failed_mtT.txt"), "%m %t %T")
    assert paths == [
        {"map": "indextts-cache", "dm_state": "failed", "checker_state": "faulty", "active": False},
        {"map": "indextts-cache", "dm_state": "active", "checker_state": "ready", "active": True},
    ]
    assert mp.map_path_counts(paths) == {"indextts-cache": {"active": 1, "total": 2}}
    # Without both states there is no telling whether a path is active.
    assert mp.parse_paths("indextts-cache sda\n", "%m %d") == [{"map": "indextts-cache", "device": "sda"}]


def test_the_output_of_one_format_is_not_read_as_another():
    assert mp.parse_paths(fixture("paths_one_failed_mtT.txt")) == []
    assert mp.parse_paths(fixture("paths.txt"), "%m %t %T") == []


def test_paths_in_no_map_pending_and_lines_that_are_not_paths():
    # Written here, around a capture, from multipath-tools' print.c: the header multipathd
    # prints without "raw", a path in no map ("[orphan]" for %m), a path whose check is
    # under way (%T "i/o pending", with a space), and lines of fewer fields.
    text = ("multipath dev dm_st chk_st\n"
            + fixture("paths_one_failed.txt")
            + "[orphan] sdc undef ready\n"
            + "indextts-cache sdd active i/o pending\n"
            + "timeout\n\n")
    paths = mp.parse_paths(text)
    assert [p["device"] for p in paths] == ["sdb", "sda", "sdc", "sdd"]
    assert paths[2]["map"] is None and not paths[2]["active"]
    assert paths[3]["checker_state"] == "i/o pending" and not paths[3]["active"]
    assert mp.map_path_counts(paths) == {"indextts-cache": {"active": 1, "total": 3}}
    assert mp.parse_paths("") == [] and mp.map_path_counts([]) == {}


def test_argv():
    assert mp.paths_argv() == ["multipathd", "show", "paths", "raw", "format", "%m %d %t %T"]
    assert mp.paths_argv("/sbin/multipathd", "%m %t %T")[0] == "/sbin/multipathd"


@pytest.mark.parametrize("fmt", ["%m %x", "", "%m,%d", "%m %d %t %T %s"])
def test_formats_it_cannot_read_are_refused(fmt):
    with pytest.raises(ValueError, match="only space-separated %T, %d, %m, %t are understood"):
        mp.parse_paths("indextts-cache sda\n", fmt)
    with pytest.raises(ValueError):
        mp.paths_argv(fmt=fmt)
