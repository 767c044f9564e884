# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd-networkd: a drop-in for the ``.network`` file that configures the interface
(``[Link] MTUBytes=``, and ``[Network] VLAN=`` naming its VLAN), and for a VLAN a
``.netdev`` and a ``.network`` of its own.

The drop-in goes to ``/etc/systemd/network/<file>.d/``, which networkd reads for a
``.network`` file wherever that lies (``/etc``, ``/run`` as netplan or cloud-init write,
``/usr/lib``): a file in ``/run`` is rewritten at boot, a file in ``/usr/lib`` by the
package, the drop-in in ``/etc`` is kept. The parent's ``VLAN=`` line is what makes
networkd create the VLAN at boot: a ``.netdev`` alone is not enough.

The VLAN's files are named ``00-indextts-<vlan>``: networkd configures a link with the first
``.network`` file, in lexical order over all its directories, whose ``[Match]`` fits, and a
VLAN has its parent's MAC address, so a parent's file that matches by ``MACAddress=`` (as
cloud-init's and the guest lab's do) matches the VLAN too. Named ``40-`` (before 2026-12-02)
the VLAN lost to the guest's ``20-storage1.network`` and came up with its parent's address.

networkd is not reloaded: ``networkctl reload`` reconfigures every link whose files
changed, which drops its addresses for a moment (and storage sessions with them).
The role sets the MTU and creates the VLAN now with ``ip``; networkd applies the
files at its next start.
"""

import os
import re

from ansible_collections.indextts.deploy.plugins.module_utils._netpersist import MARK, change, under

DROPIN = "50-indextts-storage-mtu.conf"
# Before any file that may match the VLAN by its MAC address: see above.
VLAN_PREFIX = "00-indextts-"
NETWORK_DIR = "/etc/systemd/network"
_NETWORK_FILE = re.compile(r"^\s*Network File: (/\S+)\s*$", re.M)


def parse_network_file(status):
    """``networkctl status <link>`` output -> the .network file applied to it, or None
    (``Network File: n/a``: networkd does not manage the link)."""
    m = _NETWORK_FILE.search(status or "")
    return m.group(1) if m else None


def dropin_text(link):
    text = "# %s: jumbo frames on the storage network\n[Link]\nMTUBytes=%d\n" % (MARK, link.mtu)
    if link.vlan:
        text += "[Network]\nVLAN=%s\n" % link.vlan_name
    return text


def netdev_text(link):
    return ("[NetDev]\nName=%s\nKind=vlan\nMTUBytes=%d\n[VLAN]\nId=%d\n"
            % (link.vlan_name, link.mtu, link.vlan))


def vlan_network_text(link):
    return "[Match]\nName=%s\n[Network]\nAddress=%s\n" % (link.vlan_name, link.vlan_address)


class Networkd(object):
    name = "networkd"

    def __init__(self, run, root="/"):
        self.run = run  # run(argv) -> (rc, out, err); None when the tool is absent
        self.root = root

    # -- probe and inspect: reads only ---------------------------------------------
    def probe(self, name):
        """The .network file networkd applies to ``name``, or None."""
        found = self.run(["networkctl", "status", "--no-pager", name])
        if found is None or found[0] != 0:
            return None
        return parse_network_file(found[1])

    def paths(self, link, network_file):
        base = os.path.basename(network_file)
        paths = {"dropin": under(self.root, "%s/%s.d/%s" % (NETWORK_DIR, base, DROPIN))}
        if link.vlan:
            stem = "%s/%s%s" % (NETWORK_DIR, VLAN_PREFIX, link.vlan_name)
            paths.update(netdev=under(self.root, stem + ".netdev"), network=under(self.root, stem + ".network"))
        return paths

    def inspect(self, links, evidence, read):
        return {path: read(path) for link in links for path in self.paths(link, evidence[link.name]).values()}

    # -- plan: pure ------------------------------------------------------------------
    def plan(self, links, evidence, current):
        changes = []
        for link in links:
            paths = self.paths(link, evidence[link.name])
            wanted = [(paths["dropin"], dropin_text(link), "MTU %d on %s%s" % (
                link.mtu, link.name, " and its VLAN %s" % link.vlan_name if link.vlan else ""))]
            if link.vlan:
                wanted += [
                    (paths["netdev"], netdev_text(link), "VLAN %s (id %d, MTU %d)" % (link.vlan_name, link.vlan, link.mtu)),
                    (paths["network"], vlan_network_text(link), "address %s on %s" % (link.vlan_address, link.vlan_name))]
            changes += [c for c in (change(p, current, text, 0o644, why) for p, text, why in wanted) if c]
        return changes

    def commands(self, links, changes):
        """Nothing: see above (no reload while storage is in use)."""
        return []

    def activate(self, commands):
        return []
