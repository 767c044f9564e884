# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning: what the transport's dry run says will change, read as a cache.

Changes are the transport's itemized entries ({"path", "type", "item", "size",
"target"}, see _rsync.parse_itemized). Everything here is a function of them (and,
for seeds and missing blobs, of what dest holds): no transfer, so it is unit-tested
on its own."""

import os

from ansible_collections.indextts.deploy.plugins.module_utils import _hfcache as hf
from ansible_collections.indextts.deploy.plugins.module_utils import _rsync

FILES_FROM_LIMIT = 1000  # a run with more paths walks the tree instead of a list
STREAM_MIN_BYTES = 32 * 1024 * 1024  # smaller files stay in the first run
# What one path costs a run besides its data (creating, renaming, stamping it), in
# bytes of data moved in the same time; measured on the lab, about 24 KiB.
PATH_COST_BYTES = 32 * 1024


def stage_of(change):
    """The visibility stage a change belongs to (see hf.visibility_filters): content
    (blobs and other files), snapshots (the links), or refs (and other metadata)."""
    split = hf.split_repo_path(change["path"])
    if split and split[1] == "snapshots":
        return "snapshots"
    if split and split[1] in hf.METADATA_DIRS:
        return "refs"
    return "content"


def has_metadata(changes):
    """True when changes touch snapshot links or refs: the run then reads a plan."""
    return any(c["type"] != "deleted" and stage_of(c) != "content" for c in changes)


def metadata_entries(changes):
    """Paths of the snapshot links and refs among changes."""
    return set(c["path"] for c in changes if c["type"] not in ("dir", "deleted") and stage_of(c) != "content")


def content_paths(changes):
    return set(c["path"].rstrip("/") for c in changes if stage_of(c) == "content")


def linked_blobs(changes, lfs_only=True):
    """Blobs (LFS blobs only, unless not ``lfs_only``) the snapshot links among changes
    point at, as paths relative to dest."""
    blobs = []
    for c in changes:
        if c["type"] == "symlink" and hf.snapshot_file(c["path"]):
            blob = hf.link_target_path(c["path"], c.get("target", ""))
            if blob and (hf.is_lfs_blob(os.path.basename(blob)) or not lfs_only):
                blobs.append(blob)
    return blobs


def missing_blobs(dest, staged, content):
    """Blobs the plan's snapshot links point at that are neither in dest nor among the
    ``content`` paths: src gained a revision between the dry run and the plan."""
    return sorted(set(blob for blob in linked_blobs(staged, lfs_only=False)
                      if blob not in content and not os.path.lexists(os.path.join(dest, blob))))


def escaping_links(changes):
    """Links inside a Hugging Face repo that are not what the cache layout allows
    (snapshots/<commit>/<file> -> a file directly in that repo's blobs/), as
    "path -> target". Such a link from a hostile or broken source would make the sync,
    or a reader, reach outside dest. Elsewhere (a release's virtualenv) links are the
    tree's own business."""
    bad = []
    for c in changes:
        if c["type"] != "symlink":
            continue
        split = hf.split_repo_path(c["path"])
        if not split:
            continue
        if not hf.snapshot_file(c["path"]):
            bad.append("%s (a link outside snapshots/)" % c["path"])
            continue
        if "target" not in c:
            continue  # a link whose target rsync did not print (not OUT_FORMAT): nothing to check
        blob = hf.link_target_path(c["path"], c["target"])
        blob_split = hf.split_repo_path(blob) if blob else None
        if not (blob_split and blob_split[0] == split[0] and blob_split[1] == "blobs"
                and blob_split[2] and "/" not in blob_split[2]):
            bad.append("%s -> %s" % (c["path"], c["target"]))
    return bad


def needed_bytes(changes, block):
    """Space the planned files take on dest's filesystem: whole blocks, not bytes
    (20,000 small files of 100 bytes take 80 MB on 4 KiB blocks, not 2 MB)."""
    block = block or 4096
    return sum(-(-c.get("size", 0) // block) * block for c in changes if c["type"] == "file")


def content_runs(changes, extra=(), streams=1, walk_first=False):
    """The content stage's runs for the planned changes (and ``extra`` paths), and
    whether a pass that deletes follows: ([(paths, exclude)], deleting).

    Each run is (paths, exclude): a run with few planned paths sends just those
    (--files-from); one with many (paths None) walks the tree with the content filters
    instead, which keeps rsync's incremental recursion (a list of thousands of files
    without it is slower than the walk), leaving out the ``exclude``d paths that other
    runs move. ``walk_first``: the first run walks the tree whatever its size (with
    link_dest, the dry run does not list what rsync will hard-link from the basis).
    Snapshot links and refs are never among them: they are published from the plan.
    """
    paths = []
    sizes = {}
    deleting = False
    for c in changes:
        if c["type"] == "deleted":
            deleting = True
            continue
        if stage_of(c) != "content":
            continue
        path = c["path"].rstrip("/") or "."
        paths.append(path)
        if c["type"] == "file":
            sizes[path] = c["size"]
    paths += [p for p in extra if p not in sizes]
    if not paths:
        return [], deleting
    runs = share_out(paths, sizes, streams)
    return [(ps if len(ps) <= FILES_FROM_LIMIT and not (walk_first and i == 0) else None, ex)
            for i, (ps, ex) in enumerate(runs)], deleting


def share_out(paths, sizes, streams):
    """The content stage's paths as parallel runs [(paths, exclude)].

    Files of STREAM_MIN_BYTES or more go, largest first, to the run with the least work
    so far; the first run starts with every smaller path. Work is bytes plus
    PATH_COST_BYTES per path, as many small files take long for their bytes. The first
    run may walk the tree, so it excludes what the others move.
    """
    big = sorted((p for p in paths if sizes.get(p, 0) >= STREAM_MIN_BYTES), key=lambda p: -sizes[p])
    if streams < 2 or len(big) < 2:
        return [(paths, [])]
    chosen = set(big)
    lists = [[p for p in paths if p not in chosen]] + [[] for _i in range(streams - 1)]
    loads = [sum(sizes.get(p, 0) + PATH_COST_BYTES for p in lists[0])] + [0] * (streams - 1)
    for path in big:
        i = loads.index(min(loads))
        lists[i].append(path)
        loads[i] += sizes[path]
    elsewhere = [p for other in lists[1:] for p in other]
    runs = [(lists[0], [_rsync.exclude_rule(p) for p in elsewhere])]
    return runs + [(other, []) for other in lists[1:] if other]


def seed_candidates(dest, changes):
    """(new blob, older local blob of the same file) pairs for revision-aware delta:
    a planned snapshot link to a blob dest lacks, where dest's other snapshot of the
    same repo and file points at another blob. A repo dest has no snapshots of has no
    older blob: its links cost no look at dest (a full sync plans 20,000 of them)."""
    local = None
    has_snapshots = {}
    pairs = []
    for c in changes:
        if c["type"] != "symlink" or "target" not in c:
            continue
        snap = hf.snapshot_file(c["path"])
        blob = hf.link_target_path(c["path"], c["target"])
        if not snap or not blob:
            continue
        if snap[0] not in has_snapshots:
            has_snapshots[snap[0]] = os.path.isdir(os.path.join(dest, snap[0], "snapshots"))
        if not has_snapshots[snap[0]] or os.path.lexists(os.path.join(dest, blob)):
            continue
        if local is None:
            local = hf.index_snapshots(dest)
        basis = local.get(snap[0], {}).get(snap[2])
        if basis and basis != blob:
            pairs.append({"blob": blob, "basis": basis})
    return pairs


def repos_in_listing(out):
    """Repo directory names in a listing of src's top directories (rsync --list-only)."""
    names = set()
    for line in out.splitlines():
        fields = line.split(None, 4)
        if len(fields) == 5 and fields[0].startswith("d"):
            names.add(fields[4].rstrip("/").rsplit("/", 1)[-1])
    return set(n for n in names if hf.is_repo_dir(n))
