# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""open-iscsi's iscsiadm, as iscsi_target_login needs it: argv builders, pure parsers
of its output (captured from open-iscsi 2.1.8 in tests/unit/.../fixtures/iscsiadm),
and the node record file format, through which CHAP secrets are written so that they
never appear on a command line."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

DEFAULT_PORT = 3260
NODES_DIR = "/etc/iscsi/nodes"
SEND_TARGETS_DIR = "/etc/iscsi/send_targets"
BY_PATH = "/dev/disk/by-path"
SYS_BLOCK = "/sys/block"

# iqn.YYYY-MM.reverse.domain[:anything], eui.<16 hex>, naa.<16 or 32 hex> (RFC 3720/3980).
_IQN_RE = re.compile(r"^iqn\.\d{4}-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[^\s]+)?$")
_EUI_RE = re.compile(r"^eui\.[0-9A-Fa-f]{16}$")
_NAA_RE = re.compile(r"^naa\.([0-9A-Fa-f]{16}|[0-9A-Fa-f]{32})$")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")

# tcp: [2] 10.99.1.1:3260,1 iqn.2026-11.io.indextts.lab:cache (non-flash)
_SESSION_RE = re.compile(r"^(?P<transport>\S+): \[(?P<sid>\d+)\] (?P<portal>\S+),(?P<tpgt>\d+) (?P<target>\S+)(?: \((?P<flash>[^)]*)\))?$")
# 10.99.1.1:3260,1 iqn.2026-11.io.indextts.lab:cache   (discovery and node listings)
_NODE_RE = re.compile(r"^(?P<portal>\S+),(?P<tpgt>-?\d+) (?P<target>\S+)$")
# ip-10.99.1.1:3260-iscsi-iqn.2026-11.io.indextts.lab:cache-lun-1
_BY_PATH_RE = re.compile(r"^ip-(?P<portal>.+)-iscsi-(?P<target>.+)-lun-(?P<lun>\d+)$")

# What iscsiadm's exit codes mean (iscsi_err.h), for messages a person can act on.
EXIT_CODES = {
    2: "no such session",
    4: "a transport error: the portal could not be reached",
    5: "the login failed",
    6: "the node record database could not be read or written",
    7: "iscsiadm was given an invalid argument",
    8: "the portal did not answer in time (transport timeout)",
    11: "the portal did not answer the iSCSI login (PDU timeout)",
    12: "the iSCSI transport is not loaded (modprobe iscsi_tcp)",
    13: "permission denied (run as root)",
    15: "a session already exists",
    18: "iscsid could not be reached",
    19: "the target refused the login (no such target, or its ACL does not allow this initiator)",
    20: "iscsid is not running",
    21: "no such node record or session",
    24: "the target rejected the CHAP credentials (authorization failure)",
}


def valid_target(name):
    """True for an iqn., eui. or naa. name."""
    return bool(_IQN_RE.match(name) or _EUI_RE.match(name) or _NAA_RE.match(name))


