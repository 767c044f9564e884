# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the storage network and the iSCSI paths of this node, per portal.

  indextts-storage-check --peer 10.10.1.10 --peer 10.10.2.10 [--mtu 9000]
      [--target IQN] [--expect-paths 2] [--textfile FILE.prom] [--json]

For each peer (portal address): packet loss and round-trip time (ping), whether a
packet of the full MTU crosses unfragmented (ping -M do) and if not the largest that
does, and with --target whether this node has an iSCSI session to that portal. With
--expect-paths, the dm-multipath maps must have that many active paths.

Prints one line per finding (the journal keeps them when run from the timer); writes
node_exporter textfile metrics with --textfile; exits 1 with a line a person can act
on when a check fails.

It runs on any node with python3 (standard library only), outside Ansible, and reads
iscsiadm's and multipathd's output with the collection's own parsers: the role installs
the collection's module_utils under LIB (INDEXTTS_DEPLOY_LIB overrides it), laid out as
in the collection, as the model_cache re-sync timer does.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile

LIB = os.environ.get("INDEXTTS_DEPLOY_LIB", "/usr/local/lib/indextts-deploy")
sys.path.insert(0, LIB)
try:
    from ansible_collections.indextts.deploy.plugins.module_utils import _iscsiadm, _multipath
except ImportError as e:
    sys.exit("indextts-storage-check: cannot import the collection's module_utils from %s (%s); "
             "run the indextts.deploy.storage_network role again to install them" % (LIB, e))

_STATS_RE = re.compile(r"(\d+) packets transmitted, (\d+) received")
_RTT_RE = re.compile(r"rtt min/avg/max/mdev = [\d.]+/([\d.]+)/")


def parse_ping(text):
    """ping's output -> (sent, received, average rtt in seconds or None)."""
    stats = _STATS_RE.search(text)
    rtt = _RTT_RE.search(text)
    sent, received = (int(stats.group(1)), int(stats.group(2))) if stats else (0, 0)
    return sent, received, (float(rtt.group(1)) / 1000.0 if rtt else None)


def session_hosts(text, target):
    """iscsiadm -m session -> the portal hosts with a session to target."""
    return set(_iscsiadm.split_portal(s["portal"])[0] for s in _iscsiadm.parse_sessions(text)
               if s["target"] == target)


def run(argv):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False)
    return proc.returncode, proc.stdout


def ping(peer, count=1, payload=None, timeout=1):
    argv = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", str(timeout)]
    if payload is not None:
        argv += ["-M", "do", "-s", str(payload)]
    return parse_ping(run(argv + [peer])[1])


def largest_mtu(peer, mtu):
    """The largest packet (bytes, IPv4 header included) that crosses unfragmented, up to
    mtu; 0 when not even the smallest does."""
    def fits(size):
        return ping(peer, payload=size - 28)[1] > 0

    if fits(mtu):
        return mtu
    low, high = 0, mtu - 1
    if fits(576):
        low = 576
    else:
        high = 575
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low if low and fits(low) else 0


def check(args):
    findings, metrics, failures = [], [], []
    sessions = None
    if args.target:
        rc, out = run(["iscsiadm", "--mode", "session"])
        sessions = session_hosts(out, args.target) if rc == 0 else set()
    for peer in args.peer:
        label = 'peer="%s"' % peer
        path = "%s -> %s" % (args.source, peer)
        sent, received, rtt = ping(peer, count=args.count)
        loss = 1.0 - (float(received) / sent) if sent else 1.0
        metrics.append("indextts_storage_ping_loss_ratio{%s} %g" % (label, loss))
        if rtt is not None:
            metrics.append("indextts_storage_ping_rtt_seconds{%s} %g" % (label, rtt))
        if not received:
            failures.append("%s: no answer to ping (%d sent); check the link and the address" % (path, sent))
            findings.append({"peer": peer, "loss": loss, "rtt": rtt, "mtu_ok": False, "largest_mtu": 0})
            metrics.append("indextts_storage_mtu_ok{%s,mtu=\"%d\"} 0" % (label, args.mtu))
            continue
        biggest = largest_mtu(peer, args.mtu)
        metrics.append("indextts_storage_mtu_ok{%s,mtu=\"%d\"} %d" % (label, args.mtu, biggest == args.mtu))
        metrics.append("indextts_storage_largest_packet_bytes{%s} %d" % (label, biggest))
        if biggest != args.mtu:
            failures.append("%s: a %d-byte packet does not cross unfragmented (the largest that does is %d "
                            "bytes); set MTU %d on every hop of the storage path"
                            % (path, args.mtu, biggest, args.mtu))
        if loss > args.max_loss:
            failures.append("%s: %.0f%% packet loss over %d pings; check the link" % (path, loss * 100, sent))
        finding = {"peer": peer, "loss": loss, "rtt": rtt, "mtu_ok": biggest == args.mtu, "largest_mtu": biggest}
        if sessions is not None:
            up = peer in sessions
            finding["session"] = up
            metrics.append("indextts_storage_iscsi_session_up{%s,target=\"%s\"} %d" % (label, args.target, up))
            if not up:
                failures.append("%s: no iSCSI session to %s; see journalctl -u iscsid, then "
                                "iscsiadm -m node -T %s -p %s --login" % (path, args.target, args.target, peer))
        findings.append(finding)
    if args.expect_paths:
        rc, out = run(_multipath.paths_argv())
        maps = _multipath.map_path_counts(_multipath.parse_paths(out)) if rc == 0 else {}
        if not maps:
            failures.append("no dm-multipath map (is multipathd running? multipath -ll)")
        for name, counts in sorted(maps.items()):
            metrics.append("indextts_storage_multipath_active_paths{map=\"%s\"} %d" % (name, counts["active"]))
            if counts["active"] < args.expect_paths:
                failures.append("multipath map %s has %d of %d expected paths active; multipath -ll %s shows "
                                "which path failed" % (name, counts["active"], args.expect_paths, name))
        findings.append({"multipath": maps})
    metrics.append("indextts_storage_check_success %d" % (not failures))
    return findings, metrics, failures


def write_textfile(path, metrics):
    """Atomically, so node_exporter never reads half a file."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".indextts-storage.")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(metrics) + "\n")
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", action="append", required=True, help="portal address (repeat)")
    parser.add_argument("--from", dest="source", default=socket.gethostname(), help="this host's name in messages")
    parser.add_argument("--mtu", type=int, default=9000)
    parser.add_argument("--count", type=int, default=5, help="pings per peer for loss and RTT")
    parser.add_argument("--max-loss", type=float, default=0.0, help="loss ratio tolerated (0-1)")
    parser.add_argument("--target", help="iSCSI target whose sessions must be up on every peer")
    parser.add_argument("--expect-paths", type=int, default=0, help="active paths every multipath map must have")
    parser.add_argument("--textfile", help="write node_exporter textfile metrics here")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    args = parser.parse_args(argv)
    findings, metrics, failures = check(args)
    if args.textfile:
        write_textfile(args.textfile, metrics)
    if args.json:
        print(json.dumps({"findings": findings, "failures": failures}))
    else:
        for f in findings:
            if "peer" in f:
                print("%s: loss %.0f%%, rtt %s, MTU %d %s" % (
                    f["peer"], f["loss"] * 100, "%.2f ms" % (f["rtt"] * 1000) if f["rtt"] is not None else "-",
                    f["largest_mtu"], "ok" if f["mtu_ok"] else "NOT OK"))
        for line in failures:
            print("FAIL " + line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
