# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_cache_sync against canned rsync runs (see test_model_cache_sync.yaml).

rsync itself is mocked here only to pin the exact argv and to replay failures
(untrusted host key, refused login, unreachable host) that are awkward to stage;
the outputs replayed were captured from real runs. Real transfers are tested with
real rsync in test_model_cache_sync_local.py and the molecule scenarios.
"""

import os
from unittest import mock

import pytest

from ansible_collections.indextts.deploy.plugins.modules import model_cache_sync
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache import transport

from harness import check_output, expand, load_cases, run_module

CASES = load_cases(os.path.join(os.path.dirname(__file__), "test_model_cache_sync.yaml"))


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (tmp_path / "file").write_text("not a directory\n")
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    names = {"dest": str(dest), "file": str(tmp_path / "file"), "tmp": str(tmp_path), "ctl": str(ctl)}
    case = expand(case, names)
    # The SSH control directories of dead runs are looked for in the test's own
    # directory: other runs on this machine may leave theirs in /tmp.
    with mock.patch.object(transport.tempfile, "mkdtemp", return_value=str(ctl)), \
            mock.patch.object(transport.tempfile, "gettempdir", return_value=str(tmp_path)), \
            mock.patch.object(transport, "read_cpuinfo", return_value=case.get("cpuinfo", "")):
        result, failed, commands = run_module(
            model_cache_sync.main, case["input"], case.get("commands", ()),
            check_mode=case.get("check_mode", False), diff=case.get("diff", False),
            euid=case.get("euid", 0))
    expected = dict(case["output"])
    assert failed == expected.pop("failed", False), result
    warning = expected.pop("warnings_contain", None)
    if warning:
        assert any(warning in w for w in result.get("warnings", [])), result
    check_output(result, expected)
    if case.get("diff") and not failed:
        assert result["diff"]["prepared"].count("\n") == result["changed_files_count"]
    if commands.calls and case["input"].get("src_host"):
        assert not ctl.exists()  # the shared connection's directory is gone at the end
