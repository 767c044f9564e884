# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verification: nothing unverified under a final name.

Every blob the run lands, every seeded one, and every blob a planned snapshot link
points at that no run verified, is hashed against its name before any snapshot or
ref can point at it. Hashing starts while the transport is still writing (BlobHasher);
a record of blobs that matched (size, mtime_ns, inode) spares re-hashing them; a blob
that does not match is moved off its final name into the state dir's rejected/."""

import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.indextts.deploy.plugins.module_utils import _hfcache as hf
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache.state import PARTIAL_DIR, STATE_DIR


def file_key(path):
    """What changes when a file is replaced or rewritten: inode, size, times."""
    st = os.lstat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Followed(object):
    """A temporary file rsync is writing, opened, and the sha256 of what was read of it."""

    def __init__(self, path):
        self.file = open(path, "rb", buffering=0)
        self.inode = os.fstat(self.file.fileno()).st_ino
        self.sha256 = hashlib.sha256()

    def read(self, limit=None, chunk=4 * 1024 * 1024):
        """Feed what has been written so far (at most ``limit`` chunks) to the digest."""
        rounds = 0
        while limit is None or rounds < limit:
            data = self.file.read(chunk)
            if not data:
                return
            self.sha256.update(data)
            rounds += 1

    def dropped(self):
        """rsync removed it (an error, a redo) instead of renaming it into place."""
        return os.fstat(self.file.fileno()).st_nlink == 0


class BlobHasher(object):
    """Hashes blobs on one thread while rsync is still writing them.

    rsync writes a file from start to end under a temporary name in the same
    directory (``.<name>.XXXXXX``) and renames it into place when it is complete.
    The hasher follows such a temporary file as it grows, feeding sha256 with what is
    written, and when the final name appears with the inode it followed, reads the
    rest; a file that appeared otherwise is hashed whole. A digest counts only while
    the file still has the inode, size and times it had when the digest was taken
    (digest()); anything else is hashed again after the transfer. A file present
    under its final name before the transfer (an older file, a seed) is not taken
    until it is replaced. When the transfer is over, stop(finish=True) takes what it
    followed and rsync renamed since the hasher last looked: the tail written since
    then, not the whole blob again after the transfer.
    """

    PER_ROUND = 16  # chunks read from one growing file before the next one gets a turn

    def __init__(self, dest, blobs):
        self.dest = dest
        self.pending = list(blobs)
        self.before = dict((rel, self.inode(rel)) for rel in blobs)
        self.following = {}  # rel -> Followed
        self.digests = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.daemon = True

    def inode(self, rel):
        try:
            return file_key(os.path.join(self.dest, rel))[0]
        except OSError:
            return None

    def run(self):
        while self.pending and not self.stopping.is_set():
            for rel in list(self.pending):
                if self.stopping.is_set():
                    return
                self.step(rel)
            self.stopping.wait(0.1)

    def step(self, rel):
        """Take the blob if it landed, else follow its temporary file a bit further."""
        path = os.path.join(self.dest, rel)
        try:
            key = file_key(path)
        except OSError:
            key = None
        if key is not None and key[0] != self.before[rel]:
            self.pending.remove(rel)
            followed = self.following.pop(rel, None)
            try:
                if followed and followed.inode == key[0]:
                    followed.read()
                    digest = followed.sha256.hexdigest() if followed.file.tell() == key[1] else None
                else:
                    digest = hf.blob_sha256(path)
                if digest and file_key(path) == key:
                    self.digests[rel] = (key, digest)
            except (IOError, OSError):
                pass
            finally:
                if followed:
                    followed.file.close()
            return
        followed = self.following.get(rel)
        if followed and followed.dropped():
            self.following.pop(rel).file.close()  # follow rsync's next attempt
            followed = None
        if followed is None:
            followed = self.find_temporary(rel)
            if followed is None:
                return
            self.following[rel] = followed
        followed.read(limit=self.PER_ROUND)

    def find_temporary(self, rel):
        """The newest ``.<name>.XXXXXX`` beside the blob's final name, opened."""
        directory, name = os.path.split(os.path.join(self.dest, rel))
        prefix = "." + name + "."
        candidates = []
        try:
            for entry in os.scandir(directory):
                if entry.name.startswith(prefix) and len(entry.name) == len(prefix) + 6 and entry.is_file():
                    candidates.append((entry.stat().st_mtime_ns, entry.path))
        except OSError:
            return None
        for _mtime, path in sorted(candidates, reverse=True):
            try:
                return Followed(path)
            except (IOError, OSError):
                continue
        return None

    def start(self):
        if self.pending:
            self.thread.start()
        return self

    def stop(self, finish=False):
        """Stop following, and close what was followed. ``finish`` (the transfer is
        over): first take each followed file that landed under its final name (step),
        on this thread now that the hasher's has ended."""
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()
        try:
            for rel in list(self.pending) if finish else ():
                followed = self.following.get(rel)
                try:
                    if followed and file_key(os.path.join(self.dest, rel))[0] == followed.inode:
                        self.step(rel)
                except (IOError, OSError):
                    pass  # hashed whole by mismatches()
        finally:
            for followed in self.following.values():
                followed.file.close()
            self.following.clear()

    def digest(self, rel):
        """The digest taken during the transfer, if rel is still that file."""
        entry = self.digests.get(rel)
        try:
            if entry and file_key(os.path.join(self.dest, rel)) == entry[0]:
                return entry[1]
        except OSError:
            pass
        return None


