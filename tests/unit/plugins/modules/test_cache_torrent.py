# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cache_torrent (issue 15) with real libtorrent on a small generated cache: the torrent
holds the cache's regular files and its manifest their sizes, mtimes and modes; a rerun
hashes nothing; a changed file makes another torrent; check mode writes nothing; the diff
names the files; bad inputs are refused, each with its message, before anything is written."""

import json
import os
import stat

import pytest

from test_model_cache_sync_local import W2V, make_cache
from harness import run_real

lt = pytest.importorskip("libtorrent")

from ansible_collections.indextts.deploy.plugins.module_utils import _torrent  # noqa: E402
from ansible_collections.indextts.deploy.plugins.modules import cache_torrent  # noqa: E402
from ansible_collections.indextts.deploy.tests.unit.plugins.module_utils.test_torrent import make_ca, pem  # noqa: E402


@pytest.fixture
def cache(tmp_path):
    make_cache(tmp_path / "cache", "--weights-mb", "2", "--small-files", "8")
    (tmp_path / "out").mkdir()
    return tmp_path / "cache"


def run(cache, torrent, check_mode=False, diff=False, **params):
    return run_real(cache_torrent.main, dict(params, path=str(cache), torrent=str(torrent)),
                    check_mode=check_mode, diff=diff)


@pytest.fixture
def no_hashing(monkeypatch):
    """make_torrent reads every file of the cache: a run that calls it fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("the cache was hashed")
    monkeypatch.setattr(_torrent, "make_torrent", refuse)


def info(torrent):
    return lt.torrent_info(lt.bdecode(torrent.read_bytes()))


def biggest_blob(cache):
    return max((cache / W2V / "blobs").iterdir(), key=lambda p: p.stat().st_size)


def test_first_run_writes_the_torrent_of_the_regular_files_and_their_manifest(cache, tmp_path):
    torrent = tmp_path / "out" / "cache.torrent"
    result, failed = run(cache, torrent, piece_size=65536)
    assert not failed, result
    files = _torrent.regular_files(str(cache))
    assert _torrent.torrent_files(torrent.read_bytes()) == files
    manifest = json.loads((tmp_path / "out" / "cache.torrent.json").read_text())
    assert manifest == _torrent.manifest(str(cache), files)
    assert not any("/refs/" in rel or "/snapshots/" in rel for rel in files)
    ti = info(torrent)
    assert result["changed"] is True
    assert result["info_hash"] == str(ti.info_hashes().v2) and len(result["info_hash"]) == 64
    assert result["files"] == len(files) and result["bytes"] == sum(e[0] for e in manifest.values())
    assert result["torrent"] == str(torrent) and result["manifest"] == str(torrent) + ".json"
    assert (result["name"], result["piece_size"], result["ssl"]) == ("indextts-cache", 65536, False)
    assert ti.name() == "indextts-cache" and ti.priv() and not ti.info_hashes().has_v1()
    for path in (torrent, tmp_path / "out" / "cache.torrent.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path / "out")) == ["cache.torrent", "cache.torrent.json"]  # no temporaries left


def test_a_rerun_hashes_nothing_and_changes_nothing(cache, tmp_path, monkeypatch):
    torrent = tmp_path / "out" / "cache.torrent"
    first, _failed = run(cache, torrent, piece_size=65536)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "out").iterdir()}
    monkeypatch.setattr(_torrent, "make_torrent", lambda *a, **k: pytest.fail("the cache was hashed"))
    for params in ({"piece_size": 65536}, {}):  # no piece size: any piece size will do
        again, failed = run(cache, torrent, **params)
        assert not failed, again
        assert again["changed"] is False
        assert again["info_hash"] == first["info_hash"] and again["piece_size"] == 65536
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "out").iterdir()} == before


def test_a_changed_file_makes_a_new_torrent(cache, tmp_path):
    torrent = tmp_path / "out" / "cache.torrent"
    first, _failed = run(cache, torrent)
    checkpoint = cache / "checkpoints" / "gpt.pth"
    checkpoint.write_bytes(checkpoint.read_bytes() + b"retrained")
    again, failed = run(cache, torrent)
    assert not failed and again["changed"] is True
    assert again["info_hash"] != first["info_hash"]
    assert again["info_hash"] == str(info(torrent).info_hashes().v2)
    manifest = json.loads((tmp_path / "out" / "cache.torrent.json").read_text())
    assert manifest["checkpoints/gpt.pth"][0] == checkpoint.stat().st_size
    assert manifest["checkpoints/gpt.pth"][1] == checkpoint.stat().st_mtime_ns


