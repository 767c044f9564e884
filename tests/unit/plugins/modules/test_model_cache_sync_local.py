# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_cache_sync with real rsync on a local source, checked with the real
huggingface_hub client. Transfers over SSH (revision delta, fan-out, interrupted
transfers) are covered by the molecule scenarios on the lab hosts."""

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from unittest import mock

import pytest
from ansible.module_utils import basic
from huggingface_hub import scan_cache_dir, snapshot_download

from ansible_collections.indextts.deploy.plugins.modules import model_cache_sync
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache import plan, publish, state, verify

from harness import run_real

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
MAKE_CACHE = os.path.join(ROOT, "tests", "fixtures", "make_hf_cache.py")
W2V = "hf_cache/models--facebook--w2v-bert-2.0"
REPO_IDS = ["facebook/w2v-bert-2.0", "amphion/MaskGCT", "funasr/campplus",
            "nvidia/bigvgan_v2_22khz_80band_256x", "indextts/small-files"]


def make_cache(path, *args):
    out = subprocess.run([sys.executable, MAKE_CACHE, str(path)] + list(args),
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def tree(root):
    """Every path under root with what it is: file size and mtime, or link target;
    the module's own state (its lock, its record of verified blobs) left out."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if os.path.relpath(dirpath, root) == os.path.dirname(state.STATE_DIR):
            dirnames[:] = [d for d in dirnames if d != os.path.basename(state.STATE_DIR)]
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            found[rel] = os.readlink(path) if os.path.islink(path) else (st.st_size, st.st_mtime_ns)
    return found


def files_and_links(root):
    """tree() without directories, whose sizes depend on how they were filled."""
    return {p: v for p, v in tree(root).items() if not os.path.isdir(os.path.join(root, p))
            or os.path.islink(os.path.join(root, p))}


def sync(src, dest, check_mode=False, **params):
    return run_real(model_cache_sync.main, dict(params, src=str(src), dest=str(dest)), check_mode=check_mode)


def sync_observing(src, dest, probe, **params):
    """sync() with the real rsync, calling probe(argv) after each run that transfers
    (not the dry run) and probe(None) after each publishing step (renames from the
    plan); returns (result, failed, what probe returned each time)."""
    seen = []
    real_run = basic.AnsibleModule.run_command
    real_move = publish.move

    def observe(module, args, **kwargs):
        out = real_run(module, args, **kwargs)
        if "--dry-run" not in args:
            seen.append(probe(args))
        return out

    def observe_move(*args, **kwargs):
        out = real_move(*args, **kwargs)
        seen.append(probe(None))
        return out

    with mock.patch.object(basic.AnsibleModule, "run_command", observe), \
            mock.patch.object(publish, "move", observe_move):
        result, failed = sync(src, dest, **params)
    return result, failed, seen


def assert_hub_reads_offline(hub):
    """What IndexTTS2 does at start: resolve every repo with no network."""
    info = scan_cache_dir(hub)
    assert info.warnings == []
    assert sorted(r.repo_id for r in info.repos) == sorted(REPO_IDS)
    with mock.patch.dict(os.environ, {"HF_HUB_OFFLINE": "1"}):
        for repo in REPO_IDS:
            path = snapshot_download(repo, cache_dir=hub, local_files_only=True)
            assert os.listdir(path)


@pytest.fixture
def src(tmp_path):
    make_cache(tmp_path / "src", "--weights-mb", "4", "--small-files", "30")
    return tmp_path / "src"


def test_full_sync_then_noop(src, tmp_path):
    dest = tmp_path / "dest"
    result, failed = sync(src, dest)
    assert not failed, result
    assert result["changed"] is True
    assert result["stats"]["files_transferred"] == sum(
        1 for p, v in tree(src).items() if isinstance(v, tuple) and os.path.isfile(os.path.join(src, p)))
    assert result["verified_blobs"] > 0
    assert {p: v for p, v in tree(dest).items() if isinstance(v, str)} == \
        {p: v for p, v in tree(src).items() if isinstance(v, str)}  # relative links, as is
    assert not os.path.islink(os.path.join(dest, W2V, "blobs"))
    assert_hub_reads_offline(str(dest / "hf_cache"))

    again, failed = sync(src, dest)
    assert not failed
    assert again["changed"] is False
    assert again["changed_files"] == [] and again["stats"]["files_transferred"] == 0


def test_check_mode_changes_nothing_and_reports_what_would(src, tmp_path):
    dest = tmp_path / "dest"
    sync(src, dest)
    rev = make_cache(src, "--new-revision", "facebook/w2v-bert-2.0", "--change-percent", "5")
    before = tree(dest)
    result, failed = sync(src, dest, check_mode=True)
    assert not failed and result["changed"] is True
    assert W2V + "/refs/main" in result["changed_files"]
    assert "%s/snapshots/%s/%s" % (W2V, rev["commit"], rev["file"]) in result["changed_files"]
    assert tree(dest) == before


