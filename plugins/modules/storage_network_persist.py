#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: storage_network_persist
short_description: Keep the storage interfaces' MTU and VLANs with whatever configures the host's network
version_added: 0.1.0
description:
  - Writes the MTU of each of O(interfaces), and its optional VLAN sub-interface
    C(<name>.<vlan>) with its address, into the configuration of the tool that manages
    the interface, so that they survive a reboot or a restart of that tool.
  - "One provider per backend, chosen per interface (O(backend=auto)): systemd-networkd
    when C(networkctl status) names a C(.network) file for the interface, else
    NetworkManager when a saved profile is active on it, else ifupdown when
    C(/etc/network/interfaces) (or a file it sources) has a stanza for it, else none."
  - "systemd-networkd: a drop-in C(/etc/systemd/network/<file>.d/50-indextts-storage-mtu.conf)
    for the interface's C(.network) file (C([Link] MTUBytes=), and C([Network] VLAN=) naming
    its VLAN), and for a VLAN C(00-indextts-<name>.<vlan>.netdev) and C(.network) in
    C(/etc/systemd/network), named to sort before the parent's file, which may match the
    VLAN too by its MAC address (networkd applies the first matching file). networkd is not reloaded (that would reconfigure the storage
    links); it reads the files at its next start."
  - "NetworkManager: C(mtu=) in the keyfile of the profile active on the interface, every
    other line kept; for a VLAN a keyfile of its own,
    C(/etc/NetworkManager/system-connections/indextts-storage-<name>.<vlan>.nmconnection),
    mode 0600. Each file written is loaded with C(nmcli connection load); a VLAN profile
    written, or not active, is brought up (C(nmcli connection up)). The parent's profile
    is not re-activated, which would bounce the link."
  - "ifupdown: C(mtu) in every stanza of the interface, wherever it is, every other line
    kept; for a VLAN a stanza file of its own, C(/etc/network/interfaces.d/indextts-storage-<name>-<vlan>),
    which C(/etc/network/interfaces) must source. Nothing is brought up or down."
  - This module does not change the running interfaces; the C(indextts.deploy.storage_network)
    role sets the MTU and creates the VLAN now with C(ip), without bouncing the link.
author:
  - indextts.deploy maintainers (@indextts)
attributes:
  check_mode:
    description: Reports the files it would write (RV(changes)) and writes nothing.
    support: full
  diff_mode:
    description: Each file's content before and after.
    support: full
