# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles' iSCSI name filter is the module's rule."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.indextts.deploy.plugins.filter.iscsi_name import iscsi_name_problem
from ansible_collections.indextts.deploy.plugins.module_utils import _iscsiadm


@pytest.mark.parametrize("name", ["iqn.2026-11.io.indextts.lab:cache", "eui.0123456789abcdef",
                                  "naa.0123456789abcdef0123456789abcdef"])
def test_good_names(name):
    assert iscsi_name_problem(name) == ""
    assert _iscsiadm.valid_target(name)


@pytest.mark.parametrize("name", ["iqn.2026-13.com.example:x", "iqn.2026-11.com.example:..",
                                  "iqn.2026-11.Com.example", "iqn.2026-11.com.example:a b", ""])
def test_bad_names_agree_with_the_module(name):
    assert iscsi_name_problem(name) == _iscsiadm.target_problem(name)
    assert iscsi_name_problem(name)
    assert not _iscsiadm.valid_target(name)


def test_not_a_string():
    with pytest.raises(AnsibleFilterError, match="expected a string, got int"):
        iscsi_name_problem(7)