def test_blobs_then_snapshots_then_refs(src, tmp_path):
    """A reader never sees a ref or snapshot pointing at a blob that is not there yet."""
    dest = tmp_path / "dest"
    sync(src, dest)
    rev = make_cache(src, "--new-revision", "facebook/w2v-bert-2.0", "--change-percent", "5")
    new_blob = os.path.basename(os.path.realpath(os.path.join(src, W2V, "snapshots", rev["commit"], rev["file"])))

    def probe(argv):
        with open(os.path.join(dest, W2V, "refs", "main")) as f:
            ref = f.read().strip()
        return (os.path.exists(os.path.join(dest, W2V, "blobs", new_blob)),
                os.path.isdir(os.path.join(dest, W2V, "snapshots", rev["commit"])),
                ref == rev["commit"])

    result, failed, seen = sync_observing(src, dest, probe)
    assert not failed, result
    # The content's run and the plan's beside it (src's snapshot links and refs, read
    # once into the state dir) change no snapshot or ref a reader sees, in whichever
    # order they end; then the plan's snapshots are published, then its refs.
    transfers, published = seen[:-2], seen[-2:]
    assert len(transfers) == 2 and all(not snap and not ref for _blob, snap, ref in transfers), seen
    assert transfers[-1] == (True, False, False), seen
    assert published == [(True, True, False), (True, True, True)]
    runs = [r["run"] for r in result["stats"]["runs"]]
    assert runs[0] == "dry run of the sync"
    assert sorted(runs[1:3]) == ["planning snapshots and refs (read once from src)", "sync (content stage)"]
    assert runs[3:] == ["publishing the planned snapshots", "publishing the planned refs"]
    assert result["source_moved"] is False
    assert_hub_reads_offline(str(dest / "hf_cache"))


def test_delete_off_keeps_extra_files_and_on_removes_them_inside_dest_only(src, tmp_path):
    dest = tmp_path / "dest"
    sync(src, dest)
    (dest / "checkpoints" / "local-notes.txt").write_text("mine\n")
    (tmp_path / "beside-dest.txt").write_text("not in dest\n")
    result = sync(src, dest)[0]
    # Only the directory's mtime is put back to the source's; the extra file stays.
    assert result["changed_files"] == ["checkpoints/"]
    assert (dest / "checkpoints" / "local-notes.txt").exists()
    assert sync(src, dest)[0]["changed"] is False
    result = sync(src, dest, delete=True)[0]
    assert result["changed"] is True and "checkpoints/local-notes.txt" in result["changed_files"]
    assert not (dest / "checkpoints" / "local-notes.txt").exists()
    assert (tmp_path / "beside-dest.txt").exists()
    assert_hub_reads_offline(str(dest / "hf_cache"))


def test_models_subset_syncs_named_repos_and_plain_files(src, tmp_path):
    dest = tmp_path / "dest"
    result, failed = sync(src, dest, models=["funasr/campplus", "models--amphion--MaskGCT"])
    assert not failed, result
    assert sorted(os.listdir(dest / "hf_cache")) == ["models--amphion--MaskGCT", "models--funasr--campplus"]
    assert (dest / "checkpoints" / "gpt.pth").exists()
    # delete=true with a subset leaves the repos it was not asked about alone.
    sync(src, dest)
    result = sync(src, dest, models=["funasr/campplus"], delete=True)[0]
    assert result["changed"] is False
    assert len(os.listdir(dest / "hf_cache")) == len(REPO_IDS)


def test_unknown_model_is_refused_before_any_transfer(src, tmp_path):
    result, failed = sync(src, tmp_path / "dest", models=["acme/nope"])
    assert failed
    assert "models entries 'acme/nope' are not in src" in result["msg"]
    assert not (tmp_path / "dest").exists()


def test_corrupt_source_blob_is_caught_and_never_published_by_a_rerun(src, tmp_path):
    """Issue 13, finding 2: the rerun with nothing changed used to publish the bad blob."""
    blobs = src / W2V / "blobs"
    victim = next(p for p in blobs.iterdir() if len(p.name) == 64)
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    for attempt in (1, 2):
        result, failed = sync(src, dest)
        assert failed, (attempt, result)
        assert "do not match their hash names" in result["msg"]
        assert result["corrupt_blobs"] == [W2V + "/blobs/" + victim.name]
        assert result["changed"] is True  # it wrote the other blobs, and moved the bad one aside
        # Off its final name, kept for inspection; no snapshot or ref points at it.
        assert not (dest / W2V / "blobs" / victim.name).exists()
        assert (dest / state.STATE_DIR / "rejected" / W2V / "blobs" / victim.name).read_bytes() == bytes(data)
        assert "moved to %s/rejected/" % (dest / state.STATE_DIR) in result["msg"]
        assert not (dest / W2V / "snapshots").exists()
        assert not (dest / W2V / "refs").exists()
    # Repaired at the source, the next run completes the cache.
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    result, failed = sync(src, dest)
    assert not failed, result
    assert_hub_reads_offline(str(dest / "hf_cache"))


