# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""open-iscsi's iscsiadm, as iscsi_target_login needs it: argv builders, pure parsers
of its output (captured from open-iscsi 2.1.8 in tests/unit/.../fixtures/iscsiadm),
and the node record file format, through which CHAP secrets are written so that they
never appear on a command line."""

import re
import socket

DEFAULT_PORT = 3260
NODES_DIR = "/etc/iscsi/nodes"
SEND_TARGETS_DIR = "/etc/iscsi/send_targets"
BY_PATH = "/dev/disk/by-path"
SYS_BLOCK = "/sys/block"

# The one rule for iSCSI names, for this module and the roles (a Jinja ``match`` takes it
# as is): iqn.YYYY-MM.reverse.domain[:identifier] with a month 01-12 and a lowercase
# domain; the identifier in the ASCII characters RFC 3722's stringprep profile keeps
# (letters, digits, '-', '.', ':'; upper case as vendors print it), never '..';
# eui.<16 hex>, naa.<16 or 32 hex> (RFC 3720, 3980); at most 223 bytes (RFC 3720 3.2.6.1).
TARGET_NAME_PATTERN = (r"^(?=.{1,223}\Z)(?!.*\.\.)"
                       r"(iqn\.[0-9]{4}-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*"
                       r"(:[A-Za-z0-9.:-]+)?"
                       r"|eui\.[0-9A-Fa-f]{16}|naa\.([0-9A-Fa-f]{16}|[0-9A-Fa-f]{32}))\Z")
_TARGET_RE = re.compile(TARGET_NAME_PATTERN)
MAX_NAME_BYTES = 223
_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_DOMAIN_RE = re.compile(r"^%s(\.%s)*$" % (_LABEL, _LABEL))
# Control characters and the line breaks Python's splitlines() honours: none may reach a
# record file, where one line is one key.
_CONTROL_RE = re.compile(u"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
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
    """True for an iqn., eui. or naa. name (TARGET_NAME_PATTERN)."""
    return bool(_TARGET_RE.match(name))


def target_problem(name):
    """Why ``name`` is not an iSCSI name (None when it is one), in words a person can act on."""
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        return "it is %d bytes long; RFC 3720 allows at most %d" % (size, MAX_NAME_BYTES)
    if _CONTROL_RE.search(name) or re.search(r"\s", name):
        return "it contains a space, a line break or another control character"
    if "/" in name:
        return "it contains '/', which open-iscsi would take as a directory under %s" % NODES_DIR
    if ".." in name:
        return "it contains '..'"
    if _TARGET_RE.match(name):
        return None
    if name.startswith("eui."):
        return "eui. is followed by exactly 16 hexadecimal digits"
    if name.startswith("naa."):
        return "naa. is followed by exactly 16 or 32 hexadecimal digits"
    if not name.startswith("iqn."):
        return "it does not begin with iqn., eui. or naa."
    m = re.match(r"^iqn\.([0-9]{4})-([0-9]{2})\.", name)
    if not m:
        return "iqn. is followed by the date YYYY-MM and a dot"
    if not 1 <= int(m.group(2)) <= 12:
        return "month %s of the date is not 01 to 12" % m.group(2)
    domain, _sep, ident = name[m.end():].partition(":")
    if not _DOMAIN_RE.match(domain):
        return "the reversed domain name %r must be dot-separated lowercase labels of a-z, 0-9 and '-'" % domain
    if _sep and not re.match(r"^[A-Za-z0-9.:-]+$", ident):
        return "the part after ':' may hold only letters, digits, '-', '.' and ':' (RFC 3722)"
    return "it does not match iqn.YYYY-MM.reverse.domain[:id]"


def control_character(value):
    """True when ``value`` holds a line break or another control character."""
    return bool(_CONTROL_RE.search(value))


def _ipv4(host):
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts)


def _ipv6(host):
    try:
        socket.inet_pton(socket.AF_INET6, host)
    except (socket.error, ValueError, UnicodeError):
        return False
    return True


def check_portal(portal):
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (``host:port`` as iscsiadm
    prints it (``[v6]:port`` for IPv6), None), or (None, why it is not a portal)."""
    portal = portal.strip()
    if not portal:
        return None, "it is empty"
    if _CONTROL_RE.search(portal) or re.search(r"\s", portal):
        return None, "it contains a space, a line break or another control character"
    m = re.match(r"^\[(?P<host>[^\]]*)\](?::(?P<port>.*))?$", portal)
    if m:
        host, port = m.group("host").lower(), m.group("port")
        if not _ipv6(host):
            return None, "%r in brackets is not an IPv6 address" % host
        host = "[%s]" % host
    elif portal.count(":") > 1:
        head, _sep, tail = portal.rpartition(":")
        forms = ["[%s] (port %d)" % (portal, DEFAULT_PORT)] if _ipv6(portal) else []
        if re.match(r"^[0-9]+$", tail) and _ipv6(head):
            forms.append("[%s]:%s" % (head, tail))
        elif forms:
            forms.append("[%s]:<port>" % portal)
        if not forms:
            return None, "it has more than one ':' and is not an IPv6 address"
        return None, ("an IPv6 address without brackets leaves its port ambiguous; write %s"
                      % " or ".join(forms))
    else:
        host, _sep, port = portal.partition(":")
        port = port if _sep else None
        if re.match(r"^[0-9.]+$", host):
            if not _ipv4(host):
                return None, "%r is not an IPv4 address" % host
        elif not (_HOST_RE.match(host) and len(host) <= 253
                  and all(0 < len(label) <= 63 and not label.startswith("-") and not label.endswith("-")
                          for label in host.split("."))):
            return None, "%r is not a host name or an address" % host
    if port is None:
        port = DEFAULT_PORT
    elif not port:
        return None, "the port after ':' is missing"
    elif not re.match(r"^[0-9]+$", port):
        return None, "the port %r is not a number" % port
    elif not 0 < int(port) < 65536:
        return None, "the port %s is not from 1 to 65535" % port
    return "%s:%d" % (host, int(port)), None


