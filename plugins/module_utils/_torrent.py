# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Peer-to-peer transport of the model cache, on libtorrent (issue 15).

The golden host makes a BitTorrent v2 torrent of the cache's regular files (the
blobs; never the snapshot links nor refs/, which are published from the manifest)
and seeds them in place. Nodes fetch into a staging directory and then seed to each
other; with golden as their origin, each asks golden only for its own share of the
pieces and gets the rest from the other nodes (OriginShare). The swarm is closed: no tracker, no DHT, no local service discovery, no
peer exchange, no UPnP or NAT-PMP; peers are given by address, and an allow-list of
addresses (libtorrent's ip_filter) refuses every other one. An SSL torrent carries a
per-deployment CA certificate: libtorrent then talks to a peer only over TLS, only if
the peer's certificate is signed by that CA and names the torrent (a subjectAltName
DNS entry equal to the torrent name, or ``*``).

Written against the API that Debian bookworm's python3-libtorrent 2.0.8 and PyPI's
libtorrent 2.1.1 share. Differences that matter here:

- Both always load DH parameters from the file given to ``set_ssl_certificate`` (no
  file is a torrent error), so a file is always given: FFDHE2048_PEM, the RFC 7919
  2048-bit group, unless the caller has its own.
- 2.0.8 matches the certificate's name against the torrent name as a prefix
  (``strncmp`` over the certificate's length: a certificate for ``indextts`` is
  accepted by a torrent named ``indextts-cache``); 2.1 wants it whole. The CA is the
  boundary that counts: sign node certificates with the deployment's CA only.
- 2.0.8's bindings have no ``ssl_listen_port`` and no ``set_ssl_certificate_buffer``:
  ports are read from the listen alerts, certificates are given as files.
"""

import os
import posixpath
import shutil
import socket
import tempfile
import threading
import time
import traceback

from ansible_collections.indextts.deploy.plugins.module_utils._hfcache import is_repo_dir

try:
    import libtorrent as lt
    HAS_LIBTORRENT = True
    LIBTORRENT_IMPORT_ERROR = None
except ImportError:
    lt = None
    HAS_LIBTORRENT = False
    LIBTORRENT_IMPORT_ERROR = traceback.format_exc()

# Directories whose files never go into the torrent, wherever they are: huggingface_hub's
# lock files (and model_cache_sync's state under .locks/indextts-sync) and the partial
# dir of an interrupted transfer.
SKIP_DIRS = frozenset([".locks", ".indextts-partial"])
# Directories of a repo dir (models--org--name/...) that hold metadata, published from
# the manifest after the content: refs name commits, .no_exist records absent files.
SKIP_REPO_DIRS = frozenset(["refs", ".no_exist"])
# huggingface_hub's name for a blob being downloaded.
INCOMPLETE_SUFFIX = ".incomplete"

# What wait() returns.
DONE = "done"
STALLED = "stalled"
TIMED_OUT = "timed out"

CREATOR = "indextts.deploy"

# The 2048-bit finite-field Diffie-Hellman group of RFC 7919 (ffdhe2048), as OpenSSL
# writes it. Public parameters: what set_ssl_certificate loads when given no DH file.
FFDHE2048_PEM = """-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""

# Peer messages kept for the caller (the newest ones).
MAX_MESSAGES = 200

# libtorrent's errors::upload_upload_connection (the same value in 2.0 and 2.1): this
# session closed a connection because both ends have all they want. A seeder closes
# a peer with it the moment the peer has the whole torrent, so the alert is the one
# trace of a peer that finished and left at once.
UPLOAD_UPLOAD_CONNECTION = 37

# A peer connected this long that never wanted a piece of a node that has all it
# wants needs nothing from it (interest follows the bitfields within a round trip);
# and a node judges its peers' interest this long after it has all it wants.
SETTLE_SECONDS = 1.0
# How often wait() looks at the peers at least (see satisfied()).
OBSERVE_SECONDS = 0.2
# With an origin (OriginShare): how long the link's thread waits for its pieces at
# most before it looks again; how often the node's share is planned again; how long
# a listed peer may take to connect before its share is planned as if it were not
# coming; how long the node may get nothing before it asks the origin for pieces no
# peer offers.
SHARE_TICK_SECONDS = 0.05
SHARE_PLAN_SECONDS = 0.5
SHARE_GRACE_SECONDS = 5.0
SHARE_RESCUE_SECONDS = 3.0


class SwarmError(Exception):
    """A failure of the swarm itself (listen, storage, certificate), in words."""


