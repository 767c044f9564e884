# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module's main() in-process, as community.general's YAML test cases do.

A case names the module input, the exact commands the module must run with their
canned results, and the expected output. Commands are matched in order and
exactly; a command the case did not list fails the test, and so does a listed
command that was never run. Canned output is captured from real runs
(tests/unit/plugins/module_utils/fixtures/).
"""

import json
import os
from unittest import mock

import pytest
import yaml
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "module_utils", "fixtures")


class ModuleExit(Exception):
    def __init__(self, result, failed):
        super().__init__(result)
        self.result = result
        self.failed = failed


def load_cases(path):
    with open(path) as f:
        return yaml.safe_load(f)


def fixture_text(ref):
    """``{fixture: rsync/noop.txt}`` -> the file's text; plain strings pass through."""
    if isinstance(ref, dict) and "fixture" in ref:
        with open(os.path.join(FIXTURES, ref["fixture"])) as f:
            return f.read()
    return ref or ""


def expand(value, names):
    """Substitute ``{name}`` placeholders (temporary paths) in a case, recursively."""
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, list):
        return [expand(v, names) for v in value]
    if isinstance(value, dict):
        return {k: expand(v, names) for k, v in value.items()}
    return value


class CommandMock:
    def __init__(self, expected):
        self.expected = list(expected)
        self.calls = []

    def __call__(self, args, **kwargs):
        argv = list(args)
        self.calls.append(argv)
        if not self.expected:
            pytest.fail("unexpected command: %r" % (argv,))
        step = self.expected.pop(0)
        if step["command"] != argv:
            pytest.fail("command %d differs.\nexpected: %r\nactual:   %r"
                        % (len(self.calls), step["command"], argv))
        return step.get("rc", 0), fixture_text(step.get("out")), fixture_text(step.get("err"))


def run_real(main, params, check_mode=False, diff=False):
    """Run main() with params and the real commands; return (result, failed)."""
    args = dict(params, _ansible_check_mode=check_mode, _ansible_diff=diff)

    def exit_json(module, **kwargs):
        raise ModuleExit(json.loads(json.dumps(kwargs, default=str)), False)

    def fail_json(module, msg, **kwargs):
        raise ModuleExit(dict(kwargs, msg=msg, failed=True), True)

    with patch_module_args(args), \
            mock.patch.object(basic.AnsibleModule, "exit_json", exit_json), \
            mock.patch.object(basic.AnsibleModule, "fail_json", fail_json):
        with pytest.raises(ModuleExit) as exc:
            main()
    return exc.value.result, exc.value.failed


def run_module(main, params, commands=(), check_mode=False, diff=False, bin_dir="/usr/bin", euid=0):
    """Run main() with params as user ``euid``, commands mocked as listed;
    return (result, failed, CommandMock)."""
    args = dict(params, _ansible_check_mode=check_mode, _ansible_diff=diff)
    commands = CommandMock(commands)

    def exit_json(module, **kwargs):
        raise ModuleExit(json.loads(json.dumps(kwargs, default=str)), False)

    def fail_json(module, msg, **kwargs):
        raise ModuleExit(dict(kwargs, msg=msg, failed=True), True)

    def get_bin_path(module, name, required=False, opt_dirs=None):
        return os.path.join(bin_dir, name)

    warnings = []

    def warn(module, warning):
        warnings.append(warning)

    with patch_module_args(args), \
            mock.patch.object(basic.AnsibleModule, "exit_json", exit_json), \
            mock.patch.object(basic.AnsibleModule, "fail_json", fail_json), \
            mock.patch.object(basic.AnsibleModule, "run_command", commands), \
            mock.patch.object(basic.AnsibleModule, "get_bin_path", get_bin_path), \
            mock.patch.object(basic.AnsibleModule, "warn", warn), \
            mock.patch("os.geteuid", return_value=euid):
        with pytest.raises(ModuleExit) as exc:
            main()
    if commands.expected:
        pytest.fail("commands never run: %r" % ([c["command"] for c in commands.expected],))
    exc.value.result["warnings"] = warnings
    return exc.value.result, exc.value.failed, commands


def check_output(result, expected):
    """Every key of ``expected`` must be in ``result`` with that value; ``msg_contains``
    checks a substring of the failure message."""
    for key, value in expected.items():
        if key == "msg_contains":
            assert value in result.get("msg", ""), result
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            check_output(result[key], value)
        else:
            assert result.get(key) == value, "%s: expected %r, got %r" % (key, value, result.get(key))
