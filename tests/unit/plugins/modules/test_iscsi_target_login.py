# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iscsi_target_login against canned iscsiadm runs (test_iscsi_target_login.yaml).

iscsiadm is mocked here because this machine's kernel has no iSCSI initiator: in a
container iscsiadm cannot even discover. The outputs replayed were captured from
open-iscsi 2.1.8 in the guest lab, where molecule/guest runs the module for real.
Record files, /dev/disk/by-path and /sys/block are real files under a temporary dir.
"""

import os
from unittest import mock

import pytest

from ansible_collections.indextts.deploy.plugins.module_utils import _iscsiadm as iscsi
from ansible_collections.indextts.deploy.plugins.modules import iscsi_target_login

from harness import FIXTURES, check_output, expand, load_cases, run_module

CASES = load_cases(os.path.join(os.path.dirname(__file__), "test_iscsi_target_login.yaml"))
TARGET = "iqn.2026-11.io.indextts.lab:cache"


def lay_out(case, tmp):
    """Record files, by-path links and dm holders as the case describes them."""
    with open(os.path.join(FIXTURES, "iscsiadm", "record_default.txt")) as f:
        default = f.read()
    for portal, values in (case.get("record_files") or {}).items():
        path = iscsi.record_path(TARGET, portal, 1)
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            f.write(iscsi.set_record_values(default, values))
    os.makedirs(iscsi.BY_PATH)
    os.makedirs(os.path.join(tmp, "dev"))
    for entry in case.get("by_path", []):
        portal, dev = entry.split("/")
        open(os.path.join(tmp, "dev", dev), "w").close()
        os.symlink(os.path.join(tmp, "dev", dev),
                   os.path.join(iscsi.BY_PATH, "ip-%s-iscsi-%s-lun-1" % (portal, TARGET)))
    for dm, spec in (case.get("multipath") or {}).items():
        os.makedirs(os.path.join(iscsi.SYS_BLOCK, dm, "dm"))
        for key in ("name", "uuid"):
            with open(os.path.join(iscsi.SYS_BLOCK, dm, "dm", key), "w") as f:
                f.write(spec[key] + "\n")
        for dev in spec["paths"]:
            os.makedirs(os.path.join(iscsi.SYS_BLOCK, dev, "holders", dm))


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case, tmp_path):
    tmp = str(tmp_path)
    case = expand(case, {"tmp": tmp})
    with mock.patch.multiple(iscsi, NODES_DIR=tmp + "/nodes", SEND_TARGETS_DIR=tmp + "/send_targets",
                             BY_PATH=tmp + "/by-path", SYS_BLOCK=tmp + "/sys"):
        lay_out(case, tmp)
        result, failed, commands = run_module(
            iscsi_target_login.main, case["input"], case.get("commands", ()),
            check_mode=case.get("check_mode", False), diff=case.get("diff", False))
        records, modes = {}, {}
        for portal in case.get("records_after", {}):
            path = iscsi.record_path(TARGET, portal, 1)
            with open(path) as f:
                records[portal] = iscsi.parse_record(f.read())
            modes[portal] = os.stat(path).st_mode & 0o777
    expected = dict(case["output"])
    assert failed == expected.pop("failed", False), result
    check_output(result, expected)
    for portal, values in case.get("records_after", {}).items():
        for key, value in values.items():
            assert records[portal][key] == value
        assert modes[portal] == 0o600
    # No secret reaches a command line, a result or a diff.
    secrets = [v for k, v in case["input"].items() if "password" in k]
    for secret in secrets:
        assert not any(secret in arg for argv in commands.calls for arg in argv)
        assert secret not in repr(result)
