#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: model_cache_sync
short_description: Pull a model cache (IndexTTS2 checkpoints, Hugging Face hub cache) with rsync
version_added: 0.1.0
description:
  - Runs on the host that receives the cache and pulls it with rsync, from a directory
    on this host or over SSH from the golden build host or any host that already has it.
  - Makes changes visible in a safe order. Blobs and plain files land first, then the
    snapshot links to them, then the refs naming snapshots, so a reader of the cache
    never follows a ref or a snapshot to a missing or half-written blob. Partial files
    stay in a partial directory, never under a final name, and a rerun resumes them.
  - Plans once and publishes exactly the plan. The source's snapshot links and refs are
    read once, before any content moves (into C(.locks/indextts-sync/plan/) in O(dest),
    only what differs), and published from there, never from a second look at the live
    source. Blobs the plan needs that the dry run did not list are fetched too. A source
    that gains a revision during the run gives the planned state (RV(published_refs)),
    the next run the newer one; a source that drops the planned revision fails the run
    with nothing of it published.
  - Seeds a new blob of a new revision from the blob the same file had in an older
    local revision (a hard link in its state directory, which rsync takes as the basis;
    never under the new blob's final name, and the old blob is never modified), so
    that rsync's delta algorithm sends only the changed blocks. Seeded blobs are always
    verified.
  - Verifies the LFS blobs (the weights) it wrote against their names, which are their
    sha256, before any snapshot or ref is published, so a corrupt blob fails the task while
    nothing points at it yet. A blob that does not match is moved off its final name
    (to C(.locks/indextts-sync/rejected/) in O(dest)), so that no rerun publishes it.
    Blobs that snapshot links about to be published point at are verified too, unless
    an earlier run verified them and they did not change since (a record in the state
    directory), so a blob a killed run left unverified is never published unchecked.
  - Refuses, before writing anything, links inside a Hugging Face repo other than
    C(snapshots/<commit>/<file>) to a file in that repo's C(blobs/) (a hostile or broken
    source could otherwise make it, or a reader, reach outside O(dest)).
  - One run per O(dest) at a time. A lock in O(dest) (C(flock) on
    C(.locks/indextts-sync/lock)) is held for the whole run; the re-sync timer and
    Ansible share it, and a second run waits up to O(lock_timeout) seconds, then fails
    naming the run that holds it.
  - Clears what a killed run left. Its seeds are removed, rsync's temporary files of
    blobs become partial files that this run resumes from, and the SSH control masters
    and directories of runs that are gone are closed and removed (RV(leftovers)).
  - Moves file data in parallel runs (O(streams)), large files shared out by size, each
    on its own SSH connection, and hashes blobs for verification while the transfer
    still runs.
  - Retries transient failures (network, timeouts) with exponential back-off itself.
  - A dry run first decides whether anything changes, so a rerun with nothing new
    moves nothing beyond rsync's file list and reports no change.
author:
  - indextts.deploy maintainers (@indextts)
attributes:
  check_mode:
    description: A dry run of rsync. C(changed) and RV(changed_files) are what a real run would report.
    support: full
  diff_mode:
    description: The itemized list of changes (rsync C(--itemize-changes) format).
    support: full
options:
  src:
    type: str
    description:
      - The cache directory on the source host (or on this host when O(src_host) is omitted).
      - An absolute path on the source host, not expanded here. Its contents land in O(dest).
      - When the source host restricts this host's key with C(rrsync DIR), paths are
        relative to that DIR, so V(/) names the whole restricted cache.
    required: true
  dest:
    description:
      - Where the cache lives on this host. An absolute path; created when missing.
    type: path
    required: true
  src_host:
    description:
      - SSH host name or address of the source. Omitted, O(src) is a local directory.
    type: str
  src_user:
    description: SSH login on O(src_host).
    type: str
  ssh_port:
    description: SSH port of O(src_host).
    type: int
    default: 22
  ssh_key:
    description: Private key for the SSH login (an absolute path on this host).
    type: path
  known_hosts:
    description:
      - known_hosts file holding the pinned key of O(src_host). Default is ssh's own
        (C(~/.ssh/known_hosts) of the user running the module).
    type: path
  host_key_checking:
    description:
      - Verify the SSH host key of O(src_host). Turning it off is explicit and warned about.
    type: bool
    default: true
  models:
    description:
      - Sync only these Hugging Face repos, as C(org/name) or C(models--org--name)
        (also C(datasets/org/name)), plus every file that is not part of a repo
        (checkpoints, configuration). Omitted, everything is synced.
      - An entry that names no repo of the source fails the task before any transfer.
    type: list
    elements: str
  delete:
    description:
      - Remove files under O(dest) that the source no longer has, after everything new
        is in place. Nothing outside O(dest) is touched, and with O(models) the repos
        not selected are left alone.
    type: bool
    default: false
  verify:
    description:
      - Check LFS blobs (named by their sha256) against their content. V(new) checks
        the blobs this run wrote, V(all) every LFS blob under O(dest), V(none) none but
        those seeded by O(revision_delta).
    type: str
    choices: [none, new, all]
    default: new
  revision_delta:
    description:
      - Seed each new blob of a new revision from the older local blob of the same file
        path, so rsync sends only the changed blocks. Only with O(src_host), where
        rsync's delta transfer applies.
    type: bool
    default: true
  retries:
    description: Further attempts of an rsync run after a transient failure.
    type: int
    default: 3
  retry_delay:
    description: Seconds before the first retry; each later retry waits twice as long.
    type: float
    default: 5
  timeout:
    description: rsync I/O timeout in seconds (no data moved for that long fails the attempt). V(0) disables it.
    type: int
    default: 300
  compress:
    description: Compress on the wire. Model weights do not compress; leave it off for them.
    type: bool
    default: false
  bwlimit:
    description:
      - Bandwidth limit of the whole sync, in rsync's C(--bwlimit) syntax (for example
        V(100M)). Set, the file data moves in one run (see O(streams)).
    type: str
  streams:
    description:
      - Parallel rsync runs for the file data. Files of 32 MiB and more are shared out
        among them, largest first, to even out the bytes per run; the first run also
        takes every smaller file. Each run has its own SSH connection, so the cipher
        and the copies spread over the CPUs at both ends.
      - V(0) uses as many runs as this host has CPUs, at most 4. V(1) moves everything
        in one run. Snapshots and refs always follow in one run each.
      - With O(bwlimit) the file data moves in one run, so that the limit holds for
        the whole sync.
    type: int
    default: 0
  dir_times:
    description:
      - Give directories the source's modification times. V(false) leaves directory times
        alone, for a tree an application adds its own files to (an IndexTTS2 release,
        whose web UI writes C(outputs/)), so those files do not make a rerun report a change.
    type: bool
    default: true
  link_dest:
    description:
      - Earlier copies of the tree on this host (rsync C(--link-dest)), for a new O(dest)
        such as a new release beside the one in use. A file identical to the source's
        there becomes a hard link instead of a transfer, and a changed one is the basis of
        rsync's delta transfer, so a new release sends only what differs. The content
        stage then walks the tree, since the plan does not list the files rsync links.
    type: list
    elements: path
  owner:
    description:
      - Owner of everything that lands in O(dest), a user name or a numeric id. Needs
        root (become); a name that is not a user on this host is refused.
    type: str
  group:
    description: Group of everything that lands in O(dest), a group name or a numeric id.
    type: str
  lock_timeout:
    description:
      - Seconds to wait for another run that holds the lock of O(dest) (the re-sync
        timer, another play); V(0) fails at once when the lock is held.
    type: int
    default: 1800