def in_torrent(rel):
    """Whether a path relative to the cache root belongs in the torrent by its name:
    not under ``.locks/`` or ``.indextts-partial/``, not in a repo's ``refs/`` or
    ``.no_exist/``, not a blob huggingface_hub is still downloading. A pure function;
    regular_files() adds that only regular files (never links) count."""
    parts = rel.lstrip("/").split("/")
    if not parts[-1] or parts[-1].endswith(INCOMPLETE_SUFFIX):
        return False
    dirs = parts[:-1]
    for i, part in enumerate(dirs):
        if part in SKIP_DIRS:
            return False
        if part in SKIP_REPO_DIRS and i > 0 and is_repo_dir(dirs[i - 1]):
            return False
    return True


def regular_files(root, onerror=None):
    """The files of the cache at ``root`` that go into the torrent: regular files (no
    symlinks, so no snapshot links; links to directories are not followed) that
    in_torrent() accepts. Sorted relative paths with ``/`` separators. ``onerror``:
    called with the OSError of a directory that cannot be listed (os.walk's; by
    default such a directory is left out)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir
        dirnames[:] = sorted(d for d in dirnames if in_torrent(posixpath.join(rel_dir, d, "x")))
        for name in filenames:
            rel = posixpath.join(rel_dir, name)
            if in_torrent(rel) and os.path.isfile(os.path.join(dirpath, name)) \
                    and not os.path.islink(os.path.join(dirpath, name)):
                found.append(rel)
    return sorted(found)


def valid_name(name):
    """A torrent name: one path component, the name peers' certificates carry."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name \
        and "\0" not in name and len(name) <= 255


def parse_peer(text):
    """``10.0.0.5:6881``, ``[fd00::5]:6881`` -> (address, port); ValueError otherwise."""
    host, sep, port = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        sep = ""  # an IPv6 address needs brackets around it
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("not a peer address (address:port, [IPv6]:port): %r" % text)
    return _address(host), int(port)


def _peer(peer):
    """A peer given as text (parse_peer) or as an (address, port) pair, normalised."""
    return parse_peer(peer) if isinstance(peer, str) else (_address(peer[0]), int(peer[1]))


def parse_address(text):
    """``10.0.0.5``, ``fd00::5`` -> the address in its normal form; ValueError otherwise."""
    return _address(text.strip())


def _address(text):
    """A literal IPv4 or IPv6 address in its normal form; ValueError for anything else
    (peers are given by address: no names, no lookups)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            return socket.inet_ntop(family, socket.inet_pton(family, text))
        except (OSError, ValueError):
            pass
    raise ValueError("not an IP address: %r" % text)


def _require_libtorrent():
    if not HAS_LIBTORRENT:
        raise SwarmError("the Python bindings of libtorrent are missing (python3-libtorrent): %s"
                         % LIBTORRENT_IMPORT_ERROR.strip().splitlines()[-1])


def make_torrent(root, files, name, piece_size=None, root_cert_pem=None):
    """The bytes of a private, v2-only torrent of ``files`` (paths relative to
    ``root``), named ``name``.

    Files are listed in sorted order (v2 sorts them anyway) and the creation date is
    left out: the same files make the same bytes. ``piece_size`` (a power of two, at
    least 16 KiB) defaults to libtorrent's choice. With ``root_cert_pem`` (the
    deployment CA's certificate, PEM) the torrent is an SSL torrent. Reads every file
    to hash it.
    """
    _require_libtorrent()
    if not valid_name(name):
        raise ValueError("not a torrent name (one path component): %r" % name)
    if piece_size is not None and (piece_size < 16384 or piece_size & (piece_size - 1)):
        raise ValueError("piece size must be a power of two of at least 16 KiB: %r" % piece_size)
    files = sorted(set(files))
    if not files:
        raise ValueError("no files to put in the torrent")
    entries = [(posixpath.join(name, rel), os.path.getsize(os.path.join(root, rel))) for rel in files]
    if hasattr(lt, "create_file_entry"):  # 2.1: a list of entries
        ct = lt.create_torrent([lt.create_file_entry(path, size) for path, size in entries],
                               piece_size or 0, lt.create_torrent.v2_only)
    else:  # 2.0: a file_storage (deprecated in 2.1)
        fs = lt.file_storage()
        for path, size in entries:
            fs.add_file(path, size)
        ct = lt.create_torrent(fs, piece_size or 0, lt.create_torrent.v2_only)
    ct.set_priv(True)
    ct.set_creator(CREATOR)
    if root_cert_pem:
        ct.set_root_cert(root_cert_pem.decode("ascii") if isinstance(root_cert_pem, bytes) else root_cert_pem)
    # libtorrent reads <path>/<name>/<rel>: a link named like the torrent, to root.
    tmp = tempfile.mkdtemp(prefix="indextts-torrent-")
    try:
        os.symlink(os.path.abspath(root), os.path.join(tmp, name))
        lt.set_piece_hashes(ct, tmp)
    finally:
        shutil.rmtree(tmp)
    entry = ct.generate()
    for key in (b"creation date", "creation date"):
        entry.pop(key, None)
    return lt.bencode(entry)


# A torrent's manifest (manifest()) lies beside it: <torrent>.json.
MANIFEST_SUFFIX = ".json"


def manifest_path(torrent):
    """Where the manifest of the torrent at path ``torrent`` lies."""
    return torrent + MANIFEST_SUFFIX


def manifest(root, files):
    """What a torrent does not carry and a synced cache must match: each file's size,
    mtime (ns) and mode, {rel: [size, mtime_ns, mode]}. A node gives the files it
    fetched these, so that the next rsync dry run finds them unchanged."""
    out = {}
    for rel in sorted(set(files)):
        st = os.lstat(os.path.join(root, rel))
        out[rel] = [st.st_size, st.st_mtime_ns, st.st_mode & 0o7777]
    return out


def torrent_files(torrent):
    """The relative paths of the files in a torrent's bytes (no pad files), in order."""
    _require_libtorrent()
    ti = lt.torrent_info(lt.bdecode(torrent))
    return [rel for _index, rel in _files(ti)]


