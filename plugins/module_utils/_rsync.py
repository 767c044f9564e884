# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rsync helpers for indextts.deploy: argv builders and pure parsers of rsync's output.

Nothing here runs a process; modules pass the argv to ``AnsibleModule.run_command``
and hand the output back to the parsers, which are unit-tested on captured output
of real rsync runs (tests/unit/plugins/module_utils/fixtures/).
"""

import re
import shlex

# OUT_FORMAT: an 11-character change summary, the size in bytes (of a symlink: its
# target's length in bytes), the name, and for a symlink " -> " and its target (%L).
# A name or a target may itself hold " -> " (or a tab, which rsync prints as is): the
# target is the one tail after a " -> " whose length is the size rsync gave, so the
# split is unambiguous (split_link). rsync writes control characters as \#ooo and a
# backslash before '#' as \#134 (unescape() undoes both), and, with --8-bit-output,
# UTF-8 as is. Lines that do not match (rsync's messages) are not changes.
OUT_FORMAT = "%i %l %n%L"
_ESCAPE_RE = re.compile(r"\\#([0-7]{3})")
_ITEM_RE = re.compile(r"^(?P<item>[<>ch.][fdLDS][.+?cstpoguax ]{9}) (?P<size>\d+) (?P<path>.+)$")
_DELETING_RE = re.compile(r"^\*deleting +(?P<size>\d+) (?P<path>.+)$")

# Ciphers for hosts whose CPU has AES instructions: AES-GCM then runs several times
# faster than OpenSSH's default first choice, chacha20-poly1305, and a sync over SSH
# is bound by the cipher and the copies. The rest of OpenSSH's default list follows,
# so a server that allows none of the first ones still agrees on a cipher.
AES_FIRST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
                     "aes128-ctr", "aes192-ctr", "aes256-ctr")

_STAT_KEYS = {
    "Number of regular files transferred": "files_transferred",
    "Number of created files": "files_created",
    "Number of deleted files": "files_deleted",
    "Total file size": "total_size",
    "Total transferred file size": "transferred_size",
    "Literal data": "literal_bytes",
    "Matched data": "matched_bytes",
    "Total bytes sent": "bytes_sent",
    "Total bytes received": "bytes_received",
}
_STAT_RE = re.compile(r"^(?P<key>[A-Za-z ]+): (?P<num>[\d,]+)")

# Exit codes after which another attempt can succeed (network, timeouts, a
# source that changed under us). Others (syntax, permissions, missing files)
# fail the same way every time.
TRANSIENT_EXIT_CODES = frozenset((5, 10, 11, 12, 14, 20, 21, 22, 23, 24, 30, 35, 255))

# rsync's exit codes in words (rsync(1), EXIT VALUES), for the failures no message
# pattern below explains better.
EXIT_CODES = {
    1: "syntax or usage error: an option this rsync does not accept",
    2: "protocol incompatibility between the two rsyncs",
    3: "errors selecting input/output files or directories",
    4: "an action this rsync does not support",
    5: "error starting the client-server protocol",
    10: "error in socket I/O",
    11: "error in file I/O",
    12: "error in the rsync protocol data stream (the connection broke, or the remote rsync failed)",
    13: "errors with program diagnostics",
    14: "error in IPC code",
    20: "rsync was interrupted (SIGUSR1 or SIGINT)",
    21: "an error returned by waitpid()",
    22: "rsync could not allocate memory",
    23: "partial transfer: some files were not transferred (see stderr)",
    24: "partial transfer: source files vanished",
    25: "the --max-delete limit stopped deletions",
    30: "timeout in data send/receive",
    35: "timeout waiting for the daemon connection",
    255: "the SSH connection failed",
}

# Messages of ssh and rsync that make a retry pointless, with what to do about them.
_PERMANENT_ERRORS = (
    # A full disk stays full: rsync's code 11 (or 23, 12) is not worth a retry here.
    (re.compile(r"No space left on device|Disk quota exceeded"),
     "dest {dest} ran out of space: the sync needs {needed} bytes (whole blocks), {free} are free now, "
     "and partial files of interrupted transfers hold {held} bytes in {partial}/ directories (a rerun "
     "resumes them); free space or grow the filesystem, then rerun"),
    (re.compile(r"Host key verification failed"),
     "the SSH host key of src_host {host} is not trusted: add it to known_hosts "
     "({known_hosts}), or set host_key_checking=false explicitly"),
    (re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED"),
     "the SSH host key of src_host {host} changed since it was pinned in known_hosts "
     "({known_hosts})"),
    # ssh's "Permission denied (publickey,password)." -- not rsync's local "(13)"
    (re.compile(r"Permission denied \((?!\d)|Too many authentication failures"),
     "src_host {host} refused the SSH login of {login}: authorise this host's key "
     "(ssh_key) there"),
    (re.compile(r"Could not resolve hostname"),
     "src_host {host} does not resolve"),
    # src itself (rsync changes into "src/"); a file of a --files-from list is "link_stat"
    (re.compile(r'change_dir "[^"]*" failed: No such file or directory'),
     "src {src} does not exist on {where}"),
    (re.compile(r'(link_stat|change_dir|opendir) "[^"]*" failed: Permission denied'),
     "src {src} is not readable on {where}"),
)


def ssh_command(port=None, key=None, known_hosts=None, host_key_checking=True, connect_timeout=20,
                ciphers=None, control_path=None, control_persist=60):
    """The remote-shell command rsync uses (its -e option), as one string.

    rsync splits it on spaces and honours quotes, so each piece is quoted.
    BatchMode keeps ssh from ever prompting: a missing key fails instead of hanging.
    ``ciphers``: ssh's cipher preference (a sequence), or None for ssh's default.
    ``control_path``: share one SSH connection among runs through this socket (the
    first run opens it, it lingers ``control_persist`` seconds); ``"none"`` keeps this
    run on a connection of its own even when the user's ssh_config shares them.
    """
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=%d" % connect_timeout,
            "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
    if ciphers:
        argv += ["-o", "Ciphers=%s" % ",".join(ciphers)]
    if control_path == "none":
        argv += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
    elif control_path:
        argv += ["-o", "ControlMaster=auto", "-o", "ControlPath=%s" % control_path,
                 "-o", "ControlPersist=%d" % control_persist]
    if port:
        argv += ["-p", str(port)]
    if key:
        argv += ["-i", key, "-o", "IdentitiesOnly=yes"]
    if host_key_checking:
        argv += ["-o", "StrictHostKeyChecking=yes"]
        if known_hosts:
            argv += ["-o", "UserKnownHostsFile=%s" % known_hosts]
    else:
        argv += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                 "-o", "LogLevel=ERROR"]
    return " ".join(shlex.quote(a) for a in argv)


def cipher_preference(cpuinfo):
    """AES_FIRST_CIPHERS when /proc/cpuinfo's text shows AES instructions (x86 ``flags``,
    ARM ``Features``), else None: without them chacha20-poly1305, ssh's default, is
    the faster one."""
    for line in cpuinfo.splitlines():
        key, _sep, value = line.partition(":")
        if key.strip() in ("flags", "Features") and "aes" in value.split():
            return AES_FIRST_CIPHERS
    return None


def exclude_rule(path):
    """A filter rule that excludes exactly ``path`` (relative to the transfer root).

    rsync reads ``*``, ``?`` and ``[`` as wildcards, and a backslash as an escape only
    in a pattern that has a wildcard, so those characters are escaped only then.
    """
    if any(c in path for c in "*?["):
        path = re.sub(r"([*?\[\\])", r"\\\1", path)
    return "- /" + path


def source_spec(src, host=None, user=None):
    """rsync's source argument; the trailing slash copies the directory's contents."""
    path = src.rstrip("/") + "/"
    if not host:
        return path
    if ":" in host and not host.startswith("["):
        host = "[%s]" % host  # IPv6 literal
    return "%s%s:%s" % ((user + "@") if user else "", host, path)


def build_argv(rsync, source, dest=None, dry_run=False, delete=False, filters=None, partial_dir=None,
               remote_shell=None, timeout=None, compress=False, bwlimit=None,
               chown=None, preserve_owner=True, files_from=False, block_size=None, dir_times=True,
               link_dest=(), compare_dest=None, delete_only=False):
    """argv of one rsync run that itemizes every change and prints its statistics.

    ``filters`` are rsync filter rules ("+ pattern", "- pattern"), applied in order.
    Without ``dest`` the run only lists the source (``--list-only``). With
    ``files_from`` it transfers only the NUL-separated paths given on its standard
    input (directories without recursion), instead of walking the whole tree. Without
    ``dir_times`` directories keep their own mtimes (``--omit-dir-times``), so files an
    application adds on the destination do not make a directory differ. Each of
    ``link_dest`` (a directory on the receiving host) gives files identical to the
    source's as hard links, and the others a basis for rsync's delta transfer.
    ``compare_dest`` (a directory on the receiving host): only what differs from it
    lands in ``dest``. ``delete_only``: with ``delete``, remove what the source no
    longer has and create or update nothing (``--existing --ignore-existing``).
    """
    argv = [rsync, "--dirs" if files_from else "--recursive",
            "--links", "--perms", "--times", "--devices", "--specials"]
    if files_from:
        argv += ["--files-from=-", "--from0"]
    if dest is None:
        argv.append("--list-only")
    else:
        # Compare mtimes to the nanosecond: a Hugging Face ref rewritten within the
        # second of the last sync has the same size (40 hex digits), and rsync's
        # default whole-second check would keep the stale ref.
        argv += ["--modify-window=-1", "--out-format=" + OUT_FORMAT, "--8-bit-output", "--stats",
                 "--no-human-readable"]
    if not dir_times:
        argv.append("--omit-dir-times")
    for basis in link_dest:
        argv.append("--link-dest=%s" % basis)
    if compare_dest:
        argv.append("--compare-dest=%s" % compare_dest)
    if delete_only:
        argv += ["--existing", "--ignore-existing"]
    if preserve_owner:
        argv += ["--owner", "--group"]
    if chown:
        argv.append("--chown=%s" % chown)
    if dry_run:
        argv.append("--dry-run")
    if delete:
        argv += ["--delete-delay"]
    if partial_dir:
        argv.append("--partial-dir=%s" % partial_dir)
    if block_size:
        argv.append("--block-size=%d" % block_size)
    if remote_shell:
        argv.append("--rsh=%s" % remote_shell)
    if timeout:
        argv.append("--timeout=%d" % timeout)
    if compress:
        argv.append("--compress")
    if bwlimit:
        argv.append("--bwlimit=%s" % bwlimit)
    for rule in filters or ():
        argv.append("--filter=%s" % rule)
    argv.append(source)
    if dest is not None:
        argv.append(dest.rstrip("/") + "/")
    return argv


def unescape(name):
    """A name as rsync printed it, with its \\#ooo escapes (control characters) undone."""
    if "\\#" not in name:
        return name  # most names: nothing escaped
    return _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 8)), name)


