# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""uv.lock → pip constraints and requires-python, on the real locks of the pinned IndexTTS2
releases (read from ../shared/indextts2-src) and on the marker forms uv writes."""

import os
import tarfile
import tomllib

import pytest

from ansible_collections.indextts.deploy.plugins.module_utils import _uvlock as uv

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
SRC = os.path.join(os.path.dirname(ROOT), "shared", "indextts2-src")
PINS = {"v2.0.0": "830f6f8f94a51fea23ab1d639027a86200075a4e", "v2.5.0": "39207d91c30899cad1e7c1b9eb678c241f678e55"}


def release_file(commit, name):
    archive = os.path.join(SRC, "index-tts-%s.tar.gz" % commit)
    if not os.path.isfile(archive):
        pytest.fail("the IndexTTS2 source archive %s is missing: these tests read the real release" % archive)
    with tarfile.open(archive) as tar:
        return tar.extractfile("index-tts-%s/%s" % (commit, name)).read()


@pytest.fixture(scope="module", params=sorted(PINS))
def lock(request):
    return request.param, tomllib.loads(release_file(PINS[request.param], "uv.lock").decode())


LINUX_311 = uv.target_env("3.11.2")


@pytest.mark.parametrize("marker, expected", [
    ("sys_platform == 'linux'", True),
    ("sys_platform != 'linux' and sys_platform != 'win32'", False),
    ("python_full_version >= '3.11' and platform_machine != 'aarch64' and sys_platform == 'linux'", True),
    ("(python_full_version >= '3.11' and platform_machine != 'aarch64' and sys_platform == 'linux') "
     "or (python_full_version >= '3.11' and sys_platform == 'win32')", True),
    ("python_full_version < '3.11' and sys_platform == 'darwin'", False),
    ("python_version < '0'", False),
    ("python_version >= '3.11'", True),
    ("python_full_version == '3.11.*' and sys_platform == 'linux'", True),
    ("python_full_version == '3.12.*'", False),
    ('platform_machine == "x86_64"', True),
])
def test_marker_holds(marker, expected):
    assert uv.marker_holds(marker, LINUX_311) is expected


def test_marker_on_arm():
    assert uv.marker_holds("platform_machine == 'aarch64' and sys_platform == 'linux'", uv.target_env("3.11.2", "linux", "aarch64"))


@pytest.mark.parametrize("marker", ["sys_platform ==", "cpu_count > '2'", "(sys_platform == 'linux'", "sys_platform > 'a'"])
def test_bad_marker_is_named(marker):
    with pytest.raises(uv.LockError, match="marker"):
        uv.marker_holds(marker, LINUX_311)


@pytest.mark.parametrize("version, spec, expected", [
    ("3.11.2", ">=3.10, <3.12", True),
    ("3.12.1", ">=3.10, <3.12", False),
    ("3.10.0", ">=3.10", True),
    ("3.9.18", ">=3.10", False),
    ("3.11.13", "==3.11.*", True),
    ("3.12.0", "~=3.11", True),
    ("4.0", "~=3.11", False),
    ("3.11.2", "", True),
])
def test_specifier_holds(version, spec, expected):
    assert uv.specifier_holds(version, spec) is expected


def test_lock_pins_the_linux_build_under_its_pypi_name(lock):
    pin, parsed = lock
    lines = uv.lock_constraints(parsed, LINUX_311)
    names = [line.split("==")[0] for line in lines]
    assert len(names) == len(set(names)) > 150
    assert "torch==2.8.0" in lines and "torchaudio==2.8.0" in lines
    assert "gradio==5.45.0" in lines
    assert not any(line.startswith("indextts==") for line in lines)
    assert not any("+" in line for line in lines)


def test_lock_keeps_local_labels_on_request(lock):
    pin, parsed = lock
    assert "torch==2.8.0+cu128" in uv.lock_constraints(parsed, LINUX_311, public=False)


def test_lock_picks_by_python_version(lock):
    pin, parsed = lock
    # scipy is locked once per Python line: 3.10 gets an older release than 3.11.
    old = dict(line.split("==") for line in uv.lock_constraints(parsed, uv.target_env("3.10.12")))
    new = dict(line.split("==") for line in uv.lock_constraints(parsed, LINUX_311))
    assert uv.release_tuple(old["scipy"]) < uv.release_tuple(new["scipy"])


def test_requires_python_of_the_releases():
    got = {pin: uv.requires_python(tomllib.loads(release_file(commit, "pyproject.toml").decode()))
           for pin, commit in PINS.items()}
    assert got == {"v2.0.0": ">=3.10", "v2.5.0": ">=3.10,<3.12"}
    assert not uv.specifier_holds("3.12.3", got["v2.5.0"])