def torrent_sizes(torrent):
    """(relative path, size) of each file in a torrent's bytes (no pad files), in order."""
    _require_libtorrent()
    ti = lt.torrent_info(lt.bdecode(torrent))
    fs = ti.layout() if hasattr(ti, "layout") else ti.files()
    return [(rel, fs.file_size(index)) for index, rel in _files(ti)]


def _files(ti):
    """(index, path relative to the torrent's directory) of each real file."""
    fs = ti.layout() if hasattr(ti, "layout") else ti.files()  # files() is deprecated in 2.1
    prefix = ti.name() + "/"
    out = []
    for index in range(fs.num_files()):
        if fs.file_flags(index) & lt.file_storage.flag_pad_file:
            continue
        path = fs.file_path(index).replace(os.sep, "/")
        out.append((index, path[len(prefix):] if path.startswith(prefix) else path))
    return out


def _key(info_hashes):
    return str(info_hashes.v2)


def _endpoint(address, port):
    return ("[%s]:%d" if ":" in address else "%s:%d") % (address, port)


class Swarm(object):
    """One libtorrent session in a closed swarm.

    ``address`` is the only address the session listens on and connects from (port 0:
    any free port, see ``port``). ``allowed``: the peer addresses it talks to; every
    other address is refused both ways. ``ssl``: listen for TLS only, for SSL torrents.
    ``upload_limit``: bytes/s each torrent may send, 0 for no limit (a limit of the
    torrent holds for peers on the local network too, which the session's global
    limits do not restrain). ``settings``: libtorrent settings to override.
    ``piece_alerts``: note each piece that passed its hash check, as (key, piece, None,
    None), and each piece read (a handle's read_piece()), as (key, piece, its bytes,
    None) or (key, piece, None, the error in words), in ``piece_events`` for the
    caller to take (an origin link, OriginShare).
    """

    def __init__(self, address, port=0, allowed=(), ssl=False, upload_limit=0, settings=None, listen_timeout=10.0,
                 piece_alerts=False):
        _require_libtorrent()
        self.address = _address(address)
        self.ssl = bool(ssl)
        self.allowed = frozenset(_address(a) for a in allowed)
        self.messages = []
        self._handles = {}      # key -> handle
        self._fetching = {}     # key -> [(address, port)] for torrents being fetched
        self._flushed = {}      # key -> whether libtorrent has written a finished torrent
        self._done = {}         # key -> addresses seen with all they want (see satisfied())
        self._connections = {}  # key -> {(address, port): {since: time, wanted: ever interested in us}}
        self._complete = set()  # keys whose torrent has all it wants (libtorrent said so)
        self._finished_at = {}  # key -> when _observe() first saw that
        self._left = {}         # key -> addresses whose connection ended after that
        self._shares = {}       # key -> the OriginShare of a torrent fetched with an origin
        self.piece_events = []  # (key, piece, data, error) of pieces finished (data None) or read (piece_alerts)
        self._cert = None
        self._tmp = None
        self.upload_limit = int(upload_limit)
        self.port = None
        pack = {
            "listen_interfaces": _endpoint(self.address, port) + ("s" if self.ssl else ""),
            "outgoing_interfaces": self.address,
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "dht_bootstrap_nodes": "",
            # TCP only: one kind of socket to filter and to secure, and on a LAN
            # uTP's delay-based congestion control only slows a bulk transfer down.
            "enable_incoming_utp": False,
            "enable_outgoing_utp": False,
            # A port given is the port, or an error: never the next free one.
            "max_retry_port_bind": 0,
            "listen_system_port_fallback": False,
            "alert_mask": (lt.alert.category_t.error_notification | lt.alert.category_t.status_notification
                           | lt.alert.category_t.storage_notification | lt.alert.category_t.peer_notification
                           | lt.alert.category_t.connect_notification
                           | lt.alert.category_t.ip_block_notification
                           # pieces that passed their hash check: an origin link's (OriginShare)
                           | (lt.alert.category_t.piece_progress_notification if piece_alerts else 0)),
        }
        pack.update(settings or {})
        # flags=0: none of the default plugins (ut_pex, ut_metadata, smart_ban); peer
        # exchange is also off per torrent and in any private torrent.
        self._session = lt.session(pack, 0)
        ip_filter = lt.ip_filter()
        ip_filter.add_rule("0.0.0.0", "255.255.255.255", 1)
        ip_filter.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
        for peer in self.allowed:
            ip_filter.add_rule(peer, peer, 0)
        self._session.set_ip_filter(ip_filter)
        self._wait_listening(listen_timeout)

    def _wait_listening(self, timeout):
        want = lt.socket_type_t.tcp_ssl if self.ssl else lt.socket_type_t.tcp
        deadline = time.monotonic() + timeout
        while self.port is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise SwarmError("libtorrent did not listen on %s within %.0f s" % (self.address, timeout))
            self._session.wait_for_alert(int(left * 1000))
            for a in self._session.pop_alerts():
                if isinstance(a, lt.listen_failed_alert):
                    text = "cannot listen on %s: %s" % (_endpoint(self.address, a.port), a.message())
                    self.close()
                    raise SwarmError(text)
                if isinstance(a, lt.listen_succeeded_alert) and a.socket_type == want:
                    self.port = a.port

    def set_ssl_certificate(self, cert, key, dh=None):
        """This node's certificate and private key (PEM files; the certificate signed
        by the CA in the torrents), for SSL torrents, current and later ones. ``dh``:
        a DH parameters file of at least 2048 bits, FFDHE2048_PEM when None."""
        for path in (cert, key) + ((dh,) if dh else ()):
            if not os.path.isfile(path):
                raise SwarmError("SSL certificate file missing: %s" % path)
        if dh is None:
            if self._tmp is None:
                self._tmp = tempfile.mkdtemp(prefix="indextts-swarm-")
            dh = os.path.join(self._tmp, "ffdhe2048.pem")
            with open(dh, "w") as f:
                f.write(FFDHE2048_PEM)
        self._cert = (cert, key, dh)
        for handle in self._handles.values():
            handle.set_ssl_certificate(cert, key, dh)

    def seed(self, torrent, save_path):
        """Seed ``torrent`` (bytes) from the files under ``save_path`` as they are (seed
        mode: no check, no copy; a piece is hashed when first sent). Returns its key.

        Not super-seeding (BEP 16, libtorrent's ``torrent_flags.super_seeding``): with
        this v2-only torrent a super-seeding libtorrent 2.1.1 sent a node nothing in 6 s
        (seed mode or checked), and its choice of piece for a peer cannot know which
        files the peer skips, so a node fetching a few blobs would wait for pieces it
        never asks for.

        A peer that has the whole torrent is closed at once (libtorrent's
        close_redundant_connections; satisfied() knows why). Any other stays until it
        leaves: a fetcher never says it is upload-only (fetch()), so a node's link to
        its origin (OriginShare) that has its share and may still ask for more keeps
        its connection."""
        return self._add(torrent, save_path, lt.torrent_flags.seed_mode)

    def fetch(self, torrent, save_path, peers, skip=(), origin=None, origin_path=None, pieces=None):
        """Download ``torrent`` (bytes) into ``save_path`` from ``peers`` ((address,
        port) pairs or ``address:port``). libtorrent first checks what is already
        there: a file present with the right content costs no transfer, a wrong piece
        is downloaded again and written in place (so a blob hard-linked into the
        staging area from dest is repaired in dest too). When done the node seeds it
        to the others. Files in ``skip`` (relative paths) are neither fetched nor
        served (priority 0): a node that holds them under another name. ``pieces``: the
        indices of the only pieces wanted (an origin link's share), None for all of the
        files not skipped. Returns its key.

        ``origin`` (a peer like those of ``peers``, not among them: golden, which has
        every piece) with other ``peers`` (the nodes): this node asks the origin only
        for its own share of the pieces, by a link of its own whose files go to
        ``origin_path``, and takes the rest from the nodes (OriginShare): the origin
        sends each piece about once. Without other peers it fetches from the origin
        like from any peer.

        Otherwise pieces are taken rarest first, libtorrent's default: measured in
        bench/fanout_bench.py, golden then sent 1.5-1.7 copies of the cache to 8 nodes,
        the nodes asking it for the pieces no node had yet, often the same ones at
        once; a node asking golden for its own share first but for the others as well
        stayed inside that spread (bench/README.md)."""
        peers = [_peer(p) for p in peers]
        origin = _peer(origin) if origin else None
        if origin and origin in peers:
            raise SwarmError("the origin %s is also among the peers; list only the other nodes as peers"
                             % _endpoint(*origin))
        if origin and not peers:
            peers, origin = [origin], None
        refused = sorted(set(a for a, _port in peers) - self.allowed)
        if refused:
            raise SwarmError("peers not on the allow-list: %s" % ", ".join(refused))
        if origin and not origin_path:
            raise SwarmError("fetching with an origin needs origin_path, where the origin's share lands")
        # A fetcher keeps its connections when it finishes (libtorrent closes those to
        # seeds by default, before its last pieces are announced): the seeder then sees
        # it finish, closes the connection itself, and knows why (satisfied()). With
        # this setting libtorrent never says upload-only either: a fetcher that skips
        # files, or an origin link with its share, stays connected to the seeder.
        self._session.apply_settings({"close_redundant_connections": False})
        key = self._add(torrent, save_path, 0, skip=skip, pieces=pieces)
        self._fetching[key] = peers
        if origin:
            self._shares[key] = OriginShare(self, key, torrent, origin_path, origin,
                                            [a for a, _port in peers], skip)
        self.connect(peers, key)
        return key

    def _add(self, torrent, save_path, flags, skip=(), pieces=None):
        ti = lt.torrent_info(lt.bdecode(torrent))
        key = _key(ti.info_hashes())
        if key in self._handles:
            raise SwarmError("torrent %s (%s) is already in this swarm" % (ti.name(), key))
        if bool(ti.ssl_cert()) != self.ssl:
            raise SwarmError("torrent %s is %san SSL torrent but the swarm on %s %s" % (
                ti.name(), "" if ti.ssl_cert() else "not ", self.address,
                "listens for TLS only" if self.ssl else "has no TLS listener"))
        if self.ssl and not self._cert:
            raise SwarmError("SSL torrent %s: set_ssl_certificate() first" % ti.name())
        params = lt.add_torrent_params()
        params.ti = ti
        # Files map to save_path/<rel>, without the torrent's directory: the cache
        # layout, whatever the torrent is named.
        files = _files(ti)
        params.renamed_files = dict(files)
        if skip:
            skip = set(skip)
            priorities = [4] * ti.num_files()
            for index, rel in files:
                if rel in skip:
                    priorities[index] = 0
            params.file_priorities = priorities
        if pieces is not None:  # only these pieces, whatever the files' priorities
            params.piece_priorities = [4 if i in pieces else 0 for i in range(ti.num_pieces())]
        params.save_path = os.path.abspath(save_path)
        params.upload_limit = self.upload_limit or -1
        params.flags = (lt.torrent_flags.apply_ip_filter | lt.torrent_flags.disable_dht
                        | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex | flags)
        handle = self._session.add_torrent(params)
        self._handles[key] = handle
        self._done[key] = set()
        self._connections[key] = {}
        self._left[key] = set()
        if self._cert:
            handle.set_ssl_certificate(*self._cert)
        return key

    def connect(self, peers, key=None):
        """Connect to peers ((address, port) pairs) for one torrent or all of them. A
        peer already connected is left as it is."""
        for k, handle in self._handles.items():
            if key is None or k == key:
                for address, port in peers:
                    handle.connect_peer((address, port))

    def progress(self):
        """Per torrent key: name, state, whether it is finished, bytes done and
        wanted, payload bytes downloaded (and of those, redundant and failed) and
        uploaded in this session, payload rates (bytes/s) and connected peers.
        Reads libtorrent's pending alerts first (see wait() for the errors it
        raises; peer events go to ``messages``)."""
        self._read_alerts()
        out = {}
        for key, handle in self._handles.items():
            self._observe(key)
            s = handle.status()
            out[key] = {
                "name": s.name,
                "state": str(s.state),
                "finished": bool(s.is_finished or s.is_seeding),
                "fetching": key in self._fetching,
                "total_done": s.total_done,
                "total_wanted": s.total_wanted,
                "downloaded": s.total_payload_download,
                # of which: blocks received that this node already had (another peer sent
                # them first), and pieces that failed their hash check
                "redundant": s.total_redundant_bytes,
                "failed": s.total_failed_bytes,
                "uploaded": s.total_payload_upload,
                "download_rate": s.download_payload_rate,
                "upload_rate": s.upload_payload_rate,
                "peers": s.num_peers,
            }
            if key in self._shares:  # the pieces of the origin's share came by its own link
                link = self._shares[key].progress()
                out[key]["downloaded"] += link["downloaded"]
                out[key]["redundant"] += link["redundant"]
                out[key]["failed"] += link["failed"]
                out[key]["from_origin"] = link["downloaded"]
        return out

    def seeds(self, key):
        """Addresses of the connected peers of a torrent that have all of it (what
        they want of it: a peer that skips files counts once it has the rest)."""
        self._read_alerts()
        handle = self._handles[key]
        return set(_address(p.ip[0]) for p in handle.get_peer_info()
                   if p.flags & (lt.peer_info.seed | lt.peer_info.upload_only))

    def connected(self, key):
        """Addresses of the peers of a torrent connected past the handshake."""
        self._read_alerts()
        self._observe(key)
        return set(address for address, _port in self._connections[key])

    def satisfied(self, key):
        """Addresses of the peers of a torrent that want nothing more from this node,
        as far as it has seen since it had all of the torrent it wants (a seeder; a
        fetcher that finished): peers seen with all they want (seed, upload-only);
        peers this node closed because both ends had all they want (one that
        finished and left before it was seen as a seed); peers that took pieces
        from this node, or were interested in them, and no longer are (one that
        skips files and has the rest); peers connected for SETTLE_SECONDS without
        ever wanting a piece of this node. Once satisfied, a peer stays so.

        Peers are watched whenever progress(), seeds(), connected() or this is
        called, and libtorrent tells nothing of a peer that left: call one of them a
        few times a second. Nodes stay connected a moment after they finish
        (model_cache_sync's linger) for this."""
        self._read_alerts()
        self._observe(key)
        return set(self._done[key])

    def left(self, key):
        """Addresses of the peers of a torrent whose connection to this node ended
        after this node had all of the torrent it wants (libtorrent's alerts come in
        order): golden closing a node that finished, another node that finished and
        left. Unlike satisfied(), this does not say that the peer has all it wants:
        a node whose connection broke off while it still fetched is here too (it
        fetches from its other peers, golden among them)."""
        self._read_alerts()
        return set(self._left[key])

    def _observe(self, key):
        """Note the connected peers of a torrent: since when, whether they were ever
        interested in this node's pieces, whether they want nothing more from it."""
        now = time.monotonic()
        handle = self._handles[key]
        status = handle.status()
        if (status.is_finished or status.is_seeding) and key not in self._finished_at:
            self._finished_at[key] = now
        # Interest is judged once the peers had a moment to see this node's last pieces.
        judge = now - self._finished_at.get(key, now) >= SETTLE_SECONDS
        connections = self._connections[key]
        current = set()
        for p in handle.get_peer_info():
            if p.flags & (lt.peer_info.connecting | lt.peer_info.handshake):
                continue
            address = _address(p.ip[0])
            conn = (address, p.ip[1])
            current.add(conn)
            record = connections.setdefault(conn, {"since": now, "wanted": False})
            interested = bool(p.flags & lt.peer_info.remote_interested)
            record["wanted"] = record["wanted"] or interested or p.total_upload > 0
            if p.flags & (lt.peer_info.seed | lt.peer_info.upload_only):
                self._done[key].add(address)
            elif judge and not interested and (record["wanted"] or now - record["since"] >= SETTLE_SECONDS):
                self._done[key].add(address)
        for conn in set(connections) - current:
            del connections[conn]

    def wait(self, timeout, stall_seconds, on_progress=None, interval=1.0, reconnect_seconds=5.0):
        """Wait until every torrent being fetched is complete and written (DONE), or
        none made progress for ``stall_seconds`` (STALLED: the caller falls back to
        rsync), or ``timeout`` seconds passed (TIMED_OUT). Checking existing files
        counts as progress. ``on_progress(progress())`` is called every ``interval``
        seconds; unconnected peers are retried every ``reconnect_seconds``. Raises
        SwarmError on a storage, certificate or torrent error.

        A torrent is finished once its last piece passed its hash check, which can
        be before the disk thread wrote it: DONE waits for libtorrent to flush and
        close the torrent's files (flush_cache, cache_flushed_alert), so the caller
        reads what was downloaded. Not fsync'd: that is the caller's, before it
        publishes.
        """
        start = last_change = last_connect = last_report = time.monotonic()
        marker = None
        while True:
            for share in self._shares.values():
                share.check()
            progress = self.progress()
            now = time.monotonic()
            fetching = dict((k, p) for k, p in progress.items() if k in self._fetching)
            finished = all(p["finished"] for p in fetching.values())
            if on_progress and (now - last_report >= interval or finished):
                last_report = now
                on_progress(progress)
            if finished:
                for key in fetching:
                    if key not in self._flushed:
                        self._flushed[key] = False
                        self._handles[key].flush_cache()
                if all(self._flushed[key] for key in fetching):
                    # A link to an origin stays until the node leaves the swarm (close()),
                    # so that golden sees it want nothing more before it goes.
                    return DONE
            current = tuple((p["total_done"], p["state"]) for p in fetching.values())
            if current != marker:
                marker, last_change = current, now
            if now - last_change >= stall_seconds and not finished:
                return STALLED
            if now - start >= timeout:
                return TIMED_OUT
            if now - last_connect >= reconnect_seconds:
                last_connect = now
                for key, peers in self._fetching.items():
                    if not progress[key]["finished"]:
                        self.connect(peers, key)
            # Peers are looked at more often than reported on (satisfied()).
            self._session.wait_for_alert(int(min(interval, OBSERVE_SECONDS) * 1000))

    def _read_alerts(self):
        for a in self._session.pop_alerts():
            text = "%s: %s" % (type(a).__name__, a.message())
            if isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                raise SwarmError("libtorrent failed in torrent %s: %s" % (a.torrent_name, text))
            if isinstance(a, lt.torrent_need_cert_alert) and not self._cert:
                raise SwarmError("%s (set_ssl_certificate)" % text)
            # An alert lives until the next pop_alerts(): what it says is copied.
            if isinstance(a, lt.piece_finished_alert) and a.handle.is_valid():
                self.piece_events.append((_key(a.handle.info_hashes()), a.piece_index, None, None))
            if isinstance(a, lt.read_piece_alert) and a.handle.is_valid():
                error = a.error.message() if a.error.value() else None
                self.piece_events.append((_key(a.handle.info_hashes()), a.piece, None if error else bytes(a.buffer),
                                          error))
            if isinstance(a, lt.cache_flushed_alert):
                key = _key(a.handle.info_hashes())
                if key in self._flushed:
                    self._flushed[key] = True
            if isinstance(a, lt.state_changed_alert) and a.handle.is_valid() \
                    and a.state in (lt.torrent_status.states.finished, lt.torrent_status.states.seeding):
                self._complete.add(_key(a.handle.info_hashes()))
            if isinstance(a, lt.peer_disconnected_alert) and a.handle.is_valid():
                key = _key(a.handle.info_hashes())
                if a.error.value() == UPLOAD_UPLOAD_CONNECTION and a.error.category().name() == "libtorrent":
                    self._done.get(key, set()).add(_address(a.ip[0]))
                if key in self._complete:
                    self._left.get(key, set()).add(_address(a.ip[0]))
            if isinstance(a, (lt.peer_error_alert, lt.peer_disconnected_alert, lt.peer_blocked_alert,
                              lt.hash_failed_alert, lt.listen_failed_alert)):
                self.messages.append(text)
                del self.messages[:-MAX_MESSAGES]

    def close(self):
        """Leave the swarm: remove the torrents (the files stay) and end the session."""
        for share in self._shares.values():
            share.close()
        self._shares.clear()
        if self._session is not None:
            for handle in self._handles.values():
                self._session.remove_torrent(handle)
            self._handles.clear()
            self._fetching.clear()
            self._flushed.clear()
            self._done.clear()
            self._connections.clear()
            self._complete.clear()
            self._finished_at.clear()
            self._left.clear()
            self._session.pause()
            self._session = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- the origin's share ------------------------------------------------------------------