requirements:
  - rsync 3.1 or later on this host and on the source host
notes:
  - The dry run, the first content run and the snapshot and ref stages share one SSH
    connection (a control socket in a private temporary directory, closed when the
    module ends), so they do not pay for a new SSH handshake each.
  - When this host's CPU has AES instructions, AES-GCM ciphers come first in the SSH
    cipher preference (chacha20-poly1305, ssh's default first choice, is slower there);
    the rest of ssh's default list follows.
  - The module keeps its state in O(dest) under C(.locks/indextts-sync/) (the lock, the
    record of verified blobs, seeds during a run, rejected blobs). huggingface_hub's
    cache scan skips C(.locks), the top-level C(.locks) is never transferred from the
    source, and O(delete) never removes it.
  - O(dest) may not be C(/) or a top-level system directory such as C(/etc) or C(/usr).
  - The source host only needs to accept a read-only rsync login, for example an
    C(authorized_keys) entry with C(command="rrsync -ro /srv/cache"). The role
    M(indextts.deploy.model_cache) sets that up.
seealso:
  - module: ansible.posix.synchronize
"""

EXAMPLES = r"""
- name: Pull the IndexTTS2 cache from the golden host
  indextts.deploy.model_cache_sync:
    src: /srv/indextts/cache
    dest: /srv/indextts/cache
    src_host: golden.example.com
    src_user: cache-reader
    ssh_key: /root/.ssh/indextts_cache
    known_hosts: /etc/indextts/known_hosts
    owner: indextts
    group: indextts

- name: Only two repos (and the checkpoints), removing what the source dropped
  indextts.deploy.model_cache_sync:
    src: /srv/indextts/cache
    dest: /srv/indextts/cache
    src_host: golden.example.com
    models:
      - facebook/w2v-bert-2.0
      - models--amphion--MaskGCT
    delete: true

- name: Copy from a local mount, verifying every blob
  indextts.deploy.model_cache_sync:
    src: /mnt/usb/indextts-cache
    dest: /srv/indextts/cache
    verify: all
"""

RETURN = r"""
changed_files:
  description: Paths (relative to O(dest)) that changed, in rsync's order, at most 200.
  returned: always
  type: list
  elements: str
  sample: [hub/models--org--m/blobs/3f2a..., hub/models--org--m/snapshots/c1/model.safetensors]
changed_files_count:
  description: How many paths changed in all (RV(changed_files) is capped).
  returned: always
  type: int
  sample: 2
stats:
  description: What rsync did, summed over the runs that moved data.
  returned: always
  type: dict
  contains:
    files_transferred:
      description: Regular files sent.
      type: int
    bytes_transferred:
      description: Bytes on the wire, both directions.
      type: int
    literal_bytes:
      description: File data sent as is.
      type: int
    matched_bytes:
      description: File data rebuilt from blocks the destination already had.
      type: int
    total_size:
      description: Size of all files of the source (in the selection), as the dry run counted it.
      type: int
    elapsed:
      description: Seconds spent in rsync, the dry run included (wall time; parallel runs count once).
      type: float
    runs:
      description: Each rsync run (dry run, stages and their parallel runs, retries) and its seconds.
      type: list
      elements: dict
  sample: {files_transferred: 3, bytes_transferred: 3459012, literal_bytes: 3355443,
           matched_bytes: 63753421, total_size: 2147483648, elapsed: 4.21}
seeded_blobs:
  description: New blobs seeded from an older revision's blob before the transfer.
  returned: always
  type: list
  elements: dict
  sample: [{blob: hub/models--org--m/blobs/9b1c..., basis: hub/models--org--m/blobs/3f2a...}]
published_refs:
  description:
    - The refs this run published and the commit each names, as read once from the
      source at the start of the run (the plan). A source that gained a revision during
      the run is published as the plan saw it; the next run brings the newer one.
  returned: always
  type: dict
  sample: {"hub/models--org--m/refs/main": "3f2a6c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49"}
source_moved:
  description:
    - True when the source's snapshots or refs changed between the dry run and the plan
      (the plan, the later look, was published), or, on failure, when the source changed
      during the run so that the plan could not be completed (nothing of it was published).
  returned: always
  type: bool
  sample: false
unresolved:
  description: Why the plan could not be completed, when the source changed during the run.
  returned: failure
  type: list
  elements: str
leftovers:
  description: What this run cleared or resumed of runs that were killed, in words.
  returned: always
  type: list
  elements: str
  sample: ["kept 1 interrupted blob transfer(s) as partial files to resume"]
lock_waited:
  description: Seconds this run waited for another run that held the lock of O(dest).
  returned: always
  type: float
  sample: 0.0
corrupt_blobs:
  description: Blobs that did not match their hash names (moved to C(.locks/indextts-sync/rejected/)).
  returned: failure
  type: list
  elements: str
  sample: [hub/models--org--m/blobs/9b1c...]
escaping_links:
  description: Links of the source refused because they leave their repo's blobs, as C(path -> target).
  returned: failure
  type: list
  elements: str
  sample: ["hub/models--org--m/blobs/sub -> /etc"]
verified_blobs:
  description: How many blobs were checked against their names.
  returned: always
  type: int
  sample: 3
attempts:
  description: Attempts the most troubled rsync run needed (1 when nothing failed).
  returned: always
  type: int
  sample: 1
"""

import errno
import fcntl
import grp
import hashlib
import json
import os
import pwd
import re
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.indextts.deploy.plugins.module_utils import _hfcache as hf
from ansible_collections.indextts.deploy.plugins.module_utils import _rsync
from ansible_collections.indextts.deploy.plugins.module_utils._paths import error_text, system_dir

PARTIAL_DIR = ".indextts-partial"
# The module's own state inside dest: its lock, the seeds of revision-aware delta,
# rejected blobs and the record of verified ones. Under .locks, which huggingface_hub's
# cache scan skips; never transferred (filtered out on both sides), never deleted by
# delete=true.
STATE_DIR = ".locks/indextts-sync"
LOCK_FILE = "lock"
SEEDS_DIR = "seeds"
PLAN_DIR = "plan"  # the snapshot links and refs this run publishes, as read once from src
REJECTED_DIR = "rejected"
VERIFIED_RECORD = "verified.json"
SSH_DIR_PREFIX = "indextts-ssh-"
# rsync's temporary file for <name> in the same directory: .<name>.XXXXXX
_TEMP_RE = re.compile(r"^\.(?P<name>[0-9a-f]{40}|[0-9a-f]{64})\.[A-Za-z0-9]{6}$")
# rsync's --bwlimit: a rate in KiB/s, or with a K, M, G (or KB, MiB ...) suffix
_BWLIMIT_RE = re.compile(r"^[0-9]+(\.[0-9]+)?([KMGTPkmgtp]([Ii]?[Bb])?)?$")
_BAD_NAME_RE = re.compile(r"(^-)|[\s\x00-\x1f\x7f]")
CHANGED_FILES_LIMIT = 200
FILES_FROM_LIMIT = 1000
SEEDED_BLOCK_SIZE = 4096
STREAM_MIN_BYTES = 32 * 1024 * 1024  # smaller files stay in the first run
# What one path costs a run besides its data (creating, renaming, stamping it), in
# bytes of data moved in the same time; measured on the lab, about 24 KiB.
PATH_COST_BYTES = 32 * 1024
MAX_AUTO_STREAMS = 4


def read_cpuinfo():
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except (IOError, OSError):
        return ""


def file_key(path):
    """What changes when a file is replaced or rewritten: inode, size, times."""
    st = os.lstat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class RsyncFailure(object):
    """A run that failed for good: its message, exit code, stderr and attempts."""

    def __init__(self, msg, rc, stderr, attempts):
        self.msg, self.rc, self.stderr, self.attempts = msg, rc, stderr, attempts


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
    until it is replaced.
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
        try:
            while self.pending and not self.stopping.is_set():
                for rel in list(self.pending):
                    if self.stopping.is_set():
                        return
                    self.step(rel)
                self.stopping.wait(0.1)
        finally:
            for followed in self.following.values():
                followed.file.close()
            self.following.clear()

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

    def stop(self):
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()

    def digest(self, rel):
        """The digest taken during the transfer, if rel is still that file."""
        entry = self.digests.get(rel)
        try:
            if entry and file_key(os.path.join(self.dest, rel)) == entry[0]:
                return entry[1]
        except OSError:
            pass
        return None


class ModelCacheSync(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.src = self.params["src"]
        self.dest = self.params["dest"].rstrip("/") or "/"
        self.host = self.params["src_host"]
        self.rsync = module.get_bin_path("rsync", required=True)
        self.elapsed = 0.0
        self.attempts = 1
        self.is_root = os.geteuid() == 0
        self.state = os.path.join(self.dest, STATE_DIR)
        self.seeds = {}  # new blob (relative to dest) -> its seed in the state dir
        self.lock_fd = None
        self.wrote = False  # once True, a failure still reports changed
        self.verified_record = {}  # blob -> [size, mtime_ns, inode] when it last matched its name
        self.planned = []
        self.staged = None  # the plan's snapshot links and refs, once read from src (stage_plan)
        self.published_refs = {}
        self.runs = []  # each rsync run and how long it took
        self.hasher = None
        # rsync's --bwlimit holds per run: one run keeps it a limit of the whole sync.
        self.streams = 1 if self.params["bwlimit"] else (
            self.params["streams"] or min(os.cpu_count() or 1, MAX_AUTO_STREAMS))
        self.ciphers = _rsync.cipher_preference(read_cpuinfo()) if self.host else None
        self.control_dir = None

    def fail(self, msg, **kwargs):
        """Fail the task; once data was written, the result still says changed."""
        self.module.fail_json(msg=msg, changed=self.wrote, **kwargs)

    # -- inspect: reads only ---------------------------------------------------
    def check_params(self):
        p = self.params
        for name in ("src", "dest", "ssh_key", "known_hosts"):
            if p[name] and not os.path.isabs(p[name]):
                self.fail("%s must be an absolute path, got %r" % (name, p[name]))
        for path in (os.path.normpath(self.dest), os.path.realpath(self.dest)):
            if system_dir(path):
                what = "a system directory" if path == self.dest else "a link to the system directory %s" % path
                self.fail("dest %s is %s; sync the cache into a directory of its own below it, for "
                          "example /srv/indextts/cache" % (self.dest, what))
        for name in ("src_host", "src_user"):
            if p[name] is not None and (not p[name] or _BAD_NAME_RE.search(p[name]) or
                                        (name == "src_user" and ("@" in p[name] or ":" in p[name]))):
                self.fail("%s %r is not a %s: it is empty, starts with '-', or holds a space, '@', ':' or "
                          "a control character; fix the inventory value" % (
                              name, p[name], "host name or address" if name == "src_host" else "user name"))
        if not 1 <= p["ssh_port"] <= 65535:
            self.fail("ssh_port must be a TCP port from 1 to 65535, got %d" % p["ssh_port"])
        if p["bwlimit"] and not _BWLIMIT_RE.match(p["bwlimit"]):
            self.fail("bwlimit %r is not a rate rsync reads: give KiB per second (5000) or a number with "
                      "a unit (50M, 1.5G)" % p["bwlimit"])
        if p["lock_timeout"] < 0:
            self.fail("lock_timeout must be 0 (do not wait) or more seconds, got %d" % p["lock_timeout"])
        if not self.host and os.path.realpath(self.src) == os.path.realpath(self.dest):
            self.fail("src and dest are the same local directory (%s); "
                      "set src_host to pull from another host" % self.dest)
        if not self.host and not os.path.isdir(self.src):
            self.fail("src %s is not a directory on this host; "
                      "set src_host when it lives on another host" % self.src)
        for basis in p["link_dest"] or []:
            if not os.path.isabs(basis) or not os.path.isdir(basis):
                self.fail("link_dest entry %r is not an absolute path of a directory on this "
                          "host; name an earlier copy of the tree (for example the release "
                          "in use), or leave it out" % basis)
            if os.path.realpath(basis) == os.path.realpath(self.dest):
                self.fail("link_dest entry %s is dest itself; name an earlier copy of the tree" % basis)
        for name in ("ssh_key", "known_hosts"):
            if p[name] and not os.path.isfile(p[name]):
                self.fail("%s %s does not exist on this host" % (name, p[name]))
        if p["retries"] < 0:
            self.fail("retries must be 0 or more, got %d" % p["retries"])
        if p["retry_delay"] < 0:
            self.fail("retry_delay must be 0 or more, got %s" % p["retry_delay"])
        if p["streams"] < 0:
            self.fail("streams must be 0 (one per CPU, at most %d) or more, got %d"
                      % (MAX_AUTO_STREAMS, p["streams"]))
        if p["timeout"] < 0:
            self.fail("timeout must be 0 (off) or more seconds, got %d" % p["timeout"])
        if p["owner"] and not self.is_root:
            self.fail("owner=%s needs root on this host: run the task with become" % p["owner"])
        for name, lookup, what in (("owner", pwd.getpwnam, "user"), ("group", grp.getgrnam, "group")):
            if p[name] and not p[name].isdigit():
                try:
                    lookup(p[name])
                except KeyError:
                    self.fail("%s %r is not a %s on this host; create it first, or give a numeric id"
                              % (name, p[name], what))
        if self.host and not p["host_key_checking"]:
            self.module.warn("host_key_checking is off: the identity of src_host %s is not verified" % self.host)
        bad = [m for m in p["models"] or [] if hf.repo_dir_name(m) is None]
        if bad:
            self.fail("models entries %s are not repo ids; use org/name or "
                      "models--org--name" % ", ".join(repr(m) for m in bad))

    def check_dest(self):
        """dest is a directory or does not exist yet."""
        if os.path.lexists(self.dest) and not os.path.isdir(self.dest):
            self.fail("dest %s exists and is not a directory; remove it or "
                      "choose another dest" % self.dest)

    def statvfs(self):
        """statvfs of the filesystem that holds (or will hold) dest."""
        path = self.dest
        while not os.path.exists(path):
            path = os.path.dirname(path)
        return os.statvfs(path)

    def free_bytes(self):
        """Free space for an unprivileged writer on the filesystem that will hold dest."""
        st = self.statvfs()
        return st.f_bavail * st.f_frsize

    def needed_bytes(self, changes):
        """Space the planned files take on dest's filesystem: whole blocks, not bytes
        (20,000 small files of 100 bytes take 80 MB on 4 KiB blocks, not 2 MB)."""
        block = self.statvfs().f_frsize or 4096
        return sum(-(-c.get("size", 0) // block) * block for c in changes if c["type"] == "file")

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
                if in_partial or _TEMP_RE.match(name):
                    try:
                        held += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
                        files += 1
                    except OSError:
                        pass
        return held, files

    def context(self, planned=()):
        """The names and figures rsync's failure messages use (see _rsync.explain_failure)."""
        login = "%s@%s" % (self.params["src_user"], self.host) if self.params["src_user"] else self.host
        context = {"src": self.src, "host": self.host, "login": login, "dest": self.dest,
                   "where": self.host or "this host",
                   "known_hosts": self.params["known_hosts"] or "~/.ssh/known_hosts",
                   "partial": PARTIAL_DIR}
        context["held"], _files = self.held_by_partials()
        context["free"] = self.free_bytes()
        context["needed"] = self.needed_bytes(planned)
        return context

    def control_path(self, shared):
        """The SSH control socket for a run that shares the connection, "none" for one
        that must have its own (a parallel stream), None without SSH."""
        if not self.host:
            return None
        if not shared:
            return "none"
        if self.control_dir is None:
            # The pid in the name lets a later run clear what a killed one left.
            self.control_dir = tempfile.mkdtemp(prefix="%s%d-" % (SSH_DIR_PREFIX, os.getpid()))
        return os.path.join(self.control_dir, "ssh")

    def argv(self, stage="all", dry_run=False, filters=None, list_only=False, files_from=False,
             block_size=None, exclude=(), shared=True, into=None, publish=False, delete_only=False):
        """rsync's argv for one stage of the sync, its dry run, or a listing of src.

        ``exclude``: filter rules for paths another parallel run moves. ``shared``:
        over the shared SSH connection (see control_path). ``into``: a directory to
        receive only what differs from dest (the plan's metadata), instead of dest.
        ``publish``: from that plan to dest, on this host. ``delete_only``: remove what
        src no longer has, create or update nothing."""
        p = self.params
        remote_shell = None
        if self.host and not publish:
            remote_shell = _rsync.ssh_command(
                port=p["ssh_port"], key=p["ssh_key"], known_hosts=p["known_hosts"],
                host_key_checking=p["host_key_checking"],
                connect_timeout=min(p["timeout"] or 20, 20),
                ciphers=self.ciphers, control_path=self.control_path(shared))
        chown = None
        if p["owner"] or p["group"]:
            chown = "%s:%s" % (p["owner"] or "", p["group"] or "")
        # Partial dirs (ours, or a source node's own) are never part of the cache, nor is
        # the top-level .locks: huggingface_hub's transient lock files, and this module's
        # state (a source node's, or a link a hostile source would plant there).
        rules = ["- %s/" % PARTIAL_DIR, "- /%s" % os.path.dirname(STATE_DIR)] + list(exclude) + list(filters or [])
        if not files_from:
            rules += hf.visibility_filters(stage)
        source = (os.path.join(self.state, PLAN_DIR) + "/" if publish
                  else _rsync.source_spec(self.src, self.host, p["src_user"]))
        if list_only:
            return _rsync.build_argv(self.rsync, source, filters=rules, remote_shell=remote_shell,
                                     timeout=p["timeout"], preserve_owner=False)
        moves_data = not (dry_run or publish or delete_only or stage in hf.METADATA_STAGES)
        return _rsync.build_argv(
            self.rsync, source, into or self.dest,
            dry_run=dry_run, delete=p["delete"] and stage == "all" and not files_from, filters=rules,
            # Only where file data moves: looking for a partial file costs a stat per
            # file, and the dry run and the metadata stages (links, refs of a few bytes)
            # have nothing to resume.
            partial_dir=PARTIAL_DIR if moves_data else None,
            remote_shell=remote_shell, block_size=block_size, compare_dest=self.dest if into else None,
            delete_only=delete_only, timeout=p["timeout"],
            compress=p["compress"] and not publish, bwlimit=None if publish else p["bwlimit"], chown=chown,
            preserve_owner=self.is_root, files_from=files_from, dir_times=p["dir_times"],
            # Seeds are the basis of the new blobs' delta transfer, from outside the blobs dirs.
            link_dest=list(p["link_dest"] or ()) + ([os.path.join(self.state, SEEDS_DIR)]
                                                    if self.seeds and stage in ("content", "all") else []))

    def attempt_rsync(self, argv, what, paths=None):
        """Run rsync, retrying transient failures with back-off. Returns stdout, or an
        RsyncFailure. Safe in a thread: it never ends the module itself.

        ``paths`` go to rsync's standard input (for --files-from=- --from0)."""
        delay = self.params["retry_delay"]
        data = None if paths is None else "".join(p + "\0" for p in paths)
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            rc, out, err = self.module.run_command(argv, data=data, binary_data=True)
            self.runs.append({"run": what, "seconds": round(time.monotonic() - started, 3)})
            self.attempts = max(self.attempts, attempt)
            if rc == 0 or rc == 24:  # 24: a source file vanished while listed; the rest is in place
                return out
            transient, why = _rsync.explain_failure(rc, err, self.context(self.planned))
            if not transient or attempt > self.params["retries"]:
                return RsyncFailure("%s failed after %d attempt(s): %s" % (what, attempt, why),
                                    rc, _rsync.last_lines(err), attempt)
            self.module.warn("%s: attempt %d failed (%s), retrying in %.0f s"
                             % (what, attempt, why, delay))
            time.sleep(delay)
            delay *= 2

    def run_rsyncs(self, jobs):
        """Run (argv, what, paths) jobs at once, one thread each; their outputs in
        order. When any failed for good, the task fails with the first failure, after
        the others have finished (nothing is left running)."""
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            outcomes = list(pool.map(lambda job: self.attempt_rsync(*job), jobs))
        self.elapsed += time.monotonic() - started
        for outcome in outcomes:
            if isinstance(outcome, RsyncFailure):
                self.fail(outcome.msg, rc=outcome.rc, stderr=outcome.stderr, attempts=outcome.attempts)
        return outcomes

    def run_rsync(self, argv, what, paths=None):
        return self.run_rsyncs([(argv, what, paths)])[0]

    def source_repos(self):
        """Repo directory names the source holds (only directories are listed)."""
        out = self.run_rsync(self.argv(list_only=True, filters=["- *--*/*/", "+ */", "- *"]),
                             "listing the repos of src")
        names = set()
        for line in out.splitlines():
            fields = line.split(None, 4)
            if len(fields) == 5 and fields[0].startswith("d"):
                names.add(fields[4].rstrip("/").rsplit("/", 1)[-1])
        return set(n for n in names if hf.is_repo_dir(n))

    def model_filters(self):
        if not self.params["models"]:
            return []
        wanted = [hf.repo_dir_name(m) for m in self.params["models"]]
        have = self.source_repos()
        unknown = [m for m, d in zip(self.params["models"], wanted) if d not in have]
        if unknown:
            self.fail("models entries %s are not in src %s on %s (it has: %s)"
                      % (", ".join(repr(m) for m in unknown), self.src,
                         self.host or "this host", ", ".join(sorted(have)) or "no repos"))
        return hf.models_filters(sorted(set(wanted)))

    def plan(self, filters):
        """The dry run: what a real run changes, and rsync's statistics of it."""
        out = self.run_rsync(self.argv(dry_run=True, filters=filters), "dry run of the sync")
        return _rsync.parse_itemized(out), _rsync.parse_stats(out)

    @staticmethod
    def stage_of(change):
        """The visibility stage a planned change belongs to (see hf.visibility_filters)."""
        split = hf.split_repo_path(change["path"])
        if split and split[1] == "snapshots":
            return "snapshots"
        if split and split[1] in hf.METADATA_DIRS:
            return "refs"
        return "content"

    def stages(self, changes, extra=()):
        """The content stage's runs for the planned changes (and ``extra`` paths), and
        whether a pass that deletes follows: ([(paths, exclude)], deleting).

        Each run is (paths, exclude): a run with few planned paths sends just those
        (--files-from); one with many (paths None) walks the tree with the content
        filters instead, which keeps rsync's incremental recursion (a list of thousands
        of files without it is slower than the walk), leaving out the ``exclude``d
        paths that other runs move. Snapshot links and refs are not transferred from
        src: they are published from the plan (stage_plan, publish).
        """
        paths = []
        sizes = {}
        deleting = False
        for c in changes:
            if c["type"] == "deleted":
                deleting = True
                continue
            if self.stage_of(c) != "content":
                continue
            path = c["path"].rstrip("/") or "."
            paths.append(path)
            if c["type"] == "file":
                sizes[path] = c["size"]
        paths += [p for p in extra if p not in sizes]
        if not paths:
            return [], deleting
        # With link_dest the dry run does not list what rsync will hard-link from the
        # basis, so the run that may create such files walks the tree.
        walk = bool(self.params["link_dest"])
        runs = self.share_out(paths, sizes)
        return [(ps if len(ps) <= FILES_FROM_LIMIT and not (walk and i == 0) else None, ex)
                for i, (ps, ex) in enumerate(runs)], deleting

    def share_out(self, paths, sizes):
        """The content stage's paths as parallel runs [(paths, exclude)].

        Files of STREAM_MIN_BYTES or more go, largest first, to the run with the least
        work so far; the first run starts with every smaller path. Work is bytes plus
        PATH_COST_BYTES per path, as many small files take long for their bytes. The
        first run may walk the tree, so it excludes what the others move.
        """
        big = sorted((p for p in paths if sizes.get(p, 0) >= STREAM_MIN_BYTES), key=lambda p: -sizes[p])
        if self.streams < 2 or len(big) < 2:
            return [(paths, [])]
        chosen = set(big)
        lists = [[p for p in paths if p not in chosen]] + [[] for _i in range(self.streams - 1)]
        loads = [sum(sizes.get(p, 0) + PATH_COST_BYTES for p in lists[0])] + [0] * (self.streams - 1)
        for path in big:
            i = loads.index(min(loads))
            lists[i].append(path)
            loads[i] += sizes[path]
        elsewhere = [p for other in lists[1:] for p in other]
        runs = [(lists[0], [_rsync.exclude_rule(p) for p in elsewhere])]
        return runs + [(other, []) for other in lists[1:] if other]

    def seed_candidates(self, changes):
        """(new blob, older local blob of the same file) pairs for revision-aware delta."""
        local = None
        pairs = []
        for c in changes:
            if c["type"] != "symlink" or "target" not in c:
                continue
            snap = hf.snapshot_file(c["path"])
            blob = hf.link_target_path(c["path"], c["target"])
            if not snap or not blob or os.path.lexists(os.path.join(self.dest, blob)):
                continue
            if local is None:
                local = hf.index_snapshots(self.dest)
            basis = local.get(snap[0], {}).get(snap[2])
            if basis and basis != blob:
                pairs.append({"blob": blob, "basis": basis})
        return pairs

    def escaping_links(self, changes):
        """Planned links inside a Hugging Face repo that are not what the cache layout
        allows (snapshots/<commit>/<file> -> a file directly in that repo's blobs/), as
        "path -> target". Such a link from a hostile or broken source would make this
        module, or a reader, reach outside dest. Elsewhere (a release's virtualenv)
        links are the tree's own business."""
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
                continue  # the dry run does not read targets: the plan's links are checked (stage_plan)
            blob = hf.link_target_path(c["path"], c["target"])
            blob_split = hf.split_repo_path(blob) if blob else None
            if not (blob_split and blob_split[0] == split[0] and blob_split[1] == "blobs"
                    and blob_split[2] and "/" not in blob_split[2]):
                bad.append("%s -> %s" % (c["path"], c["target"]))
        return bad

    # -- apply -------------------------------------------------------------------
    def inside_dest(self, rel):
        """True when dest/<rel>'s directory is reached without leaving dest through a link."""
        real = os.path.realpath(os.path.join(self.dest, os.path.dirname(rel)))
        return real == os.path.join(os.path.realpath(self.dest), os.path.dirname(rel)).rstrip("/")

    def lock(self):
        """Hold dest's lock for the rest of the run (flock on <dest>/%s/%s), waiting up to
        lock_timeout seconds for a run that holds it: one run per dest, and the re-sync
        timer and Ansible share it. Makes dest. The kernel releases the lock when this
        process ends, however it ends."""
        base = os.path.join(self.dest, os.path.dirname(STATE_DIR))
        for path in (base, self.state):
            if os.path.islink(path):
                self.fail("%s is a symbolic link; refusing to keep the sync's lock and state through it "
                          "(a source must not plant links there). Remove the link and rerun." % path)
        self.makedirs(self.state, 0o755)
        lock = os.path.join(self.state, LOCK_FILE)
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
            if time.monotonic() - started >= self.params["lock_timeout"]:
                holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "a run that has not said who it is"
                os.close(fd)
                self.fail("dest %s is being synced by another run (%s) that did not finish within lock_timeout=%d "
                          "s; wait for it (journalctl -u indextts-cache-sync for the timer's), or raise "
                          "lock_timeout" % (self.dest, holder, self.params["lock_timeout"]))
            time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, ("pid %d on %s since %s\n" % (os.getpid(), socket.gethostname(),
                                                    time.strftime("%Y-%m-%dT%H:%M:%S%z"))).encode(), 0)
        self.lock_fd = fd
        return time.monotonic() - started

    def own(self, path):
        """Give what this module makes in dest the owner and group that the cache's files
        get (owner, group), so the cache stays owned by its account throughout."""
        p = self.params
        if not (p["owner"] or p["group"]):
            return
        uid = gid = -1
        if p["owner"]:
            uid = int(p["owner"]) if p["owner"].isdigit() else pwd.getpwnam(p["owner"]).pw_uid
        if p["group"]:
            gid = int(p["group"]) if p["group"].isdigit() else grp.getgrnam(p["group"]).gr_gid
        os.lchown(path, uid, gid)

    def makedirs(self, path, mode):
        """os.makedirs, each directory it makes owned as the cache (own)."""
        missing = []
        while not os.path.isdir(path):
            missing.append(path)
            path = os.path.dirname(path)
        for directory in reversed(missing):
            os.mkdir(directory, mode)
            if directory == self.dest or directory.startswith(self.dest.rstrip("/") + "/"):
                self.own(directory)  # not the parents of dest: they are not the cache

    def remove_tree(self, top):
        """Remove a directory tree of this module's own state (seeds are extra hard links
        to blobs), never following a link out of it."""
        if not os.path.lexists(top):
            return
        if os.path.islink(top) or not os.path.isdir(top):
            os.unlink(top)
            return
        for dirpath, dirnames, filenames in os.walk(top, topdown=False):
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                os.unlink(os.path.join(dirpath, name))
            os.rmdir(dirpath)

    def clear_leftovers(self):
        """What earlier runs left when they were killed: seeds are removed (they never
        sat under a final name) and rsync's temporary files of blobs become partial files
        that this run resumes from. Returns what was done, in words."""
        done = []
        seeds = os.path.join(self.state, SEEDS_DIR)
        if os.path.lexists(seeds):
            self.remove_tree(seeds)
            done.append("removed the seeds of an earlier run")
        self.remove_tree(os.path.join(self.state, PLAN_DIR))  # an unpublished plan is stale
        resumed = 0
        for dirpath, dirnames, filenames in os.walk(self.dest):
            rel = os.path.relpath(dirpath, self.dest)
            depth = 0 if rel == "." else rel.count("/") + 1
            split = hf.split_repo_path(rel) if rel != "." else None
            if split and split[1] == "blobs" and not split[2]:
                dirnames[:] = []
                for name in filenames:
                    match = _TEMP_RE.match(name)
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
            self.module.warn("could not keep %s as a partial file: %s" % (temp, error_text(e)))
            return 0

    def close_stale_ssh(self):
        """Close the SSH control masters of runs of this user that are gone, and remove
        their directories (<tmp>/indextts-ssh-<pid>-XXXX)."""
        done = []
        top = tempfile.gettempdir()
        try:
            names = os.listdir(top)
        except OSError:
            return done
        for name in names:
            match = re.match(r"^%s(\d+)-" % SSH_DIR_PREFIX, name)
            path = os.path.join(top, name)
            if not match or int(match.group(1)) == os.getpid() or os.path.exists("/proc/%s" % match.group(1)):
                continue
            try:
                if os.lstat(path).st_uid != os.geteuid() or os.path.islink(path):
                    continue
                sock = os.path.join(path, "ssh")
                if os.path.exists(sock):
                    ssh = self.module.get_bin_path("ssh") or "ssh"
                    self.module.run_command([ssh, "-o", "ControlPath=%s" % sock, "-O", "exit", "stale"])
                    if os.path.lexists(sock):
                        os.unlink(sock)
                os.rmdir(path)
                done.append("closed the SSH connection of an earlier run (%s)" % path)
            except OSError:
                continue
        return done

    def seed(self, pairs):
        """Hard-link each basis into the state dir under the new blob's path, where
        rsync takes it (as a --link-dest dir) as the basis of the new blob's delta
        transfer. Never under a final name: a seed holds the old content, and a name in
        blobs/ promises the content of its hash. rsync writes the new blob to a
        temporary file and renames it into place, so the old blob is never modified.
        Only between regular files inside dest (a link from an older sync must not
        carry the seed, or rsync, outside it)."""
        seeded = []
        real_dest = os.path.realpath(self.dest) + os.sep
        for pair in pairs:
            basis = os.path.join(self.dest, pair["basis"])
            seed = os.path.join(self.state, SEEDS_DIR, pair["blob"])
            if os.path.lexists(os.path.join(self.dest, pair["blob"])):
                continue
            try:
                if (not self.inside_dest(pair["basis"]) or not self.inside_dest(pair["blob"])
                        or not os.path.realpath(basis).startswith(real_dest) or os.path.islink(basis)
                        or not os.path.isfile(basis)):
                    self.module.warn("not seeding %s from %s: a link leads out of dest %s"
                                     % (pair["blob"], pair["basis"], self.dest))
                    continue
                self.makedirs(os.path.dirname(seed), 0o700)
                os.link(basis, seed, follow_symlinks=False)
            except OSError as e:
                self.module.warn("could not seed %s from %s: %s" % (pair["blob"], pair["basis"], error_text(e)))
                continue
            self.seeds[pair["blob"]] = seed
            seeded.append(pair)
        return seeded

    def recorded(self, rel):
        """True when blob rel matched its name in an earlier run and was not changed since."""
        try:
            st = os.lstat(os.path.join(self.dest, rel))
        except OSError:
            return False
        return self.verified_record.get(rel) == [st.st_size, st.st_mtime_ns, st.st_ino]

    def load_record(self):
        try:
            with open(os.path.join(self.state, VERIFIED_RECORD)) as f:
                record = json.load(f)
            self.verified_record = record if isinstance(record, dict) else {}
        except (IOError, OSError, ValueError):
            self.verified_record = {}

    def save_record(self, blobs):
        """Add blobs (just verified) to the record; drop entries of blobs that are gone."""
        for rel in blobs:
            try:
                st = os.lstat(os.path.join(self.dest, rel))
            except OSError:
                continue
            self.verified_record[rel] = [st.st_size, st.st_mtime_ns, st.st_ino]
        record = dict((rel, v) for rel, v in self.verified_record.items()
                      if os.path.lexists(os.path.join(self.dest, rel)))
        path = os.path.join(self.state, VERIFIED_RECORD)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f, sort_keys=True)
        self.own(path + ".tmp")
        os.replace(path + ".tmp", path)

    def transfer(self, content_runs, deleting, filters):
        """Content (in parallel runs), verification, then the plan's snapshot links and
        refs, then (delete=true) what src no longer has: (changes, totals, verified)."""
        totals = dict.fromkeys(("files_transferred", "bytes_transferred", "literal_bytes",
                                "matched_bytes"), 0)
        changes = []
        seen = set()

        def collect(outputs):
            for out in outputs:
                for c in _rsync.parse_itemized(out):
                    if c["path"] not in seen:
                        seen.add(c["path"])
                        changes.append(c)
                stats = _rsync.parse_stats(out)
                totals["files_transferred"] += stats.get("files_transferred", 0)
                totals["bytes_transferred"] += stats.get("bytes_sent", 0) + stats.get("bytes_received", 0)
                totals["literal_bytes"] += stats.get("literal_bytes", 0)
                totals["matched_bytes"] += stats.get("matched_bytes", 0)

        self.wrote = True
        # Seeded blobs differ from their basis in scattered blocks: smaller blocks than
        # rsync's default (the square root of the file size) send less around each change.
        block_size = SEEDED_BLOCK_SIZE if self.seeds else None
        jobs = []
        for i, (paths, exclude) in enumerate(content_runs):
            what = "sync (content stage%s)" % (", run %d of %d" % (i + 1, len(content_runs))
                                               if len(content_runs) > 1 else "")
            # The first run shares the SSH connection; the others open their own,
            # so that their encryption runs in processes of their own.
            if paths is None:
                argv = self.argv(stage="content", filters=filters, exclude=exclude, block_size=block_size,
                                 shared=i == 0)
            else:
                argv = self.argv(stage="content", files_from=True, block_size=block_size, shared=i == 0)
            jobs.append((argv, what, paths))
        if jobs:
            collect(self.run_rsyncs(jobs))
        # Blobs are checked before any snapshot or ref can point at them.
        verified = self.check_content(changes)
        if self.staged is not None:
            self.check_plan()
            for stage in ("snapshots", "refs"):
                collect([self.run_rsync(self.argv(stage=stage, publish=True), "publishing the planned %s" % stage)])
        if deleting:
            collect([self.run_rsync(self.argv(stage="all", filters=filters, delete_only=True),
                                    "sync (deleting what src no longer has)")])
        return changes, totals, verified

    def check_content(self, changes):
        """After the content stage: the seeds gone, and verified: the blobs to verify,
        and those the planned snapshot links point at that never matched their names
        here (landed by a run that was killed before it verified them, say)."""
        if self.hasher:
            self.hasher.stop()
        self.remove_tree(os.path.join(self.state, SEEDS_DIR))
        blobs = self.blobs_to_verify(changes)
        if self.params["verify"] != "none":
            links = self.staged if self.staged is not None else self.planned
            blobs = sorted(set(blobs) | set(b for b in self.linked_blobs(links) if not self.recorded(b)))
        return self.verify(blobs)

    @staticmethod
    def linked_blobs(changes, lfs_only=True):
        """Blobs (LFS blobs only, unless not ``lfs_only``) the snapshot links among
        changes point at."""
        blobs = []
        for c in changes:
            if c["type"] == "symlink" and hf.snapshot_file(c["path"]):
                blob = hf.link_target_path(c["path"], c.get("target", ""))
                if blob and (hf.is_lfs_blob(os.path.basename(blob)) or not lfs_only):
                    blobs.append(blob)
        return blobs

    def start_hasher(self, planned):
        """Hash the blobs the plan says this run writes while the transfer goes on
        (with verify=all, the others are hashed after it)."""
        scope = "none" if self.params["verify"] == "none" else "new"
        self.hasher = BlobHasher(self.dest, self.blobs_to_verify(planned, scope)).start()

    def blobs_to_verify(self, changes, scope=None):
        """Blobs to check against their names: those of the changes (``scope`` new),
        every one under dest (all), and in any case those seeded from an older
        revision. ``scope`` is the verify option unless given."""
        scope = scope or self.params["verify"]
        seeded = list(self.seeds)
        if scope == "none":
            paths = seeded
        elif scope == "new":
            paths = [c["path"] for c in changes if c["type"] == "file"] + seeded
        else:
            paths = []
            for dirpath, dirnames, filenames in os.walk(self.dest):
                dirnames[:] = [d for d in dirnames if d != PARTIAL_DIR]
                rel = os.path.relpath(dirpath, self.dest)
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

    def verify(self, blobs):
        """Hash blobs against their names, on every CPU (hashlib releases the GIL),
        reusing the digests taken during the transfer of files that did not change since."""
        def mismatch(path):
            full = os.path.join(self.dest, path)
            if not os.path.isfile(full):
                return None  # a blob the source deleted again (delete=false keeps what exists)
            digest = self.hasher.digest(path) if self.hasher else None
            return path if (digest or hf.blob_sha256(full)) != os.path.basename(path) else None

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            bad = [path for path in pool.map(mismatch, blobs) if path]
        if bad:
            rejected = os.path.join(self.state, REJECTED_DIR)
            for path in bad:
                # Off its final name, so that no later run takes it for a verified blob
                # (a rerun fetches it again and checks it again); kept for inspection.
                aside = os.path.join(rejected, path)
                self.makedirs(os.path.dirname(aside), 0o700)
                os.replace(os.path.join(self.dest, path), aside)
                self.wrote = True
            self.fail(
                "%d blob(s) under dest %s do not match their hash names: %s. The source "
                "holds corrupt blobs or they were changed during the transfer; no snapshot "
                "or ref was published for them, and they were moved to %s/ so that no rerun "
                "publishes them. Repair the source and rerun." % (len(bad), self.dest, ", ".join(bad[:10]), rejected),
                corrupt_blobs=bad)
        self.save_record(blobs)
        return len(blobs)

    def close(self):
        """Stop the hashing thread, close the shared SSH connection and remove its
        directory, remove the seeds, release the lock."""
        if self.hasher:
            self.hasher.stop()
        if self.lock_fd is not None:
            try:
                self.remove_tree(os.path.join(self.state, SEEDS_DIR))
                self.remove_tree(os.path.join(self.state, PLAN_DIR))
            except OSError as e:
                self.module.warn("could not remove the seeds and plan in %s: %s" % (self.state, error_text(e)))
            os.close(self.lock_fd)  # releases the flock
            self.lock_fd = None
        if self.control_dir is None:
            return
        socket = os.path.join(self.control_dir, "ssh")
        if os.path.exists(socket):
            ssh = self.module.get_bin_path("ssh") or "ssh"
            self.module.run_command([ssh, "-o", "ControlPath=%s" % socket, "-O", "exit", self.host])
        try:
            if os.path.lexists(socket):
                os.unlink(socket)
            os.rmdir(self.control_dir)
        except OSError as e:
            self.module.warn("could not remove the SSH control directory %s: %s" % (self.control_dir, e))

    def stage_plan(self, filters):
        """Read src's snapshot links and refs once, into the state dir's plan/: only what
        differs from dest (rsync --compare-dest). What this run publishes is exactly
        this, never a second look at the live src. Returns the plan's entries."""
        plan = os.path.join(self.state, PLAN_DIR)
        self.remove_tree(plan)
        self.makedirs(plan, 0o700)
        out = self.run_rsync(self.argv(stage="metadata", filters=filters, into=plan),
                             "planning snapshots and refs (read once from src)")
        staged = [c for c in _rsync.parse_itemized(out) if c["type"] != "dir"]
        for c in staged:
            if c["type"] == "symlink":
                # The link rsync made, read as it is: no parsing of " -> " in its output.
                c["target"] = os.readlink(os.path.join(plan, c["path"]))
        return staged

    @staticmethod
    def metadata_entries(changes):
        """Paths of the snapshot links and refs among changes."""
        return set(c["path"] for c in changes
                   if c["type"] not in ("dir", "deleted") and ModelCacheSync.stage_of(c) != "content")

    def missing_blobs(self, staged, content):
        """Blobs the plan's snapshot links point at that are neither in dest nor among
        the content paths: src gained a revision between the dry run and the plan."""
        missing = []
        for blob in self.linked_blobs(staged, lfs_only=False):
            if blob not in content and not os.path.lexists(os.path.join(self.dest, blob)):
                missing.append(blob)
        return sorted(set(missing))

    def check_plan(self):
        """Before publishing: every snapshot link of the plan leads to a blob now in
        dest, and every ref of the plan names a snapshot that dest has or the plan
        brings. Otherwise src changed during the run in a way the plan cannot complete
        (a revision removed), and nothing of the plan is published."""
        plan = os.path.join(self.state, PLAN_DIR)
        unresolved = []
        self.published_refs = {}
        for c in self.staged:
            split = hf.split_repo_path(c["path"])
            if c["type"] == "symlink" and hf.snapshot_file(c["path"]):
                blob = hf.link_target_path(c["path"], c.get("target", ""))
                if not blob or not os.path.isfile(os.path.join(self.dest, blob)):
                    unresolved.append("%s -> %s: no such blob in dest" % (c["path"], c.get("target")))
            elif c["type"] == "file" and split and split[1] == "refs":
                commit, problem = hf.read_ref(os.path.join(plan, split[0]), split[2])
                if commit:
                    self.published_refs[c["path"]] = commit
                if problem:
                    unresolved.append("%s: %s" % (c["path"], problem))
                elif not any(os.path.isdir(os.path.join(root, split[0], "snapshots", commit)) for root in (self.dest, plan)):
                    unresolved.append("%s names snapshot %s, which src no longer has" % (c["path"], commit[:12]))
        if unresolved:
            self.fail("src %s on %s changed during the sync in a way this run's plan cannot complete: %s. No "
                      "snapshot link or ref of the plan was published, so readers of dest still see its earlier, "
                      "consistent state; rerun to sync src as it is now."
                      % (self.src, self.host or "this host", "; ".join(unresolved[:10])),
                      source_moved=True, unresolved=unresolved)

    def check_room(self, changes, plan_stats):
        """Refuse, before anything is written, a sync that does not fit on dest's filesystem."""
        needed = self.needed_bytes(changes)
        free = self.free_bytes()
        if needed > free:
            held, files = self.held_by_partials()
            self.fail(
                "dest %s has %d bytes free on its filesystem but the sync needs %d (its files in whole "
                "blocks; source total %d)%s: free space there, grow the filesystem, or choose another dest"
                % (self.dest, free, needed, plan_stats.get("total_size", 0),
                   "; %d partial file(s) of interrupted transfers hold %d bytes in %s/ directories "
                   "(a rerun resumes them; remove them to start over)" % (files, held, PARTIAL_DIR)
                   if files else ""))

    def run(self):
        self.check_params()
        self.check_dest()
        filters = self.model_filters()
        result = {"changed": False, "seeded_blobs": [], "verified_blobs": 0, "leftovers": [], "lock_waited": 0.0,
                  "source_moved": False}
        if not self.module.check_mode and self.host:
            result["leftovers"] += self.close_stale_ssh()
        if not self.module.check_mode and os.path.isdir(self.dest):
            result["lock_waited"] = round(self.lock(), 3)
            result["leftovers"] += self.clear_leftovers()
            self.load_record()
        changes, plan_stats = self.plan(filters)
        if changes and not self.module.check_mode:
            self.check_room(changes, plan_stats)
        if changes and not self.module.check_mode and self.lock_fd is None:
            # dest did not exist: it is made now, under the lock; a run that made it
            # meanwhile (we waited) may have done the work, so plan again.
            result["lock_waited"] = round(self.lock(), 3)
            if result["lock_waited"]:
                result["leftovers"] += self.clear_leftovers()
                self.load_record()
                changes, plan_stats = self.plan(filters)
        escaping = self.escaping_links(changes)
        if escaping:
            self.fail("src %s on %s holds links inside Hugging Face repos that the cache layout does not have, "
                      "which would reach outside dest: %s. A repo links only snapshots/<commit>/<file> to "
                      "../../blobs/<name> (or deeper ../ for nested files); nothing was changed. Repair the "
                      "source." % (self.src, self.host or "this host", "; ".join(escaping[:10])),
                      escaping_links=escaping)
        self.planned = changes
        result["changed"] = bool(changes)
        plan_bytes = plan_stats.get("bytes_sent", 0) + plan_stats.get("bytes_received", 0)
        stats = {"files_transferred": plan_stats.get("files_transferred", 0),
                 "bytes_transferred": plan_bytes, "literal_bytes": 0, "matched_bytes": 0,
                 "total_size": plan_stats.get("total_size", 0)}

        if changes and not self.module.check_mode:
            extra = []
            if any(c["type"] != "deleted" and self.stage_of(c) != "content" for c in changes):
                self.staged = self.stage_plan(filters)
                escaping = self.escaping_links(self.staged)
                if escaping:
                    self.fail("src %s on %s holds links inside Hugging Face repos that the cache layout does not "
                              "have, which would reach outside dest: %s; nothing of them was published. Repair the "
                              "source." % (self.src, self.host or "this host", "; ".join(escaping[:10])),
                              escaping_links=escaping)
                content = set(c["path"].rstrip("/") for c in changes if self.stage_of(c) == "content")
                extra = self.missing_blobs(self.staged, content)
                result["source_moved"] = self.metadata_entries(changes) != self.metadata_entries(self.staged)
            links = self.staged if self.staged is not None else changes
            if self.host and self.params["revision_delta"]:
                result["seeded_blobs"] = self.seed(self.seed_candidates(links))
            self.start_hasher(changes + [{"path": p, "type": "file"} for p in extra])
            content_runs, deleting = self.stages(changes, extra)
            changes, moved, result["verified_blobs"] = self.transfer(content_runs, deleting, filters)
            stats.update(moved, bytes_transferred=plan_bytes + moved["bytes_transferred"])
            result["changed"] = bool(changes)

        result["published_refs"] = self.published_refs
        stats["elapsed"] = round(self.elapsed, 3)
        stats["runs"] = self.runs
        paths = [c["path"] for c in changes]
        result.update(stats=stats, changed_files=paths[:CHANGED_FILES_LIMIT],
                      changed_files_count=len(paths), attempts=self.attempts)
        if self.module._diff:
            result["diff"] = {"before_header": self.dest, "after_header": self.dest,
                              "prepared": "".join("%s %s\n" % (c["item"], c["path"]) for c in changes)}
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="str", required=True),
            dest=dict(type="path", required=True),
            src_host=dict(type="str"),
            src_user=dict(type="str"),
            ssh_port=dict(type="int", default=22),
            ssh_key=dict(type="path"),
            known_hosts=dict(type="path"),
            host_key_checking=dict(type="bool", default=True),
            models=dict(type="list", elements="str"),
            delete=dict(type="bool", default=False),
            verify=dict(type="str", choices=["none", "new", "all"], default="new"),
            revision_delta=dict(type="bool", default=True),
            retries=dict(type="int", default=3),
            retry_delay=dict(type="float", default=5),
            timeout=dict(type="int", default=300),
            compress=dict(type="bool", default=False),
            bwlimit=dict(type="str"),
            streams=dict(type="int", default=0),
            owner=dict(type="str"),
            group=dict(type="str"),
            dir_times=dict(type="bool", default=True),
            link_dest=dict(type="list", elements="path"),
            lock_timeout=dict(type="int", default=1800),
        ),
        required_by=dict(src_user="src_host", ssh_key="src_host", known_hosts="src_host"),
        supports_check_mode=True,
    )
    module.run_command_environ_update = {"LANG": "C", "LC_ALL": "C", "LC_MESSAGES": "C"}
    sync = ModelCacheSync(module)
    try:
        result = sync.run()
    finally:
        sync.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