options:
  interfaces:
    description:
      - The storage interfaces of this host, each with its MTU and optional VLAN.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The interface, for example C(eth1) or C(bond0); at most 15 characters.
        type: str
        required: true
      mtu:
        description: Its MTU (and its VLAN's); O(mtu) when not given.
        type: int
      vlan:
        description:
          - A VLAN id (1-4094). The VLAN sub-interface C(<name>.<vlan>) carries the storage
            traffic, with the interface's MTU and O(interfaces[].vlan_address).
        type: int
      vlan_address:
        description: The VLAN interface's address with its prefix length, for example C(10.10.1.21/24). Required with vlan.
        type: str
  mtu:
    description: The MTU of the interfaces that give none, from 576 to 65535.
    type: int
    default: 9000
  backend:
    description:
      - What keeps the settings. V(auto) finds, per interface, the tool that manages it
        (systemd-networkd, then NetworkManager, then ifupdown) and keeps nothing for an
        interface none of them manages (RV(interfaces[].backend) is then V(none)).
      - A named backend must manage every interface; the module fails naming the
        interface and the backend that does manage it, if any.
      - V(none) keeps nothing (as in containers whose network the engine owns).
    type: str
    choices: [auto, networkd, networkmanager, ifupdown, none]
    default: auto
notes:
  - Runs as root (it writes under C(/etc)).
  - A VLAN profile's NetworkManager UUID is derived from its interface name, so check
    mode shows the UUID a run writes, and reruns keep it.
seealso:
  - name: systemd.network(5)
    description: The .network files and their drop-ins.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd.network.html
  - name: nm-settings-keyfile(5)
    description: NetworkManager's keyfile format.
    link: https://networkmanager.dev/docs/api/latest/nm-settings-keyfile.html
  - name: interfaces(5)
    description: ifupdown's configuration.
    link: https://manpages.debian.org/bookworm/ifupdown/interfaces.5.en.html
"""

EXAMPLES = r"""
- name: Jumbo frames on two storage NICs, kept by whatever configures them
  indextts.deploy.storage_network_persist:
    interfaces:
      - name: ens4
      - name: ens5

- name: A storage VLAN on a bond that NetworkManager manages
  indextts.deploy.storage_network_persist:
    backend: networkmanager
    mtu: 9000
    interfaces:
      - name: bond0
        vlan: 100
        vlan_address: 10.10.1.21/24
"""

RETURN = r"""
interfaces:
  description: Each interface as kept, with the backend that keeps it.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The interface.
      type: str
    mtu:
      description: Its MTU, as kept.
      type: int
    backend:
      description: What keeps it (V(networkd), V(networkmanager), V(ifupdown)), or V(none).
      type: str
    evidence:
      description:
        - What showed the backend manages the interface; null for V(none).
        - The C(.network) file networkctl names, the keyfile of the NetworkManager profile active on
          it, or the ifupdown file holding its stanza.
      type: str
    vlan:
      description: The VLAN id.
      type: int
      returned: with a VLAN
    vlan_name:
      description: The VLAN interface, C(<name>.<vlan>).
      type: str
      returned: with a VLAN
    vlan_address:
      description: Its address, with the prefix length.
      type: str
      returned: with a VLAN
  sample:
    - {name: eth1, mtu: 9000, backend: networkmanager, vlan: 100, vlan_name: eth1.100, vlan_address: 10.10.1.21/24,
       evidence: "/etc/NetworkManager/system-connections/storage.nmconnection"}
    - {name: eth2, mtu: 9000, backend: none, evidence: null}
not_kept:
  description: The interfaces whose settings no backend keeps (backend V(none)); their MTU lasts until reboot.
  returned: always
  type: list
  elements: str
  sample: [eth2]
changes:
  description: The files written (in check mode, that would be written), with why.
  returned: always
  type: list
  elements: dict
  sample:
    - {path: /etc/systemd/network/20-storage.network.d/50-indextts-storage-mtu.conf, state: created,
       mode: "0644", reason: MTU 9000 on ens4}
commands:
  description:
    - What the backend was told after the files were written (in check mode, what it would
      be told). NetworkManager loads each keyfile written and brings up each VLAN profile
      that was written or is not active; the other backends are told nothing.
  returned: always
  type: list
  elements: str
  sample:
    - nmcli connection load /etc/NetworkManager/system-connections/indextts-storage-eth1.100.nmconnection
    - nmcli --wait 30 connection up uuid 2f0d1c6a-1b1e-5c3f-8a8e-7f6c0f0b9d11
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.indextts.deploy.plugins.module_utils._netpersist import (
    BACKENDS, InputError, check_links, choose_backend, read_text, write_file)
from ansible_collections.indextts.deploy.plugins.module_utils._netpersist.ifupdown import Ifupdown
from ansible_collections.indextts.deploy.plugins.module_utils._netpersist.networkd import Networkd
from ansible_collections.indextts.deploy.plugins.module_utils._netpersist.networkmanager import NetworkManager
from ansible_collections.indextts.deploy.plugins.module_utils._paths import error_text

ROOT = "/"  # tests point it at a temporary directory


class Persist(object):
    def __init__(self, module):
        self.module = module
        self.interfaces = []
        self.providers = {p.name: p for p in (Networkd(self.run, ROOT), NetworkManager(self.run, ROOT),
                                              Ifupdown(self.run, ROOT))}

    def run(self, argv):
        """(rc, out, err) of argv, or None when its program is not installed."""
        path = self.module.get_bin_path(argv[0])
        if not path:
            return None
        return self.module.run_command([path] + argv[1:], environ_update={"LC_ALL": "C"})

    # -- inspect: reads only -----------------------------------------------------------
    def evidence(self, link):
        return {"networkd": self.providers["networkd"].probe(link.name),
                "networkmanager": self.providers["networkmanager"].probe(link.name),
                "ifupdown": self.providers["ifupdown"].probe(link.name, read_text)}

    def choose(self, links):
        requested = self.module.params["backend"]
        chosen = {}
        for link in links:
            found = self.evidence(link) if requested != "none" else {}
            backend, problem = choose_backend(requested, link.name, found)
            if problem:
                raise InputError("interfaces: %s: %s" % (link.name, problem))
            chosen[link.name] = (backend, found.get(backend))
        return chosen

    # -- plan ------------------------------------------------------------------------
    def plan(self, links, chosen):
        """[(provider, file changes, commands to run after them)] per backend in use."""
        plans = []
        for backend in BACKENDS:
            mine = [link for link in links if chosen[link.name][0] == backend]
            if not mine:
                continue
            provider = self.providers[backend]
            evidence = {link.name: chosen[link.name][1] for link in mine}
            changes = provider.plan(mine, evidence, provider.inspect(mine, evidence, read_text))
            plans.append((provider, changes, provider.commands(mine, changes)))
        return plans

    # -- apply -----------------------------------------------------------------------
    def apply(self, plans):
        """Write each provider's files, then run its commands; on a failure, stop naming
        it, with the files written so far (RV(changes)) and the commands run."""
        done, written = [], []
        for provider, changes, commands in plans:
            for c in changes:
                try:
                    write_file(c.path, c.after, c.mode)
                except OSError as e:
                    self.module.fail_json(msg="%s: could not write %s (%s) for %s; fix the cause and rerun (the files "
                                              "written before it are listed in changes)"
                                              % (provider.name, c.path, error_text(e), c.reason),
                                          changes=written, commands=done, interfaces=self.interfaces)
                written.append(c.as_dict())
            try:
                done += provider.activate(commands)
            except RuntimeError as e:
                self.module.fail_json(msg="%s: the files are written, but telling it failed: %s; see "
                                          "journalctl -u NetworkManager" % (provider.name, e),
                                      changes=written, commands=done, interfaces=self.interfaces)
        return done

    def main(self):
        p = self.module.params
        try:
            links = check_links(p["interfaces"], p["mtu"])
            chosen = self.choose(links)
            plans = self.plan(links, chosen)
        except InputError as e:
            self.module.fail_json(msg=str(e))
        changes = [c for _p, cs, _c in plans for c in cs]
        commands = [" ".join(argv) for _p, _cs, cmds in plans for argv in cmds]
        interfaces = self.interfaces = [dict(link.as_dict(), backend=chosen[link.name][0],
                                             evidence=self.evidence_text(chosen[link.name][1])) for link in links]
        if (changes or commands) and not self.module.check_mode:
            commands = self.apply(plans)
        result = {"changed": bool(changes or commands), "interfaces": interfaces,
                  "changes": [c.as_dict() for c in changes], "commands": commands,
                  "not_kept": [i["name"] for i in interfaces if i["backend"] == "none"]}
        if self.module._diff:
            result["diff"] = [c.diff() for c in changes]
        return result

    @staticmethod
    def evidence_text(evidence):
        if isinstance(evidence, dict):
            return evidence.get("filename")
        return evidence


def main():
    module = AnsibleModule(
        argument_spec=dict(
            interfaces=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                mtu=dict(type="int"),
                vlan=dict(type="int"),
                vlan_address=dict(type="str"),
            )),
            mtu=dict(type="int", default=9000),
            backend=dict(type="str", choices=["auto"] + list(BACKENDS) + ["none"], default="auto"),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**Persist(module).main())


if __name__ == "__main__":
    main()
