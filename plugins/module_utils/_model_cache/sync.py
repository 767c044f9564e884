# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run of model_cache_sync, phase by phase (see run())."""

import os
import time

from ansible_collections.indextts.deploy.plugins.module_utils import _hfcache as hf
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache import guards, plan, publish, verify
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache.seed import seed
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache.state import PARTIAL_DIR, StateDir
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache.transport import RsyncTransport

CHANGED_FILES_LIMIT = 200
STAT_KEYS = ("files_transferred", "bytes_transferred", "literal_bytes", "matched_bytes")


def transport_class(name):
    """The transport's class. The swarm's is imported only for a p2p sync: libtorrent
    and the torrent code cost every rsync run's start 20-30 ms here otherwise (under
    Ansible, which compiles them from its zip on every run)."""
    if name == "p2p":
        from ansible_collections.indextts.deploy.plugins.module_utils._model_cache.swarm import SwarmTransport
        return SwarmTransport
    return RsyncTransport


class ModelCacheSync(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.dest = self.params["dest"].rstrip("/") or "/"
        self.check_mode = module.check_mode
        self.wrote = False  # once True, a failure still reports changed
        self.state = StateDir(self.dest, self.params["owner"], self.params["group"], self.fail, module.warn)
        self.transport = transport_class(self.params["transport"])(module, self.state, self.fail, self.figures)
        self.record = verify.VerifiedRecord(self.dest, self.state.record, self.state.own)
        self.filters = []
        self.planned = []  # the dry run's changes
        self.staged = None  # the plan's snapshot links and refs, once read from src (publish.ReadPlan)
        self.seeds = {}  # new blob -> its seed in the state dir
        self.hasher = None
        self.verify_seconds = 0.0
        self.changes = []  # what the run changed, as the transport itemized it
        self.totals = dict.fromkeys(STAT_KEYS, 0)
        self.result = {"changed": False, "seeded_blobs": [], "verified_blobs": 0, "leftovers": [],
                       "lock_waited": 0.0, "source_moved": False, "published_refs": {}}

    def fail(self, msg, **kwargs):
        """Fail the task; once data was written, the result still says changed."""
        self.module.fail_json(msg=msg, changed=self.wrote, **kwargs)

    @property
    def where(self):
        return "src %s on %s" % (self.params["src"], self.params["src_host"] or "this host")

    def run(self):
        self.inspect()
        self.plan()
        if self.planned and not self.check_mode:
            self.stage()
            self.verify()
            self.publish()
        return self.report()

    # -- inspect: the inputs, dest's lock, what earlier runs left --------------------------
    def inspect(self):
        why = guards.problem(self.params, self.dest, os.geteuid() == 0)
        if not why and self.params["transport"] == "p2p":
            from ansible_collections.indextts.deploy.plugins.module_utils._model_cache.swarm import swarm_problem
            why = swarm_problem(self.params["swarm"])
        if why:
            self.fail(why)
        if self.params["src_host"] and not self.params["host_key_checking"]:
            self.module.warn("host_key_checking is off: the identity of src_host %s is not verified"
                             % self.params["src_host"])
        self.filters = self.model_filters()
        if not self.check_mode:
            self.result["leftovers"] += self.transport.close_stale()
            if os.path.isdir(self.dest):
                self.lock()

    def model_filters(self):
        if not self.params["models"]:
            return []
        wanted = [hf.repo_dir_name(m) for m in self.params["models"]]
        have = self.transport.list_repos()
        unknown = [m for m, d in zip(self.params["models"], wanted) if d not in have]
        if unknown:
            self.fail("models entries %s are not in %s (it has: %s)" % (
                ", ".join(repr(m) for m in unknown), self.where, ", ".join(sorted(have)) or "no repos"))
        return hf.models_filters(sorted(set(wanted)))

    def lock(self):
        """Take dest's lock, then clear what killed runs left; True when it had to wait."""
        self.result["lock_waited"] = round(self.state.lock(self.params["lock_timeout"]), 3)
        self.result["leftovers"] += self.state.clear_leftovers()
        self.record.load()
        return bool(self.result["lock_waited"])

    # -- plan: the dry run, and what it may not hold ---------------------------------------
    def plan(self):
        self.planned, self.plan_stats = self.transport.dry_run(self.filters)
        if self.planned and not self.check_mode:
            self.check_room()
            # dest did not exist: it is made now, under the lock; a run that made it
            # meanwhile (we waited) may have done the work, so plan again.
            if not self.state.locked and self.lock():
                self.planned, self.plan_stats = self.transport.dry_run(self.filters)
        self.refuse_escaping(self.planned, "nothing was changed")
        self.result["changed"] = bool(self.planned)

    def refuse_escaping(self, changes, outcome, escaping=None):
        """Fail when changes hold escaping links (``escaping``: plan.escaping_links(changes), if known)."""
        escaping = plan.escaping_links(changes) if escaping is None else escaping
        if escaping:
            self.fail("%s holds links inside Hugging Face repos that the cache layout does not have, which would "
                      "reach outside dest: %s. A repo links only snapshots/<commit>/<file> to ../../blobs/<name> "
                      "(or deeper ../ for nested files); %s. Repair the source."
                      % (self.where, "; ".join(escaping[:10]), outcome), escaping_links=escaping)

    def figures(self, changes=None):
        """Free bytes on dest's filesystem, bytes the changes need there (whole blocks),
        bytes partial files hold: for the messages of a full disk."""
        path = self.dest
        while not os.path.exists(path):
            path = os.path.dirname(path)
        st = os.statvfs(path)
        held, files = self.state.held_by_partials()
        return {"free": st.f_bavail * st.f_frsize, "held": held, "held_files": files,
                "needed": plan.needed_bytes(self.planned if changes is None else changes, st.f_frsize)}

    def check_room(self):
        """Refuse, before anything is written, a sync that does not fit on dest's filesystem."""
        room = self.figures()
        if room["needed"] > room["free"]:
            held, files = room["held"], room["held_files"]
            self.fail(
                "dest %s has %d bytes free on its filesystem but the sync needs %d (its files in whole "
                "blocks; source total %d)%s: free space there, grow the filesystem, or choose another dest"
                % (self.dest, room["free"], room["needed"], self.plan_stats.get("total_size", 0),
                   "; %d partial file(s) of interrupted transfers hold %d bytes in %s/ directories "
                   "(a rerun resumes them; remove them to start over)" % (files, held, PARTIAL_DIR)
                   if files else ""))

    # -- stage: seeds, the content and, beside it, the plan read once ----------------------
    def stage(self):
        """The dry run read every link's target, so escaping links were refused and seeds
        can be paired before anything is written; the plan (src's snapshot links and
        refs, read once) then comes in a run beside the content's, not before it, and
        what follows from it alone is worked out (read_plan) while the content moves."""
        plan_dir = self.state.fresh_plan_dir() if plan.has_metadata(self.planned) else None
        if self.params["src_host"] and self.params["revision_delta"]:
            self.seeds, self.result["seeded_blobs"] = seed(
                self.dest, self.state.seeds, plan.seed_candidates(self.dest, self.planned), self.state.makedirs,
                self.module.warn)
        # Blobs are hashed while they land (with verify=all, the others after).
        scope = "none" if self.params["verify"] == "none" else "new"
        self.hasher = verify.BlobHasher(
            self.dest, verify.blobs_to_verify(self.dest, self.planned, scope, self.seeds)).start()
        self.wrote = True
        moved, _staged = self.transport.fetch_content(self.planned, [], self.filters, self.seeds, plan_dir,
                                                      self.read_plan)
        self.collect(moved)
        if plan_dir:
            self.refuse_escaping(self.staged.entries, "nothing of them was published", self.staged.escaping)
            self.result["source_moved"] = self.staged.source_moved
            # src gained a revision between the dry run and the plan: its blobs too
            # (those that the content's runs did not bring meanwhile).
            extra = [b for b in self.staged.missing if not os.path.lexists(os.path.join(self.dest, b))]
            if extra:
                self.collect(self.transport.fetch_content([], extra, self.filters, self.seeds)[0])

    def read_plan(self, staged):
        """The plan, once its run has ended (the content's may still be moving): see
        publish.ReadPlan."""
        self.staged = publish.ReadPlan(self.dest, self.state.plan, staged, self.planned, self.params["dir_times"])

    def collect(self, moved):
        """Add the transport's (changes, stats) of some runs to what this run changed."""
        seen = set(c["path"] for c in self.changes)
        for changes, stats in moved:
            for c in changes:
                if c["path"] not in seen:
                    seen.add(c["path"])
                    self.changes.append(c)
            self.totals["files_transferred"] += stats.get("files_transferred", 0)
            self.totals["bytes_transferred"] += stats.get("bytes_sent", 0) + stats.get("bytes_received", 0)
            self.totals["literal_bytes"] += stats.get("literal_bytes", 0)
            self.totals["matched_bytes"] += stats.get("matched_bytes", 0)

    # -- verify: nothing unverified under a final name -------------------------------------
    def verify(self):
        """The blobs that landed, those seeded, and those the planned snapshot links
        point at that never matched their names here (landed by a run killed before it
        verified them, say), against their names, before any link or ref points at them."""
        started = time.monotonic()
        self.hasher.stop(finish=True)
        self.state.remove_seeds()
        blobs = verify.blobs_to_verify(self.dest, self.changes, self.params["verify"], self.seeds)
        if self.params["verify"] != "none":
            linked = self.staged.lfs_blobs if self.staged is not None else plan.linked_blobs(self.planned)
            blobs = sorted(set(blobs) | set(b for b in linked if b not in self.record))
        bad = verify.mismatches(self.dest, blobs, self.hasher)
        if bad:
            verify.reject(self.dest, bad, self.state.rejected, self.state.makedirs)
            self.fail(
                "%d blob(s) under dest %s do not match their hash names: %s. The source holds corrupt blobs or "
                "they were changed during the transfer; no snapshot or ref was published for them, and they were "
                "moved to %s/ so that no rerun publishes them. Repair the source and rerun."
                % (len(bad), self.dest, ", ".join(bad[:10]), self.state.rejected), corrupt_blobs=bad)
        self.record.save(blobs)
        self.result["verified_blobs"] = len(blobs)
        self.verify_seconds = time.monotonic() - started

    # -- publish: the plan's snapshots then refs; then what src no longer has --------------
    def publish(self):
        if self.staged is not None:
            # The refs were checked when the plan was read; its links' blobs only now.
            unresolved = publish.absent_blobs(self.dest, self.staged.entries) + self.staged.unresolved
            self.result["published_refs"] = self.staged.refs
            if unresolved:
                self.fail("%s changed during the sync in a way this run's plan cannot complete: %s. No snapshot "
                          "link or ref of the plan was published, so readers of dest still see its earlier, "
                          "consistent state; rerun to sync src as it is now." % (self.where, "; ".join(unresolved[:10])),
                          source_moved=True, unresolved=unresolved)
            for stage in publish.ORDER:
                moved, seconds = publish.move(self.dest, self.state.plan, self.staged.stages[stage], self.staged.times)
                self.transport.runs.append({"run": "publishing the planned %s" % stage, "seconds": round(seconds, 3)})
                self.collect([(moved, {"files_transferred": sum(1 for c in moved if c["type"] == "file")})])
        if any(c["type"] == "deleted" for c in self.planned):
            self.collect([self.transport.delete_missing(self.filters)])

    # -- report ----------------------------------------------------------------------------
    def report(self):
        result = self.result
        t = self.transport
        planned_bytes = self.plan_stats.get("bytes_sent", 0) + self.plan_stats.get("bytes_received", 0)
        stats = {"files_transferred": self.plan_stats.get("files_transferred", 0),
                 "bytes_transferred": planned_bytes, "literal_bytes": 0, "matched_bytes": 0,
                 "total_size": self.plan_stats.get("total_size", 0)}
        changes = self.planned
        if self.wrote:
            changes = self.changes
            stats.update(self.totals, bytes_transferred=planned_bytes + self.totals["bytes_transferred"])
            result["changed"] = bool(changes)
        stats.update(elapsed=round(t.elapsed, 3), runs=t.runs, verify_seconds=round(self.verify_seconds, 3))
        paths = [c["path"] for c in changes]
        result.update(stats=stats, changed_files=paths[:CHANGED_FILES_LIMIT], changed_files_count=len(paths),
                      attempts=t.attempts, **t.report())
        if self.module._diff:
            result["diff"] = {"before_header": self.dest, "after_header": self.dest,
                              "prepared": "".join("%s %s\n" % (c["item"], c["path"]) for c in changes)}
        return result

    def close(self):
        """Stop the hashing thread, close the transport (its connections; a swarm this
        node lingers in), then release the lock (removing seeds and plan)."""
        if self.hasher:
            self.hasher.stop()
        self.transport.close()
        self.state.release()
