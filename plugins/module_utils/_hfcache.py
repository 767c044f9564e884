# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Hugging Face cache layout, as model_cache_sync and the preflight need it.

A hub cache holds one directory per repo, ``models--org--name`` (also ``datasets--``
and ``spaces--``), with ``blobs/`` (files named by their hash: sha256 for LFS files,
git's sha1 for small ones), ``snapshots/<commit>/<path>`` (relative symlinks to
blobs) and ``refs/<branch>`` (a commit hash). Readers follow ref -> snapshot -> blob.
"""

import functools
import hashlib
import os
import posixpath
import re

REPO_TYPES = ("models", "datasets", "spaces")
REPO_DIR_RE = re.compile(r"^(models|datasets|spaces)--[A-Za-z0-9][A-Za-z0-9_.-]*(--[A-Za-z0-9][A-Za-z0-9_.-]*)?$")
_REPO_ID_RE = re.compile(r"^(?:(?P<type>models|datasets|spaces)/)?(?P<id>[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?)$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

# Sub-directories of a repo dir in the order a writer must make them visible:
# content first, then the snapshot links to it, then the refs naming snapshots.
# ".no_exist" records files known to be absent upstream; it is metadata like refs.
METADATA_DIRS = ("snapshots", "refs", ".no_exist")
# The stages of visibility_filters that hold metadata only.
METADATA_STAGES = ("snapshots", "refs", "metadata")


def repo_dir_name(entry):
    """``org/name``, ``name``, ``datasets/org/name`` or ``models--org--name`` -> the
    cache directory name; None when the entry is neither form."""
    entry = entry.strip().strip("/")
    if REPO_DIR_RE.match(entry):
        return entry
    m = _REPO_ID_RE.match(entry)
    if not m:
        return None
    return "%s--%s" % (m.group("type") or "models", m.group("id").replace("/", "--"))


def is_repo_dir(name):
    return bool(REPO_DIR_RE.match(name))


# The path up to and including its first part that is a repo dir (REPO_DIR_RE, whose
# "$" also lets a part end in one newline), in one match instead of one per part.
_REPO_PREFIX_RE = re.compile(r"(?:[^/]*/)*?(?:models|datasets|spaces)--[A-Za-z0-9][A-Za-z0-9_.-]*"
                             r"(?:--[A-Za-z0-9][A-Za-z0-9_.-]*)?\n?(?=/|\Z)")


# A sync plans tens of thousands of paths and asks about each several times (its
# stage, its snapshot, its link's blob): the pure path functions remember answers.
@functools.lru_cache(maxsize=1 << 17)
def split_repo_path(path):
    """Split a path relative to a cache root at its (first) repo directory.

    ``hf_cache/models--a--b/snapshots/c1/x/y.bin`` ->
    (``hf_cache/models--a--b``, ``snapshots``, ``c1/x/y.bin``); None outside a repo.
    """
    path = path.strip("/")
    m = _REPO_PREFIX_RE.match(path)
    if not m:
        return None
    sub, _sep, rest = path[m.end() + 1:].partition("/")
    return m.group(), sub, rest


@functools.lru_cache(maxsize=1 << 17)
def snapshot_file(path):
    """(repo, commit, file path inside the snapshot) for a snapshot entry, else None."""
    split = split_repo_path(path)
    if not split or split[1] != "snapshots" or "/" not in split[2]:
        return None
    commit, rel = split[2].split("/", 1)
    return split[0], commit, rel


@functools.lru_cache(maxsize=1 << 17)
def link_target_path(link_path, target):
    """Where a relative symlink at ``link_path`` points, relative to the same root;
    None for absolute targets or targets leaving the root."""
    if target.startswith("/"):
        return None
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(link_path.rstrip("/")), target))
    if resolved.startswith("../") or resolved == "..":
        return None
    return resolved


def is_lfs_blob(name):
    """An LFS blob (the weights): its name is the sha256 of its content. Small files
    are stored as git blobs named by git's sha1 and are not checked."""
    return bool(_SHA256_RE.match(name))


