# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The transport: how bytes move from src to dest. This one is rsync, locally or over
SSH (one shared connection, parallel runs with their own), with retries.

It is the one replaceable part of the sync. The other phases call only:

  list_repos()                 repo dirs src holds
  dry_run(filters)             (changes, stats): what a run would change
  fetch_content(changes, extra, filters, seeds, plan_into=None, on_plan=None)
                               the content of the planned changes and of ``extra`` paths,
                               as a list of (changes, stats); with ``plan_into``, the
                               plan as well: src's snapshot links and refs that differ
                               from dest, read once into that directory alongside the
                               content, as its list of changes (else None), given to
                               ``on_plan`` as soon as it is read, while content may
                               still be moving
  delete_missing(filters)      remove what src no longer has
  close_stale() / close()      leftovers of dead runs / this run's connections

and read ``runs``, ``attempts``, ``elapsed`` and report() for the report. The
peer-to-peer transport (swarm.py) is this one with another fetch_content."""

import os
import re
import stat
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.indextts.deploy.plugins.module_utils import _hfcache as hf
from ansible_collections.indextts.deploy.plugins.module_utils import _rsync
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache import plan
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache.state import PARTIAL_DIR, STATE_DIR

SSH_DIR_PREFIX = "indextts-ssh-"
MAX_AUTO_STREAMS = 4
# Seeded blobs differ from their basis in scattered blocks: smaller blocks than rsync's
# default (the square root of the file size) send less around each change.
SEEDED_BLOCK_SIZE = 4096


def read_cpuinfo():
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except (IOError, OSError):
        return ""


class RsyncFailure(object):
    """A run that failed for good: its message, exit code, stderr and attempts."""

    def __init__(self, msg, rc, stderr, attempts):
        self.msg, self.rc, self.stderr, self.attempts = msg, rc, stderr, attempts


def unlink_if_there(path):
    """Remove path; one already gone (another process removed it) is not an error."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def is_socket(path):
    """Whether path is a Unix socket (not following a link); one gone is none."""
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def parsed(out):
    """(changes, stats) of one rsync run's output."""
    return _rsync.parse_itemized(out), _rsync.parse_stats(out)