def origin_pieces(lacking, members, me, present=None, finished=None, rescue=()):
    """The pieces of ``lacking`` (those this node wants and has not) that it asks the
    origin for. A pure function of what the node sees of its peers.

    A piece a ``finished`` peer has (address -> the set of pieces it has: it wants no
    more) comes from that peer. Any other has one owner, the only member that asks
    the origin for it: of the members (addresses, ``me`` among them) that will bring
    it, the one at index piece mod their number, in address order. A member brings
    pieces unless it is not ``present`` (a set of addresses; None: all are, as at
    the start) or it finished (without the piece). ``rescue``: pieces asked of the
    origin whoever owns them (no peer offered them while this node got nothing)."""
    finished = finished or {}
    bringing = [m for m in sorted(set(members) | {me})
                if m == me or ((present is None or m in present) and m not in finished)]
    offered = set().union(*finished.values()) if finished else set()
    wanted = set(piece for piece in lacking
                 if piece not in offered and bringing[piece % len(bringing)] == me)
    return wanted | (set(rescue) & set(lacking))


class OriginShare(object):
    """The pieces a node asks the origin (golden) for, by a link of its own.

    In a swarm where every node asks golden for any piece no node has yet, golden
    sends the same pieces to several nodes at once (measured: 1.5-1.7 copies of the
    cache for 8 nodes; bench/README.md). Here the node's own swarm session
    (``swarm``, which talks to the other nodes only) never connects to golden: a
    second session, on a free port of the same address and allowing golden alone,
    asks golden for this node's share (origin_pieces) and nothing else, and each piece
    it gets is handed to the swarm's torrent (add_piece), from where the other nodes
    fetch it. Golden then sends each piece about once.

    A thread of its own hands the pieces on as they come, and plans the share again
    every SHARE_PLAN_SECONDS from what the node sees of its peers, so that a node
    that never came, left, or finished without a piece does not hold the others up;
    when the node got nothing for SHARE_RESCUE_SECONDS and its share is in, the pieces
    no peer offers are asked of golden whoever owns them. An error of the link is
    raised by check(). The link's files (``save_path``) are copies of pieces already
    handed on: the caller removes them."""

    def __init__(self, swarm, key, torrent, save_path, origin, members, skip):
        self.swarm, self.key, self.torrent = swarm, key, torrent
        self.save_path, self.origin, self.skip = save_path, origin, skip
        self.members = sorted(set(members) | {swarm.address})
        self.link = None  # the Swarm that talks to the origin, from the first plan on
        self.wanted = set()
        self.started = time.monotonic()
        self.progress_marker = (None, self.started)  # (the swarm's bytes done, since when)
        self.last = {"downloaded": 0, "redundant": 0, "failed": 0}
        self.error = None
        self.lock = threading.Lock()  # the link, between the thread and progress()/close()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="origin-share")
        self.thread.daemon = True
        self.thread.start()

    def run(self):
        last_plan = 0.0
        try:
            while not self.stopping.is_set():
                with self.lock:
                    if self.link is not None:
                        self.hand_on()
                    if time.monotonic() - last_plan >= SHARE_PLAN_SECONDS:
                        last_plan = time.monotonic()
                        self.plan(last_plan)
                if self.link is not None:
                    self.link._session.wait_for_alert(int(SHARE_TICK_SECONDS * 1000))
                else:
                    self.stopping.wait(SHARE_TICK_SECONDS)
        except Exception as e:  # noqa: BLE001 -- any failure of the link ends it; check() raises it
            self.error = e if isinstance(e, SwarmError) else SwarmError("the link to the origin failed: %s" % e)

    def check(self):
        """Raise the link's error, if it had one (the swarm then stalls or fails)."""
        if self.error is not None:
            raise self.error

    def plan(self, now):
        handle = self.swarm._handles[self.key]
        status = handle.status()
        if status.state in (lt.torrent_status.states.checking_files, lt.torrent_status.states.checking_resume_data):
            return  # what the staging area already holds is not known yet
        have = status.pieces
        priorities = handle.get_piece_priorities()
        lacking = [i for i, (got, priority) in enumerate(zip(have, priorities)) if priority and not got]
        present, finished = set(), {}
        for p in handle.get_peer_info():
            if p.flags & (lt.peer_info.connecting | lt.peer_info.handshake):
                continue
            address = _address(p.ip[0])
            present.add(address)
            if p.flags & (lt.peer_info.seed | lt.peer_info.upload_only):
                finished[address] = set(i for i, got in enumerate(p.pieces) if got)
        done, since = self.progress_marker
        if status.total_done != done:
            self.progress_marker = done, since = status.total_done, now
        rescue = ()
        fetching = self.link is not None and not self.link._handles[self.key].status().is_finished
        if now - since >= SHARE_RESCUE_SECONDS and not fetching:
            # Nothing came for a while and the origin owes this node nothing: ask it for
            # what no peer offers.
            offered = handle.piece_availability()
            rescue = [i for i in lacking if not offered[i]]
        wanted = origin_pieces(lacking, self.members, self.swarm.address,
                               None if now - self.started < SHARE_GRACE_SECONDS else present, finished, rescue)
        if self.link is None:
            # Open even with nothing to ask for: the origin waits for every node it
            # serves to connect and then leave (cache_seed).
            self.wanted = wanted
            self.link = Swarm(self.swarm.address, 0, allowed=[self.origin[0]], ssl=self.swarm.ssl,
                              upload_limit=self.swarm.upload_limit, piece_alerts=True)
            if self.swarm._cert:
                self.link.set_ssl_certificate(*self.swarm._cert)
            self.link.fetch(self.torrent, self.save_path, [self.origin], skip=self.skip, pieces=wanted)
        elif wanted != self.wanted:
            self.wanted = wanted
            self.link._handles[self.key].prioritize_pieces([4 if i in wanted else 0 for i in range(len(have))])
        if wanted and self.origin[0] not in self.link.connected(self.key):
            self.link.connect([self.origin], self.key)  # a connection already there is left as it is

    def hand_on(self):
        """Read each piece the link got, and add it to the swarm's torrent."""
        self.link._read_alerts()  # raises SwarmError on the link's errors
        events, self.link.piece_events = self.link.piece_events, []
        link = self.link._handles[self.key]
        handle = self.swarm._handles[self.key]
        for _key, piece, data, error in events:
            if error:
                raise SwarmError("reading piece %d of the origin's share back failed: %s" % (piece, error))
            if data is None:
                link.read_piece(piece)
            else:
                handle.add_piece(piece, data, 0)

    def progress(self):
        """The link's payload bytes: downloaded, and of those redundant and failed."""
        with self.lock:
            if self.link is not None and self.link._session is not None:
                s = self.link._handles[self.key].status()
                self.last = {"downloaded": s.total_payload_download, "redundant": s.total_redundant_bytes,
                             "failed": s.total_failed_bytes}
            return dict(self.last)

    def close(self):
        """Stop the thread and leave the origin (the swarm's torrent keeps what was handed on)."""
        self.stopping.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join()
        if self.link is not None and self.link._session is not None:
            self.progress()
            self.link.close()