def test_a_blob_landed_but_never_verified_is_verified_before_a_snapshot_points_at_it(src, tmp_path):
    """A run killed after rsync renamed a blob into place, before verification: the
    next run finds nothing to transfer for it, yet checks it before publishing."""
    dest = tmp_path / "dest"
    result, failed = sync(src, dest)
    assert not failed, result
    blob = next(p for p in (dest / W2V / "blobs").iterdir() if len(p.name) == 64)
    # The state of such a run: the blob in place with wrong content (same size and
    # times as the source's, so rsync's quick check passes it), its snapshots and refs
    # not yet published, and no record that it was ever verified.
    st = blob.stat()
    data = bytearray(blob.read_bytes())
    data[7] ^= 0xFF
    blob.write_bytes(bytes(data))
    os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns))
    for sub in ("snapshots", "refs"):
        for dirpath, dirnames, filenames in os.walk(dest / W2V / sub, topdown=False):
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                os.unlink(os.path.join(dirpath, name))
            os.rmdir(dirpath)
    (dest / state.STATE_DIR / state.VERIFIED_RECORD).unlink()
    result, failed = sync(src, dest)
    assert failed, result
    assert result["corrupt_blobs"] == [W2V + "/blobs/" + blob.name]
    assert not (dest / W2V / "refs").exists()
    result, failed = sync(src, dest)
    assert not failed, result
    assert_hub_reads_offline(str(dest / "hf_cache"))


