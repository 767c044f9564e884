# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Publishing: the plan's snapshot links, then its refs, made visible in dest.

The plan was read once from src into the state dir (beside the content, by the transport's fetch_content);
what is published is exactly that, never a second look at the live src. Before
anything is published, the plan is checked against dest: a source that moved on in a
way the plan cannot complete publishes nothing of it.

The plan lies on dest's filesystem, with the owner, modes and times the transport gave
it, so publishing is renaming: a snapshot dest does not have comes over whole in one
rename, a ref replaces the old one atomically, and the directories whose entries
changed get back the times they have on src."""

import os
import time

from ansible_collections.indextts.deploy.plugins.module_utils import _hfcache as hf
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache import plan

ORDER = ("snapshots", "refs")  # a ref never names a snapshot readers cannot see yet


class ReadPlan(object):
    """The plan as read once from src, and what follows from it and dest's metadata
    alone: the links that would escape, whether src moved since the dry run, the
    blobs its links point at that nobody fetches (``missing``), the LFS blobs its
    links point at, the refs it publishes and what is wrong with them (check_refs),
    its directories' times (dir_times) and its entries by stage.

    Made as soon as the plan's run ends, while the content's runs still move data, so
    that this work overlaps the transfer: the content's runs never write snapshot
    links or refs and dest's lock keeps other runs out, so nothing these answers
    depend on changes before publishing. What does change, whether the blobs are in
    dest, is asked after the content (``missing`` again, absent_blobs)."""

    def __init__(self, dest, plan_dir, staged, planned, times=True):
        self.entries = read_links(plan_dir, staged)
        self.escaping = plan.escaping_links(self.entries)
        self.source_moved = False
        self.missing = []
        self.lfs_blobs = []
        self.refs, self.unresolved, self.times = {}, [], None
        self.stages = dict((stage, []) for stage in ORDER)
        if self.escaping:
            return  # refused once the content's runs have ended: nothing of it is published
        self.source_moved = plan.metadata_entries(planned) != plan.metadata_entries(self.entries)
        self.missing = plan.missing_blobs(dest, self.entries, plan.content_paths(planned))
        self.lfs_blobs = plan.linked_blobs(self.entries)
        self.refs, self.unresolved = check_refs(dest, plan_dir, self.entries)
        self.times = dir_times(plan_dir) if times else None
        for c in self.entries:
            stage = plan.stage_of(c)
            if stage in self.stages:
                self.stages[stage].append(c)


def absent_blobs(dest, staged):
    """What keeps the plan's snapshot links from being published: a link to a blob
    that is not a file in dest, in words. Each blobs dir of dest is listed
    once, instead of asking about each of a plan's 20,000 blobs in turn."""
    files = {}  # directory of blobs (relative) -> names of the files in it

    def is_file(blob):
        directory, name = os.path.split(blob)
        if directory not in files:
            files[directory] = set()
            try:
                with os.scandir(os.path.join(dest, directory)) as entries:
                    for entry in entries:
                        try:
                            if entry.is_file():  # follows links, as os.path.isfile
                                files[directory].add(entry.name)
                        except OSError:
                            pass
            except OSError:
                pass
        return name in files[directory]

    unresolved = []
    for c in staged:
        if c["type"] == "symlink" and hf.snapshot_file(c["path"]):
            blob = hf.link_target_path(c["path"], c.get("target", ""))
            if not blob or not is_file(blob):
                unresolved.append("%s -> %s: no such blob in dest" % (c["path"], c.get("target")))
    return unresolved


def check_refs(dest, plan_dir, staged):
    """(published_refs, unresolved) of the plan's refs: the commit each names, and an
    unreadable ref or one naming a snapshot neither dest nor the plan holds."""
    unresolved = []
    refs = {}
    for c in staged:
        split = hf.split_repo_path(c["path"])
        if c["type"] == "file" and split and split[1] == "refs":
            commit, problem = hf.read_ref(os.path.join(plan_dir, split[0]), split[2])
            if commit:
                refs[c["path"]] = commit
            if problem:
                unresolved.append("%s: %s" % (c["path"], problem))
            elif not any(os.path.isdir(os.path.join(root, split[0], "snapshots", commit)) for root in (dest, plan_dir)):
                unresolved.append("%s names snapshot %s, which src no longer has" % (c["path"], commit[:12]))
    return refs, unresolved


def read_links(plan_dir, staged):
    """Each staged link's target, read from the link the transport made in the plan
    (never parsed from the transport's output: names may hold " -> ")."""
    for c in staged:
        if c["type"] == "symlink":
            c["target"] = os.readlink(os.path.join(plan_dir, c["path"]))
    return staged


def dir_times(plan_dir):
    """The times of the plan's directories (src's), {rel: (atime_ns, mtime_ns)}: read
    before publishing, which changes them by renaming entries out."""
    times = {}
    for dirpath, _dirnames, _filenames in os.walk(plan_dir):
        st = os.lstat(dirpath)
        rel = os.path.relpath(dirpath, plan_dir)
        times["" if rel == "." else rel] = (st.st_atime_ns, st.st_mtime_ns)
    return times


def move(dest, plan_dir, entries, times=None):
    """Rename the plan's ``entries`` (changes of one stage) into dest: for each, the
    highest directory of its path that dest lacks, or the entry itself. Directories
    that gained or changed entries get their ``times`` (dir_times(), src's), so the
    next dry run finds nothing to do; None leaves them. Returns the entries moved and
    the seconds taken."""
    started = time.monotonic()
    there = {}  # directory of dest (relative) -> whether it exists: asked once each

    def missing(rel):
        if rel not in there:
            there[rel] = os.path.lexists(os.path.join(dest, rel))
        return not there[rel]

    tops = []
    moving = None  # the last top that is a directory dest lacks: what lies below it moves with it
    for c in sorted(entries, key=lambda c: c["path"]):
        path = c["path"].rstrip("/")
        if moving and path.startswith(moving + "/"):
            continue
        parts = path.split("/")
        moving = next(("/".join(parts[:i]) for i in range(1, len(parts)) if missing("/".join(parts[:i]))), None)
        top = moving or path
        if not tops or tops[-1] != top:
            tops.append(top)
    for top in tops:
        source = os.path.join(plan_dir, top)
        if os.path.lexists(source):
            os.rename(source, os.path.join(dest, top))
    for parent in sorted(set(os.path.dirname(top) for top in tops)):
        if times and parent in times:
            os.utime(os.path.join(dest, parent), ns=times[parent], follow_symlinks=False)
    return [c for c in entries if c["type"] != "dir"], time.monotonic() - started
