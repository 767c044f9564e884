# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles' multipath_paths filter is the parser indextts-storage-check uses."""

import os

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.indextts.deploy.plugins.filter.multipath import multipath_paths
from ansible_collections.indextts.deploy.plugins.module_utils import _multipath

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "module_utils", "fixtures", "multipathd")


@pytest.mark.parametrize("name, fmt", [("paths.txt", "%m %d %t %T"), ("paths_one_failed.txt", "%m %d %t %T"),
                                       ("paths_one_failed_mtT.txt", "%m %t %T")])
def test_same_paths_as_the_parser(name, fmt):
    with open(os.path.join(FIXTURES, name)) as f:
        text = f.read()
    assert multipath_paths(text, fmt) == _multipath.parse_paths(text, fmt)
    assert multipath_paths(text, fmt)
    if fmt == _multipath.PATHS_FORMAT:
        assert multipath_paths(text) == _multipath.parse_paths(text)


def test_bad_input_is_named():
    with pytest.raises(AnsibleFilterError, match="expected multipathd's output as a string, got list"):
        multipath_paths(["indextts-cache sda active ready"])
    with pytest.raises(AnsibleFilterError, match="the format must be a string, got int"):
        multipath_paths("", 4)
    with pytest.raises(AnsibleFilterError, match="multipath_paths: multipathd format '%m %s'"):
        multipath_paths("", "%m %s")