def split_link(text, size):
    """(name, target) of a symlink's ``%n%L`` as rsync printed it (escaped), or None
    when no split fits: the target is the tail after a " -> " that unescapes to
    ``size`` bytes (a longer tail is always longer, so at most one fits)."""
    at = text.find(" -> ")
    while at >= 0:
        target = unescape(text[at + 4:])
        if len(target.encode("utf-8", "surrogateescape")) == size:
            return unescape(text[:at]), target
        at = text.find(" -> ", at + 1)
    return None


def parse_itemized(text):
    """Changes listed by ``--out-format=OUT_FORMAT``, in rsync's order.

    Returns a list of dicts: ``item`` (the 11-character summary, or ``*deleting``),
    ``path`` (relative to the transfer root, directories end in ``/``), ``type``
    (``file``, ``dir``, ``symlink``, ``device``, ``special``, ``deleted``) and ``size``
    (bytes, for files the source's size; for links their target's length); links
    also have ``target``, as on the source.
    """
    changes = []
    for line in text.splitlines():
        m = _DELETING_RE.match(line)
        if m:
            changes.append({"item": "*deleting", "path": unescape(m.group("path")), "type": "deleted",
                            "size": int(m.group("size"))})
            continue
        m = _ITEM_RE.match(line)
        if not m:
            continue
        item, path, size = m.group("item"), m.group("path"), int(m.group("size"))
        kind = {"f": "file", "d": "dir", "L": "symlink", "D": "device", "S": "special"}[item[1]]
        entry = {"item": item, "path": unescape(path), "type": kind, "size": size}
        if kind == "symlink":
            split = split_link(path, size)
            if split is None:
                continue  # not a line of OUT_FORMAT
            entry["path"], entry["target"] = split
        if kind == "dir" and path == "./":
            # The transfer root's own attributes: only a change when it was created.
            if not item.startswith("cd+"):
                continue
        changes.append(entry)
    return changes


