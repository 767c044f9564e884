# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep the storage interfaces' MTU and VLANs with whatever configures the host's network.

One provider class per backend (``networkd``, ``networkmanager``, ``ifupdown``), as
linux-system-roles' network module has one per provider. Each provider:

- ``probe(name)``: the evidence that it manages an interface (reads only);
- ``inspect(links)``: the current content of every file it would write (reads only);
- ``plan(links, evidence, current)``: the file changes, a pure function of the three
  (this is what check mode and diff mode report), and ``commands(links, changes)``:
  what the backend is told after them (NetworkManager loads its keyfiles and brings
  VLAN profiles up; the others are told nothing, see their docstrings);
- ``activate(commands)``: runs those once the module has written the files.

``choose_backend`` (pure) turns the evidence into each interface's backend.
"""

import ipaddress
import os
import re
import tempfile

BACKENDS = ("networkd", "networkmanager", "ifupdown")
# auto takes the first backend with evidence, in this order (the role's order).
AUTO_ORDER = BACKENDS
MTU_MIN, MTU_MAX = 576, 65535
IFNAMSIZ = 15  # Linux interface names: at most 15 bytes
_IFNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
MARK = "indextts.deploy storage_network"


class InputError(Exception):
    """A bad module input; the message names the input and the fix."""


class Link(object):
    """One entry of ``interfaces``, checked: the interface, its MTU, an optional VLAN
    sub-interface ``<name>.<vlan>`` with its address (an ipaddress interface)."""

    def __init__(self, name, mtu, vlan=None, vlan_address=None):
        self.name = name
        self.mtu = mtu
        self.vlan = vlan
        self.vlan_address = vlan_address

    @property
    def vlan_name(self):
        return "%s.%d" % (self.name, self.vlan) if self.vlan else None

    def as_dict(self):
        d = {"name": self.name, "mtu": self.mtu}
        if self.vlan:
            d.update(vlan=self.vlan, vlan_name=self.vlan_name, vlan_address=str(self.vlan_address))
        return d


def ifname_problem(name, label):
    if not name:
        return "%s is empty; give the interface's name, for example eth1" % label
    if len(name.encode("utf-8")) > IFNAMSIZ:
        return ("%s %r is %d characters; Linux interface names have at most %d"
                % (label, name, len(name.encode("utf-8")), IFNAMSIZ))
    if not _IFNAME.match(name):
        return ("%s %r is not an interface name this module writes to configuration: use letters, digits, "
                "'_', '-' and '.' (not first), for example eth1 or enp3s0f1" % (label, name))
    return None


def check_links(entries, default_mtu):
    """``interfaces`` (dicts after the argument spec) -> [Link]; InputError naming the
    entry and the fix for anything the backends could not be given."""
    if not MTU_MIN <= default_mtu <= MTU_MAX:
        raise InputError("mtu %d is out of range; give an MTU from %d to %d (9000 for jumbo frames)"
                         % (default_mtu, MTU_MIN, MTU_MAX))
    if not entries:
        raise InputError("interfaces is empty; list this host's storage interfaces, for example "
                         "[{name: eth1}]")
    links, seen = [], {}
    for i, entry in enumerate(entries):
        label = "interfaces[%d]" % i
        name = entry["name"]
        problem = ifname_problem(name, label + ".name")
        if problem:
            raise InputError(problem)
        label = "interfaces[%d] (%s)" % (i, name)
        if name in seen:
            raise InputError("%s is listed twice (also interfaces[%d]); list each interface once, with its "
                             "mtu and vlan in one entry" % (label, seen[name]))
        seen[name] = i
        mtu = entry.get("mtu")
        mtu = default_mtu if mtu is None else mtu
        if not MTU_MIN <= mtu <= MTU_MAX:
            raise InputError("%s: mtu %d is out of range; give an MTU from %d to %d" % (label, mtu, MTU_MIN, MTU_MAX))
        vlan, address = entry.get("vlan"), entry.get("vlan_address")
        if vlan is None:
            if address:
                raise InputError("%s: vlan_address %s is given without vlan; add the VLAN id (vlan: 100) or "
                                 "drop vlan_address" % (label, address))
            links.append(Link(name, mtu))
            continue
        if not 1 <= vlan <= 4094:
            raise InputError("%s: vlan %d is not a VLAN id; give 1 to 4094" % (label, vlan))
        vlan_name = "%s.%d" % (name, vlan)
        if len(vlan_name) > IFNAMSIZ:
            raise InputError("%s: the VLAN interface's name %s is %d characters, more than Linux's %d; "
                             "rename the interface (for example with a .link file) or use a shorter one"
                             % (label, vlan_name, len(vlan_name), IFNAMSIZ))
        links.append(Link(name, mtu, vlan, address_of(address, label)))
    for link in links:
        if link.vlan_name in seen:
            raise InputError("interfaces: %s is listed as an interface and as the VLAN of %s; list it once, "
                             "as the VLAN (vlan: %d on %s)" % (link.vlan_name, link.name, link.vlan, link.name))
    return links


def address_of(address, label):
    if not address:
        raise InputError("%s: vlan is given without vlan_address; give the VLAN interface's address with "
                         "its prefix length, for example 10.10.1.21/24" % label)
    if "/" not in address:
        raise InputError("%s: vlan_address %s has no prefix length; write it as address/prefix, for example "
                         "%s/24" % (label, address, address))
    try:
        return ipaddress.ip_interface(address)
    except ValueError as e:
        raise InputError("%s: vlan_address %s is not an address with a prefix length (%s); for example "
                         "10.10.1.21/24 or fd00:10::21/64" % (label, address, e))


def choose_backend(requested, name, evidence):
    """The backend that keeps ``name``'s settings: (backend, problem).

    ``evidence`` maps each of BACKENDS to what its probe found (falsy: nothing): the
    ``.network`` file networkd applies, the NetworkManager profile active on the
    device, the ifupdown stanza. ``auto`` takes the first backend with evidence in
    AUTO_ORDER, else ``none``. A named backend must have evidence, else a problem
    saying what is missing. ``none`` keeps nothing."""
    if requested == "none":
        return "none", None
    if requested == "auto":
        for backend in AUTO_ORDER:
            if evidence.get(backend):
                return backend, None
        return "none", None
    if evidence.get(requested):
        return requested, None
    missing = {
        "networkd": "systemd-networkd does not manage %s (networkctl status shows no .network file for it, or "
                    "systemd-networkd is not running)",
        "networkmanager": "NetworkManager has no profile active on %s (nmcli shows no connection on the device, "
                          "or NetworkManager is not running)",
        "ifupdown": "ifupdown has no stanza for %s (no 'iface' line in /etc/network/interfaces or the files "
                    "it sources)",
    }[requested] % name
    found = [b for b in BACKENDS if evidence.get(b)]
    return None, ("backend is %s, but %s; %s" % (
        requested, missing, "its configuration is %s's: set backend to auto or %s" % (found[0], found[0]) if found
        else "configure the interface with %s first, or set backend to auto (or none, to set the MTU "
             "until the next reboot only)" % requested))


class FileChange(object):
    """A file to write: its path, its content before (None: absent) and after, its mode."""

    def __init__(self, path, before, after, mode, reason):
        self.path = path
        self.before = before
        self.after = after
        self.mode = mode
        self.reason = reason

    def as_dict(self):
        return {"path": self.path, "reason": self.reason, "mode": "%04o" % self.mode,
                "state": "created" if self.before is None else "changed"}

    def diff(self):
        return {"before_header": self.path if self.before is not None else "%s (absent)" % self.path,
                "after_header": self.path, "before": self.before or "", "after": self.after}


def read_text(path):
    """A file's text and mode, or (None, None) when it is absent."""
    try:
        with open(path, "rb") as f:
            data = f.read()
            mode = os.fstat(f.fileno()).st_mode & 0o7777
    except FileNotFoundError:
        return None, None
    try:
        return data.decode("utf-8"), mode
    except UnicodeDecodeError:
        raise InputError("%s is not UTF-8 text; this module edits configuration files only as text. Fix or "
                         "remove the bytes that are not UTF-8" % path)


def change(path, current, after, mode, reason):
    """A FileChange when the file's content or mode differs from ``after``/``mode``."""
    before, before_mode = current.get(path, (None, None))
    if before == after and before_mode == mode:
        return None
    return FileChange(path, before, after, mode, reason)


def write_file(path, content, mode):
    """Write atomically: a temporary file in the same directory, fsynced, renamed over
    the path (readers see the old file or the new one); directories made 0755."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(content.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def under(root, path):
    """``path`` (absolute, as on the host) below ``root`` (``/`` on a host, a temporary
    directory in tests)."""
    return os.path.join(root, path.lstrip("/")) if root != "/" else path
