#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

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
    the module's results, its diff or its error messages. They are written into
    open-iscsi's own record files (mode 0600), which C(iscsiadm) reads at login, before
    C(authmethod) is set to CHAP, so no record ever asks for CHAP without its secret;
    other settings go through C(iscsiadm --op update).
  - Every option is checked before anything runs; a bad one fails naming the option and
    the accepted form, and changes nothing.
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
      - C(YYYY-MM) is a date with a month from 01 to 12, the reversed domain is lower
        case, the identifier holds letters, digits, C(-), C(.) and C(:) (the ASCII that
        RFC 3722 keeps) and never C(..); C(eui.) takes 16 hexadecimal digits, C(naa.)
        16 or 32. At most 223 bytes (RFC 3720).
    type: str
    required: true
  portals:
    description:
      - The target's portals, as V(host) or V(host:port) (port 3260 when not given;
        V([address]:port) for IPv6). Host names are resolved once, and the address is
        used throughout.
      - An IPv6 address always goes in brackets, as V([fd00::10]) or V([fd00::10]:3260),
        since without them its port cannot be told from the address. Ports run from 1
        to 65535. Each portal may be listed once.
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
      - open-iscsi keeps a record created directly as a flat file
        C(/etc/iscsi/nodes/<target>/<host>,<port>) rather than the usual
        C(/etc/iscsi/nodes/<target>/<host>,<port>,<tpgt>/default); the module reads and
        writes either.
    type: bool
    default: true
  forget:
    description:
      - With O(state=absent), also delete the node records of those portals, and remove
        the discovery CHAP settings (authmethod, user name, secret) that O(discovery_chap_username)
        wrote into their sendtargets discovery records.
    type: bool
    default: false
  node_startup:
    description: The record's C(node.startup); V(automatic) logs in again at boot.
    type: str
    choices: [automatic, manual]
    default: automatic
  chap_username:
    description:
      - CHAP user name the initiator presents to the target. Sets C(authmethod) to CHAP.
      - This and the other CHAP options are one line of printable characters, without
        white space at either end.
    type: str
  chap_password:
    description: Its CHAP secret, 12 to 256 characters. Required with O(chap_username).
    type: str
  chap_username_in:
    description: Mutual CHAP, the user name the target presents to the initiator. Needs O(chap_username) and O(chap_password).
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
  description:
    - What changed, per aspect, as lists of portals. C(forgotten) lists the portals whose
      node record was deleted or whose discovery CHAP settings were removed.
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
CHAP_OPTIONS = ("chap_username", "chap_password", "chap_username_in", "chap_password_in",
                "discovery_chap_username", "discovery_chap_password")
# What discover() writes into a sendtargets record, and forget removes again.
DISCOVERY_AUTH = ("discovery.sendtargets.auth.authmethod", "discovery.sendtargets.auth.username",
                  "discovery.sendtargets.auth.password")