def parse_stats(text):
    """Numbers of ``--stats`` as ints (commas allowed), keyed by the names in _STAT_KEYS."""
    stats = {}
    for line in text.splitlines():
        m = _STAT_RE.match(line.strip())
        if m and m.group("key") in _STAT_KEYS:
            stats[_STAT_KEYS[m.group("key")]] = int(m.group("num").replace(",", ""))
    return stats


_SSH_UNREACHABLE = re.compile(r"^ssh: connect to host \S+ port \d+: "
                              r"(Connection refused|Connection timed out|No route to host|Network is unreachable)",
                              re.MULTILINE)


def explain_failure(rc, stderr, context):
    """(transient, message) for a failed rsync run.

    ``context`` supplies the names the message uses: src, host, login, where,
    known_hosts. Permanent errors name the input to fix; transient ones are retried.
    """
    if "Temporary failure in name resolution" in stderr:
        return True, "src_host {host} did not resolve (a temporary DNS failure)".format(**context)
    for pattern, advice in _PERMANENT_ERRORS:
        if pattern.search(stderr):
            return False, advice.format(**context)
    # rsync exits with ssh's 255, or with its own 12 when it sees the closed pipe before
    # it reaps ssh (a race that a loaded machine loses): ssh's own line decides.
    if rc in (12, 255) and _SSH_UNREACHABLE.search(stderr):
        return True, "src_host {host} is unreachable over SSH".format(**context)
    if rc < 0:
        return True, "rsync was killed by signal %d" % -rc
    gone = re.search(r'link_stat "([^"]*)" failed: No such file or directory', stderr)
    if gone:
        return False, ("%s, a file of this run's plan, is gone from src on %s: src changed during the sync; "
                       "rerun to sync it as it is now" % (gone.group(1), context["where"]))
    denied = re.search(r"^.*Permission denied \(\d+\).*$", stderr, re.M)
    if denied:
        return False, ("rsync was refused access to a file (Permission denied): %s; run the task as a user "
                       "who may write dest %s (become) and read src %s"
                       % (denied.group(0).strip(), context.get("dest", "dest"), context["src"]))
    words = EXIT_CODES.get(rc)
    return rc in TRANSIENT_EXIT_CODES, "rsync exited with code %d%s" % (rc, " (%s)" % words if words else "")


def last_lines(text, count=8):
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-count:])