def normalize_portal(portal):
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> ``host:port`` as iscsiadm
    prints it (``[v6]:port`` for IPv6); None when it is not a portal."""
    portal = portal.strip()
    m = re.match(r"^\[(?P<host>[0-9A-Fa-f:.]+)\](?::(?P<port>\d+))?$", portal)
    if m:
        host, port = "[%s]" % m.group("host").lower(), m.group("port")
    elif portal.count(":") == 1:
        host, port = portal.split(":")
    elif ":" not in portal:
        host, port = portal, None
    else:
        return None
    if not host.startswith("[") and not _HOST_RE.match(host):
        return None
    port = int(port) if port else DEFAULT_PORT
    if not 0 < port < 65536:
        return None
    return "%s:%d" % (host, port)


def split_portal(portal):
    """``host:port`` -> (host without brackets, port)."""
    host, port = portal.rsplit(":", 1)
    return host.strip("[]"), int(port)


def parse_sessions(text):
    """``iscsiadm -m session`` -> [{sid, transport, portal, tpgt, target}]."""
    sessions = []
    for line in text.splitlines():
        m = _SESSION_RE.match(line.strip())
        if m:
            sessions.append({"sid": int(m.group("sid")), "transport": m.group("transport"),
                             "portal": m.group("portal"), "tpgt": int(m.group("tpgt")),
                             "target": m.group("target")})
    return sessions


def parse_nodes(text):
    """``iscsiadm -m node`` or sendtargets discovery -> [{portal, tpgt, target}]."""
    nodes = []
    for line in text.splitlines():
        m = _NODE_RE.match(line.strip())
        if m:
            nodes.append({"portal": m.group("portal"), "tpgt": int(m.group("tpgt")),
                          "target": m.group("target")})
    return nodes


def parse_session_details(text):
    """``iscsiadm -m session -P 3`` -> [{sid, target, portal, connection_state,
    session_state, devices: [{lun, device, state}]}]."""
    sessions, target, current = [], None, None
    lun = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Target: "):
            target = line[len("Target: "):].split(" ")[0]
        elif line.startswith("Current Portal: "):
            portal = line[len("Current Portal: "):].rsplit(",", 1)[0]
            current = {"target": target, "portal": portal, "devices": []}
            sessions.append(current)
        elif current is None:
            continue
        elif line.startswith("SID: "):
            current["sid"] = int(line[len("SID: "):])
        elif line.startswith("iSCSI Connection State: "):
            current["connection_state"] = line.split(": ", 1)[1]
        elif line.startswith("iSCSI Session State: "):
            current["session_state"] = line.split(": ", 1)[1]
        elif re.match(r"^scsi\d+ Channel \d+ Id \d+ Lun: \d+$", line):
            lun = int(line.rsplit(" ", 1)[1])
        elif line.startswith("Attached scsi disk ") and lun is not None:
            m = re.match(r"^Attached scsi disk (\S+)\s+State: (\S+)$", line)
            if m:
                current["devices"].append({"lun": lun, "device": "/dev/" + m.group(1), "state": m.group(2)})
    return sessions


def parse_by_path(name):
    """A /dev/disk/by-path name -> (portal, target, lun), or None for other devices."""
    m = _BY_PATH_RE.match(name)
    if not m:
        return None
    return m.group("portal"), m.group("target"), int(m.group("lun"))


def parse_record(text):
    """A node record (``iscsiadm -m node -T t -p p`` output, or the record file) ->
    {key: value}; ``<empty>`` becomes ''."""
    record = {}
    for line in text.splitlines():
        if line.startswith("#") or " = " not in line:
            continue
        key, value = line.split(" = ", 1)
        record[key.strip()] = "" if value.strip() == "<empty>" else value.strip()
    return record


def set_record_values(text, values):
    """The record file ``text`` with ``values`` ({key: value}) set: existing lines
    replaced in place, new ones added before ``# END RECORD``; a None value removes
    the key. Pure: the caller writes the result (mode 0600, atomically)."""
    lines = text.splitlines()
    pending = dict(values)
    out = []
    for line in lines:
        key = line.split(" = ", 1)[0].strip() if " = " in line and not line.startswith("#") else None
        if key in pending:
            value = pending.pop(key)
            if value is not None:
                out.append("%s = %s" % (key, value))
            continue
        if line.startswith("# END RECORD"):
            out.extend("%s = %s" % (k, v) for k, v in sorted(pending.items()) if v is not None)
            pending = {}
        out.append(line)
    out.extend("%s = %s" % (k, v) for k, v in sorted(pending.items()) if v is not None)
    return "\n".join(out) + "\n"


def record_path(target, portal, tpgt, iface="default"):
    """Where open-iscsi keeps a node record: nodes/<target>/<host>,<port>,<tpgt>/<iface>."""
    host, port = split_portal(portal)
    return "%s/%s/%s,%d,%d/%s" % (NODES_DIR, target, host, port, tpgt, iface)


def discovery_record_path(portal):
    host, port = split_portal(portal)
    return "%s/%s,%d/st_config" % (SEND_TARGETS_DIR, host, port)


def failure_reason(rc, output):
    """The line of iscsiadm's output that says why, and what the exit code means."""
    said = [line.strip() for line in output.splitlines()
            if line.startswith("iscsiadm:") and "Could not log into all portals" not in line]
    meaning = EXIT_CODES.get(rc, "iscsiadm exit code %d" % rc)
    detail = said[-1][len("iscsiadm: "):] if said else ""
    return "%s (%s)" % (meaning, detail) if detail else meaning


def discovery_argv(iscsiadm, portal):
    host, port = split_portal(portal)
    return [iscsiadm, "--mode", "discoverydb", "--type", "sendtargets", "--portal", "%s:%d" % (host, port), "--discover"]


def discoverydb_new_argv(iscsiadm, portal):
    host, port = split_portal(portal)
    return [iscsiadm, "--mode", "discoverydb", "--type", "sendtargets", "--portal", "%s:%d" % (host, port), "--op", "new"]


def node_argv(iscsiadm, target, portal, *rest):
    """``iscsiadm --mode node --targetname T --portal P ...``: the portal always given,
    so an operation never reaches every portal of a target by accident."""
    host, port = split_portal(portal)
    return [iscsiadm, "--mode", "node", "--targetname", target, "--portal", "%s:%d" % (host, port)] + list(rest)


def update_argv(iscsiadm, target, portal, name, value):
    """Set a non-secret record value. Secrets go through the record file instead."""
    return node_argv(iscsiadm, target, portal, "--op", "update", "--name", name, "--value", value)