class TargetLogin(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.iscsiadm = None
        self.portals = []

    # -- inspect: reads only ---------------------------------------------------
    def check_params(self):
        """Every input is checked here, before anything runs or is written. Pairs of
        options are the argument spec's (required_together, required_by)."""
        p = self.p
        problem = iscsi.target_problem(p["target"])
        if problem:
            self.module.fail_json(msg="target %r is not an iSCSI name: %s; use iqn.YYYY-MM.reverse.domain[:id] (for "
                                      "example iqn.2026-11.io.example.storage:cache), eui.<16 hex digits> or "
                                      "naa.<16 or 32 hex digits>" % (p["target"], problem))
        # Neither value is echoed: a secret must not reach a message, and a user name
        # with a line break in it would garble one.
        for name in CHAP_OPTIONS:
            value = p[name]
            if value is None:
                continue
            if not value:
                self.module.fail_json(msg="%s is empty; give it a value, or leave it out together with its pair"
                                          % name)
            if iscsi.control_character(value):
                self.module.fail_json(msg="%s contains a line break or another control character, which would "
                                          "add a line to open-iscsi's record; it must be one line of printable "
                                          "characters" % name)
            if value != value.strip():
                self.module.fail_json(msg="%s begins or ends with white space, which open-iscsi strips when it "
                                          "reads its record; remove it" % name)
            if "password" in name and not 12 <= len(value) <= 256:
                self.module.fail_json(msg="%s must be one line of 12 to 256 characters (RFC 3720 asks "
                                          "for CHAP secrets of at least 12 bytes; open-iscsi takes up to 256)" % name)
        if p["wait_timeout"] < 0:
            self.module.fail_json(msg="wait_timeout must be 0 or more seconds, got %d" % p["wait_timeout"])
        # A list may be given empty, which the argument spec cannot tell from absent.
        if p["state"] == "present" and not p["portals"]:
            self.module.fail_json(msg="portals is empty; list the target's portals (host or host:port) to log "
                                      "in on")
        normal = []
        for portal in p["portals"]:
            found, problem = iscsi.check_portal(portal)
            if problem:
                self.module.fail_json(msg="portal %r is not a portal: %s; write host, host:port, IPv4:port or "
                                          "[IPv6]:port (for example 10.10.1.10:3260 or [fd00::10]:3260), with a "
                                          "port from 1 to 65535 (3260 when left out)" % (portal, problem))
            normal.append(found)
        self.portals = []
        for given, portal in zip(p["portals"], normal):
            address = self.resolve(given, portal)
            if address in self.portals:
                first = p["portals"][self.portals.index(address)]
                self.module.fail_json(msg="portals %r and %r are the same portal, %s; list each portal once"
                                          % (first, given, address))
            self.portals.append(address)
        self.iscsiadm = self.module.get_bin_path("iscsiadm")
        if not self.iscsiadm:
            self.module.fail_json(msg="iscsiadm was not found; install open-iscsi (the iscsi_initiator role "
                                      "does) before logging in")

    def resolve(self, portal, normal):
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
        """{portal: (path, {key: value} from the record file)} for this target; path is
        None when no record file was found in either layout open-iscsi uses."""
        rc, out = self.run_iscsiadm([self.iscsiadm, "--mode", "node"], ok_rcs=(0, 21))
        found = {}
        for node in iscsi.parse_nodes(out) if rc == 0 else []:
            if node["target"] != self.p["target"]:
                continue
            path = self.find_file(iscsi.record_paths(node["target"], node["portal"], node["tpgt"]))
            found[node["portal"]] = (path, self.read_record(path))
        return found

    def discovery_chap(self, portals):
        """{portal: path} of the sendtargets records among ``portals`` that hold discovery
        CHAP settings (what discover() writes)."""
        found = {}
        for portal in portals:
            path = self.find_file(iscsi.discovery_record_paths(portal))
            record = self.read_record(path)
            if record.get(DISCOVERY_AUTH[0]) == "CHAP" or any(record.get(key) for key in DISCOVERY_AUTH[1:]):
                found[portal] = path
        return found

    @staticmethod
    def find_file(paths):
        return next((path for path in paths if os.path.isfile(path)), None)

    @staticmethod
    def read_record(path):
        if path is None:
            return {}
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
    def plan(self, sessions, records, discovery):
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
                steps["forgotten"] = [portal for portal in portals if portal in records or portal in discovery]
        return steps

    # -- apply ------------------------------------------------------------------
    def write_record(self, path, values):
        """Set values in a record file: a new 0600 file renamed over the old one. A
        failure is reported with the path and the reason, never with a value."""
        tmp = None
        try:
            with open(path) as f:
                text = iscsi.set_record_values(f.read(), values)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".indextts-")
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.rename(tmp, path)
        except (IOError, OSError) as e:
            if tmp and os.path.lexists(tmp):
                os.unlink(tmp)
            self.module.fail_json(msg="cannot write the record %s: %s; the record is as it was"
                                      % (path, e.strerror or e.__class__.__name__))

    def discover(self, portal):
        if not self.p["discover"]:
            self.run_iscsiadm(iscsi.node_argv(self.iscsiadm, self.p["target"], portal, "--op", "new"))
            return
        if self.p["discovery_chap_username"]:
            self.run_iscsiadm(iscsi.discoverydb_new_argv(self.iscsiadm, portal))
            path = self.find_file(iscsi.discovery_record_paths(portal))
            if path is None:
                self.module.fail_json(msg="no sendtargets record for %s after iscsiadm --op new (looked for %s)"
                                          % (portal, " and ".join(iscsi.discovery_record_paths(portal))))
            self.write_record(path, {
                "discovery.sendtargets.auth.authmethod": "CHAP",
                "discovery.sendtargets.auth.username": self.p["discovery_chap_username"],
                "discovery.sendtargets.auth.password": self.p["discovery_chap_password"]})
        rc, out = self.run_iscsiadm(iscsi.discovery_argv(self.iscsiadm, portal))
        if not any(n["target"] == self.p["target"] for n in iscsi.parse_nodes(out)):
            offered = sorted(set(n["target"] for n in iscsi.parse_nodes(out))) or ["none"]
            self.module.fail_json(msg="discovery on %s does not offer target %s (it offers: %s); check the "
                                      "target name and the target's ACL for this initiator"
                                      % (portal, self.p["target"], ", ".join(offered)))

    def apply(self, steps, before, discovery):
        """Make the planned changes; ``before`` and ``discovery`` are what inspect read."""
        p = self.p
        for portal in steps["discovered"]:
            self.discover(portal)
        records = self.records() if steps["discovered"] or steps["chap"] else {}
        settings, secrets = self.wanted_settings()
        # The secrets first, then authmethod=CHAP (iscsiadm keeps the rest of the record
        # when it updates one key): a failure on the way never leaves a record that asks
        # for CHAP without a secret.
        for portal in steps["chap"]:
            path = records.get(portal, (None, {}))[0]
            if path is None:
                self.module.fail_json(msg="no node record file for %s on %s under %s/%s after discovery; "
                                          "nothing was set on that portal" % (p["target"], portal, iscsi.NODES_DIR,
                                                                              p["target"]))
            self.write_record(path, secrets)
        for portal in steps["settings"]:
            for name, value in sorted(settings.items()):
                self.run_iscsiadm(iscsi.update_argv(self.iscsiadm, p["target"], portal, name, value))
        for portal in steps["logged_in"]:
            self.run_iscsiadm(iscsi.node_argv(self.iscsiadm, p["target"], portal, "--login"))
        for portal in steps["logged_out"]:
            self.run_iscsiadm(iscsi.node_argv(self.iscsiadm, p["target"], portal, "--logout"), ok_rcs=(0, 21))
        for portal in steps["forgotten"]:
            if portal in before:
                self.run_iscsiadm(iscsi.node_argv(self.iscsiadm, p["target"], portal, "--op", "delete"),
                                  ok_rcs=(0, 21))
            if portal in discovery:
                self.write_record(discovery[portal], {DISCOVERY_AUTH[0]: "None", DISCOVERY_AUTH[1]: None,
                                                      DISCOVERY_AUTH[2]: None})

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
        discovery = {}
        if self.p["state"] == "absent" and self.p["forget"]:
            discovery = self.discovery_chap(self.portals or sorted(set(s["portal"] for s in sessions) | set(records)))
        steps = self.plan(sessions, records, discovery)
        changed = any(steps.values())
        before = self.view(sessions, records)
        if changed and not self.module.check_mode:
            self.apply(steps, records, discovery)
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
        required_together=[("chap_username", "chap_password"), ("chap_username_in", "chap_password_in"),
                           ("discovery_chap_username", "discovery_chap_password")],
        required_by={"chap_username_in": ("chap_username", "chap_password")},
        supports_check_mode=True,
    )
    module.exit_json(**TargetLogin(module).run())


if __name__ == "__main__":
    main()
