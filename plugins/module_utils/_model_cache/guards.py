# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inputs, checked before anything runs: each problem named with its fix."""

import grp
import os
import pwd
import re

from ansible_collections.indextts.deploy.plugins.module_utils import _hfcache as hf
from ansible_collections.indextts.deploy.plugins.module_utils._model_cache.transport import MAX_AUTO_STREAMS
from ansible_collections.indextts.deploy.plugins.module_utils._paths import system_dir

# rsync's --bwlimit: a rate in KiB/s, or with a K, M, G (or KB, MiB ...) suffix
BWLIMIT_RE = re.compile(r"^[0-9]+(\.[0-9]+)?([KMGTPkmgtp]([Ii]?[Bb])?)?$")
BAD_NAME_RE = re.compile(r"(^-)|[\s\x00-\x1f\x7f]")


def problem(p, dest, is_root):
    """The first thing wrong with the module's parameters ``p``, in words, or None.
    ``dest`` is p["dest"] without its trailing slash."""
    for name in ("src", "dest", "ssh_key", "known_hosts"):
        if p[name] and not os.path.isabs(p[name]):
            return "%s must be an absolute path, got %r" % (name, p[name])
    for path in (os.path.normpath(dest), os.path.realpath(dest)):
        if system_dir(path):
            what = "a system directory" if path == dest else "a link to the system directory %s" % path
            return ("dest %s is %s; sync the cache into a directory of its own below it, for "
                    "example /srv/indextts/cache" % (dest, what))
    for name in ("src_host", "src_user"):
        if p[name] is not None and (not p[name] or BAD_NAME_RE.search(p[name]) or
                                    (name == "src_user" and ("@" in p[name] or ":" in p[name]))):
            return ("%s %r is not a %s: it is empty, starts with '-', or holds a space, '@', ':' or "
                    "a control character; fix the inventory value" % (
                        name, p[name], "host name or address" if name == "src_host" else "user name"))
    if not 1 <= p["ssh_port"] <= 65535:
        return "ssh_port must be a TCP port from 1 to 65535, got %d" % p["ssh_port"]
    if p["bwlimit"] and not BWLIMIT_RE.match(p["bwlimit"]):
        return ("bwlimit %r is not a rate rsync reads: give KiB per second (5000) or a number with "
                "a unit (50M, 1.5G)" % p["bwlimit"])
    if p["lock_timeout"] < 0:
        return "lock_timeout must be 0 (do not wait) or more seconds, got %d" % p["lock_timeout"]
    if not p["src_host"] and os.path.realpath(p["src"]) == os.path.realpath(dest):
        return "src and dest are the same local directory (%s); set src_host to pull from another host" % dest
    if not p["src_host"] and not os.path.isdir(p["src"]):
        return "src %s is not a directory on this host; set src_host when it lives on another host" % p["src"]
    for basis in p["link_dest"] or []:
        if not os.path.isabs(basis) or not os.path.isdir(basis):
            return ("link_dest entry %r is not an absolute path of a directory on this host; name an earlier "
                    "copy of the tree (for example the release in use), or leave it out" % basis)
        if os.path.realpath(basis) == os.path.realpath(dest):
            return "link_dest entry %s is dest itself; name an earlier copy of the tree" % basis
    for name in ("ssh_key", "known_hosts"):
        if p[name] and not os.path.isfile(p[name]):
            return "%s %s does not exist on this host" % (name, p[name])
    if p["retries"] < 0:
        return "retries must be 0 or more, got %d" % p["retries"]
    if p["retry_delay"] < 0:
        return "retry_delay must be 0 or more, got %s" % p["retry_delay"]
    if p["streams"] < 0:
        return "streams must be 0 (one per CPU, at most %d) or more, got %d" % (MAX_AUTO_STREAMS, p["streams"])
    if p["timeout"] < 0:
        return "timeout must be 0 (off) or more seconds, got %d" % p["timeout"]
    if p["owner"] and not is_root:
        return "owner=%s needs root on this host: run the task with become" % p["owner"]
    for name, lookup, what in (("owner", pwd.getpwnam, "user"), ("group", grp.getgrnam, "group")):
        if p[name] and not p[name].isdigit():
            try:
                lookup(p[name])
            except KeyError:
                return "%s %r is not a %s on this host; create it first, or give a numeric id" % (name, p[name], what)
    bad = [m for m in p["models"] or [] if hf.repo_dir_name(m) is None]
    if bad:
        return "models entries %s are not repo ids; use org/name or models--org--name" % (
            ", ".join(repr(m) for m in bad))
    if os.path.lexists(dest) and not os.path.isdir(dest):
        return "dest %s exists and is not a directory; remove it or choose another dest" % dest
    return None
