# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The modules' rule for system directories (_paths.system_dir), for roles."""

import os

from ansible.errors import AnsibleFilterError

from ansible_collections.indextts.deploy.plugins.module_utils._paths import system_dir


def is_system_dir(path):
    """True for / and the top-level system directories, as the modules refuse them."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise AnsibleFilterError("system_dir: expected an absolute path, got %r" % (path,))
    return system_dir(os.path.normpath(path).replace("//", "/"))


class TestModule(object):
    def tests(self):
        return {"system_dir": is_system_dir}