class RsyncTransport(object):
    """rsync from ``params['src']`` (on ``params['src_host']`` over SSH, or local) into
    ``state.dest``. ``fail(msg, **result)`` ends the task, ``figures()`` gives the
    free, needed and held bytes that failure messages quote."""

    def __init__(self, module, state, fail, figures):
        self.module = module
        self.params = p = module.params
        self.state = state
        self.dest = state.dest
        self.fail = fail
        self.figures = figures
        self.src = p["src"]
        self.host = p["src_host"]
        self.rsync = module.get_bin_path("rsync", required=True)
        self.is_root = os.geteuid() == 0
        # rsync's --bwlimit holds per run: one run keeps it a limit of the whole sync.
        self.streams = 1 if p["bwlimit"] else (p["streams"] or min(os.cpu_count() or 1, MAX_AUTO_STREAMS))
        self.ciphers = _rsync.cipher_preference(read_cpuinfo()) if self.host else None
        self.control_dir = None
        self.seeded = False
        self.elapsed = 0.0
        self.attempts = 1
        self.runs = []  # each rsync run and how long it took

    # -- the calls of the other phases ---------------------------------------------
    def list_repos(self):
        out = self.run(self.argv(list_only=True, filters=["- *--*/*/", "+ */", "- *"]), "listing the repos of src")
        return plan.repos_in_listing(out)

    def dry_run(self, filters):
        return parsed(self.run(self.argv(dry_run=True, filters=filters), "dry run of the sync"))

    def plan_job(self, filters, into):
        """The run that reads the plan into ``into``, as a job of run_many."""
        return (self.argv(stage="metadata", filters=filters, into=into),
                "planning snapshots and refs (read once from src)", None)

    @staticmethod
    def planned_links(out):
        """The plan's entries, from the output of plan_job's run."""
        return [c for c in _rsync.parse_itemized(out) if c["type"] != "dir"]

    def fetch_content(self, changes, extra, filters, seeds, plan_into=None, on_plan=None):
        """The content of the planned changes (and ``extra`` paths) in parallel runs
        (plan.content_runs), and the plan into ``plan_into`` in a run beside them;
        ``seeds``: the state dir holds seeds this run's new blobs take as their delta
        basis. Returns (the content runs' (changes, stats), the plan's changes or None).

        The plan's run ends long before the content's (links and refs against
        gigabytes): ``on_plan(the plan's changes)`` is called on this thread as soon as
        it has succeeded, so that the work that follows from the plan alone overlaps
        the transfer instead of following it."""
        # With link_dest the dry run does not list what rsync will hard-link from the
        # basis, so the run that may create such files walks the tree.
        runs, _deleting = plan.content_runs(changes, extra, self.streams, walk_first=bool(self.params["link_dest"]))
        self.seeded = bool(seeds)
        block_size = SEEDED_BLOCK_SIZE if seeds else None
        jobs = []
        for i, (paths, exclude) in enumerate(runs):
            what = "sync (content stage%s)" % (", run %d of %d" % (i + 1, len(runs)) if len(runs) > 1 else "")
            # The first run shares the SSH connection; the others open their own, so
            # that their encryption runs in processes of their own.
            if paths is None:
                argv = self.argv(stage="content", filters=filters, exclude=exclude, block_size=block_size,
                                 shared=i == 0)
            else:
                argv = self.argv(stage="content", files_from=True, block_size=block_size, shared=i == 0)
            jobs.append((argv, what, paths))
        staged = []
        early = {}
        if plan_into:
            jobs.append(self.plan_job(filters, plan_into))
            early[len(jobs) - 1] = lambda out: staged.append(self.take_plan(out, on_plan))
        outs = self.run_many(jobs, early) if jobs else []
        if plan_into:
            outs.pop()
        return [parsed(out) for out in outs], (staged[0] if plan_into else None)

    def take_plan(self, out, on_plan=None):
        """The plan's changes from its run's output, handed to ``on_plan`` too."""
        staged = self.planned_links(out)
        if on_plan:
            on_plan(staged)
        return staged

    def report(self):
        """What the result says of this transport beyond runs and attempts."""
        return {}

    def delete_missing(self, filters):
        return parsed(self.run(self.argv(stage="all", filters=filters, delete_only=True),
                               "sync (deleting what src no longer has)"))

    # -- rsync and ssh -------------------------------------------------------------
    def context(self):
        """The names and figures rsync's failure messages use (see _rsync.explain_failure)."""
        p = self.params
        context = {"src": self.src, "host": self.host, "where": self.host or "this host", "dest": self.dest,
                   "login": "%s@%s" % (p["src_user"], self.host) if p["src_user"] else self.host,
                   "known_hosts": p["known_hosts"] or "~/.ssh/known_hosts", "partial": PARTIAL_DIR}
        context.update(self.figures())
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
             block_size=None, exclude=(), shared=True, into=None, delete_only=False):
        """rsync's argv for one stage of the sync, its dry run, or a listing of src.

        ``exclude``: filter rules for paths another parallel run moves. ``shared``:
        over the shared SSH connection (see control_path). ``into``: a directory to
        receive only what differs from dest (the plan's metadata), instead of dest.
        ``delete_only``: remove what src no longer has, create or update nothing."""
        p = self.params
        remote_shell = None
        if self.host:
            remote_shell = _rsync.ssh_command(
                port=p["ssh_port"], key=p["ssh_key"], known_hosts=p["known_hosts"],
                host_key_checking=p["host_key_checking"],
                connect_timeout=min(p["timeout"] or 20, 20),
                ciphers=self.ciphers, control_path=self.control_path(shared))
        chown = None
        if p["owner"] or p["group"]:
            chown = "%s:%s" % (p["owner"] or "", p["group"] or "")
        # Partial dirs (ours, or a source node's own) are never part of the cache, nor is
        # the top-level .locks: huggingface_hub's transient lock files, and the sync's
        # state (a source node's, or a link a hostile source would plant there).
        rules = ["- %s/" % PARTIAL_DIR, "- /%s" % os.path.dirname(STATE_DIR)] + list(exclude) + list(filters or [])
        if not files_from:
            rules += hf.visibility_filters(stage)
        source = _rsync.source_spec(self.src, self.host, p["src_user"])
        if list_only:
            return _rsync.build_argv(self.rsync, source, filters=rules, remote_shell=remote_shell,
                                     timeout=p["timeout"], preserve_owner=False)
        moves_data = not (dry_run or delete_only or stage in hf.METADATA_STAGES)
        return _rsync.build_argv(
            self.rsync, source, into or self.dest,
            dry_run=dry_run, delete=p["delete"] and stage == "all" and not files_from, filters=rules,
            # Only where file data moves: looking for a partial file costs a stat per
            # file, and the dry run and the metadata stages (links, refs of a few bytes)
            # have nothing to resume.
            partial_dir=PARTIAL_DIR if moves_data else None,
            remote_shell=remote_shell, block_size=block_size, compare_dest=self.dest if into else None,
            delete_only=delete_only, timeout=p["timeout"],
            compress=p["compress"], bwlimit=p["bwlimit"], chown=chown,
            preserve_owner=self.is_root, files_from=files_from, dir_times=p["dir_times"],
            # Seeds are the basis of the new blobs' delta transfer, from outside the blobs dirs.
            link_dest=list(p["link_dest"] or ()) + ([self.state.seeds]
                                                    if self.seeded and stage in ("content", "all") else []))

    def attempt(self, argv, what, paths=None):
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
            transient, why = _rsync.explain_failure(rc, err, self.context())
            if not transient or attempt > self.params["retries"]:
                return RsyncFailure("%s failed after %d attempt(s): %s" % (what, attempt, why),
                                    rc, _rsync.last_lines(err), attempt)
            self.module.warn("%s: attempt %d failed (%s), retrying in %.0f s" % (what, attempt, why, delay))
            time.sleep(delay)
            delay *= 2

    def run_many(self, jobs, early=None):
        """Run (argv, what, paths) jobs at once, one thread each; their outputs in
        order. ``early``: {index: callback}; as soon as job ``index`` has succeeded,
        ``callback(its output)`` runs on this thread while the other jobs go on. When
        any failed for good, the task fails with the first failure, after the others
        have finished (nothing is left running, not even when a callback raises)."""
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            futures = [pool.submit(self.attempt, *job) for job in jobs]
            for index in sorted(early or {}):
                outcome = futures[index].result()
                if not isinstance(outcome, RsyncFailure):
                    early[index](outcome)
            outcomes = [future.result() for future in futures]
        self.elapsed += time.monotonic() - started
        return [self.output_of(outcome) for outcome in outcomes]

    def output_of(self, outcome):
        """The output of an attempt(); the task fails when it is an RsyncFailure."""
        if isinstance(outcome, RsyncFailure):
            self.fail(outcome.msg, rc=outcome.rc, stderr=outcome.stderr, attempts=outcome.attempts)
        return outcome

    def run(self, argv, what, paths=None):
        return self.run_many([(argv, what, paths)])[0]

    def close_stale(self):
        """Close the SSH control masters of runs of this user that are gone, and remove
        their directories (<tmp>/indextts-ssh-<pid>-XXXX). Returns what was done."""
        done = []
        if not self.host:
            return done
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
                self.exit_master(os.path.join(path, "ssh"), "stale")
                os.rmdir(path)
                done.append("closed the SSH connection of an earlier run (%s)" % path)
            except OSError:
                continue
        return done

    def exit_master(self, sock, host):
        """Ask the SSH control master on sock to exit, and remove the socket."""
        if os.path.exists(sock):
            ssh = self.module.get_bin_path("ssh") or "ssh"
            self.module.run_command([ssh, "-o", "ControlPath=%s" % sock, "-O", "exit", host])
        # The exiting master unlinks its socket too, at a moment of its own.
        unlink_if_there(sock)

    def close(self):
        """Close the shared SSH connection and remove its directory."""
        if self.control_dir is None:
            return
        try:
            self.exit_master(os.path.join(self.control_dir, "ssh"), self.host)
            # ssh binds a master's socket under a temporary name beside ControlPath and
            # then renames it; a master racing another one may leave that name behind.
            # The directory is this run's own (mkdtemp): its sockets go with it.
            for name in os.listdir(self.control_dir):
                path = os.path.join(self.control_dir, name)
                if name.startswith("ssh") and is_socket(path):
                    unlink_if_there(path)
            os.rmdir(self.control_dir)
            self.control_dir = None
        except OSError as e:
            self.module.warn("could not remove the SSH control directory %s: %s" % (self.control_dir, e))