def blob_sha256(path, chunk=4 * 1024 * 1024):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            data = f.read(chunk)
            if not data:
                break
            digest.update(data)
    return digest.hexdigest()


def current_commits(root, repo):
    """Commits the local refs of a repo name (refs/main and any other branch)."""
    commits = set()
    refs = os.path.join(root, repo, "refs")
    for dirpath, _dirnames, filenames in os.walk(refs):
        for name in filenames:
            try:
                with open(os.path.join(dirpath, name), "rb") as f:
                    commits.add(f.read(256).decode("ascii", "replace").strip())
            except (IOError, OSError):
                pass
    return commits


def index_snapshots(root):
    """Files of the local snapshots whose blobs are present.

    Returns ``{repo: {file path in snapshot: blob path relative to root}}``, the map
    revision-aware delta looks up an older blob of the same file in. Where several
    local snapshots have the file, the one a local ref names wins (the revision in
    use is the likeliest ancestor of the next one). Read-only.
    """
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            rel_dir = ""
        if not rel_dir:
            # huggingface_hub's lock files, and model_cache_sync's state (its plan holds
            # snapshot links of the source, not of this cache)
            dirnames[:] = [d for d in dirnames if d != ".locks"]
        split = split_repo_path(rel_dir) if rel_dir else None
        if split and split[1] == "blobs":
            dirnames[:] = []
            continue
        if not (split and split[1] == "snapshots"):
            continue
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            rel = posixpath.join(rel_dir, name)
            full = os.path.join(root, rel)
            if not os.path.islink(full):
                continue
            snap = snapshot_file(rel)
            blob = link_target_path(rel, os.readlink(full))
            if snap and blob and os.path.isfile(os.path.join(root, blob)):
                found.setdefault(snap[0], []).append((snap[1], snap[2], blob))
    index = {}
    for repo, entries in found.items():
        current = current_commits(root, repo)
        files = index[repo] = {}
        for commit, rel, blob in sorted(entries, key=lambda e: e[0] in current):
            files[rel] = blob
    return index


def visibility_filters(stage):
    """Filter rules for one stage of an ordered transfer.

    ``content``: everything but the metadata dirs of repos (blobs, plain files).
    ``snapshots``: the snapshot links only. ``refs``: refs and .no_exist only.
    ``metadata``: snapshots, refs and .no_exist. ``all``: no exclusion.
    """
    if stage == "all":
        return []
    if stage == "content":
        return ["- %s--*/%s/" % (kind, sub) for sub in METADATA_DIRS for kind in REPO_TYPES]
    keep = {"snapshots": ("snapshots",), "metadata": METADATA_DIRS}.get(stage, METADATA_DIRS[1:])
    rules = ["+ %s--*/%s/***" % (kind, sub) for sub in keep for kind in REPO_TYPES]
    rules += ["+ %s--*/" % kind for kind in REPO_TYPES]
    return rules + ["- %s--*/*" % kind for kind in REPO_TYPES] + ["+ */", "- *"]


def models_filters(repo_dirs):
    """Filter rules keeping only the named repo directories (at any depth) and every
    file that is not part of a repo (checkpoints, configs)."""
    rules = ["+ %s/" % name for name in repo_dirs]
    rules += ["- %s--*/" % kind for kind in REPO_TYPES]
    return rules


_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def _path_problem(filename):
    """Why a file path inside a repo could leave it (``..``, absolute); None if not."""
    if not filename or filename.startswith("/") or "\0" in filename:
        return "not a path inside the repo"
    if ".." in filename.split("/"):
        return "'..' leaves the repo"
    return None


