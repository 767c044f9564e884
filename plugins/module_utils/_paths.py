# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Path rules the modules share: which directories are never a module's to change,
and OSErrors in words."""

import errno
import os
import re

# Never moved aside, replaced, nor synced into with deletion: the root and the top-level
# directories of a Linux system (the Filesystem Hierarchy Standard's, and /lib32, /lib64,
# /libx32 through the /lib* pattern). What lies below them is fine (/opt/indextts/app).
SYSTEM_DIRS = frozenset(["/", "/bin", "/boot", "/dev", "/efi", "/etc", "/home", "/lost+found", "/media",
                         "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/snap", "/srv", "/sys", "/tmp",
                         "/usr", "/var"])
_LIB_DIR = re.compile(r"^/lib[^/]*$")


def system_dir(path):
    """True for / and the top-level system directories (an absolute, normalised path)."""
    return path in SYSTEM_DIRS or bool(_LIB_DIR.match(path))


def error_text(e):
    """``No space left on device (ENOSPC)``: the errno text and its name, from an OSError."""
    name = errno.errorcode.get(e.errno)
    return "%s (%s)" % (e.strerror or e, name) if name else str(e.strerror or e)


def mount_of(path):
    """The mount point a path lies on (its nearest ancestor that is a mount)."""
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def mount_problem(path, name, mount_point=None, require_mount=False):
    """(mount, problem): the mount ``path`` lies on, and why that is not where the cache
    should be (None when it is). ``mount_point``: the mount it must lie under;
    ``require_mount``: any mount but the root filesystem's. ``name`` names the input
    in the message. Read-only."""
    mount = mount_of(path)
    if mount_point:
        wanted = os.path.realpath(mount_point)
        if not os.path.ismount(wanted):
            return mount, "mount_point %s is not mounted; mount the cache (for example the iSCSI LUN) first" % mount_point
        if mount != wanted:
            return mount, "%s %s lies on %s, not under mount_point %s" % (name, path, mount, mount_point)
    elif require_mount and os.stat(mount).st_dev == os.stat("/").st_dev:
        return mount, ("%s %s is on the root filesystem, not on a mounted cache; mount the cache first, or set "
                       "require_mount=false for a cache synced onto the root filesystem" % (name, path))
    return mount, None
