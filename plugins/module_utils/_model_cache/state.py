# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sync's own state inside dest: its lock, its working dirs (seeds, plan, rejected
blobs), and what earlier, killed runs left behind.

All of it lives under dest/.locks/indextts-sync: huggingface_hub's cache scan skips
.locks, the transport never transfers it (filtered on both sides) and delete=true never
deletes it. Everything made there is owned like the cache (owner, group)."""

import errno
import fcntl
import grp
import os
import pwd
import re
import socket
import time

from ansible_collections.indextts.deploy.plugins.module_utils import _hfcache as hf
from ansible_collections.indextts.deploy.plugins.module_utils._paths import error_text

PARTIAL_DIR = ".indextts-partial"  # rsync's partial dir of a blobs/ dir: the halves a rerun resumes
STATE_DIR = ".locks/indextts-sync"
LOCK_FILE = "lock"
SEEDS_DIR = "seeds"
PLAN_DIR = "plan"  # the snapshot links and refs this run publishes, as read once from src
REJECTED_DIR = "rejected"
VERIFIED_RECORD = "verified.json"
# rsync's temporary file for <name> in the same directory: .<name>.XXXXXX
TEMP_RE = re.compile(r"^\.(?P<name>[0-9a-f]{40}|[0-9a-f]{64})\.[A-Za-z0-9]{6}$")


def account_ids(owner, group):
    """(uid, gid) for chown, -1 where not given; names or numeric ids."""
    uid = gid = -1
    if owner:
        uid = int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid
    if group:
        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    return uid, gid


def remove_tree(top):
    """Remove a directory tree of the sync's own state (seeds are extra hard links to
    blobs), never following a link out of it."""
    if not os.path.lexists(top):
        return
    if os.path.islink(top) or not os.path.isdir(top):
        os.unlink(top)
        return
    for dirpath, dirnames, filenames in os.walk(top, topdown=False):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            os.unlink(os.path.join(dirpath, name))
        os.rmdir(dirpath)


class StateDir(object):
    """dest's state dir, the lock held in it, and the clean-up of earlier runs.

    ``fail(msg)`` ends the task; ``warn(msg)`` reports something that did not stop it."""

    def __init__(self, dest, owner, group, fail, warn):
        self.dest = dest
        self.path = os.path.join(dest, STATE_DIR)
        self.seeds = os.path.join(self.path, SEEDS_DIR)
        self.plan = os.path.join(self.path, PLAN_DIR)
        self.rejected = os.path.join(self.path, REJECTED_DIR)
        self.record = os.path.join(self.path, VERIFIED_RECORD)
        self.owner, self.group = owner, group
        self.fail, self.warn = fail, warn
        self.lock_fd = None

    @property
    def locked(self):
        return self.lock_fd is not None

    def own(self, path):
        """Give what the sync makes in dest the owner and group the cache's files get,
        so the cache stays owned by its account throughout."""
        if self.owner or self.group:
            os.lchown(path, *account_ids(self.owner, self.group))

    def makedirs(self, path, mode):
        """os.makedirs, each directory it makes inside dest owned as the cache (own);
        the parents of dest are not the cache and keep their owner."""
        missing = []
        while not os.path.isdir(path):
            missing.append(path)
            path = os.path.dirname(path)
        for directory in reversed(missing):
            os.mkdir(directory, mode)
            if directory == self.dest or directory.startswith(self.dest.rstrip("/") + "/"):
                self.own(directory)

    def lock(self, timeout):
        """Hold dest's lock for the rest of the run (flock on <state>/lock), waiting up to
        ``timeout`` seconds for a run that holds it: one run per dest, shared by the
        re-sync timer and Ansible. Makes dest. The kernel releases the lock when this
        process ends, however it ends. Returns the seconds waited."""
        for path in (os.path.dirname(self.path), self.path):
            if os.path.islink(path):
                self.fail("%s is a symbolic link; refusing to keep the sync's lock and state through it "
                          "(a source must not plant links there). Remove the link and rerun." % path)
        self.makedirs(self.path, 0o755)
        lock = os.path.join(self.path, LOCK_FILE)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        self.own(lock)
        started = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (IOError, OSError) as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
            if time.monotonic() - started >= timeout:
                holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "a run that has not said who it is"
                os.close(fd)
                self.fail("dest %s is being synced by another run (%s) that did not finish within lock_timeout=%d "
                          "s; wait for it (journalctl -u indextts-cache-sync for the timer's), or raise "
                          "lock_timeout" % (self.dest, holder, timeout))
            time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, ("pid %d on %s since %s\n" % (os.getpid(), socket.gethostname(),
                                                    time.strftime("%Y-%m-%dT%H:%M:%S%z"))).encode(), 0)
        self.lock_fd = fd
        return time.monotonic() - started

    def release(self):
        """Remove this run's seeds and plan, release the lock."""
        if self.lock_fd is None:
            return
        try:
            remove_tree(self.seeds)
            remove_tree(self.plan)
        except OSError as e:
            self.warn("could not remove the seeds and plan in %s: %s" % (self.path, error_text(e)))
        os.close(self.lock_fd)
        self.lock_fd = None

    def remove_seeds(self):
        remove_tree(self.seeds)

    def fresh_plan_dir(self):
        """An empty plan dir for this run."""
        remove_tree(self.plan)
        self.makedirs(self.plan, 0o700)
        return self.plan

    def clear_leftovers(self):
        """What earlier runs left when they were killed: seeds are removed (they never
        sat under a final name), an unpublished plan is stale, and rsync's temporary
        files of blobs become partial files that this run resumes from. Returns what
        was done, in words."""
        done = []
        if os.path.lexists(self.seeds):
            remove_tree(self.seeds)
            done.append("removed the seeds of an earlier run")
        remove_tree(self.plan)
        resumed = 0
        for dirpath, dirnames, filenames in os.walk(self.dest):
            rel = os.path.relpath(dirpath, self.dest)
            depth = 0 if rel == "." else rel.count("/") + 1
            split = hf.split_repo_path(rel) if rel != "." else None
            if split and split[1] == "blobs" and not split[2]:
                dirnames[:] = []
                for name in filenames:
                    match = TEMP_RE.match(name)
                    if match:
                        resumed += self.keep_as_partial(dirpath, name, match.group("name"))
            elif rel == os.path.dirname(STATE_DIR) or depth >= 4 or (split and split[1]):
                dirnames[:] = []  # repos sit at most 3 levels down; only their blobs/ matter
        if resumed:
            done.append("kept %d interrupted blob transfer(s) as partial files to resume" % resumed)
        return done

    def keep_as_partial(self, directory, temp, name):
        """rsync's temporary file of a blob, left by a killed run, as the partial file
        rsync resumes from (the larger one wins when there is one already). 1 if kept."""
        partial_dir = os.path.join(directory, PARTIAL_DIR)
        partial = os.path.join(partial_dir, name)
        temp = os.path.join(directory, temp)
        try:
            if os.path.exists(os.path.join(directory, name)):
                os.unlink(temp)  # the transfer finished after all
                return 0
            if os.path.lexists(partial) and os.lstat(partial).st_size >= os.lstat(temp).st_size:
                os.unlink(temp)
                return 0
            self.makedirs(partial_dir, 0o700)
            os.rename(temp, partial)
            return 1
        except OSError as e:
            self.warn("could not keep %s as a partial file: %s" % (temp, error_text(e)))
            return 0

    def held_by_partials(self):
        """(bytes, files) that partial files of interrupted transfers hold under dest:
        rsync's partial dirs (kept so that a rerun resumes them) and its temporary files."""
        held = files = 0
        for dirpath, dirnames, filenames in os.walk(self.dest):
            if os.path.relpath(dirpath, self.dest) == os.path.dirname(STATE_DIR):
                dirnames[:] = []
                continue
            in_partial = os.path.basename(dirpath) == PARTIAL_DIR
            for name in filenames:
                if in_partial or TEMP_RE.match(name):
                    try:
                        held += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
                        files += 1
                    except OSError:
                        pass
        return held, files
