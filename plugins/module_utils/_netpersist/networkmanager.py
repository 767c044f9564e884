# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NetworkManager: keyfiles. The MTU goes into the keyfile of the profile active on the
interface (``mtu=`` in its ``[ethernet]`` section, the rest of the file kept line for
line); a VLAN gets a keyfile of its own,
``/etc/NetworkManager/system-connections/indextts-storage-<name>.<vlan>.nmconnection``
(mode 0600: NetworkManager ignores keyfiles others can read).

Why keyfiles rather than ``nmcli connection modify``: the change is a file, so check
mode and diff mode show exactly what will be written, tests run on real files, and a
rerun compares text. NetworkManager is then told: ``nmcli connection load <file>``
for every file written (its profile in memory equals the file again), and ``nmcli
connection up`` for a VLAN profile that is new, changed or not active, so
NetworkManager owns the VLAN now, not only after a reboot. The parent's profile is not re-activated (that
would bounce the storage link): the role sets its MTU now with ``ip link``.

A profile that is not a keyfile (in memory only under ``/run``, or another settings
plugin's file) is refused with what to do about it.
"""

import re
import uuid

from ansible_collections.indextts.deploy.plugins.module_utils._netpersist import MARK, InputError, change, under

KEYFILE_DIR = "/etc/NetworkManager/system-connections"
# The keyfile section holding a profile type's MTU (nmstate and nmcli agree: every
# wired-like type, VLANs, bonds and bridges included, keeps it in [ethernet]).
MTU_SECTION = {"802-11-wireless": "wifi", "wifi": "wifi", "infiniband": "infiniband"}
SECTION_ALIASES = {"ethernet": ("ethernet", "802-3-ethernet"), "wifi": ("wifi", "802-11-wireless"),
                   "infiniband": ("infiniband",)}
FIELDS = "NAME,UUID,TYPE,DEVICE,FILENAME"
# Stable per VLAN name, so that check mode shows the UUID apply writes.
UUID_NAMESPACE = uuid.UUID("7d1f4c0e-3b1a-5a39-9a57-6f1d8e2b0c41")


def split_terse(line):
    """One line of ``nmcli --terse`` output -> its fields (``\\:`` is a colon inside a
    field, ``\\\\`` a backslash)."""
    fields, field, i = [], [], 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            field.append(line[i + 1])
            i += 2
            continue
        if ch == ":":
            fields.append("".join(field))
            field = []
        else:
            field.append(ch)
        i += 1
    fields.append("".join(field))
    return fields


def parse_active(text):
    """``nmcli --terse --fields NAME,UUID,TYPE,DEVICE,FILENAME connection show --active``
    -> {device: {name, uuid, type, filename}}."""
    found = {}
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        fields = split_terse(line)
        if len(fields) != 5:
            continue
        name, conn_uuid, conn_type, device, filename = fields
        if device and device != "--":
            found[device] = {"name": name, "uuid": conn_uuid, "type": conn_type, "filename": filename}
    return found


def persistent(profile):
    """A profile saved on disk (not in memory under /run, not generated for a device
    NetworkManager only watches)."""
    filename = (profile or {}).get("filename") or ""
    return filename.startswith("/") and not filename.startswith("/run/")


def set_key(text, section, key, value, aliases=()):
    """Keyfile ``text`` with ``key=value`` in ``[section]`` (or one of its aliases):
    the key's line rewritten in place, else added after the section's last key, else
    the section added at the end. Every other line is kept as it was."""
    names = set((section,) + tuple(aliases))
    lines = text.splitlines(True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = end = None
    for i, line in enumerate(lines):
        m = re.match(r"^\[(.+)\]\s*$", line)
        if m:
            if start is not None and end is None:
                end = i
            if m.group(1) in names and start is None:
                start = i
    if start is None:
        sep = "\n" if lines and lines[-1].strip() else ""
        return "".join(lines) + "%s[%s]\n%s=%s\n" % (sep, section, key, value)
    end = len(lines) if end is None else end
    last = start
    for i in range(start + 1, end):
        m = re.match(r"^\s*([^#;=\s][^=]*?)\s*=", lines[i])
        if m:
            if m.group(1) == key:
                lines[i] = "%s=%s\n" % (key, value)
                return "".join(lines)
            last = i
    lines.insert(last + 1, "%s=%s\n" % (key, value))
    return "".join(lines)


def vlan_uuid(link):
    return str(uuid.uuid5(UUID_NAMESPACE, link.vlan_name))


def vlan_keyfile(link):
    v4 = link.vlan_address.version == 4
    return ("# %s: VLAN %d on %s for storage traffic\n"
            "[connection]\nid=indextts-storage-%s\nuuid=%s\ntype=vlan\ninterface-name=%s\nautoconnect=true\n\n"
            "[ethernet]\nmtu=%d\n\n"
            "[vlan]\nid=%d\nparent=%s\n\n"
            "[ipv4]\n%s\n\n"
            "[ipv6]\n%s\n"
            % (MARK, link.vlan, link.name, link.vlan_name, vlan_uuid(link), link.vlan_name, link.mtu,
               link.vlan, link.name,
               "address1=%s\nmethod=manual" % link.vlan_address if v4 else "method=disabled",
               "addr-gen-mode=eui64\naddress1=%s\nmethod=manual" % link.vlan_address if not v4 else "method=disabled"))


class NetworkManager(object):
    name = "networkmanager"

    def __init__(self, run, root="/"):
        self.run = run
        self.root = root
        self._active = None

    # -- probe and inspect: reads only ---------------------------------------------
    def active(self):
        """{device: profile} of the active profiles, {} when NetworkManager does not
        answer (not installed, not running)."""
        if self._active is None:
            found = self.run(["nmcli", "--terse", "--fields", FIELDS, "connection", "show", "--active"])
            self._active = parse_active(found[1]) if found is not None and found[0] == 0 else {}
        return self._active

    def running(self):
        return bool(self.active())

    def probe(self, name):
        """The saved profile active on ``name``, or None."""
        profile = self.active().get(name)
        return profile if persistent(profile) else None

    def keyfile(self, profile, link):
        filename = profile["filename"]
        if not filename.startswith(KEYFILE_DIR + "/"):
            raise InputError("%s: its NetworkManager profile %r is stored in %s, not in a keyfile under %s; "
                             "this module edits keyfiles. Move the profile to one (nmcli connection migrate "
                             "%s, NetworkManager 1.38 and later), or set backend to the tool that owns %s"
                             % (link.name, profile["name"], filename, KEYFILE_DIR, profile["uuid"], filename))
        return under(self.root, filename)

    def vlan_path(self, link):
        return under(self.root, "%s/indextts-storage-%s.nmconnection" % (KEYFILE_DIR, link.vlan_name))

    def inspect(self, links, evidence, read):
        current = {}
        for link in links:
            path = self.keyfile(evidence[link.name], link)
            current[path] = read(path)
            if current[path][0] is None:
                raise InputError("%s: NetworkManager reports its profile %r in %s, but there is no such file; "
                                 "run nmcli connection reload and try again"
                                 % (link.name, evidence[link.name]["name"], path))
            if link.vlan:
                current[self.vlan_path(link)] = read(self.vlan_path(link))
        return current

    # -- plan: pure ------------------------------------------------------------------
    def plan(self, links, evidence, current):
        changes = []
        for link in links:
            profile = evidence[link.name]
            path = self.keyfile(profile, link)
            section = MTU_SECTION.get(profile["type"], "ethernet")
            text, mode = current[path]
            c = change(path, current, set_key(text, section, "mtu", link.mtu, SECTION_ALIASES[section]), mode,
                       "MTU %d in the profile %r of %s" % (link.mtu, profile["name"], link.name))
            if c:
                changes.append(c)
            if link.vlan:
                why = "VLAN %s (id %d, MTU %d, address %s)" % (link.vlan_name, link.vlan, link.mtu, link.vlan_address)
                c = change(self.vlan_path(link), current, vlan_keyfile(link), 0o600, why)
                if c:
                    changes.append(c)
        return changes

    def commands(self, links, changes):
        """What NetworkManager is told once the files are written (pure, from the probe):
        load each file written, bring up each VLAN profile written or not active.
        Nothing when NetworkManager is not running: it reads the files when it starts."""
        if not self.running():
            return []
        argv = [["nmcli", "connection", "load", c.path] for c in changes]
        written = set(c.path for c in changes)
        active = set(profile["uuid"] for profile in self.active().values())
        for link in links:
            if link.vlan and (self.vlan_path(link) in written or vlan_uuid(link) not in active):
                argv.append(["nmcli", "--wait", "30", "connection", "up", "uuid", vlan_uuid(link)])
        return argv

    # -- apply -----------------------------------------------------------------------
    def activate(self, commands):
        """Run the commands in order; the first failure raises RuntimeError naming it."""
        return [self.must(argv) for argv in commands]

    def must(self, argv):
        rc, out, err = self.run(argv)
        if rc != 0:
            raise RuntimeError("%s failed (rc %d): %s" % (" ".join(argv), rc, (err or out).strip()))
        # nmcli 1.42 exits 0 when it could not load a file (a bad key, a mode other than
        # 0600), saying so only in its output.
        refused = [line.strip() for line in (out + "\n" + err).splitlines() if line.startswith("Could not load file")]
        if refused:
            raise RuntimeError("%s: NetworkManager refused the file (%s); its journal names the reason"
                               % (" ".join(argv), "; ".join(refused)))
        return " ".join(argv)
