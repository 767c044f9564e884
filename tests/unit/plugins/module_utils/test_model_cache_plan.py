# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""model_cache_sync's planning and publishing checks, without a transfer: on the dry
run and listing captured from real rsync 3.2.7 (fixtures/rsync/capture.sh), and on
small caches made in tmp_path."""

import os

import pytest

from ansible_collections.indextts.deploy.plugins.module_utils import _rsync
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache import plan, publish

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "rsync")
REPO = "hf_cache/models--org--m"
OLD, NEW = "a" * 40, "b" * 40
BLOB_OLD, BLOB_NEW = "1" * 64, "2" * 64


def captured(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return _rsync.parse_itemized(f.read())


def link(path, target=None):
    change = {"path": path, "type": "symlink", "item": "cL+++++++++"}
    if target is not None:
        change["target"] = target
    return change


def blob(path, size):
    return {"path": path, "type": "file", "item": ">f+++++++++", "size": size}


def make_repo(root, commit, blob_name, content=b"x"):
    """A hub repo in root with refs/main -> commit, and snapshot file w.bin -> blob."""
    repo = os.path.join(root, REPO)
    os.makedirs(os.path.join(repo, "blobs"), exist_ok=True)
    os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
    os.makedirs(os.path.join(repo, "snapshots", commit), exist_ok=True)
    with open(os.path.join(repo, "blobs", blob_name), "wb") as f:
        f.write(content)
    with open(os.path.join(repo, "refs", "main"), "w") as f:
        f.write(commit)
    os.symlink("../../blobs/" + blob_name, os.path.join(repo, "snapshots", commit, "w.bin"))


def test_stages_of_a_full_dry_run():
    changes = captured("dry-run-full.txt")
    stages = {}
    for c in changes:
        if c["type"] != "dir":
            stages.setdefault(plan.stage_of(c), set()).add(c["type"])
    assert stages == {"content": {"file"}, "snapshots": {"symlink"}, "refs": {"file"}}
    assert plan.has_metadata(changes)
    refs = [p for p in plan.metadata_entries(changes) if "/refs/" in p]
    assert sorted(refs) == ["hf_cache/%s/refs/main" % r for r in (
        "models--amphion--MaskGCT", "models--facebook--w2v-bert-2.0", "models--funasr--campplus",
        "models--nvidia--bigvgan_v2_22khz_80band_256x")]


def test_content_runs_leave_links_and_refs_to_the_plan():
    changes = captured("dry-run-full.txt")
    runs, deleting = plan.content_runs(changes)
    assert not deleting
    assert len(runs) == 1
    paths, exclude = runs[0]
    assert exclude == []
    assert "checkpoints/gpt.pth" in paths
    assert not any("/snapshots/" in p or "/refs/" in p for p in paths)


def test_content_runs_share_big_files_by_size_and_exclude_them_from_the_first():
    mib = 1024 * 1024
    changes = [blob("a/big1", 300 * mib), blob("a/big2", 200 * mib), blob("a/big3", 100 * mib),
               blob("a/small", 10), {"path": "gone", "type": "deleted", "item": "*deleting"}]
    runs, deleting = plan.content_runs(changes, streams=2)
    assert deleting
    # Largest first, each to the least loaded run: big1 to the empty second run, then
    # big2 and big3 to the first (which holds only small files so far).
    assert runs == [(["a/small", "a/big2", "a/big3"], [_rsync.exclude_rule("a/big1")]), (["a/big1"], [])]
    # One stream, or a single big file: one run with everything.
    assert plan.content_runs(changes, streams=1)[0] == [(["a/big1", "a/big2", "a/big3", "a/small"], [])]


def test_a_run_with_many_paths_or_a_link_dest_walks_the_tree():
    many = [blob("f%d" % i, 1) for i in range(plan.FILES_FROM_LIMIT + 1)]
    assert plan.content_runs(many)[0] == [(None, [])]
    few = [blob("f", 1)]
    assert plan.content_runs(few)[0] == [(["f"], [])]
    assert plan.content_runs(few, walk_first=True)[0] == [(None, [])]
    assert plan.content_runs(few, extra=["hf_cache/models--o--m/blobs/x"])[0] == [
        (["f", "hf_cache/models--o--m/blobs/x"], [])]


def test_escaping_links_are_named():
    snap = REPO + "/snapshots/" + OLD + "/"
    changes = [link(snap + "ok.bin", "../../blobs/" + BLOB_OLD),
               link(snap + "sub/deep.bin", "../../../blobs/" + BLOB_OLD),
               link(snap + "passwd", "../../../../../../etc/passwd"),
               link(snap + "other", "../../../models--org--x/blobs/" + BLOB_OLD),
               link(snap + "nested", "../../blobs/sub/" + BLOB_OLD),
               link(REPO + "/blobs/sub", "/etc"),
               link(snap + "unread")]  # the dry run does not read targets
    assert plan.escaping_links(changes) == [
        snap + "passwd -> ../../../../../../etc/passwd",
        snap + "other -> ../../../models--org--x/blobs/" + BLOB_OLD,
        snap + "nested -> ../../blobs/sub/" + BLOB_OLD,
        REPO + "/blobs/sub (a link outside snapshots/)"]
    # Outside Hugging Face repos (a release's virtualenv) links are the tree's business.
    assert plan.escaping_links([link("venv/bin/python", "/usr/bin/python3")]) == []


def test_needed_bytes_count_whole_blocks():
    changes = [blob("a", 1), blob("b", 4096), blob("c", 4097), link("l", "x")]
    assert plan.needed_bytes(changes, 4096) == 4096 + 4096 + 8192


def test_missing_blobs_are_those_of_a_revision_the_dry_run_did_not_see(tmp_path):
    dest = str(tmp_path)
    make_repo(dest, OLD, BLOB_OLD)
    staged = [link(REPO + "/snapshots/%s/w.bin" % OLD, "../../blobs/" + BLOB_OLD),
              link(REPO + "/snapshots/%s/w.bin" % NEW, "../../blobs/" + BLOB_NEW),
              link(REPO + "/snapshots/%s/v.bin" % NEW, "../../blobs/" + "3" * 64)]
    content = {REPO + "/blobs/" + "3" * 64}
    assert plan.missing_blobs(dest, staged, content) == [REPO + "/blobs/" + BLOB_NEW]
    assert plan.linked_blobs(staged) == [REPO + "/blobs/" + b for b in (BLOB_OLD, BLOB_NEW, "3" * 64)]


def test_seed_candidates_pair_a_new_blob_with_the_old_one_of_the_same_file(tmp_path):
    dest = str(tmp_path)
    make_repo(dest, OLD, BLOB_OLD)
    changes = [link(REPO + "/snapshots/%s/w.bin" % NEW, "../../blobs/" + BLOB_NEW),
               link(REPO + "/snapshots/%s/new-file.bin" % NEW, "../../blobs/" + "3" * 64),
               link(REPO + "/snapshots/%s/w.bin" % OLD, "../../blobs/" + BLOB_OLD)]
    assert plan.seed_candidates(dest, changes) == [
        {"blob": REPO + "/blobs/" + BLOB_NEW, "basis": REPO + "/blobs/" + BLOB_OLD}]


def test_seed_candidates_ask_dest_nothing_per_link_of_a_repo_it_has_no_snapshots_of(tmp_path, monkeypatch):
    """A full sync plans 20,000 links into a dest that has none of them."""
    dest = str(tmp_path)
    make_repo(dest, OLD, BLOB_OLD)
    other = "hf_cache/models--org--other"
    changes = [link("%s/snapshots/%s/f%05d" % (other, NEW, i), "../../blobs/%040x" % i) for i in range(100)]
    changes.append(link(REPO + "/snapshots/%s/w.bin" % NEW, "../../blobs/" + BLOB_NEW))
    asked = []
    real_lexists = os.path.lexists
    monkeypatch.setattr(os.path, "lexists", lambda p: (asked.append(p), real_lexists(p))[1])
    assert plan.seed_candidates(dest, changes) == [
        {"blob": REPO + "/blobs/" + BLOB_NEW, "basis": REPO + "/blobs/" + BLOB_OLD}]
    assert asked == [os.path.join(dest, REPO, "blobs", BLOB_NEW)]


def test_repos_in_a_captured_listing():
    with open(os.path.join(FIXTURES, "list-repos.txt")) as f:
        assert plan.repos_in_listing(f.read()) == {
            "models--amphion--MaskGCT", "models--facebook--w2v-bert-2.0", "models--funasr--campplus",
            "models--indextts--small-files", "models--nvidia--bigvgan_v2_22khz_80band_256x"}


def test_a_plan_is_published_only_when_dest_can_complete_it(tmp_path):
    """check_refs (when the plan is read) and absent_blobs (after the content) between them."""
    dest, plan_dir = str(tmp_path / "dest"), str(tmp_path / "plan")
    make_repo(dest, OLD, BLOB_OLD)
    os.makedirs(os.path.join(plan_dir, REPO, "refs"))
    os.makedirs(os.path.join(plan_dir, REPO, "snapshots", NEW))
    with open(os.path.join(plan_dir, REPO, "refs", "main"), "w") as f:
        f.write(NEW)
    os.symlink("../../blobs/" + BLOB_NEW, os.path.join(plan_dir, REPO, "snapshots", NEW, "w.bin"))
    staged = publish.read_links(plan_dir, [{"path": REPO + "/snapshots/%s/w.bin" % NEW, "type": "symlink"},
                                           {"path": REPO + "/refs/main", "type": "file"}])
    assert staged[0]["target"] == "../../blobs/" + BLOB_NEW  # read from the link, not parsed
    assert publish.check_refs(dest, plan_dir, staged) == ({REPO + "/refs/main": NEW}, [])
    assert publish.absent_blobs(dest, staged) == [
        "%s/snapshots/%s/w.bin -> ../../blobs/%s: no such blob in dest" % (REPO, NEW, BLOB_NEW)]
    with open(os.path.join(dest, REPO, "blobs", BLOB_NEW), "w") as f:
        f.write("y")
    assert publish.absent_blobs(dest, staged) == []
    # A ref naming a snapshot that neither dest nor the plan holds: src dropped it.
    with open(os.path.join(plan_dir, REPO, "refs", "main"), "w") as f:
        f.write("c" * 40)
    refs, unresolved = publish.check_refs(dest, plan_dir, staged[1:])
    assert unresolved == ["%s/refs/main names snapshot cccccccccccc, which src no longer has" % REPO]


def test_absent_blobs_list_each_blobs_dir_once(tmp_path, monkeypatch):
    """After the content, publishing asks whether the plan's 20,000 links have their
    blobs: one listing per blobs dir, not a look per blob; a link to a directory, or
    to a blob dest lacks, is named."""
    dest = str(tmp_path)
    make_repo(dest, OLD, BLOB_OLD)
    os.makedirs(os.path.join(dest, REPO, "blobs", BLOB_NEW))  # not a file
    os.symlink(BLOB_OLD, os.path.join(dest, REPO, "blobs", "4" * 64))  # a link to a file is one
    snap = REPO + "/snapshots/" + NEW + "/"
    staged = [link(snap + "f%03d" % i, "../../blobs/" + BLOB_OLD) for i in range(50)]
    staged += [link(snap + "dir", "../../blobs/" + BLOB_NEW), link(snap + "gone", "../../blobs/" + "3" * 64),
               link(snap + "linked", "../../blobs/" + "4" * 64), link(snap + "other", "../../../models--o--x/blobs/a"),
               {"path": REPO + "/refs/main", "type": "file"}]
    listed = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p: (listed.append(p), real_scandir(p))[1])
    monkeypatch.setattr(os.path, "isfile", lambda p: pytest.fail("asked about %s" % p))
    assert publish.absent_blobs(dest, staged) == [
        snap + "dir -> ../../blobs/" + BLOB_NEW + ": no such blob in dest",
        snap + "gone -> ../../blobs/" + "3" * 64 + ": no such blob in dest",
        snap + "other -> ../../../models--o--x/blobs/a: no such blob in dest"]
    assert sorted(listed) == sorted([os.path.join(dest, REPO, "blobs"), os.path.join(dest, "hf_cache/models--o--x/blobs")])


def test_move_renames_a_new_snapshot_whole_and_a_new_link_into_an_existing_one(tmp_path, monkeypatch):
    dest, plan_dir = str(tmp_path / "dest"), str(tmp_path / "plan")
    make_repo(dest, OLD, BLOB_OLD)
    entries = []
    # In the plan: snapshot OLD (which dest has) gains x.bin; NEW (which dest lacks)
    # has many files, a nested one and a name sorting between NEW and NEW/... ("-").
    for commit, names in ((OLD, ["w.bin", "x.bin"]), (NEW, ["w.bin", "sub/y.bin"] + ["f%03d" % i for i in range(50)]),
                          (NEW + "-x", ["w.bin"])):
        for name in names:
            path = "%s/snapshots/%s/%s" % (REPO, commit, name)
            os.makedirs(os.path.dirname(os.path.join(plan_dir, path)), exist_ok=True)
            os.symlink("../../blobs/" + BLOB_OLD, os.path.join(plan_dir, path))
            if not (commit == OLD and name == "w.bin"):  # dest has that one already
                entries.append(link(path))
    renames = []
    real_rename = os.rename
    monkeypatch.setattr(os, "rename", lambda a, b: (renames.append(os.path.relpath(b, dest)), real_rename(a, b)))
    asked = []
    real_lexists = os.path.lexists
    monkeypatch.setattr(os.path, "lexists", lambda p: (asked.append(p), real_lexists(p))[1])
    moved, _seconds = publish.move(dest, plan_dir, entries[::-1])  # in any order
    # dest is asked about each directory once, not once per entry below it (20,000 links).
    assert len(asked) == len(set(asked)) < 12
    assert sorted(renames) == sorted(["%s/snapshots/%s" % (REPO, NEW), "%s/snapshots/%s-x" % (REPO, NEW),
                                      "%s/snapshots/%s/x.bin" % (REPO, OLD)])
    assert len(moved) == len(entries)
    for c in entries:
        assert os.readlink(os.path.join(dest, c["path"])) == "../../blobs/" + BLOB_OLD
    assert os.readlink(os.path.join(dest, REPO, "snapshots", OLD, "w.bin")) == "../../blobs/" + BLOB_OLD