class VerifiedRecord(object):
    """Blobs that matched their names in a run, and were not changed since:
    {blob: [size, mtime_ns, inode]} in the state dir, written atomically."""

    def __init__(self, dest, path, own):
        self.dest, self.path, self.own = dest, path, own
        self.entries = {}

    def load(self):
        try:
            with open(self.path) as f:
                record = json.load(f)
            self.entries = record if isinstance(record, dict) else {}
        except (IOError, OSError, ValueError):
            self.entries = {}
        return self

    def __contains__(self, rel):
        try:
            st = os.lstat(os.path.join(self.dest, rel))
        except OSError:
            return False
        return self.entries.get(rel) == [st.st_size, st.st_mtime_ns, st.st_ino]

    def save(self, blobs):
        """Add blobs (just verified); drop entries of blobs that are gone."""
        for rel in blobs:
            try:
                st = os.lstat(os.path.join(self.dest, rel))
            except OSError:
                continue
            self.entries[rel] = [st.st_size, st.st_mtime_ns, st.st_ino]
        self.entries = dict((rel, v) for rel, v in self.entries.items()
                            if os.path.lexists(os.path.join(self.dest, rel)))
        with open(self.path + ".tmp", "w") as f:
            json.dump(self.entries, f, sort_keys=True)
        self.own(self.path + ".tmp")
        os.replace(self.path + ".tmp", self.path)


def blobs_to_verify(dest, changes, scope, seeded=()):
    """Blobs to check against their names: those among changes (``scope`` new), every
    one under dest (all), and in any case the ``seeded`` ones (written over an older
    revision's content). Only LFS blobs (sha256 names) can be checked."""
    seeded = list(seeded)
    if scope == "none":
        paths = seeded
    elif scope == "new":
        paths = [c["path"] for c in changes if c["type"] == "file"] + seeded
    else:
        paths = []
        for dirpath, dirnames, filenames in os.walk(dest):
            dirnames[:] = [d for d in dirnames if d != PARTIAL_DIR]
            rel = os.path.relpath(dirpath, dest)
            if rel == os.path.dirname(STATE_DIR):
                dirnames[:] = []
                continue
            paths += [os.path.join(rel, f) for f in filenames]
    blobs = []
    for path in sorted(set(os.path.normpath(p) for p in paths)):
        split = hf.split_repo_path(path)
        if split and split[1] == "blobs" and "/" not in split[2] and hf.is_lfs_blob(split[2]):
            blobs.append(path)
    return blobs


def mismatches(dest, blobs, hasher=None):
    """The blobs whose content does not match their names, hashed on every CPU
    (hashlib releases the GIL), reusing the digests the hasher took during the
    transfer of files that did not change since. A blob gone from dest is skipped
    (one the source deleted again; delete=false keeps what exists)."""
    def mismatch(path):
        full = os.path.join(dest, path)
        if not os.path.isfile(full):
            return None
        digest = hasher.digest(path) if hasher else None
        return path if (digest or hf.blob_sha256(full)) != os.path.basename(path) else None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return [path for path in pool.map(mismatch, blobs) if path]


def reject(dest, bad, rejected_dir, makedirs):
    """Move blobs off their final names into rejected_dir, so that no later run takes
    them for verified (a rerun fetches and checks them again); kept for inspection."""
    for path in bad:
        aside = os.path.join(rejected_dir, path)
        makedirs(os.path.dirname(aside), 0o700)
        os.replace(os.path.join(dest, path), aside)
