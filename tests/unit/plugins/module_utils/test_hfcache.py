# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Hugging Face cache helpers, on caches written by tests/fixtures/make_hf_cache.py
(the real layout), and their rsync filters checked with real rsync."""

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.indextts.deploy.plugins.module_utils import _hfcache as hf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
MAKE_CACHE = os.path.join(ROOT, "tests", "fixtures", "make_hf_cache.py")
W2V = "hf_cache/models--facebook--w2v-bert-2.0"


def make_cache(path, *args):
    out = subprocess.run([sys.executable, MAKE_CACHE, str(path)] + list(args),
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    make_cache(root, "--weights-mb", "4", "--small-files", "20")
    return root


@pytest.mark.parametrize("entry, expected", [
    ("facebook/w2v-bert-2.0", "models--facebook--w2v-bert-2.0"),
    ("models--amphion--MaskGCT", "models--amphion--MaskGCT"),
    ("gpt2", "models--gpt2"),
    ("datasets/org/data", "datasets--org--data"),
    (" funasr/campplus/ ", "models--funasr--campplus"),
    ("org/name/extra", None),
    ("../etc", None),
    ("", None),
])
def test_repo_dir_name(entry, expected):
    assert hf.repo_dir_name(entry) == expected


def test_split_repo_path_and_snapshot_file():
    path = W2V + "/snapshots/c1/sub/model.bin"
    assert hf.split_repo_path(path) == (W2V, "snapshots", "c1/sub/model.bin")
    assert hf.snapshot_file(path) == (W2V, "c1", "sub/model.bin")
    assert hf.split_repo_path("checkpoints/gpt.pth") is None
    assert hf.snapshot_file(W2V + "/blobs/abc") is None


@pytest.mark.parametrize("path, expected", [
    ("/" + W2V + "/", (W2V, "", "")),
    (W2V + "//snapshots/c1", (W2V, "", "snapshots/c1")),
    ("a/models--x/models--y/blobs/b", ("a/models--x", "models--y", "blobs/b")),  # the first repo dir
    ("a/xmodels--x/models--y--z/refs/main", ("a/xmodels--x/models--y--z", "refs", "main")),
    ("models--/blobs", None),
    ("models---a/blobs", None),
    ("a/models--a-b.c_d/snapshots/c/x/y", ("a/models--a-b.c_d", "snapshots", "c/x/y")),
    ("datasets--a/x/spaces--b", ("datasets--a", "x", "spaces--b")),
    ("models--a--b\n/blobs", ("models--a--b\n", "blobs", "")),  # as REPO_DIR_RE's "$" allows
    ("models--a--b\nx/blobs", None),
    ("", None),
])
def test_split_repo_path_splits_at_the_first_repo_dir(path, expected):
    assert hf.split_repo_path(path) == expected
    parts = path.strip("/").split("/")  # the plain definition, part by part
    first = next((i for i, part in enumerate(parts) if hf.is_repo_dir(part)), None)
    assert expected == (None if first is None else (
        "/".join(parts[:first + 1]), parts[first + 1] if len(parts) > first + 1 else "", "/".join(parts[first + 2:])))


def test_link_target_path_stays_inside_the_root():
    assert hf.link_target_path(W2V + "/snapshots/c1/sub/m.bin", "../../../blobs/ab") == W2V + "/blobs/ab"
    assert hf.link_target_path("a/b", "/etc/passwd") is None
    assert hf.link_target_path("a/b", "../../x") is None


def test_lfs_blobs_are_named_by_their_sha256(cache):
    blobs = os.path.join(cache, W2V, "blobs")
    lfs = [n for n in os.listdir(blobs) if hf.is_lfs_blob(n)]
    assert lfs and len(lfs) < len(os.listdir(blobs))  # the small files are git blobs
    for name in lfs:
        assert hf.blob_sha256(os.path.join(blobs, name)) == name
    assert not hf.is_lfs_blob("a32989435d2a57dda2629fd00a8b169c2d992766")


def test_index_snapshots_prefers_the_revision_a_ref_names(tmp_path):
    make_cache(tmp_path, "--weights-mb", "2", "--small-files", "0")
    first = open(os.path.join(tmp_path, W2V, "refs", "main")).read()
    rev = make_cache(tmp_path, "--new-revision", "facebook/w2v-bert-2.0", "--change-percent", "5")
    index = hf.index_snapshots(str(tmp_path))
    current = os.path.realpath(os.path.join(tmp_path, W2V, "snapshots", rev["commit"], rev["file"]))
    assert os.path.join(str(tmp_path), index[W2V][rev["file"]]) == current
    # With the ref back on the first revision, that revision's blob is the basis.
    with open(os.path.join(tmp_path, W2V, "refs", "main"), "w") as f:
        f.write(first)
    old = os.path.realpath(os.path.join(tmp_path, W2V, "snapshots", first, rev["file"]))
    assert os.path.join(str(tmp_path), hf.index_snapshots(str(tmp_path))[W2V][rev["file"]]) == old


def rsync_with(filters, src, dest):
    argv = ["rsync", "-a"] + ["--filter=%s" % r for r in filters] + [str(src) + "/", str(dest) + "/"]
    subprocess.run(argv, check=True)
    found = set()
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), dest))
    return found


def test_content_stage_holds_back_snapshots_and_refs(cache, tmp_path):
    found = rsync_with(hf.visibility_filters("content"), cache, tmp_path)
    assert any(p.startswith(W2V + "/blobs/") for p in found)
    assert "checkpoints/gpt.pth" in found
    assert not any("/snapshots" in p or "/refs" in p for p in found)


def test_snapshots_stage_sends_snapshot_links_only(cache, tmp_path):
    found = rsync_with(hf.visibility_filters("snapshots"), cache, tmp_path)
    assert any("/snapshots/" in p for p in found)
    assert not any("/refs" in p or "/blobs/" in p or p.startswith("checkpoints/") for p in found)
    assert hf.visibility_filters("all") == []


def test_refs_stage_sends_refs_only(cache, tmp_path):
    found = rsync_with(hf.visibility_filters("refs"), cache, tmp_path)
    assert W2V + "/refs/main" in found
    assert not any("/snapshots/" in p or "/blobs/" in p or p.startswith("checkpoints/") for p in found)


def test_stage_filters_after_models_filters_keep_the_subset(cache, tmp_path):
    rules = hf.models_filters(["models--funasr--campplus"]) + hf.visibility_filters("snapshots")
    found = rsync_with(rules, cache, tmp_path)
    repos = {p.split("/")[1] for p in found if "/snapshots/" in p}
    assert repos == {"models--funasr--campplus"}


def test_models_filters_keep_named_repos_and_plain_files(cache, tmp_path):
    found = rsync_with(hf.models_filters(["models--funasr--campplus"]), cache, tmp_path)
    repos = {p.split("/")[1] for p in found if p.startswith("hf_cache/") and "/" in p}
    assert repos == {"models--funasr--campplus"}
    assert "checkpoints/config.yaml" in found


def test_index_snapshots_leaves_out_what_lies_under_locks(tmp_path):
    """model_cache_sync's plan (src's snapshot links, in .locks/indextts-sync/plan) is
    not this cache's: the index reads the cache's own snapshots only, and does not walk
    the plan (tens of thousands of links on a large first sync)."""
    make_cache(tmp_path / "cache", "--weights-mb", "1", "--small-files", "0")
    plan = tmp_path / "cache" / ".locks" / "indextts-sync" / "plan"
    make_cache(plan, "--weights-mb", "1", "--small-files", "0", "--seed", "7")
    own = hf.index_snapshots(str(tmp_path / "cache"))
    assert own and not any(repo.startswith(".locks") for repo in own)
    assert all(not blob.startswith(".locks") for files in own.values() for blob in files.values())
