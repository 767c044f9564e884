#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: cache_link
short_description: Point an application's cache path at the synced or mounted model cache
version_added: 0.1.0
description:
  - Makes O(path), the path an application reads (for example C(<app_dir>/checkpoints)
    or a Hugging Face cache directory), a symlink to O(target), the directory that holds
    the cache (an rsync copy, or the mount of an iSCSI LUN).
  - Refuses a O(target) that is not on the mounted filesystem it should be on, so an
    application never fills the root filesystem because the cache was not mounted.
  - Never deletes anything. A real directory or file at O(path) is moved aside to
    C(<path>.bak-<timestamp>); a symlink pointing elsewhere is replaced atomically (a new
    link renamed over the old one), so readers see either the old or the new target.
author:
  - indextts.deploy maintainers (@indextts)
attributes:
  check_mode:
    description: Reports what would change and changes nothing.
    support: full
  diff_mode:
    description: The link's target (or what is at O(path)) before and after.
    support: full
options:
  path:
    description: The path the application reads. An absolute path; its parent directory must exist.
    type: path
    required: true
  target:
    description: The directory holding the cache. An absolute path to an existing directory.
    type: path
    required: true
  require_mount:
    description:
      - O(target) must lie on a mounted filesystem other than the one holding C(/), as
        the mount of an iSCSI LUN does. Set V(false) for a cache on the root filesystem
        (an rsync copy).
    type: bool
    default: true
  mount_point:
    description: The exact mount point O(target) must lie under. Implies O(require_mount).
    type: path
  existing:
    description:
      - What to do when O(path) is a real directory or file. V(backup) moves it aside to
        C(<path>.bak-<timestamp>) (RV(backup_path)); V(fail) stops.
    type: str
    choices: [backup, fail]
    default: backup
  owner:
    description: Owner of the link itself.
    type: str
  group:
    description: Group of the link itself.
    type: str
notes:
  - The link holds O(target) as given (absolute), so it resolves the same from anywhere.
seealso:
  - module: indextts.deploy.model_cache_sync
"""

EXAMPLES = r"""
- name: IndexTTS2 reads its checkpoints from the iSCSI mount
  indextts.deploy.cache_link:
    path: /opt/indextts/app/checkpoints
    target: /srv/indextts/cache/checkpoints
    mount_point: /srv/indextts/cache
    owner: indextts
    group: indextts

- name: The Hugging Face cache from an rsync copy on the root filesystem
  indextts.deploy.cache_link:
    path: /var/lib/indextts/hf_cache
    target: /srv/indextts/cache/hf_cache
    require_mount: false
"""

RETURN = r"""
path:
  description: The path of the link.
  returned: always
  type: str
  sample: /opt/indextts/app/checkpoints
target:
  description: Where the link points.
  returned: always
  type: str
  sample: /srv/indextts/cache/checkpoints
previous:
  description: What was at O(path) before (C(absent), C(link) with its target, C(directory), C(file)).
  returned: always
  type: dict
  sample: {state: link, target: /old/cache/checkpoints}
backup_path:
  description: Where a real directory or file at O(path) was moved.
  returned: when something was moved aside
  type: str
  sample: /opt/indextts/app/checkpoints.bak-20261121T071502
mount_point:
  description: The mount point O(target) lies under.
  returned: always
  type: str
  sample: /srv/indextts/cache
