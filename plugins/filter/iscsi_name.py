# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one rule for iSCSI names, for roles: the same check iscsi_target_login applies."""

from ansible.errors import AnsibleFilterError

from ansible_collections.indextts.deploy.plugins.module_utils._iscsiadm import target_problem


def iscsi_name_problem(name):
    """Why ``name`` is not an iSCSI name, or an empty string when it is one."""
    if not isinstance(name, str):
        raise AnsibleFilterError("iscsi_name_problem: expected a string, got %s" % type(name).__name__)
    return target_problem(name) or ""


class FilterModule(object):
    def filters(self):
        return {"iscsi_name_problem": iscsi_name_problem}
