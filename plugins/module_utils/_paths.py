# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Path rules the modules share: which directories are never a module's to change,
and OSErrors in words."""

import errno
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
