# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""multipathd's paths, for roles: the parser indextts-storage-check uses on the nodes."""

from ansible.errors import AnsibleFilterError

from ansible_collections.indextts.deploy.plugins.module_utils import _multipath


def multipath_paths(text, fmt=_multipath.PATHS_FORMAT):
    """``multipathd show paths raw format FMT`` output -> a list of paths (dicts)."""
    if not isinstance(text, str):
        raise AnsibleFilterError("multipath_paths: expected multipathd's output as a string, got %s"
                                 % type(text).__name__)
    if not isinstance(fmt, str):
        raise AnsibleFilterError("multipath_paths: the format must be a string, got %s" % type(fmt).__name__)
    try:
        return _multipath.parse_paths(text, fmt)
    except ValueError as e:
        raise AnsibleFilterError("multipath_paths: %s" % e)


class FilterModule(object):
    def filters(self):
        return {"multipath_paths": multipath_paths}
