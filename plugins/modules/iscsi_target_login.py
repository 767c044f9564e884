#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: iscsi_target_login
short_description: Log in to an iSCSI target on every listed portal, with CHAP kept off command lines
version_added: 0.1.0
description:
  - Makes an open-iscsi initiator hold exactly one session to O(target) on each of
    O(portals) (V(present)), or none (V(absent)), and waits until the target's LUNs
    have appeared as block devices.
  - Sessions are matched by the exact (target, portal) pair parsed from
    C(iscsiadm -m session), so C(disk1) never matches C(disk10) and a session on one
    portal never stands in for another.
  - Discovery (sendtargets) runs only for portals that have no node record for
    O(target) yet, so a rerun changes nothing and reports C(changed=false).
  - CHAP secrets never reach a command line (every user can read C(/proc/*/cmdline)),
    the module's results or its diff. They are written into open-iscsi's own record
    files (mode 0600), which C(iscsiadm) reads at login; other settings go through
    C(iscsiadm --op update).
  - After a login it settles udev and polls C(/dev/disk/by-path) until every LUN the
    kernel attached has its by-path link, or O(wait_timeout) runs out.
author:
  - indextts.deploy maintainers (@indextts)
attributes:
  check_mode:
    description: Reports what would change (discovery, settings, logins, logouts) and changes nothing.
    support: full
  diff_mode:
    description: Per portal, the session and the non-secret settings before and after.
    support: full
options:
  target:
    description:
      - The target name; V(iqn.YYYY-MM.reverse.domain[:identifier]), or the C(eui.) or
        C(naa.) forms.
    type: str
    required: true
  portals:
    description:
      - The target's portals, as V(host) or V(host:port) (port 3260 when not given;
        V([address]:port) for IPv6). Host names are resolved once, and the address is
        used throughout.
      - Required for O(state=present). With O(state=absent), empty means every portal
        this host has a session or a record for.
    type: list
    elements: str
    default: []
  state:
    description: V(present) logs in on every portal; V(absent) logs out of each.
    type: str
    choices: [present, absent]
    default: present
  discover:
    description:
      - Run sendtargets discovery on a portal that has no node record for O(target)
        yet. V(false) creates the record directly (a static configuration).
    type: bool
    default: true
  forget:
    description: With O(state=absent), also delete the node records of those portals.
    type: bool
    default: false
  node_startup:
    description: The record's C(node.startup); V(automatic) logs in again at boot.
    type: str
    choices: [automatic, manual]
    default: automatic
  chap_username:
    description: CHAP user name the initiator presents to the target. Sets C(authmethod) to CHAP.
    type: str
  chap_password:
    description: Its CHAP secret. Required with O(chap_username).
    type: str
  chap_username_in:
    description: Mutual CHAP, the user name the target presents to the initiator.
    type: str
  chap_password_in:
    description: Mutual CHAP, the target's secret. Required with O(chap_username_in).
    type: str
  discovery_chap_username:
    description: CHAP user name for sendtargets discovery.
    type: str
  discovery_chap_password:
    description: Its secret. Required with O(discovery_chap_username).
    type: str
  wait_timeout:
    description: Seconds to wait, after logging in, for every LUN's C(/dev/disk/by-path) link. V(0) does not wait.
    type: int
    default: 30
notes:
  - Needs C(iscsid) running (the iscsi_initiator role enables it).
  - The secrets are compared with what the record holds, so changing one is a change,
    and a rerun with the same one is not. Changed settings take effect at the next
    login; an existing session is not dropped to apply them.
seealso:
  - module: community.general.open_iscsi
  - module: indextts.deploy.cache_link
"""

EXAMPLES = r"""
- name: Log in to the cache LUN over both storage paths, with CHAP
  indextts.deploy.iscsi_target_login:
    target: iqn.2026-11.io.example.storage:indextts-cache
    portals: [10.10.1.10, 10.10.2.10]
    chap_username: gpu-node-01
    chap_password: "{{ vault_iscsi_chap_password }}"
    wait_timeout: 60
  register: login

- name: Log out and forget the node records
  indextts.deploy.iscsi_target_login:
    target: iqn.2026-11.io.example.storage:indextts-cache
    state: absent
    forget: true
"""

RETURN = r"""
sessions:
  description: The sessions to O(target) after the run (before it in check mode).
  returned: always
  type: list
  elements: dict
  sample: [{portal: "10.10.1.10:3260", target: "iqn.2026-11.io.example.storage:indextts-cache", sid: 2}]
devices:
  description: The target's LUNs as block devices, one entry per portal and LUN.
  returned: always
  type: list
  elements: dict
  sample:
    - portal: "10.10.1.10:3260"
      lun: 1
      by_path: /dev/disk/by-path/ip-10.10.1.10:3260-iscsi-iqn.2026-11.io.example.storage:indextts-cache-lun-1
      device: /dev/sda
multipath_devices:
  description: The dm-multipath maps holding those devices, with their paths.
  returned: always
  type: list
  elements: dict
  sample: [{name: indextts-cache, device: /dev/mapper/indextts-cache, dm: dm-0, paths: [/dev/sda, /dev/sdb]}]
changes:
  description: What changed, per aspect, as lists of portals.
  returned: always
  type: dict
  sample: {discovered: ["10.10.1.10:3260"], settings: [], chap: ["10.10.1.10:3260"], logged_in: ["10.10.1.10:3260"], logged_out: [], forgotten: []}
"""

import os
import socket
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.indextts.deploy.plugins.module_utils import _iscsiadm as iscsi

ASPECTS = ("discovered", "settings", "chap", "logged_in", "logged_out", "forgotten")


class TargetLogin(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.iscsiadm = None
        self.portals = []

    # -- inspect: reads only ---------------------------------------------------
    def check_params(self):
        p = self.p
        if not iscsi.valid_target(p["target"]):
            self.module.fail_json(msg="target %r is not an iSCSI name; use iqn.YYYY-MM.reverse.domain[:id] "
                                      "(for example iqn.2026-11.io.example.storage:cache), or an eui./naa. "
                                      "name" % p["target"])
        if p["state"] == "present" and not p["portals"]:
            self.module.fail_json(msg="portals is empty; list the target's portals (host or host:port) to log "
                                      "in on")
        for user, secret in (("chap_username", "chap_password"), ("chap_username_in", "chap_password_in"),
                             ("discovery_chap_username", "discovery_chap_password")):
            if bool(p[user]) != bool(p[secret]):
                self.module.fail_json(msg="%s and %s go together; give both or neither" % (user, secret))
        if p["chap_username_in"] and not p["chap_username"]:
            self.module.fail_json(msg="chap_username_in (mutual CHAP) needs chap_username and chap_password too")
        if p["wait_timeout"] < 0:
            self.module.fail_json(msg="wait_timeout must be 0 or more seconds, got %d" % p["wait_timeout"])
        for name in ("chap_password", "chap_password_in", "discovery_chap_password"):
            if p[name] and ("\n" in p[name] or not 12 <= len(p[name]) <= 256):
                self.module.fail_json(msg="%s must be one line of 12 to 256 characters (RFC 3720 asks "
                                          "for CHAP secrets of at least 12 bytes; open-iscsi takes up to 256)" % name)
        self.portals = [self.resolve(portal) for portal in p["portals"]]
        self.iscsiadm = self.module.get_bin_path("iscsiadm")
        if not self.iscsiadm:
            self.module.fail_json(msg="iscsiadm was not found; install open-iscsi (the iscsi_initiator role "
                                      "does) before logging in")

    def resolve(self, portal):
        normal = iscsi.normalize_portal(portal)
        if normal is None:
            self.module.fail_json(msg="portal %r is not host, host:port or [ipv6]:port" % portal)
        host, port = iscsi.split_portal(normal)
        try:
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except socket.gaierror as e:
            self.module.fail_json(msg="portal %s: cannot resolve %s (%s); use an address or fix name "
                                      "resolution" % (portal, host, e))
        addr = infos[0][4][0]
        return ("[%s]:%d" if ":" in addr else "%s:%d") % (addr, port)

    def run_iscsiadm(self, argv, ok_rcs=(0,)):
        rc, out, err = self.module.run_command(argv)
        if rc not in ok_rcs:
            self.module.fail_json(msg="%s failed: %s" % (" ".join(argv[1:]), iscsi.failure_reason(rc, out + err)),
                                  rc=rc, stdout=out, stderr=err)
        return rc, out

    def sessions(self):
        rc, out = self.run_iscsiadm([self.iscsiadm, "--mode", "session"], ok_rcs=(0, 21))
        return [s for s in iscsi.parse_sessions(out) if s["target"] == self.p["target"]] if rc == 0 else []

    def records(self):
        """{portal: (tpgt, {key: value} from the record file)} for this target."""
        rc, out = self.run_iscsiadm([self.iscsiadm, "--mode", "node"], ok_rcs=(0, 21))
        found = {}
        for node in iscsi.parse_nodes(out) if rc == 0 else []:
            if node["target"] != self.p["target"]:
                continue
            path = iscsi.record_path(node["target"], node["portal"], node["tpgt"])
            found[node["portal"]] = (node["tpgt"], self.read_record(path))
        return found

    @staticmethod
    def read_record(path):
        try:
            with open(path) as f:
                return iscsi.parse_record(f.read())
        except (IOError, OSError):
            return {}

    def wanted_settings(self):
        """Non-secret record values, and secret ones (written through the file)."""
        p = self.p
        settings = {"node.startup": p["node_startup"]}
        secrets = {}
        if p["chap_username"]:
            settings["node.session.auth.authmethod"] = "CHAP"
            settings["node.session.auth.username"] = p["chap_username"]
            secrets["node.session.auth.password"] = p["chap_password"]
        if p["chap_username_in"]:
            settings["node.session.auth.username_in"] = p["chap_username_in"]
            secrets["node.session.auth.password_in"] = p["chap_password_in"]
        return settings, secrets

    # -- plan -------------------------------------------------------------------
    def plan(self, sessions, records):
        p = self.p
        steps = dict((aspect, []) for aspect in ASPECTS)
        logged_in = set(s["portal"] for s in sessions)
        if p["state"] == "present":
            settings, secrets = self.wanted_settings()
            for portal in self.portals:
                record = records.get(portal, (None, {}))[1]
                if portal not in records:
                    steps["discovered"].append(portal)
                if any(record.get(k) != v for k, v in settings.items()):
                    steps["settings"].append(portal)
                if any(record.get(k) != v for k, v in secrets.items()):
                    steps["chap"].append(portal)
                if portal not in logged_in:
                    steps["logged_in"].append(portal)
        else:
            portals = self.portals or sorted(logged_in | set(records))
            steps["logged_out"] = [portal for portal in portals if portal in logged_in]
            if p["forget"]:
                steps["forgotten"] = [portal for portal in portals if portal in records]
        return steps

    # -- apply ------------------------------------------------------------------
    def write_record(self, path, values):
        """Set values in a record file: a new 0600 file renamed over the old one."""
        with open(path) as f:
            text = iscsi.set_record_values(f.read(), values)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".indextts-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.rename(tmp, path)
        except Exception:
            os.unlink(tmp)
            raise

    def discover(self, portal):
        if not self.p["discover"]:
            self.run_iscsiadm(iscsi.node_argv(self.iscsiadm, self.p["target"], portal, "--op", "new"))
            return
        if self.p["discovery_chap_username"]:
            self.run_iscsiadm(iscsi.discoverydb_new_argv(self.iscsiadm, portal))
            self.write_record(iscsi.discovery_record_path(portal), {
                "discovery.sendtargets.auth.authmethod": "CHAP",
                "discovery.sendtargets.auth.username": self.p["discovery_chap_username"],
                "discovery.sendtargets.auth.password": self.p["discovery_chap_password"]})
        rc, out = self.run_iscsiadm(iscsi.discovery_argv(self.iscsiadm, portal))
        if not any(n["target"] == self.p["target"] for n in iscsi.parse_nodes(out)):
            offered = sorted(set(n["target"] for n in iscsi.parse_nodes(out))) or ["none"]
            self.module.fail_json(msg="discovery on %s does not offer target %s (it offers: %s); check the "
                                      "target name and the target's ACL for this initiator"
                                      % (portal, self.p["target"], ", ".join(offered)))

    def apply(self, steps):
        p = self.p
        for portal in steps["discovered"]:
            self.discover(portal)
        records = self.records() if steps["discovered"] or steps["chap"] else {}
        settings, secrets = self.wanted_settings()
        for portal in steps["settings"]:
            for name, value in sorted(settings.items()):
                self.run_iscsiadm(iscsi.update_argv(self.iscsiadm, p["target"], portal, name, value))
        for portal in steps["chap"]:
            if portal not in records:
                self.module.fail_json(msg="no node record for %s on %s after discovery" % (p["target"], portal))
            self.write_record(iscsi.record_path(p["target"], portal, records[portal][0]), secrets)
        for portal in steps["logged_in"]:
            self.run_iscsiadm(iscsi.node_argv(self.iscsiadm, p["target"], portal, "--login"))
        for portal in steps["logged_out"]:
            self.run_iscsiadm(iscsi.node_argv(self.iscsiadm, p["target"], portal, "--logout"), ok_rcs=(0, 21))
        for portal in steps["forgotten"]:
            self.run_iscsiadm(iscsi.node_argv(self.iscsiadm, p["target"], portal, "--op", "delete"), ok_rcs=(0, 21))

    # -- devices --------------------------------------------------------------------
    def attached(self):
        """{portal: [(lun, /dev/sdX)]} the kernel attached, from iscsiadm -m session -P 3."""
        rc, out = self.run_iscsiadm([self.iscsiadm, "--mode", "session", "-P", "3"], ok_rcs=(0, 21))
        found = {}
        for s in iscsi.parse_session_details(out) if rc == 0 else []:
            if s["target"] == self.p["target"]:
                found[s["portal"]] = [(d["lun"], d["device"]) for d in s["devices"]]
        return found

    def by_path(self):
        devices = []
        for name in sorted(os.listdir(iscsi.BY_PATH)) if os.path.isdir(iscsi.BY_PATH) else []:
            parsed = iscsi.parse_by_path(name)
            if parsed and parsed[1] == self.p["target"]:
                link = os.path.join(iscsi.BY_PATH, name)
                devices.append({"portal": parsed[0], "lun": parsed[2], "by_path": link,
                                "device": os.path.realpath(link)})
        return devices

    def wait_for_devices(self):
        deadline = time.time() + self.p["wait_timeout"]
        udevadm = self.module.get_bin_path("udevadm")
        while True:
            if udevadm:
                self.module.run_command([udevadm, "settle", "--timeout=5"])
            attached, devices = self.attached(), self.by_path()
            linked = set((d["portal"], os.path.basename(d["device"])) for d in devices)
            missing = []
            for portal in self.portals:
                luns = attached.get(portal)
                if not luns:
                    missing.append("%s: no LUN attached yet" % portal)
                missing.extend("%s: LUN %d (%s) has no by-path link yet" % (portal, lun, dev)
                               for lun, dev in luns or [] if (portal, os.path.basename(dev)) not in linked)
            if not missing or time.time() >= deadline:
                return devices, missing
            time.sleep(0.25)

    @staticmethod
    def multipath_maps(devices):
        maps = {}
        for d in devices:
            dev = os.path.basename(d["device"])
            holders = "%s/%s/holders" % (iscsi.SYS_BLOCK, dev)
            for dm in sorted(os.listdir(holders)) if os.path.isdir(holders) else []:
                try:
                    with open("%s/%s/dm/uuid" % (iscsi.SYS_BLOCK, dm)) as f:
                        uuid = f.read().strip()
                    with open("%s/%s/dm/name" % (iscsi.SYS_BLOCK, dm)) as f:
                        name = f.read().strip()
                except (IOError, OSError):
                    continue
                if uuid.startswith("mpath-"):
                    entry = maps.setdefault(dm, {"name": name, "device": "/dev/mapper/" + name, "dm": dm, "paths": []})
                    entry["paths"].append(d["device"])
        return [maps[k] for k in sorted(maps)]

    # -- the whole run ----------------------------------------------------------
    def view(self, sessions, records):
        """Per portal, what diff mode shows: the session and non-secret settings."""
        logged = set(s["portal"] for s in sessions)
        keys = ("node.startup", "node.session.auth.authmethod", "node.session.auth.username",
                "node.session.auth.username_in")
        out = []
        for portal in sorted(set(self.portals) | logged | set(records)):
            record = records.get(portal, (None, {}))[1]
            out.append("%s: %s" % (portal, "logged in" if portal in logged else "not logged in"))
            out.extend("  %s = %s" % (k, record[k]) for k in keys if record.get(k))
        return "\n".join(out) + "\n"

    def run(self):
        self.check_params()
        sessions, records = self.sessions(), self.records()
        steps = self.plan(sessions, records)
        changed = any(steps.values())
        before = self.view(sessions, records)
        if changed and not self.module.check_mode:
            self.apply(steps)
            sessions, records = self.sessions(), self.records()
        result = {"changed": changed, "changes": steps,
                  "sessions": [{"portal": s["portal"], "target": s["target"], "sid": s["sid"]} for s in sessions]}
        devices = []
        if self.p["state"] == "present" and not self.module.check_mode:
            devices, missing = self.wait_for_devices() if self.p["wait_timeout"] else (self.by_path(), [])
            if missing:
                self.module.fail_json(msg="logged in to %s, but after %d s not every LUN is a block device: %s; "
                                          "check the target's LUNs and the kernel log (dmesg)"
                                          % (self.p["target"], self.p["wait_timeout"], "; ".join(missing)), **result)
        elif self.p["state"] == "present":
            devices = self.by_path()
        result["devices"] = devices
        result["multipath_devices"] = self.multipath_maps(devices)
        if self.module._diff:
            after = before
            if changed and not self.module.check_mode:
                after = self.view(sessions, records)
            elif changed:
                after = self.planned_view(sessions, records, steps)
            result["diff"] = {"before": before, "after": after,
                              "before_header": self.p["target"], "after_header": self.p["target"]}
        return result

    def planned_view(self, sessions, records, steps):
        """What view() will show after apply, for check mode."""
        settings = self.wanted_settings()[0]
        logged = set(s["portal"] for s in sessions) | set(steps["logged_in"])
        logged -= set(steps["logged_out"])
        planned = dict(records)
        for portal in steps["settings"] + steps["discovered"]:
            planned[portal] = (None, dict(records.get(portal, (None, {}))[1], **settings))
        for portal in steps["forgotten"]:
            planned.pop(portal, None)
        fake = [{"portal": portal} for portal in logged]
        return self.view(fake, planned)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            target=dict(type="str", required=True),
            portals=dict(type="list", elements="str", default=[]),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            discover=dict(type="bool", default=True),
            forget=dict(type="bool", default=False),
            node_startup=dict(type="str", choices=["automatic", "manual"], default="automatic"),
            chap_username=dict(type="str"),
            chap_password=dict(type="str", no_log=True),
            chap_username_in=dict(type="str"),
            chap_password_in=dict(type="str", no_log=True),
            discovery_chap_username=dict(type="str"),
            discovery_chap_password=dict(type="str", no_log=True),
            wait_timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**TargetLogin(module).run())


if __name__ == "__main__":
    main()
