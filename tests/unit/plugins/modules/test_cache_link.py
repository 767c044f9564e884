# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cache_link on a real filesystem (a temporary directory; a tmpfs mount where this
machine allows it, for the mount checks)."""

import errno
import os
import subprocess
from unittest import mock

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


# -- bad input: refused before anything changes, in check mode too ---------------------

def mount_tmpfs(where, options="size=1m"):
    """A real tmpfs at ``where`` (this machine runs the tests as root); skip where not allowed."""
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")


def umount(where):
    subprocess.run(["umount", str(where)], check=True)


SYSTEM_MSG = ("; cache_link never moves a system directory aside nor replaces it with a link. Give the path the "
              "application reads its cache from, for example /opt/indextts/app/checkpoints")


@pytest.mark.parametrize("check_mode", [True, False])
@pytest.mark.parametrize("path, shown", [
    ("/", "/"), ("/etc", "/etc"), ("/usr/", "/usr"), ("/var", "/var"), ("/lib64", "/lib64"), ("/home", "/home"),
    ("/tmp", "/tmp"), ("/opt/../etc", "/opt/../etc"), ("//", "/"),
])
def test_system_directories_are_refused(app, path, shown, check_mode):
    result, failed = link(params(app, path=path), check_mode=check_mode)
    assert failed
    assert result["msg"] == "path %s is a system directory%s" % (shown, SYSTEM_MSG)
    assert not [n for n in os.listdir("/") if ".bak-" in n or ".tmp-" in n]
    assert os.path.isdir("/etc") and not os.path.islink("/etc")


def test_a_path_resolving_to_a_system_directory_is_refused(app):
    os.symlink("/etc", str(app / "app" / "checkpoints"))
    result, failed = link(params(app), check_mode=True)
    assert failed
    assert result["msg"] == "path %s resolves to the system directory /etc%s" % (app / "app" / "checkpoints", SYSTEM_MSG)
    assert os.readlink(app / "app" / "checkpoints") == "/etc"


def test_a_path_below_a_system_directory_is_fine(app):
    path = "/etc/cache-link-test-%d" % os.getpid()
    result, failed = link(params(app, path=path), check_mode=True)
    assert not failed and result["changed"] and result["previous"] == {"state": "absent"}
    assert not os.path.lexists(path)


@pytest.mark.parametrize("check_mode", [True, False])
def test_a_mount_point_at_path_is_refused(app, check_mode):
    mnt = app / "app" / "checkpoints"
    mnt.mkdir()
    mount_tmpfs(mnt)
    try:
        (mnt / "gpt.pth").write_text("on the mounted filesystem\n")
        result, failed = link(params(app), check_mode=check_mode)
        assert failed
        assert result["msg"] == ("path %s is a mount point (a filesystem is mounted there), which cannot be moved "
                                 "aside; unmount it, or choose another path (a mounted cache is given as target)"
                                 % mnt)
        assert os.path.ismount(mnt) and (mnt / "gpt.pth").exists()
        assert os.listdir(app / "app") == ["checkpoints"]
    finally:
        umount(mnt)


@pytest.mark.parametrize("existing", [True, False])
def test_a_read_only_directory_is_refused(app, existing):
    ro = app / "ro"
    ro.mkdir()
    mount_tmpfs(ro)
    try:
        if existing:
            (ro / "checkpoints").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        result, failed = link(params(app, path=str(ro / "checkpoints")))
        assert failed
        assert result["msg"] == ("path %s cannot be changed: its directory %s is on a read-only filesystem "
                                 "(remount it read-write); choose a path in a writable directory" % (ro / "checkpoints", ro))
        assert os.listdir(ro) == (["checkpoints"] if existing else [])
    finally:
        umount(ro)


def test_a_name_too_long_for_the_filesystem_is_refused(app):
    result, failed = link(params(app, path=str(app / "app" / ("n" * 256))))
    assert failed
    assert result["msg"] == ("path %s: its name is 256 bytes, more than this filesystem's limit of 255 for a name; "
                             "choose a shorter path" % (app / "app" / ("n" * 256)))
    # Room for the name, not for the backup's name: nothing moves.
    (app / "app" / ("n" * 240)).mkdir()
    result, failed = link(params(app, path=str(app / "app" / ("n" * 240))), check_mode=True)
    assert failed
    assert result["msg"] == ("path %s: its name is 240 bytes, and with the .bak-<timestamp> suffix cache_link adds "
                             "it would pass this filesystem's limit of 255 for a name; choose a shorter path"
                             % (app / "app" / ("n" * 240)))
    assert os.listdir(app / "app") == ["n" * 240]


def test_a_failure_after_moving_aside_moves_the_original_back(app):
    """A real failure half-way: on a tmpfs with every inode used, renaming the directory
    aside works (no new inode) and creating the link does not (ENOSPC)."""
    mnt = app / "full"
    mnt.mkdir()
    mount_tmpfs(mnt, "size=1m,nr_inodes=16")
    try:
        (mnt / "checkpoints").mkdir()
        (mnt / "checkpoints" / "gpt.pth").write_text("downloaded by hand\n")
        with pytest.raises(OSError):
            for i in range(64):
                (mnt / ("filler%d" % i)).write_text("")
        before = sorted(os.listdir(mnt))
        result, failed = link(params(app, path=str(mnt / "checkpoints")))
        assert failed
        assert result["msg"] == ("path %s: No space left on device (ENOSPC) while creating the new link %s.tmp-%d; "
                                 "nothing was changed, path is as it was" % (mnt / "checkpoints", mnt / "checkpoints",
                                                                             os.getpid()))
        assert sorted(os.listdir(mnt)) == before
        assert (mnt / "checkpoints" / "gpt.pth").read_text() == "downloaded by hand\n"
        assert not os.path.islink(mnt / "checkpoints")
    finally:
        umount(mnt)


def test_when_moving_back_fails_too_the_message_says_where_the_original_is(app):
    """Mocked: a rename back that fails right after the same rename worked cannot be
    provoked on a real filesystem, so os.symlink and the second os.rename are made to fail."""
    (app / "app" / "checkpoints").mkdir()
    real_rename = os.rename
    calls = []

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) > 1:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), src)
        real_rename(src, dst)

    with mock.patch.object(cache_link.os, "symlink", side_effect=OSError(errno.EIO, os.strerror(errno.EIO))), \
            mock.patch.object(cache_link.os, "rename", rename):
        result, failed = link(params(app))
    backup = calls[0][1]
    path = str(app / "app" / "checkpoints")
    assert failed
    assert result["msg"] == ("path %s: Input/output error (EIO) while creating the new link %s.tmp-%d; moving it back "
                             "failed too, with Permission denied (EACCES). What was at %s is now at %s; move it back "
                             "with: mv %s %s" % (path, path, os.getpid(), path, backup, backup, path))
    assert os.path.isdir(backup)
