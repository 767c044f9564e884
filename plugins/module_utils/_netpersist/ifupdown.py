# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ifupdown: ``mtu`` in the interface's own stanzas, wherever they are
(``/etc/network/interfaces`` or a file it sources), the rest of the file kept byte for
byte; a VLAN gets a stanza file of its own in ``/etc/network/interfaces.d``, which
``/etc/network/interfaces`` must source (Debian's default file does).

ifupdown 0.8 creates ``<name>.<vlan>`` itself (``ip link add ... type vlan``) when the
stanza is brought up; ``vlan-raw-device`` names the parent for the ``vlan`` package's
scripts too. Nothing is brought up or down here: the role sets the MTU and creates
the VLAN now, and ``networking.service`` reads the files at boot.
"""

import fnmatch
import glob
import os
import re

from ansible_collections.indextts.deploy.plugins.module_utils._netpersist import MARK, InputError, change, under

INTERFACES = "/etc/network/interfaces"
VLAN_DIR = "/etc/network/interfaces.d"
# Lines that start a new stanza (or stand alone) in interfaces(5).
_KEYWORDS = ("iface", "mapping", "auto", "source", "source-directory", "rename", "no-auto-down", "no-scripts")
_RUN_PARTS_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")


def _words(line):
    stripped = line.strip()
    return [] if not stripped or stripped.startswith("#") else stripped.split()


def _starts_stanza(words):
    return bool(words) and (words[0] in _KEYWORDS or words[0].startswith("allow-"))


def stanzas(text, name):
    """Line numbers (0-based) of the ``iface <name> ...`` lines in ``text``."""
    return [i for i, line in enumerate(text.splitlines()) if _words(line)[:2] == ["iface", name]]


def sources(text, directory):
    """The ``source`` / ``source-directory`` patterns of a file, made absolute against
    ``directory`` (the file's own, as ifupdown does), as (kind, pattern)."""
    found = []
    for line in text.splitlines():
        words = _words(line)
        if len(words) >= 2 and words[0] in ("source", "source-directory"):
            for pattern in words[1:]:
                found.append((words[0], pattern if pattern.startswith("/") else os.path.join(directory, pattern)))
    return found


def is_sourced(path, text, directory):
    """Whether ``path`` would be read through the source lines of ``text``."""
    for kind, pattern in sources(text, directory):
        if kind == "source" and fnmatch.fnmatchcase(path, pattern):
            return True
        if (kind == "source-directory" and os.path.dirname(path) == pattern.rstrip("/")
                and _RUN_PARTS_NAME.match(os.path.basename(path))):
            return True
    return False


def set_option(text, name, option, value):
    """``text`` with ``<option> <value>`` in every ``iface <name>`` stanza: an existing
    line of that option is rewritten in place (its indent kept), else one is added
    right after the ``iface`` line, indented like the stanza's other options."""
    lines = text.splitlines(True)
    out, i = [], 0
    while i < len(lines):
        words = _words(lines[i])
        if words[:2] != ["iface", name]:
            out.append(lines[i])
            i += 1
            continue
        header = lines[i] if lines[i].endswith("\n") else lines[i] + "\n"
        body, i = [], i + 1
        while i < len(lines) and not _starts_stanza(_words(lines[i])):
            body.append(lines[i])
            i += 1
        options = [n for n, line in enumerate(body) if _words(line)]
        indent = re.match(r"\s*", body[options[0]]).group(0) if options else "    "
        wanted = "%s %s" % (option, value)
        hits = [n for n in options if _words(body[n])[0] == option]
        for n in hits:
            lead = re.match(r"\s*", body[n]).group(0)
            body[n] = "%s%s\n" % (lead, wanted)
        if not hits:
            body.insert(0, "%s%s\n" % (indent, wanted))
        out.append(header)
        out.extend(body)
    return "".join(out)


def vlan_file_name(link):
    """A run-parts-valid name (read by ``source-directory`` too): letters, digits, - and _."""
    return "indextts-storage-%s-%d" % (re.sub(r"[^A-Za-z0-9_-]", "-", link.name), link.vlan)


def vlan_stanza(link):
    family = "inet" if link.vlan_address.version == 4 else "inet6"
    return ("# %s: VLAN %d on %s for storage traffic\n"
            "auto %s\n"
            "iface %s %s static\n"
            "    address %s\n"
            "    mtu %d\n"
            "    vlan-raw-device %s\n"
            % (MARK, link.vlan, link.name, link.vlan_name, link.vlan_name, family, link.vlan_address,
               link.mtu, link.name))


class Ifupdown(object):
    name = "ifupdown"

    def __init__(self, run, root="/"):
        self.run = run
        self.root = root
        self.interfaces = under(root, INTERFACES)

    def files(self, read):
        """{path: (text, mode)} of /etc/network/interfaces and every file it sources
        (one level, as Debian uses it)."""
        text, mode = read(self.interfaces)
        if text is None:
            return {}
        found = {self.interfaces: (text, mode)}
        for kind, pattern in sources(text, os.path.dirname(INTERFACES)):
            pattern = under(self.root, pattern)
            if kind == "source":
                paths = sorted(glob.glob(pattern))
            else:
                directory = pattern.rstrip("/")
                names = os.listdir(directory) if os.path.isdir(directory) else []
                paths = sorted(os.path.join(directory, n) for n in names if _RUN_PARTS_NAME.match(n))
            for path in paths:
                if os.path.isfile(path) and path not in found:
                    found[path] = read(path)
        return found

    # -- probe and inspect: reads only ---------------------------------------------
    def probe(self, name, read):
        """The file holding ``iface <name>``'s first stanza, or None."""
        for path, (text, _mode) in self.files(read).items():
            if text is not None and stanzas(text, name):
                return path
        return None

    def inspect(self, links, evidence, read):
        current = self.files(read)
        for link in links:
            if link.vlan:
                path = under(self.root, "%s/%s" % (VLAN_DIR, vlan_file_name(link)))
                current.setdefault(path, read(path))
        return current

    # -- plan: pure ------------------------------------------------------------------
    def plan(self, links, evidence, current):
        edited = {}
        changes = []
        for link in links:
            # Every file holding a stanza of the interface gets the MTU in each of them.
            for path, (text, mode) in sorted(current.items()):
                text = edited.get(path, text)
                if text is not None and stanzas(text, link.name):
                    edited[path] = set_option(text, link.name, "mtu", link.mtu)
            if link.vlan:
                path = under(self.root, "%s/%s" % (VLAN_DIR, vlan_file_name(link)))
                self.check_vlan(link, path, current)
                c = change(path, current, vlan_stanza(link), 0o644, "VLAN %s (id %d, MTU %d, address %s)" % (
                    link.vlan_name, link.vlan, link.mtu, link.vlan_address))
                if c:
                    changes.append(c)
        for path, text in sorted(edited.items()):
            c = change(path, current, text, current[path][1], "mtu in the stanzas of %s" % ", ".join(
                link.name for link in links if stanzas(current[path][0], link.name)))
            if c:
                changes.append(c)
        return sorted(changes, key=lambda c: c.path)

    def check_vlan(self, link, path, current):
        main = current.get(self.interfaces, (None, None))[0] or ""
        host_path = "%s/%s" % (VLAN_DIR, vlan_file_name(link))
        if not is_sourced(host_path, main, os.path.dirname(INTERFACES)):
            raise InputError("%s: its VLAN %s would go to %s, but %s does not read that directory; add the line "
                             "'source %s/*' to %s (Debian's default file has it), or keep the VLAN elsewhere and "
                             "drop vlan from this entry" % (link.name, link.vlan_name, host_path, INTERFACES,
                                                            VLAN_DIR, INTERFACES))
        for other, (text, _mode) in current.items():
            if other != path and text is not None and stanzas(text, link.vlan_name):
                raise InputError("%s: the VLAN %s already has a stanza in %s (line %d), which this module does "
                                 "not edit; remove that stanza, or drop vlan from this entry and configure the "
                                 "VLAN there" % (link.name, link.vlan_name, other, stanzas(text, link.vlan_name)[0] + 1))

    def commands(self, links, changes):
        """Nothing: see above (nothing is brought up or down)."""
        return []

    def activate(self, commands):
        return []