def normalize_portal(portal):
    """check_portal()'s portal, or None when it is not one."""
    return check_portal(portal)[0]


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


def record_paths(target, portal, tpgt, iface="default"):
    """Where open-iscsi may keep a node record, in the order it looks: the directory
    layout ``nodes/<target>/<host>,<port>,<tpgt>/<iface>`` when the portal group tag is
    known, and the flat file ``nodes/<target>/<host>,<port>`` that it writes for a
    record whose tag is unknown (``iscsiadm -m node`` lists it with tpgt -1), as
    ``--op new`` of a static node (discover=false) makes one in open-iscsi 2.1.8."""
    host, port = split_portal(portal)
    flat = "%s/%s/%s,%d" % (NODES_DIR, target, host, port)
    if tpgt is None or tpgt < 0:
        return [flat]
    return ["%s,%d/%s" % (flat, tpgt, iface), flat]


def record_path(target, portal, tpgt, iface="default"):
    """The record's path in the layout open-iscsi writes for this tpgt."""
    return record_paths(target, portal, tpgt, iface)[0]


def discovery_record_paths(portal):
    """A sendtargets discovery record: ``send_targets/<host>,<port>/st_config``, or the
    older flat file ``send_targets/<host>,<port>``, which open-iscsi still reads."""
    host, port = split_portal(portal)
    flat = "%s/%s,%d" % (SEND_TARGETS_DIR, host, port)
    return [flat + "/st_config", flat]


def discovery_record_path(portal):
    return discovery_record_paths(portal)[0]


def failure_reason(rc, output):
    """The line of iscsiadm's output that says why, and what the exit code means."""
    said = [line.strip() for line in output.splitlines()
            if line.startswith("iscsiadm:") and "Could not log into all portals" not in line]
    meaning = EXIT_CODES.get(rc, "iscsiadm exit code %d" % rc)
    detail = said[-1][len("iscsiadm: "):] if said else ""
    return "%s (%s)" % (meaning, detail) if detail else meaning


def argv_portal(portal):
    """A portal as ``iscsiadm --portal`` reads it: ``host:port``, an IPv6 address in
    brackets (unbracketed, iscsiadm takes ``fd00::1:3260`` for an address on port 3260)."""
    host, port = split_portal(portal)
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


def discovery_argv(iscsiadm, portal):
    return [iscsiadm, "--mode", "discoverydb", "--type", "sendtargets", "--portal", argv_portal(portal), "--discover"]


def discoverydb_new_argv(iscsiadm, portal):
    return [iscsiadm, "--mode", "discoverydb", "--type", "sendtargets", "--portal", argv_portal(portal), "--op", "new"]


def node_argv(iscsiadm, target, portal, *rest):
    """``iscsiadm --mode node --targetname T --portal P ...``: the portal always given,
    so an operation never reaches every portal of a target by accident."""
    return [iscsiadm, "--mode", "node", "--targetname", target, "--portal", argv_portal(portal)] + list(rest)


def update_argv(iscsiadm, target, portal, name, value):
    """Set a non-secret record value. Secrets go through the record file instead."""
    return node_argv(iscsiadm, target, portal, "--op", "update", "--name", name, "--value", value)