def test_another_name_ca_or_piece_size_makes_a_new_torrent(cache, tmp_path):
    torrent = tmp_path / "out" / "cache.torrent"
    run(cache, torrent, piece_size=65536)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(pem(make_ca("deployment CA")[0]))
    for params in ({"piece_size": 32768}, {"piece_size": 32768, "name": "other"},
                   {"piece_size": 32768, "name": "other", "ca_cert": str(ca_file)}):
        result, failed = run(cache, torrent, **params)
        assert not failed and result["changed"] is True, (params, result)
        again, _failed = run(cache, torrent, **params)
        assert again["changed"] is False, params
    ti = info(torrent)
    assert (ti.name(), ti.piece_length()) == ("other", 32768)
    assert ti.ssl_cert().strip() == ca_file.read_text().strip() and result["ssl"] is True


def test_mode_and_owner_are_set_without_hashing(cache, tmp_path, monkeypatch):
    torrent = tmp_path / "out" / "cache.torrent"
    run(cache, torrent)
    monkeypatch.setattr(_torrent, "make_torrent", lambda *a, **k: pytest.fail("the cache was hashed"))
    result, failed = run(cache, torrent, mode="0600", owner=str(os.geteuid()), group=str(os.getegid()))
    assert not failed and result["changed"] is True, result
    assert stat.S_IMODE(torrent.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "out" / "cache.torrent.json").stat().st_mode) == 0o600
    again, _failed = run(cache, torrent, mode=0o600)
    assert again["changed"] is False


def test_check_mode_writes_nothing_and_hashes_nothing(cache, tmp_path, no_hashing):
    torrent = tmp_path / "out" / "cache.torrent"
    result, failed = run(cache, torrent, check_mode=True)
    assert not failed and result["changed"] is True and result["info_hash"] is None
    assert os.listdir(tmp_path / "out") == []


def test_check_mode_and_diff_name_the_changed_files(cache, tmp_path, monkeypatch):
    torrent = tmp_path / "out" / "cache.torrent"
    run(cache, torrent)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    blob = biggest_blob(cache)
    removed = blob.relative_to(cache).as_posix()
    blob.unlink()
    (cache / "checkpoints" / "new.pth").write_bytes(b"new")
    os.utime(cache / "checkpoints" / "gpt.pth", ns=(1, 10 ** 9))
    monkeypatch.setattr(_torrent, "make_torrent", lambda *a, **k: pytest.fail("the cache was hashed"))
    result, failed = run(cache, torrent, check_mode=True, diff=True)
    assert not failed and result["changed"] is True, result
    diff = result["diff"]
    assert diff["before_header"] == str(torrent) + ".json"
    before_lines, after_lines = diff["before"].splitlines(), diff["after"].splitlines()
    assert [line.split()[0] for line in before_lines] == sorted([removed, "checkpoints/gpt.pth"])
    assert [line.split()[0] for line in after_lines] == ["checkpoints/gpt.pth", "checkpoints/new.pth"]
    assert "mtime 1970-01-01T00:00:01.000000000Z" in diff["after"]
    assert "3 bytes" in after_lines[1] and "mode 0644" in after_lines[1]
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before


def test_a_cache_that_changes_while_it_is_hashed_writes_nothing(cache, tmp_path, monkeypatch):
    torrent = tmp_path / "out" / "cache.torrent"
    real = _torrent.make_torrent

    def hash_while_written(root, files, *args, **kwargs):
        data = real(root, files, *args, **kwargs)
        (cache / "checkpoints" / "gpt.pth").write_bytes(b"rewritten meanwhile")
        return data
    monkeypatch.setattr(_torrent, "make_torrent", hash_while_written)
    result, failed = run(cache, torrent)
    assert failed and "changed while it was hashed (checkpoints/gpt.pth)" in result["msg"], result
    assert os.listdir(tmp_path / "out") == []


