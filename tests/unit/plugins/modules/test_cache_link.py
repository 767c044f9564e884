# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cache_link on a real filesystem (a temporary directory; a tmpfs mount where this
machine allows it, for the mount checks)."""

import os
import subprocess

import pytest

from ansible_collections.indextts.deploy.plugins.modules import cache_link

from harness import run_real


def link(params, **kw):
    return run_real(cache_link.main, params, **kw)


@pytest.fixture
def app(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "cache" / "checkpoints").mkdir(parents=True)
    return tmp_path


def params(app, **extra):
    return dict({"path": str(app / "app" / "checkpoints"), "target": str(app / "cache" / "checkpoints"),
                 "require_mount": False}, **extra)


def test_creates_the_link_then_reports_no_change(app):
    result, failed = link(params(app))
    assert not failed and result["changed"] is True
    assert os.readlink(app / "app" / "checkpoints") == str(app / "cache" / "checkpoints")
    assert result["previous"] == {"state": "absent"}
    again = link(params(app))[0]
    assert again["changed"] is False


def test_real_directory_is_moved_aside_never_deleted(app):
    (app / "app" / "checkpoints").mkdir()
    (app / "app" / "checkpoints" / "gpt.pth").write_text("downloaded by hand\n")
    result, failed = link(params(app))
    assert not failed and result["changed"]
    backup = result["backup_path"]
    assert backup.startswith(str(app / "app" / "checkpoints.bak-"))
    assert open(os.path.join(backup, "gpt.pth")).read() == "downloaded by hand\n"
    assert os.path.islink(app / "app" / "checkpoints")


def test_existing_fail_refuses_a_real_directory(app):
    (app / "app" / "checkpoints").mkdir()
    result, failed = link(params(app, existing="fail"))
    assert failed
    assert result["msg"] == ("path %s is a real directory, not a link; move it away or set "
                             "existing=backup" % (app / "app" / "checkpoints"))
    assert not os.path.islink(app / "app" / "checkpoints")


def test_link_elsewhere_is_replaced_and_diff_shows_both_targets(app):
    (app / "old").mkdir()
    os.symlink(str(app / "old"), str(app / "app" / "checkpoints"))
    result, failed = link(params(app), diff=True)
    assert not failed and result["changed"]
    assert result["diff"]["before"] == str(app / "old") + "\n"
    assert result["diff"]["after"] == str(app / "cache" / "checkpoints") + "\n"
    assert os.readlink(app / "app" / "checkpoints") == str(app / "cache" / "checkpoints")
    assert not [n for n in os.listdir(app / "app") if ".tmp-" in n]


def test_check_mode_changes_nothing(app):
    (app / "app" / "checkpoints").mkdir()
    result, failed = link(params(app), check_mode=True)
    assert not failed and result["changed"]
    assert os.path.isdir(app / "app" / "checkpoints") and not os.path.islink(app / "app" / "checkpoints")
    assert os.listdir(app / "app") == ["checkpoints"]


@pytest.mark.parametrize("extra, message", [
    ({"target": "relative/dir"}, "target must be an absolute path, got 'relative/dir'"),
    ({"target": "/no/such/cache"}, "target /no/such/cache is not a directory; sync or mount the cache before linking to it"),
    ({"path": "/no/such/app/checkpoints"}, "the parent directory of path /no/such/app/checkpoints does not exist"),
    ({"owner": "no-such-user-xyz"}, "owner no-such-user-xyz does not exist on this host"),
])
def test_bad_input_is_refused_naming_it(app, extra, message):
    result, failed = link(params(app, **extra))
    assert failed
    assert message in result["msg"]


def test_unmounted_cache_on_the_root_filesystem_is_refused(app):
    if os.stat(app).st_dev != os.stat("/").st_dev:
        pytest.skip("the temporary directory is on its own filesystem here")
    result, failed = link(params(app, require_mount=True))
    assert failed
    assert "is on the root filesystem, not on a mounted cache; mount the cache first" in result["msg"]


def test_mount_point_is_checked(app):
    mnt = app / "mnt"
    mnt.mkdir()
    result, failed = link(params(app, mount_point=str(mnt)))
    assert failed and result["msg"] == "mount_point %s is not mounted; mount the cache (for example the iSCSI LUN) first" % mnt
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        (mnt / "checkpoints").mkdir()
        result, failed = link(params(app, mount_point=str(mnt)))
        assert failed and "lies on" in result["msg"] and "not under mount_point %s" % mnt in result["msg"]
        result, failed = link(params(app, target=str(mnt / "checkpoints"), mount_point=str(mnt)))
        assert not failed and result["mount_point"] == str(mnt)
        result, failed = link(params(app, target=str(mnt / "checkpoints"), require_mount=True))
        assert not failed and result["changed"] is False
    finally:
        os.unlink(app / "app" / "checkpoints")
        subprocess.run(["umount", str(mnt)], check=True)


def test_target_inside_path_is_refused(app):
    (app / "app" / "checkpoints").mkdir()
    (app / "app" / "checkpoints" / "inner").mkdir()
    result, failed = link(params(app, target=str(app / "app" / "checkpoints" / "inner")))
    assert failed and "lies inside path" in result["msg"]
    assert os.path.isdir(app / "app" / "checkpoints" / "inner")