def read_ref(repo_path, revision="main"):
    """(commit, problem) of ``refs/<revision>`` in a repo directory. Read as bytes: a
    damaged ref (not UTF-8, not a commit hash) is a problem, never an exception."""
    try:
        with open(os.path.join(repo_path, "refs", revision), "rb") as f:
            data = f.read(256)
    except (IOError, OSError):
        return None, "no refs/%s" % revision
    commit = data.decode("ascii", "backslashreplace").strip()
    if not _COMMIT_RE.match(commit):
        return None, "refs/%s is not a commit hash ('%s')" % (revision, commit[:48])
    return commit, None


def cached_file_problem(root, repo_id, filename, revision="main"):
    """Why ``filename`` of ``repo_id`` would not resolve from the cache at ``root`` with
    HF_HUB_OFFLINE=1, as huggingface_hub resolves it (refs/<revision> -> snapshots/
    <commit>/<filename> -> blob); None when it resolves. Read-only."""
    problem = _path_problem(filename)
    if problem:
        return problem
    name = repo_dir_name(repo_id)
    if not name:
        return "not a repo id"
    repo = os.path.join(root, name)
    if not os.path.isdir(repo):
        return "repo not in the cache"
    commit, problem = read_ref(repo, revision)
    if problem:
        return problem
    snapshot = os.path.join(repo, "snapshots", commit, filename)
    if os.path.isfile(snapshot):
        return None
    if os.path.islink(snapshot):
        return "snapshot %s links to a missing blob" % commit[:12]
    return "not in snapshot %s" % commit[:12]


def resolve_blob(root, repo_id, filename, revision="main"):
    """(blob path, problem): the file holding ``filename`` of ``repo_id`` in the cache at
    ``root``, resolved ref -> snapshot -> blob without following any link out of the
    repo: the snapshot entry must be a relative symlink to a regular file in the
    repo's ``blobs/`` (or a regular file in the snapshot itself). For hard-linking
    blobs elsewhere in the same cache. Read-only."""
    problem = _path_problem(filename)
    if problem:
        return None, problem
    name = repo_dir_name(repo_id)
    if not name:
        return None, "not a repo id"
    repo = os.path.join(root, name)
    if not os.path.isdir(repo) or os.path.islink(repo):
        return None, "repo not in the cache" if not os.path.islink(repo) else "repo directory is a symlink"
    commit, problem = read_ref(repo, revision)
    if problem:
        return None, problem
    snapshot_dir = os.path.join(repo, "snapshots", commit)
    entry = os.path.join(snapshot_dir, filename)
    # Every directory between the snapshot and the entry must be a real directory.
    parent = snapshot_dir
    for part in filename.split("/")[:-1]:
        parent = os.path.join(parent, part)
        if os.path.islink(parent):
            return None, "snapshot %s: %s is a symlink" % (commit[:12], os.path.relpath(parent, snapshot_dir))
    if os.path.islink(entry):
        target = os.readlink(entry)
        rel = link_target_path(os.path.relpath(entry, repo).replace(os.sep, "/"), target)
        if rel is None or not rel.startswith("blobs/") or "/" in rel[len("blobs/"):]:
            return None, "snapshot %s %s links outside the repo's blobs (%s)" % (commit[:12], filename, target)
        blob = os.path.join(repo, *rel.split("/"))
        if os.path.islink(blob) or not os.path.isfile(blob):
            return None, "snapshot %s links to a missing blob" % commit[:12]
        return blob, None
    if os.path.isfile(entry):
        return entry, None
    if os.path.lexists(entry):
        return None, "snapshot %s %s is not a file" % (commit[:12], filename)
    return None, "not in snapshot %s" % commit[:12]


def blob_matches(blob, path):
    """Whether the file at ``path`` has the content of ``blob``: by its sha256 when the
    blob is an LFS blob (named by it), else byte for byte. Read-only."""
    if os.path.getsize(blob) != os.path.getsize(path):
        return False
    name = os.path.basename(blob)
    if is_lfs_blob(name):
        return blob_sha256(path) == name
    with open(blob, "rb") as a, open(path, "rb") as b:
        while True:
            x, y = a.read(1 << 20), b.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True