@pytest.fixture
def refusals(cache, tmp_path):
    """(params, message) of bad inputs; every path not otherwise given is fine."""
    out = tmp_path / "out"
    two = tmp_path / "two.pem"
    ca = pem(make_ca("deployment CA")[0])
    two.write_bytes(ca + pem(make_ca("another CA")[0]))
    (tmp_path / "notpem.pem").write_text("not a certificate\n")
    empty = tmp_path / "empty"
    (empty / ".locks" / "x").mkdir(parents=True)
    (empty / ".locks" / "x" / "f.lock").write_text("")
    return [
        ({"path": "cache"}, "path must be an absolute path, got 'cache'"),
        ({"torrent": "out/cache.torrent"}, "torrent must be an absolute path"),
        ({"path": "/"}, "path / is a system directory, not a cache"),
        ({"path": "/srv"}, "path /srv is a system directory"),
        ({"path": str(tmp_path / "none")}, "path %s is not a directory on this host" % (tmp_path / "none")),
        ({"torrent": str(cache / "cache.torrent")}, "torrent %s lies inside path %s" % (cache / "cache.torrent", cache)),
        ({"torrent": str(cache / ".locks" / "cache.torrent")}, "lies inside path"),
        ({"torrent": str(out)}, "torrent %s is a directory" % out),
        ({"torrent": str(tmp_path / "no" / "cache.torrent")}, "the directory of torrent %s (%s) does not exist"
         % (tmp_path / "no" / "cache.torrent", tmp_path / "no")),
        ({"name": "a/b"}, "name 'a/b' is not a torrent name"),
        ({"name": ""}, "name '' is not a torrent name"),
        ({"piece_size": 3 * 16384}, "piece_size 49152 is not a power of two of at least 16384"),
        ({"piece_size": 8192}, "piece_size 8192 is not a power of two"),
        ({"ca_cert": str(tmp_path / "none.pem")}, "ca_cert %s does not exist on this host" % (tmp_path / "none.pem")),
        ({"ca_cert": str(tmp_path / "notpem.pem")}, "holds no PEM certificate"),
        ({"ca_cert": str(two)}, "ca_cert %s holds 2 certificates" % two),
        ({"mode": 644}, "mode 644 is not a file mode"),
        ({"mode": "u+rw"}, "mode 'u+rw' is not a file mode"),
        ({"owner": "no-such-user-here"}, "owner 'no-such-user-here' is not a user on this host"),
        ({"group": "no-such-group-here"}, "group 'no-such-group-here' is not a group on this host"),
        ({"path": str(empty)}, "path %s holds no files to share" % empty),
    ]


def test_bad_inputs_are_refused_before_anything_is_written(cache, tmp_path, refusals, no_hashing):
    listing = sorted(cache.rglob("*"))
    for params, message in refusals:
        params = dict({"path": str(cache), "torrent": str(tmp_path / "out" / "cache.torrent")}, **params)
        result, failed = run_real(cache_torrent.main, params)
        assert failed and message in result["msg"], (params, result)
        assert result["changed"] is False
        assert os.listdir(tmp_path / "out") == [], params
        assert sorted(cache.rglob("*")) == listing, params


def test_without_libtorrent_the_package_is_named(cache, tmp_path, monkeypatch):
    """libtorrent is present here; its absence is simulated (golden without python3-libtorrent)."""
    monkeypatch.setattr(_torrent, "HAS_LIBTORRENT", False)
    result, failed = run(cache, tmp_path / "out" / "cache.torrent")
    assert failed and "install python3-libtorrent" in result["msg"]
    assert os.listdir(tmp_path / "out") == []


def test_a_failure_between_the_renames_says_which_file_is_new(cache, tmp_path, monkeypatch):
    torrent = tmp_path / "out" / "cache.torrent"
    real = os.replace

    def replace(src, dst):
        if str(dst) == str(torrent):
            raise OSError(28, "No space left on device")
        return real(src, dst)
    monkeypatch.setattr(os, "replace", replace)
    result, failed = run(cache, torrent)
    assert failed and result["changed"] is True, result
    assert "No space left on device (ENOSPC) while renaming" in result["msg"]
    assert "the manifest is new and the torrent old: run the task again" in result["msg"]
    assert os.listdir(tmp_path / "out") == ["cache.torrent.json"]  # no temporaries left
    monkeypatch.setattr(os, "replace", real)
    again, failed = run(cache, torrent)
    assert not failed and again["changed"] is True
    assert _torrent.torrent_files(torrent.read_bytes()) == _torrent.regular_files(str(cache))