def test_dest_without_room_is_refused_before_transfer(src, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        result, failed = sync(src, small / "cache")
        assert failed
        assert "bytes free on its filesystem but the sync needs" in result["msg"]
        assert "free space there, grow the filesystem, or choose another dest" in result["msg"]
        assert not (small / "cache").exists()
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_large_first_sync_walks_each_stage_in_order(tmp_path):
    """Over FILES_FROM_LIMIT planned paths, stages walk the tree with their filters."""
    src = tmp_path / "src"
    make_cache(src, "--weights-mb", "2", "--small-files", str(plan.FILES_FROM_LIMIT + 100))
    dest = tmp_path / "dest"

    def probe(argv):
        # names only (the other run may still be renaming its temporary files), and
        # not the plan's in the state dir
        found = [os.path.join(d, n) for d, dirs, files in os.walk(str(dest)) for n in dirs + files
                 if not os.path.relpath(d, str(dest)).startswith(os.path.dirname(state.STATE_DIR))]
        return (argv is None or "--recursive" in argv,
                any("/blobs/" in p for p in found),
                any("/snapshots/" in p for p in found),
                any(p.endswith("/refs/main") for p in found))

    result, failed, seen = sync_observing(src, dest, probe)
    assert not failed, result
    # The plan walks src's metadata once, beside the content's walk (over the limit);
    # once both are done the blobs are in and no snapshot or ref; the plan's snapshots,
    # then its refs, are published from the state dir (renames).
    transfers, published = seen[:-2], seen[-2:]
    assert len(transfers) == 2 and all(walk and not snap and not ref for walk, _blobs, snap, ref in transfers), seen
    assert transfers[-1] == (True, True, False, False)
    assert published == [(True, True, True, False), (True, True, True, True)]
    assert_hub_reads_offline(str(dest / "hf_cache"))
    assert sync(src, dest)[0]["changed"] is False


def test_parallel_runs_share_out_large_files_and_move_each_file_once(tmp_path):
    src = tmp_path / "src"
    # three files over STREAM_MIN_BYTES: w2v-bert's 108 MB, MaskGCT's 60 MB, bigvgan's 36 MB
    make_cache(src, "--weights-mb", "240", "--small-files", "20")
    dest = tmp_path / "dest"

    def probe(argv):
        return argv.count("--files-from=-") if argv else None

    result, failed, seen = sync_observing(src, dest, probe, streams=3)
    assert not failed, result
    # the plan walks src's metadata beside three content runs that each send their list
    # of paths; snapshots and refs are published from the plan (renames, no rsync)
    assert sorted(seen[:-2]) == [0, 1, 1, 1] and seen[-2:] == [None, None]
    content = sorted(r["run"] for r in result["stats"]["runs"] if "content" in r["run"])
    assert content == ["sync (content stage, run %d of 3)" % i for i in (1, 2, 3)]
    regular = [p for p, v in tree(src).items() if isinstance(v, tuple) and os.path.isfile(os.path.join(src, p))]
    assert result["stats"]["files_transferred"] == len(regular)
    assert result["verified_blobs"] == 4
    assert files_and_links(dest) == files_and_links(src)
    assert_hub_reads_offline(str(dest / "hf_cache"))
    assert sync(src, dest, streams=3)[0]["changed"] is False


def test_blob_hasher_takes_landed_blobs_and_forgets_rewritten_ones(tmp_path):
    blobs = tmp_path / "hf_cache" / "models--a--b" / "blobs"
    blobs.mkdir(parents=True)
    data = os.urandom(1 << 20)
    name = hashlib.sha256(data).hexdigest()
    older = blobs / ("0" * 64)
    older.write_bytes(b"already here before the transfer")
    rels = ["hf_cache/models--a--b/blobs/" + name, "hf_cache/models--a--b/blobs/" + older.name]
    hasher = verify.BlobHasher(str(tmp_path), rels).start()
    # landed as rsync lands a file: written under a temporary name, renamed into place
    (blobs / ".landing").write_bytes(data)
    os.rename(blobs / ".landing", blobs / name)
    deadline = time.monotonic() + 10
    while rels[0] in hasher.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    hasher.stop()
    assert hasher.digest(rels[0]) == name
    assert rels[1] in hasher.pending and hasher.digest(rels[1]) is None  # never replaced: not taken
    with open(blobs / name, "r+b") as f:  # rewritten in place after it was hashed
        f.write(b"\0")
    assert hasher.digest(rels[0]) is None


def test_blob_hasher_follows_the_temporary_file_rsync_writes(tmp_path):
    """Hashing keeps pace with the writer, so nothing is left to read when the blob lands."""
    blobs = tmp_path / "hf_cache" / "models--a--b" / "blobs"
    blobs.mkdir(parents=True)
    data = os.urandom(8 << 20)
    name = hashlib.sha256(data).hexdigest()
    rel = "hf_cache/models--a--b/blobs/" + name
    temporary = blobs / (".%s.Xy12Ab" % name)  # rsync's name for it while it is written
    with mock.patch.object(verify.hf, "blob_sha256", side_effect=AssertionError("hashed whole")):
        hasher = verify.BlobHasher(str(tmp_path), [rel]).start()
        with open(temporary, "wb") as f:
            for offset in range(0, len(data), 1 << 20):
                f.write(data[offset:offset + (1 << 20)])
                f.flush()
                time.sleep(0.15)
        followed_while_written = rel in hasher.following
        os.rename(temporary, blobs / name)
        deadline = time.monotonic() + 10
        while hasher.pending and time.monotonic() < deadline:
            time.sleep(0.05)
        hasher.stop()
    assert followed_while_written
    assert hasher.digest(rel) == name


def test_blob_hasher_stopping_after_the_transfer_takes_the_tail_of_what_just_landed(tmp_path):
    """rsync renamed the last blob into place just before the transfer's end: the
    hasher reads the tail written since it last looked, not the whole blob again (it
    used to drop what it followed, and verify hashed that blob anew: 0.25 s on the bench)."""
    blobs = tmp_path / "hf_cache" / "models--a--b" / "blobs"
    blobs.mkdir(parents=True)
    data = os.urandom(8 << 20)
    name = hashlib.sha256(data).hexdigest()
    rel = "hf_cache/models--a--b/blobs/" + name
    temporary = blobs / (".%s.Xy12Ab" % name)
    with mock.patch.object(verify.hf, "blob_sha256", side_effect=AssertionError("hashed whole")):
        hasher = verify.BlobHasher(str(tmp_path), [rel]).start()
        with open(temporary, "wb") as f:
            f.write(data[:1 << 20])
            f.flush()
            deadline = time.monotonic() + 10
            while rel not in hasher.following and time.monotonic() < deadline:
                time.sleep(0.01)
            f.write(data[1 << 20:])
        os.rename(temporary, blobs / name)
        hasher.stop(finish=True)
    assert hasher.digest(rel) == name
    assert hasher.following == {}
    # A blob that did not land (a failed transfer) is left to verify to hash whole.
    other = verify.BlobHasher(str(tmp_path), ["hf_cache/models--a--b/blobs/" + "1" * 64]).start()
    other.stop(finish=True)
    assert other.digest("hf_cache/models--a--b/blobs/" + "1" * 64) is None


def test_bandwidth_limit_keeps_the_file_data_in_one_run(tmp_path):
    """rsync's --bwlimit holds per process: parallel runs would multiply it."""
    src = tmp_path / "src"
    make_cache(src, "--weights-mb", "240", "--small-files", "5")
    result, failed = sync(src, tmp_path / "dest", streams=3, bwlimit="1G")
    assert not failed, result
    assert [r["run"] for r in result["stats"]["runs"]] == [
        "dry run of the sync", "planning snapshots and refs (read once from src)", "sync (content stage)",
        "publishing the planned snapshots", "publishing the planned refs"]


@pytest.mark.parametrize("dir_times, changed", [(False, False), (True, True)])
def test_files_an_application_adds_count_as_a_change_only_with_dir_times(tmp_path, dir_times, changed):
    """A release tree: the web UI writes outputs/ on the node. With dir_times=false its
    files leave the rerun unchanged (nothing of the source's differs); with directory
    times kept, the directory that gained a file is stamped back, a real change."""
    src = tmp_path / "release"
    (src / "outputs").mkdir(parents=True)
    (src / "webui.py").write_text("print('hi')\n")
    dest = tmp_path / "node"
    result, failed = sync(src, dest, dir_times=dir_times)
    assert not failed and result["changed"] is True
    time.sleep(0.01)
    (dest / "outputs" / "spk_1.wav").write_bytes(b"RIFF")
    result, failed = sync(src, dest, dir_times=dir_times)
    assert not failed and result["changed"] is changed, result["changed_files"]
    assert (dest / "outputs" / "spk_1.wav").exists()


def test_a_new_release_beside_the_current_one_links_what_is_identical(tmp_path):
    """link_dest: a new release pulled beside the one in use reuses its identical files
    (hard links, nothing moved) and leaves the current one untouched."""
    old = tmp_path / "golden" / "old"
    (old / "lib").mkdir(parents=True)
    (old / "lib" / "torch.so").write_bytes(b"T" * 65536)
    (old / "webui.py").write_text("version = 1\n")
    node_old = tmp_path / "node" / "old"
    result, failed = sync(old, node_old)
    assert not failed
    new = tmp_path / "golden" / "new"
    subprocess.run(["cp", "-a", str(old), str(new)], check=True)
    (new / "webui.py").write_text("version = 2\n")
    node_new = tmp_path / "node" / "new"
    result, failed = sync(new, node_new, link_dest=[str(node_old)])
    assert not failed and result["changed"] is True
    assert os.stat(node_new / "lib" / "torch.so").st_ino == os.stat(node_old / "lib" / "torch.so").st_ino
    assert (node_new / "webui.py").read_text() == "version = 2\n"
    assert (node_old / "webui.py").read_text() == "version = 1\n"
    again, failed = sync(new, node_new, link_dest=[str(node_old)])
    assert not failed and again["changed"] is False


@pytest.mark.parametrize("basis, message", [
    ("relative/dir", "link_dest entry 'relative/dir' is not an absolute path of a directory"),
    ("/nonexistent/release", "link_dest entry '/nonexistent/release' is not an absolute path of a directory"),
])
def test_bad_link_dest_is_refused_naming_it(tmp_path, basis, message):
    (tmp_path / "src").mkdir()
    result, failed = sync(tmp_path / "src", tmp_path / "dest", link_dest=[basis])
    assert failed and message in result["msg"]


def test_one_run_per_dest_a_second_waits_then_fails_naming_the_holder(src, tmp_path):
    """Issue 13, finding 8: a lock in dest that the timer and Ansible share."""
    import fcntl
    dest = tmp_path / "dest"
    result, failed = sync(src, dest)
    assert not failed, result
    lock = dest / state.STATE_DIR / state.LOCK_FILE
    assert lock.read_text().startswith("pid %d on " % os.getpid())
    (src / "hf_cache" / "added.txt").write_text("new\n")
    with open(str(lock), "r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # what a running sync holds
        held.truncate(0)
        held.write("pid 4242 on golden-timer since 2026-11-22T03:00:00+0000\n")
        held.flush()
        started = time.monotonic()
        result, failed = sync(src, dest, lock_timeout=2)
        waited = time.monotonic() - started
    assert failed
    assert result["msg"] == ("dest %s is being synced by another run (pid 4242 on golden-timer since "
                             "2026-11-22T03:00:00+0000) that did not finish within lock_timeout=2 s; wait for it "
                             "(journalctl -u indextts-cache-sync for the timer's), or raise lock_timeout" % dest)
    assert waited >= 2
    assert result["changed"] is False and not (dest / "hf_cache" / "added.txt").exists()
    # Released, the next run proceeds.
    result, failed = sync(src, dest, lock_timeout=0)
    assert not failed, result
    assert (dest / "hf_cache" / "added.txt").read_text() == "new\n"


def test_links_that_leave_the_repo_are_refused_and_nothing_is_written(src, tmp_path):
    """Issue 13, finding 3: a hostile source publishes blobs/sub -> outside, then a snapshot
    linking through it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    repo = src / W2V
    os.symlink(str(outside), str(repo / "blobs" / "sub"))
    snap = next((repo / "snapshots").iterdir())
    os.symlink("../../blobs/sub/x", str(snap / "evil.bin"))
    os.symlink("../../../../../../../etc/passwd", str(snap / "passwd"))
    dest = tmp_path / "dest"
    result, failed = sync(src, dest)
    assert failed
    assert result["msg"].startswith("src %s on this host holds links inside Hugging Face repos that the cache "
                                    "layout does not have, which would reach outside dest: " % src)
    # The dry run reads every link's target: all three are refused before anything moves.
    snapshot_links = ["%s/snapshots/%s/evil.bin -> ../../blobs/sub/x" % (W2V, snap.name),
                      "%s/snapshots/%s/passwd -> ../../../../../../../etc/passwd" % (W2V, snap.name)]
    assert sorted(result["escaping_links"]) == sorted(["%s/blobs/sub (a link outside snapshots/)" % W2V]
                                                      + snapshot_links)
    assert result["changed"] is False
    assert os.listdir(str(outside)) == []
    assert not (dest / W2V).exists()
    # Without the directory link, the snapshot links alone: refused as well, with the
    # targets as they are on disk (the name and target split by the target's length).
    os.unlink(str(repo / "blobs" / "sub"))
    result, failed = sync(src, dest)
    assert failed
    assert sorted(result["escaping_links"]) == sorted(snapshot_links)
    assert "nothing was changed" in result["msg"]
    assert result["changed"] is False
    assert os.listdir(str(outside)) == []
    assert not (dest / W2V).exists()


def test_names_are_names(src, tmp_path):
    """Issue 13, finding 6: UTF-8, a newline, a tab, ' -> ' and a backslash before '#' in
    file names and in snapshot link names round-trip, and a rerun has nothing to do."""
    repo = src / W2V
    snap = next((repo / "snapshots").iterdir())
    blob = next(p for p in (repo / "blobs").iterdir() if len(p.name) == 64)
    odd = ["ünïcode.bin", "new\nline.bin", "tab\tname.bin", "a -> b.bin", "back\\#001slash.bin", "ctl\x01.bin"]
    for name in odd:
        os.symlink("../../blobs/" + blob.name, str(snap / name))
        (src / "checkpoints" / name).write_bytes(name.encode())
    dest = tmp_path / "dest"
    result, failed = sync(src, dest)
    assert not failed, result
    for name in odd:
        assert os.readlink(str(dest / W2V / "snapshots" / snap.name / name)) == "../../blobs/" + blob.name
        assert (dest / "checkpoints" / name).read_bytes() == name.encode()
    assert files_and_links(dest) == files_and_links(src)
    again, failed = sync(src, dest)
    assert not failed and again["changed"] is False, again
    assert_hub_reads_offline(str(dest / "hf_cache"))


def resume_a_killed_runs_temporary_file(src, dest, **params):
    """Sync, then leave what SIGKILL leaves (half a blob under rsync's temporary name),
    and sync again: (result of the second sync, size of the blob)."""
    result, failed = sync(src, dest, **params)
    assert not failed, result
    blobs = dest / W2V / "blobs"
    blob = max((p for p in blobs.iterdir() if len(p.name) == 64), key=lambda p: p.stat().st_size)
    data = blob.read_bytes()
    blob.unlink()
    temp = blobs / (".%s.Xy3kQz" % blob.name)
    temp.write_bytes(data[:len(data) // 2])
    result, failed = sync(src, dest, **params)
    assert not failed, result
    assert "kept 1 interrupted blob transfer(s) as partial files to resume" in result["leftovers"]
    assert not temp.exists()
    assert blob.read_bytes() == data
    partial = blobs / state.PARTIAL_DIR
    assert not partial.exists() or not os.listdir(str(partial))
    assert_hub_reads_offline(str(dest / "hf_cache"))
    return result, len(data)


def test_a_killed_runs_temporary_file_is_resumed(src, tmp_path):
    """Issue 13, finding 5: rsync's .<name>.XXXXXX of a killed run becomes the partial
    file the next run resumes from, instead of staying forever. (A local rsync copies
    whole files; over SSH the first half is not sent again: the SSH tests check that.)"""
    resume_a_killed_runs_temporary_file(src, tmp_path / "dest")


def test_a_disk_that_fills_during_the_transfer_is_named_and_not_retried(src, tmp_path):
    """Issue 13, finding 7: the pre-check passes, then something else takes the space."""
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(small)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    real_run = basic.AnsibleModule.run_command
    once = threading.Lock()  # the content's run and the plan's start at once

    def fill_then_run(module, args, **kwargs):
        with once:
            if "--dry-run" not in args and not (small / "filler").exists():
                st = os.statvfs(str(small))
                (small / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 2 * 1024 * 1024))
        return real_run(module, args, **kwargs)

    try:
        with mock.patch.object(basic.AnsibleModule, "run_command", fill_then_run):
            result, failed = sync(src, small / "cache", retries=3, retry_delay=0)
        assert failed
        assert result["msg"].startswith("sync (content stage) failed after 1 attempt(s): dest %s ran out of "
                                        "space: the sync needs " % (small / "cache")), result["msg"]
        assert "are free now, and partial files of interrupted transfers hold" in result["msg"]
        assert result["changed"] is True
        assert not (small / "cache" / W2V / "refs").exists()
        # The other writer gives its space back and the filesystem grows: a rerun
        # completes, resuming what the partial files hold, and leaves none behind.
        (small / "filler").unlink()
        subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)
        result, failed = sync(src, small / "cache")
        assert not failed, result
        assert_hub_reads_offline(str(small / "cache" / "hf_cache"))
        assert files_and_links(small / "cache") == files_and_links(src)
        assert [p for p in tree(small / "cache") if state.PARTIAL_DIR in p] == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_the_plan_is_read_while_the_content_still_moves(src, tmp_path):
    """What follows from the plan alone (its links' targets, escaping links, its refs,
    its directories' times) is worked out as soon as the plan's run ends, while the
    content's runs still move data: after them, it cost 0.2 s of a 20,000-link sync."""
    real_run = basic.AnsibleModule.run_command
    real_read_links = publish.read_links
    plan_read = threading.Event()
    content_saw_it = []

    def run(module, args, **kwargs):
        out = real_run(module, args, **kwargs)
        if "--dry-run" not in args and not any(a.startswith("--compare-dest=") for a in args):
            content_saw_it.append(plan_read.wait(20))  # the content's run ends only once the plan was read
        return out

    def read_links(*args, **kwargs):
        plan_read.set()
        return real_read_links(*args, **kwargs)

    dest = tmp_path / "dest"
    with mock.patch.object(basic.AnsibleModule, "run_command", run), mock.patch.object(publish, "read_links", read_links):
        result, failed = sync(src, dest)
    assert not failed, result
    assert content_saw_it and all(content_saw_it), content_saw_it
    assert files_and_links(dest) == files_and_links(src)
    assert_hub_reads_offline(str(dest / "hf_cache"))
    assert sync(src, dest)[0]["changed"] is False


def test_an_rsync_sync_does_not_load_the_swarm():
    """libtorrent and the torrent code cost every run's start; only p2p needs them."""
    code = ("import sys\n"
            "from ansible_collections.indextts.deploy.plugins.modules import model_cache_sync\n"
            "from ansible_collections.indextts.deploy.plugins.module_utils._model_cache import sync\n"
            "assert sync.transport_class('rsync').__name__ == 'RsyncTransport'\n"
            "print(sorted(m for m in sys.modules if 'torrent' in m or m.endswith('.swarm')))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))).stdout
    assert out.strip() == "[]"


def sync_changing_src(src, dest, change, when="after the plan"):
    """sync() with change() applied to src "after the plan" read src's snapshot links
    and refs, the content's runs held back until then (a scheduled re-sync overlapping
    an update of golden), or "before the plan": between the dry run and the runs of
    the plan and the content, which start together."""
    real_run = basic.AnsibleModule.run_command
    done = []
    once = threading.Lock()
    plan_read = threading.Event()

    def run(module, args, **kwargs):
        if "--dry-run" in args:
            return real_run(module, args, **kwargs)
        is_plan = any(a.startswith("--compare-dest=") for a in args)
        with once:
            if when == "before the plan" and not done:
                done.append(change())
        if not is_plan:
            assert plan_read.wait(60), "the plan's run never ended"
            return real_run(module, args, **kwargs)
        out = real_run(module, args, **kwargs)
        if when == "after the plan":
            done.append(change())
        plan_read.set()
        return out

    with mock.patch.object(basic.AnsibleModule, "run_command", run):
        result, failed = sync(src, dest)
    assert done, "the plan's run never started"
    return result, failed


def read_ref(root, repo_dir):
    with open(os.path.join(str(root), repo_dir, "refs", "main")) as f:
        return f.read().strip()


def test_a_source_that_gains_a_revision_mid_run_gives_the_planned_state_then_the_new_one(src, tmp_path):
    """Issue 13, finding 1: the refs stage used to publish whatever src said at that
    moment, naming a snapshot whose blob this run never fetched."""
    dest = tmp_path / "dest"
    assert not sync(src, dest)[1]
    rev2 = make_cache(src, "--new-revision", "facebook/w2v-bert-2.0", "--change-percent", "5")
    result, failed = sync_changing_src(
        src, dest, lambda: make_cache(src, "--new-revision", "facebook/w2v-bert-2.0", "--change-percent", "5"))
    assert not failed, result
    rev3_commit = read_ref(src, W2V)
    assert rev3_commit != rev2["commit"]
    assert read_ref(dest, W2V) == rev2["commit"]  # the plan, consistent
    assert result["published_refs"] == {W2V + "/refs/main": rev2["commit"]}
    assert not (dest / W2V / "snapshots" / rev3_commit).exists()
    assert_hub_reads_offline(str(dest / "hf_cache"))
    result, failed = sync(src, dest)
    assert not failed, result
    assert read_ref(dest, W2V) == rev3_commit
    assert_hub_reads_offline(str(dest / "hf_cache"))


def test_a_source_that_gains_a_revision_before_the_plan_is_read_gives_the_new_one_whole(src, tmp_path):
    """src moves on between the dry run and the plan: the plan names a snapshot whose
    blobs the dry run never listed; they are fetched too, and the newer state is
    published whole, saying the source moved."""
    dest = tmp_path / "dest"
    assert not sync(src, dest)[1]
    rev2 = make_cache(src, "--new-revision", "facebook/w2v-bert-2.0", "--change-percent", "5")
    result, failed = sync_changing_src(
        src, dest, lambda: make_cache(src, "--new-revision", "facebook/w2v-bert-2.0", "--change-percent", "5"),
        when="before the plan")
    assert not failed, result
    rev3_commit = read_ref(src, W2V)
    assert rev3_commit != rev2["commit"]
    assert result["published_refs"] == {W2V + "/refs/main": rev3_commit}
    assert result["source_moved"] is True
    assert read_ref(dest, W2V) == rev3_commit
    assert_hub_reads_offline(str(dest / "hf_cache"))
    assert sync(src, dest)[0]["changed"] is False


def test_a_source_that_drops_the_planned_revision_mid_run_publishes_nothing_of_it(src, tmp_path):
    """The planned revision is withdrawn at the source (ref reset, its snapshot and blob
    removed) while this run fetches content: the run fails, naming the change, and dest
    keeps its earlier consistent state."""
    dest = tmp_path / "dest"
    assert not sync(src, dest)[1]
    rev2 = make_cache(src, "--new-revision", "facebook/w2v-bert-2.0", "--change-percent", "5")
    new_blob = os.path.realpath(os.path.join(src, W2V, "snapshots", rev2["commit"], rev2["file"]))

    def withdraw():
        snap = src / W2V / "snapshots" / rev2["commit"]
        for dirpath, dirnames, filenames in os.walk(str(snap), topdown=False):
            for name in filenames:
                os.unlink(os.path.join(dirpath, name))
            os.rmdir(dirpath)
        os.unlink(new_blob)
        (src / W2V / "refs" / "main").write_text(rev2["old_commit"])

    result, failed = sync_changing_src(src, dest, withdraw)
    assert failed
    assert "a file of this run's plan, is gone from src on this host: src changed during the sync" in result["msg"]
    assert read_ref(dest, W2V) == rev2["old_commit"]
    assert not (dest / W2V / "snapshots" / rev2["commit"]).exists()
    assert_hub_reads_offline(str(dest / "hf_cache"))
    result, failed = sync(src, dest)
    assert not failed, result
    assert_hub_reads_offline(str(dest / "hf_cache"))


def test_everything_in_dest_belongs_to_the_cache_owner_the_module_state_too(src, tmp_path):
    """owner/group: the files rsync lands, and the lock and record this module keeps."""
    import grp
    import pwd
    if os.geteuid() != 0:
        pytest.skip("owner needs root")
    user = pwd.getpwnam("nobody")
    group = grp.getgrgid(user.pw_gid)
    dest = tmp_path / "dest"
    result, failed = sync(src, dest, owner="nobody", group=group.gr_name)
    assert not failed, result
    state_dir = dest / state.STATE_DIR
    assert (state_dir / state.LOCK_FILE).exists() and (state_dir / state.VERIFIED_RECORD).exists()
    foreign = []
    for dirpath, dirnames, filenames in os.walk(str(dest)):
        for name in [""] + dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_uid, st.st_gid) != (user.pw_uid, group.gr_gid):
                foreign.append(os.path.join(dirpath, name))
    assert foreign == []
    assert os.lstat(str(tmp_path)).st_uid == 0  # dest's parent is not the cache's
