# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iscsi_target_login against canned iscsiadm runs (test_iscsi_target_login.yaml).

iscsiadm is mocked here because this machine's kernel has no iSCSI initiator: in a
container iscsiadm cannot even discover. The outputs replayed were captured from
open-iscsi 2.1.8 in the guest lab, where molecule/guest runs the module for real.
Record files, /dev/disk/by-path and /sys/block are real files under a temporary dir.
A record that a mocked ``iscsiadm --op new`` would have made is laid out beforehand.
The sendtargets record (st_config_default.txt) was not captured: it is written from
open-iscsi's usr/idbm.c (idbm_recinfo_discovery and its defaults), as 2.1.8 writes it.
"""

import os
from unittest import mock

import pytest

from ansible_collections.indextts.deploy.plugins.module_utils import _iscsiadm as iscsi
from ansible_collections.indextts.deploy.plugins.modules import iscsi_target_login

from harness import FIXTURES, check_output, expand, load_cases, run_module

CASES = load_cases(os.path.join(os.path.dirname(__file__), "test_iscsi_target_login.yaml"))
TARGET = "iqn.2026-11.io.indextts.lab:cache"


def record_file(case, portal):
    """The node record's path: the directory layout (tpgt 1), or with ``record_tpgt: -1``
    the flat file open-iscsi keeps for a record made by ``--op new`` (discover=false)."""
    return iscsi.record_path(TARGET, portal, case.get("record_tpgt", 1))


def discovery_file(case, portal):
    """The sendtargets record: <portal>/st_config, or the flat file for ``flat_discovery``."""
    return iscsi.discovery_record_paths(portal)[1 if portal in case.get("flat_discovery", []) else 0]


def lay_out(case, tmp):
    """Record files, by-path links and dm holders as the case describes them."""
    with open(os.path.join(FIXTURES, "iscsiadm", "record_default.txt")) as f:
        default = f.read()
    for portal, values in (case.get("record_files") or {}).items():
        path = record_file(case, portal)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(iscsi.set_record_values(default, values))
    with open(os.path.join(FIXTURES, "iscsiadm", "st_config_default.txt")) as f:
        st_config = f.read()
    texts = {}
    for portal, values in (case.get("discovery_files") or {}).items():
        path = discovery_file(case, portal)
        host, port = iscsi.split_portal(portal)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        texts[path] = iscsi.set_record_values(st_config, dict(values, **{
            "discovery.sendtargets.address": host, "discovery.sendtargets.port": str(port)}))
        with open(path, "w") as f:
            f.write(texts[path])
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
    return texts


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case, tmp_path):
    tmp = str(tmp_path)
    case = expand(case, {"tmp": tmp})
    with mock.patch.multiple(iscsi, NODES_DIR=tmp + "/nodes", SEND_TARGETS_DIR=tmp + "/send_targets",
                             BY_PATH=tmp + "/by-path", SYS_BLOCK=tmp + "/sys"):
        laid_out = lay_out(case, tmp)
        result, failed, commands = run_module(
            iscsi_target_login.main, case["input"], case.get("commands", ()),
            check_mode=case.get("check_mode", False), diff=case.get("diff", False))
        records, modes, texts = {}, {}, []
        for portal in case.get("records_after", {}):
            path = record_file(case, portal)
            with open(path) as f:
                records[portal] = iscsi.parse_record(f.read())
            modes[portal] = os.stat(path).st_mode & 0o777
        discovery = {}
        for portal in case.get("discovery_after", {}):
            path = discovery_file(case, portal)
            with open(path) as f:
                texts.append(f.read())
            discovery[portal] = iscsi.parse_record(texts[-1])
            if texts[-1] != laid_out.get(path):  # what the module writes is 0600
                assert os.stat(path).st_mode & 0o777 == 0o600
    expected = dict(case["output"])
    assert failed == expected.pop("failed", False), result
    check_output(result, expected)
    for portal, values in case.get("records_after", {}).items():
        for key, value in values.items():
            assert records[portal][key] == value
        assert modes[portal] == 0o600
    for portal, values in case.get("discovery_after", {}).items():
        for key, value in values.items():
            assert discovery[portal].get(key) == value, (portal, key)
    for secret in case.get("secrets_gone", []):
        assert not any(secret in text for text in texts)
    # No secret reaches a command line, a result or a diff.
    secrets = [v for k, v in case["input"].items() if "password" in k]
    for secret in secrets:
        assert not any(secret in arg for argv in commands.calls for arg in argv)
        assert secret not in repr(result)