"""

import grp
import os
import pwd
import time

from ansible.module_utils.basic import AnsibleModule


class CacheLink(object):
    def __init__(self, module):
        self.module = module
        self.path = module.params["path"].rstrip("/")
        self.target = module.params["target"].rstrip("/") or "/"

    # -- inspect: reads only ---------------------------------------------------
    def check_params(self):
        p = self.module.params
        for name in ("path", "target", "mount_point"):
            if p[name] and not os.path.isabs(p[name]):
                self.module.fail_json(msg="%s must be an absolute path, got %r" % (name, p[name]))
        if not os.path.isdir(os.path.dirname(self.path)):
            self.module.fail_json(msg="the parent directory of path %s does not exist; create it "
                                      "(the application's directory) first" % self.path)
        if not os.path.isdir(self.target):
            self.module.fail_json(msg="target %s is not a directory; sync or mount the cache "
                                      "before linking to it" % self.target)
        # The path itself unresolved (it may already be the link): its parent resolved.
        path = os.path.join(os.path.realpath(os.path.dirname(self.path)), os.path.basename(self.path))
        target = os.path.realpath(self.target)
        if target == path or target.startswith(path + os.sep):
            self.module.fail_json(msg="target %s lies inside path %s; the link would point at "
                                      "itself" % (self.target, self.path))

    def mount_of(self, path):
        """The mount point a path lies on (its nearest ancestor that is a mount)."""
        path = os.path.realpath(path)
        while not os.path.ismount(path):
            path = os.path.dirname(path)
        return path

    def check_mount(self):
        p = self.module.params
        mount = self.mount_of(self.target)
        if p["mount_point"]:
            wanted = os.path.realpath(p["mount_point"])
            if not os.path.ismount(wanted):
                self.module.fail_json(msg="mount_point %s is not mounted; mount the cache "
                                          "(for example the iSCSI LUN) first" % p["mount_point"])
            if mount != wanted:
                self.module.fail_json(msg="target %s lies on %s, not under mount_point %s"
                                          % (self.target, mount, p["mount_point"]))
        elif p["require_mount"] and os.stat(mount).st_dev == os.stat("/").st_dev:
            self.module.fail_json(msg="target %s is on the root filesystem, not on a mounted "
                                      "cache; mount the cache first, or set require_mount=false "
                                      "for a cache synced onto the root filesystem" % self.target)
        return mount

    def current(self):
        if os.path.islink(self.path):
            return {"state": "link", "target": os.readlink(self.path)}
        if os.path.isdir(self.path):
            return {"state": "directory"}
        if os.path.lexists(self.path):
            return {"state": "file"}
        return {"state": "absent"}

    def wanted_ids(self):
        p = self.module.params
        try:
            uid = pwd.getpwnam(p["owner"]).pw_uid if p["owner"] else -1
        except KeyError:
            self.module.fail_json(msg="owner %s does not exist on this host" % p["owner"])
        try:
            gid = grp.getgrnam(p["group"]).gr_gid if p["group"] else -1
        except KeyError:
            self.module.fail_json(msg="group %s does not exist on this host" % p["group"])
        return uid, gid

    # -- plan -------------------------------------------------------------------
    def plan(self, before, ids):
        """The changes to make: 'backup', 'link' (create or replace), 'chown'."""
        steps = []
        if before["state"] in ("directory", "file"):
            if self.module.params["existing"] == "fail":
                self.module.fail_json(msg="path %s is a real %s, not a link; move it away or set "
                                          "existing=backup" % (self.path, before["state"]))
            steps.append("backup")
        if before.get("target") != self.target:
            steps.append("link")
        st = None if "link" in steps else os.lstat(self.path)
        if ids != (-1, -1) and (st is None or (ids[0] not in (-1, st.st_uid) or ids[1] not in (-1, st.st_gid))):
            steps.append("chown")
        return steps

    # -- apply ------------------------------------------------------------------
    def apply(self, steps, ids):
        result = {}
        if "backup" in steps:
            backup = "%s.bak-%s" % (self.path, time.strftime("%Y%m%dT%H%M%S"))
            while os.path.lexists(backup):
                backup += "_"
            os.rename(self.path, backup)
            result["backup_path"] = backup
        if "link" in steps:
            tmp = "%s.tmp-%d" % (self.path, os.getpid())
            if os.path.lexists(tmp):
                os.unlink(tmp)  # a link left by an interrupted run of this module
            os.symlink(self.target, tmp)
            if ids != (-1, -1):
                os.lchown(tmp, *ids)
            os.rename(tmp, self.path)
        elif "chown" in steps:
            os.lchown(self.path, *ids)
        return result

    def run(self):
        self.check_params()
        mount = self.check_mount()
        before = self.current()
        ids = self.wanted_ids()
        steps = self.plan(before, ids)
        result = {"changed": bool(steps), "path": self.path, "target": self.target,
                  "previous": before, "mount_point": mount}
        if steps and not self.module.check_mode:
            result.update(self.apply(steps, ids))
        if self.module._diff:
            was = before["target"] if before["state"] == "link" else "(%s)" % before["state"]
            result["diff"] = {"before_header": self.path, "after_header": self.path,
                              "before": was + "\n", "after": self.target + "\n"}
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            target=dict(type="path", required=True),
            require_mount=dict(type="bool", default=True),
            mount_point=dict(type="path"),
            existing=dict(type="str", choices=["backup", "fail"], default="backup"),
            owner=dict(type="str"),
            group=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**CacheLink(module).run())


if __name__ == "__main__":
    main()
