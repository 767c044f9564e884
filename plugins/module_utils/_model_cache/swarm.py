# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The peer-to-peer transport: the content from a libtorrent swarm, the rest by rsync.

Golden seeds a v2 torrent of its cache's regular files (the blobs and checkpoints; see
_torrent) and writes a manifest of their sizes, mtimes and modes beside it. A node
plans, stages the plan's snapshot links and refs, verifies and publishes exactly as
with rsync (the same calls of RsyncTransport); only the content it lacks moves
differently:

  - by the swarm: the planned files the torrent holds, downloaded into the state
    dir's swarm/ (on dest's filesystem), then hard-linked under their final names with
    the manifest's mtime and mode, and the cache's owner. With ``swarm.origin``
    (golden), the node's own share of the pieces comes from golden by a link of its
    own (its copies in the state dir's swarm-origin/, removed with swarm/), the rest
    from the other nodes (_torrent.OriginShare);
  - by rsync: the planned files the torrent does not hold (a revision newer than the
    torrent), and the blobs seeded from an older revision: a change confined to a few
    blocks goes by rsync's delta, which BitTorrent cannot do;
  - by rsync as well, everything, when the swarm stalls or times out: said in a
    warning and in the result (``swarm.fallback``).

A node that finished keeps seeding until every listed peer wants nothing more from
it, or the peers it is connected to all have the torrent for a few seconds, or
``linger`` seconds passed: the swarm is gone when the last node is done (golden's
seeder, indextts.deploy.cache_seed, leaves then too). It lingers on a thread of its
own while the run goes on (the rsync pass, verifying, publishing), and the module
waits for it before it reports. Nothing to fetch: no swarm at all.
"""

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.indextts.deploy.plugins.module_utils import _torrent
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache import plan
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache.state import remove_tree
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache.transport import (
    RsyncFailure, RsyncTransport, unlink_if_there)

SWARM_DIR = "swarm"  # in the state dir: what the swarm downloads, before its final names
ORIGIN_DIR = "swarm-origin"  # in the state dir: pieces of the origin's share, copies handed to the swarm
SETTLED_SECONDS = 3  # every connected peer a seed for this long: nobody needs this node
# A node that finished stays connected at least this long (linger permitting), so that
# its peers, golden's seeder above all, see it want nothing more before it leaves.
FAREWELL_SECONDS = 2
# A lingering node calls the listed peers it knows nothing of this often (see linger).
RECALL_SECONDS = 2


def swarm_problem(s):
    """The first thing wrong with the ``swarm`` option (transport=p2p), in words, or None."""
    if not _torrent.HAS_LIBTORRENT:
        return ("transport=p2p needs libtorrent's Python bindings on this host: install python3-libtorrent "
                "(Debian), or pip install libtorrent into the interpreter that runs the module")
    for name in ("torrent", "manifest", "ssl_cert", "ssl_key"):
        if s.get(name) and not os.path.isabs(s[name]):
            return "swarm.%s must be an absolute path, got %r" % (name, s[name])
    for name in ("torrent", "manifest", "ssl_cert", "ssl_key"):
        path = s.get(name) or (_torrent.manifest_path(s["torrent"]) if name == "manifest" else None)
        if path and not os.path.isfile(path):
            return "swarm.%s %s does not exist on this host; copy it from golden first" % (name, path)
    if bool(s.get("ssl_cert")) != bool(s.get("ssl_key")):
        return "swarm.ssl_cert and swarm.ssl_key go together: give both (this node's certificate and key) or neither"
    try:
        _torrent.parse_peer("%s:1" % (s["address"] if ":" not in s["address"] else "[%s]" % s["address"]))
    except ValueError:
        return "swarm.address %r is not an IP address of this host; give the storage network's address" % s["address"]
    for peer in s.get("peers") or []:
        try:
            _torrent.parse_peer(peer)
        except ValueError as e:
            return "swarm.peers entry %r: %s" % (peer, e)
    if s.get("origin"):
        try:
            origin = _torrent.parse_peer(s["origin"])
        except ValueError as e:
            return "swarm.origin %r: %s; give golden's address and swarm port" % (s["origin"], e)
        if origin in [_torrent.parse_peer(peer) for peer in s.get("peers") or []]:
            return ("swarm.origin %s is also in swarm.peers; with an origin, list only the other nodes as peers"
                    % s["origin"])
    if not 1 <= s["port"] <= 65535:
        return "swarm.port must be a TCP port from 1 to 65535, got %d" % s["port"]
    for name in ("timeout", "stall_timeout", "linger", "upload_limit"):
        if s[name] < 0:
            return "swarm.%s must be 0 or more, got %d" % (name, s[name])
    return None


class SwarmTransport(RsyncTransport):
    """RsyncTransport whose content comes from the swarm first (see the module's text)."""

    def __init__(self, module, state, fail, figures):
        super(SwarmTransport, self).__init__(module, state, fail, figures)
        self.swarm = module.params["swarm"]
        self.staging = os.path.join(state.path, SWARM_DIR)
        self.origin_staging = os.path.join(state.path, ORIGIN_DIR)
        self.outcome = None  # what report() says of the swarm; None: there was none
        self.farewell = None  # the thread that lingers in the swarm while the run goes on

    def fetch_content(self, changes, extra, filters, seeds, plan_into=None, on_plan=None):
        files = [c for c in changes if c["type"] == "file" and plan.stage_of(c) == "content"]
        with open(self.swarm["torrent"], "rb") as f:
            torrent = f.read()
        in_torrent = _torrent.torrent_files(torrent)
        held = set(in_torrent)
        wanted = [c for c in files if c["path"] in held and c["path"] not in seeds]
        wanted += [{"path": p, "type": "file", "item": ">f+++++++++", "size": 0}
                   for p in extra if p in held and p not in seeds]
        moved = []
        plan_read = None  # the plan's run, beside the swarm
        if wanted:
            with ThreadPoolExecutor(max_workers=1) as beside:
                # The plan (snapshot links and refs, read once from src by rsync) is read
                # while the swarm runs, so that its time overlaps the swarm's.
                if plan_into:
                    plan_read = beside.submit(self.attempt, *self.plan_job(filters, plan_into))
                    plan_into = None
                fetched = self.fetch_by_swarm(torrent, in_torrent, wanted)
            if fetched is not None:
                moved.append(fetched)
                done = set(c["path"] for c in wanted)
                changes = [c for c in changes if c["path"] not in done]
                extra = [p for p in extra if p not in done]
        staged = None
        if plan_read and not isinstance(plan_read.result(), RsyncFailure):
            # read beside the swarm: what follows from it overlaps rsync's pass below
            staged = self.take_plan(plan_read.result(), on_plan)
        # What the torrent does not hold, the seeded blobs, and the directories' modes
        # and times (the swarm made them, rsync stamps them as on src); the plan beside
        # them when there was no swarm.
        rest, beside = super(SwarmTransport, self).fetch_content(changes, extra, filters, seeds, plan_into, on_plan)
        if plan_read:
            self.output_of(plan_read.result())  # a plan that failed fails the task, after rsync's pass
        return moved + rest, staged if plan_read else beside

    def fetch_by_swarm(self, torrent, in_torrent, wanted):
        """Fetch ``wanted`` (changes) of the torrent's files ``in_torrent`` from the
        swarm and land them under their final names; (changes, stats), or None when the
        swarm failed (rsync takes over)."""
        self.wait_for_farewell()  # a second fetch of the run (src gained a revision): the first swarm is gone
        s = self.swarm
        manifest_path = s["manifest"] or _torrent.manifest_path(s["torrent"])
        with open(manifest_path) as f:
            manifest = json.load(f)
        paths = set(c["path"] for c in wanted)
        missing = sorted(p for p in paths if p not in manifest)
        if missing:
            self.fail("the swarm's manifest %s does not list %s, which its torrent holds; make the torrent and "
                      "its manifest again on golden" % (manifest_path, ", ".join(missing[:5])))
        peers = [_torrent.parse_peer(p) for p in s["peers"] or []]
        origin = _torrent.parse_peer(s["origin"]) if s["origin"] else None
        started = time.monotonic()
        self.outcome = {"files": len(paths), "bytes_wanted": sum(manifest[p][0] for p in paths),
                        "peers": ["%s:%d" % p for p in peers], "fallback": None}
        self.state.makedirs(self.staging, 0o700)
        # A killed run's copies of the origin's share: what reached the swarm's staging
        # resumes from there; the link starts empty, so that each piece it holds was
        # handed on (a piece found on disk at its start would never be).
        remove_tree(self.origin_staging)
        swarm = None
        lingering = False  # once True, the farewell thread leaves the swarm
        try:
            # With an origin and other nodes, this session talks to the nodes only: the
            # origin's share comes by a link of its own (_torrent.OriginShare).
            swarm = _torrent.Swarm(s["address"], s["port"], allowed=[a for a, _port in peers or [origin]],
                                   ssl=bool(s["ssl_cert"]), upload_limit=s["upload_limit"])
            if s["ssl_cert"]:
                swarm.set_ssl_certificate(s["ssl_cert"], s["ssl_key"])
            key = swarm.fetch(torrent, self.staging, peers, skip=[rel for rel in in_torrent if rel not in paths],
                              origin=origin, origin_path=self.origin_staging)
            outcome = swarm.wait(s["timeout"] or float("inf"), s["stall_timeout"])
            progress = swarm.progress()[key]
            self.outcome.update(outcome=outcome, downloaded=progress["downloaded"],
                                redundant=progress["redundant"], failed=progress["failed"],
                                from_origin=progress.get("from_origin"),
                                seconds=round(time.monotonic() - started, 3))
            if outcome != _torrent.DONE:
                self.fall_back("the swarm %s after %.0f s with %d of %d bytes (peers: %s; last events: %s)" % (
                    "stalled" if outcome == _torrent.STALLED else "timed out", time.monotonic() - started,
                    progress["total_done"], progress["total_wanted"], ", ".join(self.outcome["peers"]) or "none",
                    "; ".join(swarm.messages[-3:]) or "none"))
                return None
            landing = time.monotonic()
            landed = self.land(wanted, manifest)
            self.outcome.update(land_seconds=round(time.monotonic() - landing, 3),
                                rate=round(self.outcome["downloaded"] / max(self.outcome["seconds"], 0.001)))
            # This node seeds on for its peers while the run goes on (links, refs,
            # verifying, publishing); the module waits for it before it ends.
            self.farewell = threading.Thread(target=self.linger_then_leave, args=(swarm, key, peers))
            self.farewell.start()
            lingering = True
        except _torrent.SwarmError as e:
            self.fall_back("the swarm failed: %s" % e)
            return None
        finally:
            if not lingering:
                self.leave_swarm(swarm)
            self.elapsed += time.monotonic() - started
            self.runs.append({"run": "swarm (content)", "seconds": round(time.monotonic() - started, 3)})
        return landed, {"files_transferred": len(landed), "bytes_received": self.outcome["downloaded"],
                        "literal_bytes": self.outcome["downloaded"]}

    def linger_then_leave(self, swarm, key, peers):
        """The farewell thread: linger(), then leave_swarm()."""
        lingering = time.monotonic()
        try:
            self.linger(swarm, key, peers)
            self.outcome["uploaded"] = swarm.progress()[key]["uploaded"]
        except _torrent.SwarmError as e:
            self.outcome["uploaded"] = None
            self.module.warn("this node stopped seeding to its peers early (its own files are in place): %s" % e)
        finally:
            self.outcome["linger_seconds"] = round(time.monotonic() - lingering, 3)
            self.leave_swarm(swarm)

    def leave_swarm(self, swarm):
        """Leave the swarm (None: it never started) and remove what it downloaded
        into; the files that landed stay under their final names."""
        if swarm is not None:
            swarm.close()
        remove_tree(self.staging)
        remove_tree(self.origin_staging)

    def wait_for_farewell(self):
        """Wait for the farewell thread, if this node lingers in a swarm."""
        if self.farewell is not None:
            self.farewell.join()
            self.farewell = None

    def fall_back(self, why):
        self.outcome["fallback"] = why
        self.module.warn("%s; fetching the content with rsync from %s instead" % (why, self.host or self.src))

    def land(self, wanted, manifest):
        """The downloaded files under their final names in dest (hard links, the
        staging copy goes with the swarm), with the manifest's mtime and mode, owned
        as the cache; a file the plan replaces is replaced atomically."""
        landed = []
        for c in wanted:
            rel = c["path"]
            staged = os.path.join(self.staging, rel)
            size, mtime_ns, mode = manifest[rel]
            fd = os.open(staged, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
                if os.fstat(fd).st_size != size:
                    self.fail("the swarm delivered %s with %d bytes, the manifest says %d; make the torrent and its "
                              "manifest again on golden" % (rel, os.fstat(fd).st_size, size))
            finally:
                os.close(fd)
            os.chmod(staged, mode)
            os.utime(staged, ns=(mtime_ns, mtime_ns))
            self.state.own(staged)
            final = os.path.join(self.dest, rel)
            self.state.makedirs(os.path.dirname(final), 0o755)
            temporary = os.path.join(os.path.dirname(final), ".%s.swarm" % os.path.basename(final))
            unlink_if_there(temporary)
            os.link(staged, temporary)
            os.replace(temporary, final)
            landed.append(dict(c, size=size))
        return landed

    def linger(self, swarm, key, peers):
        """Seed on until every listed peer wants nothing more from this node
        (_torrent.Swarm.satisfied) or left it after it finished, and the connected
        ones had FAREWELL_SECONDS to see this node finish; or until every connected
        peer has the torrent for SETTLED_SECONDS; or ``linger`` seconds passed.
        Listed peers it is not connected to and knows nothing of are called every
        RECALL_SECONDS."""
        addresses = set(a for a, _port in peers)
        started = last_call = time.monotonic()
        deadline = started + self.swarm["linger"]
        settled_since = None
        while time.monotonic() < deadline:
            accounted = swarm.satisfied(key) | swarm.left(key)
            if addresses <= accounted and (
                    time.monotonic() - started >= FAREWELL_SECONDS or not swarm.connected(key)):
                return
            if time.monotonic() - last_call >= RECALL_SECONDS:
                # A peer whose connection broke off while both fetched is neither
                # satisfied nor gone as far as this node knows: call it again, to see
                # it a seed, or refuse (gone: it is in left() then).
                last_call = time.monotonic()
                unknown = addresses - accounted - swarm.connected(key)
                swarm.connect([peer for peer in peers if peer[0] in unknown], key)
            seeds = swarm.seeds(key)
            connected = swarm.progress()[key]["peers"]
            if connected and len(seeds) >= connected:
                settled_since = settled_since or time.monotonic()
                if time.monotonic() - settled_since >= SETTLED_SECONDS:
                    return
            else:
                settled_since = None
            time.sleep(0.5)

    def report(self):
        self.wait_for_farewell()
        return {"swarm": self.outcome}

    def close(self):
        self.wait_for_farewell()
        super(SwarmTransport, self).close()
