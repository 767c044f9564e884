# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsers of iscsiadm output, on output captured from open-iscsi 2.1.8 in the guest lab
(fixtures/iscsiadm), and the argv builders."""

import os
import re

import pytest

from ansible_collections.indextts.deploy.plugins.module_utils import _iscsiadm as iscsi

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "iscsiadm")
TARGET = "iqn.2026-11.io.indextts.lab:cache"


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def test_sessions():
    assert iscsi.parse_sessions(fixture("session.txt")) == [
        {"sid": 2, "transport": "tcp", "portal": "10.99.1.1:3260", "tpgt": 1, "target": TARGET},
        {"sid": 3, "transport": "tcp", "portal": "10.99.2.1:3260", "tpgt": 1, "target": TARGET},
    ]
    assert iscsi.parse_sessions("iscsiadm: No active sessions.\n") == []


def test_nodes_and_discovery():
    expected = [{"portal": "10.99.1.1:3260", "tpgt": 1, "target": TARGET},
                {"portal": "10.99.2.1:3260", "tpgt": 1, "target": TARGET}]
    assert iscsi.parse_nodes(fixture("discovery.txt")) == expected
    assert iscsi.parse_nodes(fixture("node_list.txt")) == expected[:1]
    assert iscsi.parse_nodes(fixture("node_no_records.txt")) == []


def test_session_details_list_each_lun_as_a_disk():
    details = iscsi.parse_session_details(fixture("session_p3.txt"))
    assert [(d["sid"], d["portal"], d["target"], d["connection_state"], d["session_state"]) for d in details] == [
        (2, "10.99.1.1:3260", TARGET, "LOGGED IN", "LOGGED_IN"),
        (3, "10.99.2.1:3260", TARGET, "LOGGED IN", "LOGGED_IN"),
    ]
    # LUN 0 is tgt's controller (no disk); LUN 1 is the disk, one per path.
    assert details[0]["devices"] == [{"lun": 1, "device": "/dev/sda", "state": "running"}]
    assert details[1]["devices"] == [{"lun": 1, "device": "/dev/sdb", "state": "running"}]


def test_by_path_names():
    names = [line.split()[0] for line in fixture("by_path.txt").splitlines()]
    assert [iscsi.parse_by_path(n) for n in names] == [("10.99.1.1:3260", TARGET, 1), ("10.99.2.1:3260", TARGET, 1)]
    assert iscsi.parse_by_path("pci-0000:00:04.0") is None


def test_record_shows_masked_secrets_and_empty_values():
    record = iscsi.parse_record(fixture("node_show.txt"))
    assert record["node.session.auth.authmethod"] == "CHAP"
    assert record["node.session.auth.username"] == "lab-initiator"
    assert record["node.session.auth.password"] == "********"
    assert record["node.session.auth.username_in"] == ""


def test_set_record_values_replaces_adds_and_removes_in_the_file_format():
    text = fixture("record_default.txt")
    new = iscsi.set_record_values(text, {"node.startup": "automatic", "node.session.auth.password": "s3cret-s3cret",
                                         "node.session.auth.chap_algs": None})
    record = iscsi.parse_record(new)
    assert record["node.startup"] == "automatic"
    assert record["node.session.auth.password"] == "s3cret-s3cret"
    assert "node.session.auth.chap_algs" not in record
    lines = new.splitlines()
    assert lines[0] == "# BEGIN RECORD 2.1.8" and lines[-1] == "# END RECORD"
    assert lines[-2] == "node.session.auth.password = s3cret-s3cret"
    # Everything else is untouched, in order.
    assert [l for l in lines if not l.startswith(("node.startup", "node.session.auth"))] == \
        [l for l in text.splitlines() if not l.startswith(("node.startup", "node.session.auth"))]
    assert iscsi.set_record_values(new, {"node.startup": "automatic"}) == new


LONGEST = "iqn.2026-11.io.indextts.lab:" + "a" * (223 - len("iqn.2026-11.io.indextts.lab:"))


@pytest.mark.parametrize("name, ok", [
    (TARGET, True), ("iqn.2026-11.io.indextts.lab", True), ("iqn.2004-10.com.ubuntu:01:3a5b", True),
    ("eui.02004567A425678D", True), ("naa.52004567BA64678D", True), ("naa." + "0123456789abcdef" * 2, True),
    ("iqn.2000-01.com.synology:DS.Target-1.abc", True), (LONGEST, True),
    ("iqn.2026-13.io.x:y", False), ("iqn.2026-00.io.x", False), ("iqn.26-11.io.x", False), ("disk1", False),
    ("iqn.2026-11.IO.x", False), ("eui.0200", False), ("naa.52004567BA64678D1", False), ("iqn.2026-11.io.x:a b", False),
    ("iqn.2026-11.io.x:a/b", False), ("iqn.2026-11.io.x:a..b", False), ("iqn.2026-11.io.x:../x", False),
    (LONGEST + "a", False), (TARGET + "\n", False), (TARGET + "\nnode.startup = automatic", False),
    ("iqn.2026-11.io.x:a_b", False), ("iqn.2026-11.io.x:", False), (TARGET + "\u00e9", False),
])
def test_target_names(name, ok):
    assert iscsi.valid_target(name) is ok
    assert (iscsi.target_problem(name) is None) is ok
    # The one rule as a pattern a role's Jinja `match` test can take.
    assert bool(re.match(iscsi.TARGET_NAME_PATTERN, name)) is ok


@pytest.mark.parametrize("name, problem", [
    ("iqn.2026-13.com.example:x", "month 13 of the date is not 01 to 12"),
    ("iqn.2026-11.io.x:a/b", "it contains '/', which open-iscsi would take as a directory under /etc/iscsi/nodes"),
    ("iqn.2026-11.io.x:a..b", "it contains '..'"),
    (LONGEST + "a", "it is 224 bytes long; RFC 3720 allows at most 223"),
    (TARGET + "\r", "it contains a space, a line break or another control character"),
    ("iqn.2026-11.IO.x", "the reversed domain name 'IO.x' must be dot-separated lowercase labels of a-z, 0-9 and '-'"),
    ("iqn.2026-11.io.x:a_b", "the part after ':' may hold only letters, digits, '-', '.' and ':' (RFC 3722)"),
    ("iqn.26-11.io.x", "iqn. is followed by the date YYYY-MM and a dot"),
    ("eui.0200", "eui. is followed by exactly 16 hexadecimal digits"),
    ("naa.0200", "naa. is followed by exactly 16 or 32 hexadecimal digits"),
    ("disk1", "it does not begin with iqn., eui. or naa."),
])
def test_target_problems_say_what_is_wrong(name, problem):
    assert iscsi.target_problem(name) == problem


@pytest.mark.parametrize("value, bad", [
    ("lab-initiator", False), ("s3cret with spaces inside", False), ("a\nb", True), ("a\tb", True),
    ("a\x00b", True), ("a\x7fb", True), ("a\u2028b", True), ("a\x85b", True),
])
def test_control_characters(value, bad):
    assert iscsi.control_character(value) is bad


@pytest.mark.parametrize("portal, normal", [
    ("10.99.1.1", "10.99.1.1:3260"), ("10.99.1.1:3261", "10.99.1.1:3261"), ("storage.lab", "storage.lab:3260"),
    ("[fd00::1]", "[fd00::1]:3260"), ("[FD00::1]:3262", "[fd00::1]:3262"), ("[fe80::1]:3260", "[fe80::1]:3260"),
    (" 10.99.1.1 ", "10.99.1.1:3260"), ("storage.lab:65535", "storage.lab:65535"),
    ("fd00::1", None), ("10.99.1.1:0", None), ("10.99.1.1:99999", None), ("bad host", None), ("-x", None),
    ("host:notaport", None), ("host:", None), ("", None), ("[zz]:3260", None), ("10.99.1.256", None),
    ("storage.lab:32\u0666", None), ("a\nb:3260", None),
])
def test_portals(portal, normal):
    assert iscsi.normalize_portal(portal) == normal


@pytest.mark.parametrize("portal, problem", [
    ("host:notaport", "the port 'notaport' is not a number"),
    ("10.99.1.1:0", "the port 0 is not from 1 to 65535"),
    ("10.99.1.1:65536", "the port 65536 is not from 1 to 65535"),
    ("host:", "the port after ':' is missing"),
    ("fd00::1", "an IPv6 address without brackets leaves its port ambiguous; write [fd00::1] (port 3260) "
                "or [fd00::1]:<port>"),
    ("fd00::1:3260", "an IPv6 address without brackets leaves its port ambiguous; write [fd00::1:3260] (port 3260) "
                     "or [fd00::1]:3260"),
    ("a:b:c", "it has more than one ':' and is not an IPv6 address"),
    ("[10.99.1.1]:3260", "'10.99.1.1' in brackets is not an IPv6 address"),
    ("10.99.1.256", "'10.99.1.256' is not an IPv4 address"),
    ("-x", "'-x' is not a host name or an address"),
    ("bad host", "it contains a space, a line break or another control character"),
    ("", "it is empty"),
])
def test_portal_problems_say_what_is_wrong(portal, problem):
    assert iscsi.check_portal(portal) == (None, problem)


def test_paths_and_argv():
    assert iscsi.record_path(TARGET, "10.99.1.1:3260", 1) == "/etc/iscsi/nodes/%s/10.99.1.1,3260,1/default" % TARGET
    assert iscsi.discovery_record_path("[fd00::1]:3260") == "/etc/iscsi/send_targets/fd00::1,3260/st_config"
    assert iscsi.node_argv("iscsiadm", TARGET, "10.99.1.1:3260", "--login") == [
        "iscsiadm", "--mode", "node", "--targetname", TARGET, "--portal", "10.99.1.1:3260", "--login"]
    # IPv6 keeps its brackets: iscsiadm would read fd00::1:3260 as one address.
    assert iscsiadm_portal(iscsi.node_argv("iscsiadm", TARGET, "[fd00::1]:3261")) == "[fd00::1]:3261"
    assert iscsiadm_portal(iscsi.discovery_argv("iscsiadm", "[fd00::1]:3260")) == "[fd00::1]:3260"
    assert iscsiadm_portal(iscsi.discoverydb_new_argv("iscsiadm", "storage.lab:3260")) == "storage.lab:3260"


def iscsiadm_portal(argv):
    return argv[argv.index("--portal") + 1]


def test_both_record_layouts():
    """open-iscsi writes a record with an unknown tpgt (-1, as --op new of a static node
    makes) as the flat file <host>,<port>; one with a tpgt as <host>,<port>,<tpgt>/<iface>,
    and still reads a flat file it finds for a known tpgt. Discovery records alike."""
    nodes = "/etc/iscsi/nodes/%s/" % TARGET
    assert iscsi.record_paths(TARGET, "10.99.1.1:3260", -1) == [nodes + "10.99.1.1,3260"]
    assert iscsi.record_path(TARGET, "10.99.1.1:3260", -1) == nodes + "10.99.1.1,3260"
    assert iscsi.record_paths(TARGET, "[fd00::1]:3260", 1) == [nodes + "fd00::1,3260,1/default", nodes + "fd00::1,3260"]
    assert iscsi.discovery_record_paths("10.99.1.1:3260") == [
        "/etc/iscsi/send_targets/10.99.1.1,3260/st_config", "/etc/iscsi/send_targets/10.99.1.1,3260"]
    assert iscsi.parse_nodes("10.99.1.1:3260,-1 %s\n" % TARGET) == [
        {"portal": "10.99.1.1:3260", "tpgt": -1, "target": TARGET}]


def test_failure_reasons_from_real_output():
    assert iscsi.failure_reason(24, fixture("login_chap_rejected.txt")) == (
        "the target rejected the CHAP credentials (authorization failure) (initiator reported error "
        "(24 - iSCSI login failed due to authorization failure))")
    assert iscsi.failure_reason(21, fixture("logout_no_session.txt")) == (
        "no such node record or session (No matching sessions found)")
    assert iscsi.failure_reason(99, "") == "iscsiadm exit code 99"
