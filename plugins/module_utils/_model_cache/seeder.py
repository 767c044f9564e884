# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""indextts.deploy.cache_seed: golden seeds its cache to the nodes while they sync.

Golden joins the closed swarm with the torrent cache_torrent made and serves the
files where they are (seed mode: nothing is checked up front, nothing copied; each
piece is hashed when first sent). It leaves when every listed node wants nothing more
(_torrent.Swarm.satisfied: seen with all of the torrent, closed by golden because it
had all, or no longer interested in golden's pieces) and is gone, or when for
``idle_timeout`` seconds no node was connected and nothing was sent (nodes already up
to date never join), or after ``timeout`` seconds. Serving changes nothing on this host.
"""

import json
import os
import time

from ansible_collections.indextts.deploy.plugins.module_utils import _torrent
from ansible_collections.indextts.deploy.plugins.module_utils._paths import error_text, system_dir

ALL_DONE = "all peers done"
IDLE = "idle"
TIMED_OUT = "timed out"

POLL_SECONDS = 0.2       # how often the peers are looked at (nodes stay 2 s after they finish)
RECONNECT_SECONDS = 5.0  # how often peers given with a port and not yet connected are called
EVENTS = 20              # peer events returned, the newest


class CacheSeed(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.path = (self.p["path"] or "").rstrip("/") or "/"
        self.data = None
        self.info = None
        self.peers = []  # (address, port or None)
        self.result = {"changed": False, "outcome": None, "uploaded": 0, "seconds": 0.0, "peers_done": [],
                       "peers_missing": [], "info_hash": None, "port": None, "events": []}

    def fail(self, msg):
        self.module.fail_json(msg=msg, **self.result)

    # -- inspect: reads only ------------------------------------------------------------
    def check_params(self):
        p = self.p
        if not _torrent.HAS_LIBTORRENT:
            self.fail("cache_seed needs libtorrent's Python bindings on this host: install python3-libtorrent "
                      "(Debian), or pip install libtorrent into the interpreter that runs the module")
        for name in ("torrent", "path", "ssl_cert", "ssl_key"):
            if p[name] and not os.path.isabs(p[name]):
                self.fail("%s must be an absolute path, got %r" % (name, p[name]))
        try:
            _torrent.parse_address(p["address"])
        except ValueError:
            self.fail("address %r is not an IP address of this host; give golden's address on the storage "
                      "network, the one the nodes' swarm.peers name" % p["address"])
        if not 1 <= p["port"] <= 65535:
            self.fail("port must be a TCP port from 1 to 65535, got %d" % p["port"])
        if not p["peers"]:
            self.fail("peers is empty; list the nodes that fetch the cache (address or address:port), the only "
                      "addresses the seeder talks to")
        for peer in p["peers"]:
            self.peers.append(self.parse_peer(peer))
        for name in ("timeout", "idle_timeout"):
            if p[name] < 1:
                self.fail("%s must be 1 or more seconds, got %d" % (name, p[name]))
        if p["upload_limit"] < 0:
            self.fail("upload_limit must be 0 (no limit) or more bytes per second, got %d" % p["upload_limit"])
        for path in (os.path.normpath(self.path), os.path.realpath(self.path)):
            if system_dir(path):
                self.fail("path %s is a system directory, not a cache; give the cache root the torrent was made "
                          "of, for example /srv/indextts/cache" % self.path)
        if not os.path.isdir(self.path):
            self.fail("path %s is not a directory on this host; give the cache root the torrent was made of "
                      "(cache_torrent's path)" % self.path)
        self.read_torrent()
        for name, marker in (("ssl_cert", "CERTIFICATE-----"), ("ssl_key", "PRIVATE KEY-----")):
            if p[name]:
                self.check_pem(name, p[name], marker)
        ssl = bool(self.info.ssl_cert())
        if ssl and not p["ssl_cert"]:
            self.fail("torrent %s is an SSL torrent (it carries a CA certificate): give ssl_cert and ssl_key, "
                      "golden's certificate signed by that CA, naming the torrent %s" % (p["torrent"], self.info.name()))
        if p["ssl_cert"] and not ssl:
            self.fail("torrent %s is not an SSL torrent, so ssl_cert and ssl_key would not be used; leave them out, "
                      "or make the torrent with cache_torrent's ca_cert" % p["torrent"])
        self.check_files()

    def parse_peer(self, text):
        try:
            return _torrent.parse_peer(text)
        except ValueError:
            pass
        try:
            return _torrent.parse_address(text.strip("[] ")), None
        except ValueError:
            self.fail("peers entry %r is not a node's address (10.0.0.5, fd00::5) nor address:port "
                      "(10.0.0.5:6881, [fd00::5]:6881); peers are given by address, not by name" % text)

    def read_torrent(self):
        path = self.p["torrent"]
        if not os.path.isfile(path):
            self.fail("torrent %s does not exist on this host; make it with indextts.deploy.cache_torrent first"
                      % path)
        try:
            with open(path, "rb") as f:
                self.data = f.read()
        except OSError as e:
            self.fail("torrent %s cannot be read: %s; make it readable for the user running the task (or become "
                      "root)" % (path, error_text(e)))
        try:
            self.info = _torrent.lt.torrent_info(_torrent.lt.bdecode(self.data))
        except Exception as e:  # libtorrent raises several types for a bad file
            self.fail("torrent %s is not a torrent (%s); make it again with indextts.deploy.cache_torrent"
                      % (path, str(e) or type(e).__name__))
        if not self.info.info_hashes().has_v2():
            self.fail("torrent %s is a BitTorrent v1 torrent; make it with indextts.deploy.cache_torrent (v2)" % path)
        self.result["info_hash"] = str(self.info.info_hashes().v2)

    def check_pem(self, name, path, marker):
        try:
            with open(path) as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            self.fail("%s %s cannot be read%s; copy golden's certificate and key there, readable for the user "
                      "running the task" % (name, path, ": %s" % error_text(e) if isinstance(e, OSError) else
                                            " as PEM text"))
        if "-----BEGIN " not in text or marker not in text:
            self.fail("%s %s is not a PEM %s; give golden's %s" % (
                name, path, "certificate" if name == "ssl_cert" else "private key",
                "certificate (signed by the deployment CA)" if name == "ssl_cert" else "private key"))

    def check_files(self):
        """The torrent's files are in path with their sizes, and, when the manifest is
        beside the torrent, with its mtimes: the cache the torrent was made of, as it was."""
        manifest = None
        try:
            with open(_torrent.manifest_path(self.p["torrent"])) as f:
                manifest = json.load(f)
        except (OSError, ValueError):
            manifest = None
        differ = []
        for rel, size in _torrent.torrent_sizes(self.data):
            try:
                st = os.lstat(os.path.join(self.path, rel))
            except OSError as e:
                differ.append("%s (%s)" % (rel, error_text(e)))
                continue
            entry = manifest.get(rel) if isinstance(manifest, dict) else None
            if st.st_size != size:
                differ.append("%s (%d bytes, the torrent says %d)" % (rel, st.st_size, size))
            elif entry and entry[1] != st.st_mtime_ns:
                differ.append("%s (modified since the torrent was made)" % rel)
        if differ:
            self.fail("path %s is not the cache torrent %s was made of: %s%s; run indextts.deploy.cache_torrent on "
                      "it again (or give the right path)" % (self.path, self.p["torrent"], ", ".join(differ[:5]),
                                                             " and %d more" % (len(differ) - 5) if len(differ) > 5
                                                             else ""))

    # -- serve ----------------------------------------------------------------------------
    def run(self):
        self.check_params()
        wanted = set(address for address, _port in self.peers)
        self.result["peers_missing"] = sorted(wanted)
        if self.module.check_mode:
            return self.result
        p = self.p
        started = time.monotonic()
        try:
            with _torrent.Swarm(p["address"], p["port"], allowed=wanted, ssl=bool(p["ssl_cert"]),
                                upload_limit=p["upload_limit"]) as swarm:
                if p["ssl_cert"]:
                    swarm.set_ssl_certificate(p["ssl_cert"], p["ssl_key"])
                key = swarm.seed(self.data, self.path)
                self.result["port"] = swarm.port
                outcome = self.serve(swarm, key, wanted, started)
        except _torrent.SwarmError as e:
            self.result["seconds"] = round(time.monotonic() - started, 3)
            self.fail("the swarm failed: %s; %s" % (e, "choose another port, or stop what listens on it"
                                                    if "cannot listen" in str(e) else
                                                    "the nodes fetch what they lack by rsync"))
        self.result["outcome"] = outcome
        return self.result

    def note(self, swarm, wanted, done, uploaded, started):
        """What the seeder did so far, in the result (a failure reports it too)."""
        self.result.update(seconds=round(time.monotonic() - started, 3), peers_done=sorted(done & wanted),
                           peers_missing=sorted(wanted - done), uploaded=uploaded, events=swarm.messages[-EVENTS:])

    def serve(self, swarm, key, wanted, started):
        """Seed until every peer in ``wanted`` is done and gone (ALL_DONE), no peer was
        connected for idle_timeout seconds (IDLE), or timeout seconds (TIMED_OUT)."""
        callable_peers = [(address, port) for address, port in self.peers if port]
        last_call = None
        busy_at = started
        while True:
            now = time.monotonic()
            progress = swarm.progress()[key]
            done = swarm.satisfied(key)
            connected = swarm.connected(key)
            self.note(swarm, wanted, done, progress["uploaded"], started)
            # Done and gone: a node's link to its origin (model_cache_sync's swarm.origin)
            # has all it asked for long before the node has the rest, and may ask for
            # more; the node closes it when it has all it wants.
            if wanted <= done and not wanted & connected:
                return ALL_DONE
            if connected or progress["upload_rate"] > 0:
                busy_at = now
            if now - busy_at >= self.p["idle_timeout"]:
                return IDLE
            if now - started >= self.p["timeout"]:
                return TIMED_OUT
            if callable_peers and (last_call is None or now - last_call >= RECONNECT_SECONDS):
                last_call = now
                connected = swarm.connected(key)
                swarm.connect([peer for peer in callable_peers if peer[0] not in done and peer[0] not in connected],
                              key)
            time.sleep(POLL_SECONDS)
