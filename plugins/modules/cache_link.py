#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

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
  - Moving aside and linking either both happen or neither does; when a step fails, what
    was moved aside is moved back, and the module fails naming O(path) and the error.
  - Refuses, before changing anything (in check mode too), a O(path) that is or resolves
    to a system directory (C(/), C(/etc), C(/usr), C(/var), C(/home), C(/lib*) and the
    other top-level directories of a Linux system; paths below them are fine), a O(path)
    that is a mount point, a O(path) whose directory is read-only, and a name too long
    for its filesystem once C(.bak-<timestamp>) or C(.tmp-<pid>) is added.
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
    description:
      - The path the application reads. An absolute path; its parent directory must exist
        and be writable.
      - Not a system directory such as C(/), C(/etc) or C(/usr), nor a mount point (unmount
        it, or give the mounted cache as O(target) and another O(path)).
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
from ansible_collections.indextts.deploy.plugins.module_utils._paths import error_text, mount_problem, system_dir

# The longest suffixes cache_link adds to the name at path: a backup's, a new link's.
BACKUP_SUFFIX = ".bak-%Y%m%dT%H%M%S"
BACKUP_SUFFIX_LEN = len(".bak-20261121T071502")


class CacheLink(object):
    def __init__(self, module):
        self.module = module
        self.path = module.params["path"].rstrip("/") or "/"
        self.target = module.params["target"].rstrip("/") or "/"

    # -- inspect: reads only ---------------------------------------------------
    def check_params(self):
        p = self.module.params
        for name in ("path", "target", "mount_point"):
            if p[name] and not os.path.isabs(p[name]):
                self.module.fail_json(msg="%s must be an absolute path, got %r" % (name, p[name]))
        given, resolved = os.path.normpath(self.path), os.path.realpath(self.path)
        if system_dir(given) or system_dir(resolved):
            self.module.fail_json(msg="path %s %s; cache_link never moves a system directory aside nor replaces "
                                      "it with a link. Give the path the application reads its cache from, for "
                                      "example /opt/indextts/app/checkpoints"
                                  % (self.path, "is a system directory" if system_dir(given)
                                     else "resolves to the system directory %s" % resolved))
        if not os.path.isdir(os.path.dirname(self.path)):
            self.module.fail_json(msg="the parent directory of path %s does not exist; create it "
                                      "(the application's directory) first" % self.path)
        name_max = self.name_max()
        if len(os.path.basename(self.path).encode("utf-8")) > name_max:
            self.module.fail_json(msg="path %s: its name is %d bytes, more than this filesystem's limit of %d "
                                      "for a name; choose a shorter path"
                                  % (self.path, len(os.path.basename(self.path).encode("utf-8")), name_max))
        if not os.path.isdir(self.target):
            self.module.fail_json(msg="target %s is not a directory; sync or mount the cache "
                                      "before linking to it" % self.target)
        # The path itself unresolved (it may already be the link): its parent resolved.
        path = os.path.join(os.path.realpath(os.path.dirname(self.path)), os.path.basename(self.path))
        target = os.path.realpath(self.target)
        if target == path or target.startswith(path + os.sep):
            self.module.fail_json(msg="target %s lies inside path %s; the link would point at "
                                      "itself" % (self.target, self.path))

    def name_max(self):
        try:
            return os.pathconf(os.path.dirname(self.path), "PC_NAME_MAX")
        except (OSError, ValueError):
            return 255

    def check_mount(self):
        p = self.module.params
        mount, problem = mount_problem(self.target, "target", p["mount_point"], p["require_mount"])
        if problem:
            self.module.fail_json(msg=problem)
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
        """The changes to make: 'backup', 'link' (create or replace), 'chown'. Refuses,
        here and so in check mode too, what apply could not finish."""
        steps = []
        if before["state"] in ("directory", "file"):
            if os.path.ismount(self.path):
                self.module.fail_json(msg="path %s is a mount point (a filesystem is mounted there), which cannot "
                                          "be moved aside; unmount it, or choose another path (a mounted cache "
                                          "is given as target)" % self.path)
            if self.module.params["existing"] == "fail":
                self.module.fail_json(msg="path %s is a real %s, not a link; move it away or set "
                                          "existing=backup" % (self.path, before["state"]))
            steps.append("backup")
        if before.get("target") != self.target:
            steps.append("link")
        st = None if "link" in steps else os.lstat(self.path)
        if ids != (-1, -1) and (st is None or (ids[0] not in (-1, st.st_uid) or ids[1] not in (-1, st.st_gid))):
            steps.append("chown")
        if steps:
            self.check_writable(steps)
        return steps

    def check_writable(self, steps):
        parent = os.path.dirname(self.path)
        if not os.access(parent, os.W_OK):
            try:
                read_only = os.statvfs(parent).f_flag & os.ST_RDONLY
            except OSError:
                read_only = False
            self.module.fail_json(msg="path %s cannot be changed: its directory %s %s; choose a path in a "
                                      "writable directory" % (self.path, parent, "is on a read-only filesystem "
                                                              "(remount it read-write)" if read_only else
                                                              "is not writable for this user (become root)"))
        if "link" not in steps:
            return
        name = len(os.path.basename(self.path).encode("utf-8"))
        suffix = BACKUP_SUFFIX_LEN if "backup" in steps else len(self.tmp_name()) - len(self.path)
        if name + suffix > self.name_max():
            self.module.fail_json(msg="path %s: its name is %d bytes, and with the %s suffix cache_link adds it "
                                      "would pass this filesystem's limit of %d for a name; choose a shorter path"
                                  % (self.path, name, ".bak-<timestamp>" if "backup" in steps else ".tmp-<pid>",
                                     self.name_max()))

    def tmp_name(self):
        return "%s.tmp-%d" % (self.path, os.getpid())

    # -- apply ------------------------------------------------------------------
    def apply(self, steps, ids):
        """Move aside, link, chown: all of it, or on an error nothing (what was moved
        aside goes back, a new link is removed) and a message naming path."""
        result = {}
        backup = tmp = None
        doing = ""
        try:
            if "backup" in steps:
                backup = self.path + time.strftime(BACKUP_SUFFIX)
                while os.path.lexists(backup):
                    backup += "_"
                doing = "moving it aside to %s" % backup
                os.rename(self.path, backup)
                result["backup_path"] = backup
            if "link" in steps:
                tmp = self.tmp_name()
                doing = "creating the new link %s" % tmp
                if os.path.lexists(tmp):
                    os.unlink(tmp)  # a link left by an interrupted run of this module
                os.symlink(self.target, tmp)
                if ids != (-1, -1):
                    doing = "setting the owner of the new link %s" % tmp
                    os.lchown(tmp, *ids)
                doing = "renaming the new link %s to it" % tmp
                os.rename(tmp, self.path)
                tmp = None
            elif "chown" in steps:
                doing = "setting the owner of the link"
                os.lchown(self.path, *ids)
        except OSError as e:
            self.undo(e, doing, backup, tmp)
        return result

    def undo(self, e, doing, backup, tmp):
        msg = "path %s: %s while %s" % (self.path, error_text(e), doing)
        if tmp and os.path.lexists(tmp):
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if backup and not os.path.lexists(self.path):
            try:
                os.rename(backup, self.path)
            except OSError as again:
                self.module.fail_json(msg="%s; moving it back failed too, with %s. What was at %s is now at %s; "
                                          "move it back with: mv %s %s" % (msg, error_text(again), self.path, backup,
                                                                           backup, self.path))
        self.module.fail_json(msg="%s; nothing was changed, path is as it was" % msg)

    def run(self):
        self.check_params()
        try:
            mount = self.check_mount()
            before = self.current()
            ids = self.wanted_ids()
            steps = self.plan(before, ids)
        except OSError as e:
            self.module.fail_json(msg="path %s: %s while reading what is there and where target %s lies; "
                                      "nothing was changed" % (self.path, error_text(e), self.target))
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
