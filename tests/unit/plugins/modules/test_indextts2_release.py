# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""indextts2_release with the real venv and pip, offline: tiny projects built by an
in-tree PEP 517 backend (fixtures/tiny_release) stand for a release and its locked
dependency, and a directory of their wheels for the wheelhouse."""

import json
import os
import platform
import shutil
import subprocess
import sys

import pytest

from ansible_collections.indextts.deploy.plugins.modules import indextts2_release

from harness import run_real

BACKEND = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "tiny_release")
PYTHON = os.path.realpath(sys.executable)
HOST_VERSION = platform.python_version()


def project(path, name, version, dependencies=(), extras=None, requires_python=">=3.10"):
    path.mkdir(parents=True)
    shutil.copy(os.path.join(BACKEND, "tiny_backend.py"), str(path))
    extras = extras or {}
    lines = ["[project]", 'name = "%s"' % name, 'version = "%s"' % version,
             'requires-python = "%s"' % requires_python,
             "dependencies = [%s]" % ", ".join('"%s"' % d for d in dependencies),
             "[project.optional-dependencies]"]
    lines += ["%s = [%s]" % (e, ", ".join('"%s"' % d for d in deps)) for e, deps in extras.items()]
    lines += ["[build-system]", "requires = []", 'build-backend = "tiny_backend"', 'backend-path = ["."]']
    (path / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return path


def lock(path, packages):
    """A uv.lock naming the project (editable) and ``packages`` (name, version[, markers])."""
    out = ["version = 1", 'requires-python = ">=3.10"', ""]
    for entry in packages:
        out += ["[[package]]", 'name = "%s"' % entry[0], 'version = "%s"' % entry[1],
                'source = { registry = "https://pypi.org/simple" }']
        if len(entry) > 2:
            out.append("resolution-markers = [%s]" % ", ".join('"%s"' % m for m in entry[2]))
        out.append("")
    out += ["[[package]]", 'name = "app"', 'version = "2.0.0"', 'source = { editable = "." }', ""]
    (path / "uv.lock").write_text("\n".join(out))


@pytest.fixture
def site(tmp_path):
    """A wheelhouse holding tinydep 1.0 and 2.0, and a release locked to tinydep 1.0+cu1
    (a local label, as IndexTTS2's lock has for torch) whose extra webui needs it."""
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    for version in ("1.0", "2.0"):
        dep = project(tmp_path / ("tinydep-" + version), "tinydep", version)
        subprocess.run([sys.executable, "-c", "import tiny_backend, sys; tiny_backend.build_wheel(sys.argv[1])",
                        str(wheelhouse)], cwd=str(dep), check=True)
    release = project(tmp_path / "releases" / "abc", "app", "2.0.0", extras={"webui": ["tinydep"]})
    lock(release, [("tinydep", "1.0+cu1", ["sys_platform == 'linux'"]), ("tinydep", "1.5", ["sys_platform == 'darwin'"])])
    return {"wheelhouse": str(wheelhouse), "release": release}


def params(site, **extra):
    return dict({"path": str(site["release"]), "python": PYTHON, "wheelhouse": site["wheelhouse"],
                 "extras": ["webui"]}, **extra)


def installed(release, name):
    out = subprocess.run([str(release / ".venv" / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
                         check=True, capture_output=True, text=True).stdout
    return {p["name"]: p["version"] for p in json.loads(out)}.get(name)


def test_builds_at_the_locked_versions_then_reports_no_change(site):
    result, failed = run_real(indextts2_release.main, params(site))
    assert not failed, result
    assert result["changed"] is True and result["constraints"] == 1
    # The lock's Linux entry, under its public name, not the newest wheel (2.0).
    assert installed(site["release"], "tinydep") == "1.0"
    record = json.loads((site["release"] / ".indextts-release.json").read_text())
    assert record["python"] == PYTHON and record["python_version"] == HOST_VERSION
    assert record["machine"] == platform.machine() and record["source"] == "wheelhouse"
    again, failed = run_real(indextts2_release.main, params(site))
    assert not failed and again["changed"] is False


def test_check_mode_builds_nothing_and_diff_shows_the_record(site):
    result, failed = run_real(indextts2_release.main, params(site), check_mode=True, diff=True)
    assert not failed and result["changed"] is True
    assert not (site["release"] / ".venv").exists()
    assert '"source": "wheelhouse"' in result["diff"]["after"] and result["diff"]["before"] == ""


def test_warmup_runs_with_the_release_interpreter(site):
    warmup = [["python", "-c", "import sys, tinydep; open('warm', 'w').write(sys.prefix + ' ' + tinydep.VERSION)"]]
    result, failed = run_real(indextts2_release.main, params(site, warmup=warmup))
    assert not failed, result
    assert (site["release"] / "warm").read_text() == "%s 1.0" % (site["release"] / ".venv")


def test_a_wheelhouse_lacking_a_package_is_named(site):
    for wheel in os.listdir(site["wheelhouse"]):
        os.unlink(os.path.join(site["wheelhouse"], wheel))
    result, failed = run_real(indextts2_release.main, params(site))
    assert failed
    assert result["msg"].startswith("wheelhouse %s lacks tinydep" % site["wheelhouse"])
    assert not (site["release"] / ".indextts-release.json").exists()


def test_requires_python_no_host_interpreter_satisfies(tmp_path):
    release = project(tmp_path / "r", "app", "2.0.0", requires_python=">=3.99")
    lock(release, [])
    result, failed = run_real(indextts2_release.main, {"path": str(release), "python": PYTHON})
    assert failed
    assert "requires-python '>=3.99', and python %s is %s" % (PYTHON, HOST_VERSION) in result["msg"]
    assert "never downloaded" in result["msg"]


@pytest.mark.parametrize("key, value, what", [
    ("machine", "riscv64", "architecture riscv64"),
    ("python", "/opt/python3.99/bin/python3.99", "interpreter path /opt/python3.99/bin/python3.99"),
    ("python_version", "3.10.0", "Python version 3.10.0"),
])
def test_a_node_refuses_a_release_built_for_another_host(site, key, value, what):
    result, failed = run_real(indextts2_release.main, params(site))
    assert not failed
    record_path = site["release"] / ".indextts-release.json"
    record = json.loads(record_path.read_text())
    record[key] = value
    record_path.write_text(json.dumps(record))
    result, failed = run_real(indextts2_release.main, {"path": str(site["release"]), "state": "checked"})
    assert failed
    assert "it was built for %s" % what in result["msg"]


def test_a_node_accepts_the_release_built_for_it(site):
    run_real(indextts2_release.main, params(site))
    result, failed = run_real(indextts2_release.main, {"path": str(site["release"]), "state": "checked"})
    assert not failed and result["changed"] is False and result["build"]["python"] == PYTHON


@pytest.mark.parametrize("extra, message", [
    ({"extras": ["gpu"]}, "extras gpu are not extras of this release (it has: webui)"),
    ({"wheelhouse": "/nonexistent/wheels"}, "wheelhouse /nonexistent/wheels is not a directory on this host"),
    ({"python": "/nonexistent/python3"}, "python /nonexistent/python3 is not an executable on this host"),
    ({"warmup": [[]]}, "warmup[0] must be a non-empty list of strings"),
])
def test_bad_input_is_refused_naming_it(site, extra, message):
    result, failed = run_real(indextts2_release.main, params(site, **extra))
    assert failed and message in result["msg"], result["msg"]
    assert not (site["release"] / ".venv").exists()


def test_a_release_never_built_is_refused_on_a_node(site):
    result, failed = run_real(indextts2_release.main, {"path": str(site["release"]), "state": "checked"})
    assert failed and "it has no build record" in result["msg"]


def test_no_source_tree_is_named(tmp_path):
    result, failed = run_real(indextts2_release.main, {"path": str(tmp_path)})
    assert failed and "holds no pyproject.toml" in result["msg"]
