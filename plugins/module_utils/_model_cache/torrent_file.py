# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""indextts.deploy.cache_torrent: golden's torrent of its cache and the manifest beside it.

The torrent (_torrent.make_torrent: v2 only, private, the same files make the same
bytes) holds the cache's regular files; the manifest ``<torrent>.json`` holds their
sizes, mtimes and modes (_torrent.manifest), which the nodes give the files they fetch
(model_cache_sync transport=p2p).

Hashing reads the whole cache, so it happens only when something changed: the manifest
computed afresh (one lstat per file) equal to the stored one, and the stored torrent
made with the same name, CA certificate and piece size (when given), mean the torrent
is up to date, as rsync's quick check would judge it.

Both files are written in full to temporary files in the torrent's directory, synced,
then renamed over the old ones: the manifest first, then the torrent. The torrent is
the commit point: model_cache_sync reads the torrent first and the manifest after it,
so a reader that read a new torrent reads its manifest too. Two renames cannot be one,
so a reader that overlaps a run may still pair the old torrent with the new manifest;
the play copies both files to the nodes after this module ran, not while it runs.
"""

import datetime
import grp
import json
import os
import pwd
import re

from ansible_collections.indextts.deploy.plugins.module_utils import _torrent
from ansible_collections.indextts.deploy.plugins.module_utils._paths import error_text, system_dir

PEM_CERT_RE = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.S)
MODE_RE = re.compile(r"^(0o?)?[0-7]{1,4}$")


def pem_lines(text):
    """A PEM text without surrounding blanks and line-end differences, to compare."""
    return "\n".join(line.strip() for line in (text or "").strip().splitlines())


def manifest_diff(old, new):
    """(added, removed, changed) paths between two manifests."""
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(rel for rel in set(old) & set(new) if list(old[rel]) != list(new[rel]))
    return added, removed, changed


def describe(rel, entry):
    size, mtime_ns, mode = entry
    seconds, nanos = divmod(int(mtime_ns), 10 ** 9)
    when = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return "%s  %d bytes  mtime %s.%09dZ  mode %04o" % (rel, size, when, nanos, mode)


class CacheTorrent(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.path = (self.p["path"] or "").rstrip("/") or "/"
        self.torrent = self.p["torrent"]
        self.manifest_path = _torrent.manifest_path(self.torrent or "")
        self.ca_pem = None
        self.mode = None
        self.ids = (-1, -1)

    def fail(self, msg, changed=False):
        self.module.fail_json(msg=msg, changed=changed)

    # -- inspect: reads only ------------------------------------------------------------
    def check_params(self):
        p = self.p
        if not _torrent.HAS_LIBTORRENT:
            self.fail("cache_torrent needs libtorrent's Python bindings on this host: install python3-libtorrent "
                      "(Debian), or pip install libtorrent into the interpreter that runs the module")
        for name in ("path", "torrent", "ca_cert"):
            if p[name] and not os.path.isabs(p[name]):
                self.fail("%s must be an absolute path, got %r" % (name, p[name]))
        for path in (os.path.normpath(self.path), os.path.realpath(self.path)):
            if system_dir(path):
                what = "a system directory" if path == os.path.normpath(self.path) else \
                    "a link to the system directory %s" % path
                self.fail("path %s is %s, not a cache; give the cache's own directory, for example "
                          "/srv/indextts/cache" % (self.path, what))
        if not os.path.isdir(self.path):
            self.fail("path %s is not a directory on this host; give the root of golden's model cache, "
                      "for example /srv/indextts/cache" % self.path)
        if self.torrent.endswith("/") or os.path.isdir(self.torrent):
            self.fail("torrent %s is a directory; give the path of the .torrent file to write, for example "
                      "/var/lib/indextts/cache.torrent" % self.torrent)
        if os.path.isdir(self.manifest_path):
            self.fail("%s, where the manifest of torrent %s goes, is a directory; remove it or choose "
                      "another torrent path" % (self.manifest_path, self.torrent))
        directory = os.path.dirname(self.torrent)
        where, root = os.path.realpath(directory), os.path.realpath(self.path)
        if where == root or where.startswith(root.rstrip("/") + "/"):
            self.fail("torrent %s lies inside path %s, so it would go into the next torrent made of it (and "
                      "to every node with the cache); write it outside the cache, for example "
                      "/var/lib/indextts/cache.torrent" % (self.torrent, self.path))
        if not os.path.isdir(directory):
            self.fail("the directory of torrent %s (%s) does not exist; create it first, for example with "
                      "ansible.builtin.file state=directory" % (self.torrent, directory))
        if not os.access(directory, os.W_OK):
            self.fail("the directory of torrent %s (%s) is not writable for this user; run the task with become, "
                      "or choose another directory" % (self.torrent, directory))
        if not _torrent.valid_name(p["name"]):
            self.fail("name %r is not a torrent name: one path component, without '/', '\\' or NUL, at most 255 "
                      "characters (the name the peers' certificates carry, for example indextts-cache)" % p["name"])
        size = p["piece_size"]
        if size is not None and (size < 16384 or size & (size - 1)):
            self.fail("piece_size %d is not a power of two of at least 16384 (16 KiB); give for example "
                      "4194304 (4 MiB), or leave it out for libtorrent's choice" % size)
        if p["ca_cert"]:
            self.ca_pem = self.read_ca(p["ca_cert"])
        self.mode = self.parse_mode(p["mode"])
        self.ids = self.account_ids()

    def read_ca(self, path):
        if not os.path.isfile(path):
            self.fail("ca_cert %s does not exist on this host (or is not a file); copy the deployment CA's "
                      "certificate there first" % path)
        try:
            with open(path) as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            self.fail("ca_cert %s cannot be read: %s; make it readable for the user running the task (or "
                      "become root)" % (path, error_text(e) if isinstance(e, OSError) else "not PEM text"))
        certs = PEM_CERT_RE.findall(text)
        if not certs:
            self.fail("ca_cert %s holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the deployment "
                      "CA's certificate" % path)
        if len(certs) > 1:
            self.fail("ca_cert %s holds %d certificates; an SSL torrent carries one: give the deployment CA's "
                      "certificate alone" % (path, len(certs)))
        return certs[0].replace("\r\n", "\n") + "\n"

    def parse_mode(self, mode):
        if isinstance(mode, int) and not isinstance(mode, bool):
            value = mode
        elif isinstance(mode, str) and MODE_RE.match(mode.strip()):
            value = int(mode.strip().replace("0o", ""), 8)
        else:
            value = None
        if value is None or not 0 <= value <= 0o777:
            self.fail("mode %r is not a file mode for the torrent and its manifest: give octal permissions "
                      "in quotes, for example '0644' (an unquoted 644 is the decimal number 644)" % (mode,))
        return value

    def account_ids(self):
        p = self.p
        uid = gid = -1
        for name, lookup, what in (("owner", lambda n: pwd.getpwnam(n).pw_uid, "user"),
                                   ("group", lambda n: grp.getgrnam(n).gr_gid, "group")):
            value = p[name]
            if not value:
                continue
            try:
                number = int(value) if value.isdigit() else lookup(value)
            except KeyError:
                self.fail("%s %r is not a %s on this host; create it first, or give a numeric id" % (name, value, what))
            if name == "owner":
                uid = number
            else:
                gid = number
        euid = os.geteuid()
        if euid != 0:
            if uid not in (-1, euid):
                self.fail("owner=%s needs root on this host: run the task with become" % p["owner"])
            if gid not in (-1, os.getegid()) and gid not in os.getgroups():
                self.fail("group=%s needs root (this user is not in that group): run the task with become" % p["group"])
        return uid, gid

    def fresh_manifest(self):
        """The cache's files and their manifest, by lstat (nothing is read)."""
        def refuse(e):
            raise e
        try:
            files = _torrent.regular_files(self.path, onerror=refuse)
            return files, _torrent.manifest(self.path, files)
        except OSError as e:
            self.fail("path %s: %s at %s while listing the cache; make it readable for the user running the task "
                      "(or become root); nothing was written" % (self.path, error_text(e), e.filename or self.path))

    def stored(self):
        """(manifest, torrent bytes, torrent_info) as stored; None for what is missing or unreadable."""
        manifest = data = info = None
        try:
            with open(self.manifest_path) as f:
                manifest = json.load(f)
            if not isinstance(manifest, dict):
                manifest = None
        except (OSError, ValueError):
            manifest = None
        try:
            with open(self.torrent, "rb") as f:
                data = f.read()
            info = _torrent.lt.torrent_info(_torrent.lt.bdecode(data))
        except Exception:  # not there, unreadable, not a torrent: it is made again
            data = info = None
        return manifest, data, info

    def up_to_date(self, fresh, manifest, data, info):
        """Whether the stored torrent and manifest are those of the cache as it is,
        made with the options given: no need to hash."""
        if manifest is None or info is None or manifest != fresh:
            return False
        hashes = info.info_hashes()
        if not hashes.has_v2() or hashes.has_v1() or not info.priv() or info.name() != self.p["name"]:
            return False
        if pem_lines(info.ssl_cert()) != pem_lines(self.ca_pem):
            return False
        if self.p["piece_size"] and info.piece_length() != self.p["piece_size"]:
            return False
        return _torrent.torrent_files(data) == sorted(fresh)

    def attributes_differ(self, path):
        st = os.stat(path)
        return (st.st_mode & 0o7777) != self.mode or self.ids[0] not in (-1, st.st_uid) \
            or self.ids[1] not in (-1, st.st_gid)

    # -- apply ----------------------------------------------------------------------------
    def make(self, files, fresh):
        """Hash the files; the torrent's bytes. The cache must hold still meanwhile."""
        for rel in files:
            if not os.access(os.path.join(self.path, rel), os.R_OK):
                self.fail("path %s: %s cannot be read by this user, so it cannot be hashed; run the task as the "
                          "cache's owner or with become; nothing was written" % (self.path, rel))
        try:
            data = _torrent.make_torrent(self.path, files, self.p["name"], piece_size=self.p["piece_size"],
                                         root_cert_pem=self.ca_pem)
        except (RuntimeError, SystemError, OSError, ValueError, _torrent.SwarmError) as e:
            self.fail("path %s: hashing the cache failed: %s; nothing was written" % (self.path, e))
        after = _torrent.manifest(self.path, [rel for rel in files if os.path.lexists(os.path.join(self.path, rel))])
        if after != fresh:
            _added, removed, changed = manifest_diff(fresh, after)
            moved = sorted(removed + changed)
            self.fail("path %s changed while it was hashed (%s%s); run the task again once the cache is "
                      "complete and quiet; nothing was written"
                      % (self.path, ", ".join(moved[:5]), " ..." if len(moved) > 5 else ""))
        return data

    def write(self, files):
        """Write each (path, bytes) through a temporary file in its directory; the
        temporaries all first, then the renames in the order given."""
        temps = []
        doing = ""
        renamed = 0
        try:
            for final, data in files:
                temp = os.path.join(os.path.dirname(final), ".%s.tmp-%d" % (os.path.basename(final), os.getpid()))
                doing = "writing %s" % temp
                temps.append(temp)
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fchmod(fd, self.mode)
                    if self.ids != (-1, -1):
                        doing = "setting the owner of %s" % temp
                        os.fchown(fd, *self.ids)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            for (final, _data), temp in zip(files, temps):
                doing = "renaming %s to %s" % (temp, final)
                os.replace(temp, final)
                renamed += 1
            directory = os.open(os.path.dirname(files[0][0]), os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as e:
            for temp in temps:
                if os.path.lexists(temp):
                    try:
                        os.unlink(temp)
                    except OSError:
                        pass
            after = "the files in place are as they were" if not renamed else "the manifest is new and the torrent " \
                "old: run the task again" if renamed < len(files) else "both are new"
            self.fail("torrent %s: %s while %s; %s" % (self.torrent, error_text(e), doing, after), changed=bool(renamed))

    def fix_attributes(self):
        for path in (self.manifest_path, self.torrent):
            try:
                if self.attributes_differ(path):
                    os.chmod(path, self.mode)
                    if self.ids != (-1, -1):
                        os.chown(path, *self.ids)
            except OSError as e:
                self.fail("%s: %s while setting its mode and owner" % (path, error_text(e)))

    def run(self):
        self.check_params()
        files, fresh = self.fresh_manifest()
        if not files:
            self.fail("path %s holds no files to share (regular files outside .locks/, .indextts-partial/, and the "
                      "repos' refs/ and .no_exist/); sync or download the cache there first" % self.path)
        manifest, data, info = self.stored()
        current = self.up_to_date(fresh, manifest, data, info)
        stale_attributes = current and any(self.attributes_differ(path) for path in (self.manifest_path, self.torrent))
        result = {"changed": not current or stale_attributes, "torrent": self.torrent,
                  "manifest": self.manifest_path, "files": len(files), "bytes": sum(e[0] for e in fresh.values()),
                  "name": self.p["name"], "ssl": bool(self.ca_pem), "info_hash": None, "piece_size": None}
        if current:
            result.update(info_hash=str(info.info_hashes().v2), piece_size=info.piece_length())
        if self.module._diff:
            result["diff"] = self.diff(manifest or {}, fresh, info, current)
        if self.module.check_mode or not result["changed"]:
            return result
        if current:
            self.fix_attributes()
            return result
        data = self.make(files, fresh)
        text = json.dumps(fresh, sort_keys=True, separators=(",", ":")) + "\n"
        self.write([(self.manifest_path, text.encode("utf-8")), (self.torrent, data)])
        made = _torrent.lt.torrent_info(_torrent.lt.bdecode(data))
        result.update(info_hash=str(made.info_hashes().v2), piece_size=made.piece_length())
        return result

    def diff(self, old, new, info, current):
        """The files added, removed and changed (by the manifest), and the torrent's
        name, CA and piece size where they change."""
        added, removed, changed = manifest_diff(old, new)
        before = [describe(rel, old[rel]) for rel in sorted(removed + changed)]
        after = [describe(rel, new[rel]) for rel in sorted(added + changed)]
        if info is not None and not current:
            if info.name() != self.p["name"]:
                before.append("name: %s" % info.name())
                after.append("name: %s" % self.p["name"])
            if pem_lines(info.ssl_cert()) != pem_lines(self.ca_pem):
                before.append("CA certificate: %s" % ("yes" if info.ssl_cert() else "none"))
                after.append("CA certificate: %s" % (self.p["ca_cert"] if self.ca_pem else "none"))
            if self.p["piece_size"] and info.piece_length() != self.p["piece_size"]:
                before.append("piece size: %d" % info.piece_length())
                after.append("piece size: %d" % self.p["piece_size"])
        elif info is None:
            before.append("(no torrent)" if not os.path.lexists(self.torrent) else "(not a torrent)")
        return {"before_header": self.manifest_path, "after_header": self.manifest_path,
                "before": "".join(line + "\n" for line in before), "after": "".join(line + "\n" for line in after)}
