# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: rsync in doubling waves and a libtorrent swarm against one node alone,
in one run, with every host's egress shaped.

Its own lab in network namespaces: golden and N nodes (default 8), each a namespace
with one veth (10.77.0.0/24, used only inside the lab) on a bridge in a hub
namespace, and each host's egress shaped with tc tbf (default 40mbit), so that every
host's uplink is the bottleneck, as in a fleet, and not the 2 cores of this machine.
Golden gets a generated cache (tests/fixtures/make_hf_cache.py); golden and every node
that can become a source run a private sshd (the unit tests' Sshd) on their address.

The modules run as the play runs them on a managed host (one process per host, as
`python -m <module> args.json`, inside the host's namespace), without the Ansible
controller, whose per-host start costs the same for every method and would load the
2 cores with 8 controller forks at once. Methods, interleaved, --repeat times each:

  one node   node1 pulls from golden with model_cache_sync (rsync over SSH)
  waves      the role's doubling waves (plugins/filter/fanout.py): wave w holds 2**w
             nodes, each pulling from golden or a node of an earlier wave
  p2p        golden seeds its cache in place (cache_seed, with the torrent cache_torrent
             made before the timed runs); every node runs model_cache_sync
             transport=p2p at once (dry run and plan from golden over SSH, the content
             from the swarm of all nodes, each asking golden for its own share of the
             pieces only: swarm.origin)
  p2p golden a peer
             the same with golden one of every node's peers, no origin: each node asks
             golden for any piece no node has yet (the transport before swarm.origin)
  p2p one    node1 alone by p2p (the swarm's own overhead against rsync's)

Reported per method: median wall time (first process started to last one gone),
its ratio to one node's median, golden's egress (tc's byte counter on its veth,
headers included) over the cache's size, every host's egress, and how busy the CPUs
were. Node caches are removed between runs and compared with golden's after each.
It cleans up only what it made (its namespaces, processes, temporary directory),
also on Ctrl-C, SIGTERM or failure, and gives up after --max-minutes.

Usage: .venv/bin/python bench/fanout_bench.py [--nodes 8] [--weights-mb 64] [--rate 40mbit] [--repeat 3]
"""

import argparse
import ctypes
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")
MAKE_CACHE = os.path.join(ROOT, "tests", "fixtures", "make_hf_cache.py")
SSHD_HELPER = os.path.join(ROOT, "tests", "unit", "plugins", "modules")
MODULES = "ansible_collections.indextts.deploy.plugins.modules."
SUBNET = "10.77.0."
SWARM_PORT = 6881
PR_SET_CHILD_SUBREAPER = 36  # prctl(2)
METHODS = ("one node", "waves", "p2p", "p2p golden a peer", "p2p one")


class Interrupted(Exception):
    pass


def on_signal(signum, _frame):
    raise Interrupted("signal %d" % signum)


def sh(argv, timeout=60):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if proc.returncode:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), proc.returncode, proc.stderr.strip()))
    return proc.stdout


def imports():
    """The collection's fan-out filter and the unit tests' sshd, from this checkout."""
    for path in (COLLECTIONS, SSHD_HELPER):
        if path not in sys.path:
            sys.path.insert(0, path)
    if not os.path.lexists(os.path.join(COLLECTIONS, "ansible_collections", "indextts", "deploy")):
        raise SystemExit("run `make collection` first (links this checkout under .cache/collections)")
    from ansible_collections.indextts.deploy.plugins.filter import fanout
    import sshd_server
    return fanout, sshd_server


def cpu_times():
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]  # total, idle + iowait


def tree(root):
    """Path -> size (regular files) or link target, the module's state left out."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root:
            dirnames[:] = [d for d in dirnames if d != ".locks"]
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                found[os.path.relpath(path, root)] = os.readlink(path)
            elif os.path.isfile(path):
                found[os.path.relpath(path, root)] = os.path.getsize(path)
    return found


def reap():
    """Collect orphans that died after being reparented to this process."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not pid:
            return


class Lab:
    """golden and N nodes in network namespaces on one bridge, every host's egress shaped."""

    def __init__(self, workdir, nodes, rate, burst, latency, deadline):
        self.workdir = workdir
        self.deadline = deadline
        self.prefix = "fanout%d" % os.getpid()
        self.hub = self.prefix + "-hub"
        self.nodes = ["node%d" % i for i in range(1, nodes + 1)]
        self.hosts = ["golden"] + self.nodes
        self.addr = dict(("node%d" % i, SUBNET + str(10 + i)) for i in range(1, nodes + 1))
        self.addr["golden"] = SUBNET + "1"
        self.ns = dict((h, "%s-%s" % (self.prefix, h)) for h in self.hosts)
        self.shaping = {"qdisc": "tbf", "rate": rate, "burst": burst, "latency": latency}
        self.made = []  # namespaces, in the order made
        self.procs = []  # processes started, each its own session
        self.sshd = {}
        self.cache = dict((h, os.path.join(workdir, h, "cache")) for h in self.hosts)

    def up(self):
        sh(["ip", "netns", "add", self.hub])
        self.made.append(self.hub)
        sh(["ip", "-n", self.hub, "link", "add", "br0", "type", "bridge"])
        sh(["ip", "-n", self.hub, "link", "set", "br0", "up"])
        for i, host in enumerate(self.hosts):
            ns = self.ns[host]
            sh(["ip", "netns", "add", ns])
            self.made.append(ns)
            port = "v%d" % i
            sh(["ip", "-n", self.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns])
            sh(["ip", "-n", self.hub, "link", "set", port, "master", "br0", "up"])
            sh(["ip", "-n", ns, "addr", "add", self.addr[host] + "/24", "dev", "eth0"])
            sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
            sh(["tc", "-n", ns, "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", self.shaping["rate"],
                "burst", self.shaping["burst"], "latency", self.shaping["latency"]])
        deadline = time.monotonic() + 10  # the veths' carrier comes up asynchronously
        probe = ("import socket, sys\ntry:\n socket.create_connection((%r, 9), 1)\n"
                 "except ConnectionRefusedError:\n sys.exit(0)\nexcept OSError:\n sys.exit(1)" % self.addr["golden"])
        while subprocess.run(["ip", "netns", "exec", self.ns["node1"], sys.executable, "-c", probe],
                             capture_output=True, check=False).returncode:  # refused: golden answered
            if time.monotonic() > deadline:
                raise RuntimeError("node1 cannot reach golden on the lab bridge")
            time.sleep(0.2)

    def start_sshds(self, sshd_server, hosts):
        for host in hosts:
            where = os.path.join(self.workdir, "sshd-" + host)
            os.makedirs(where)
            self.sshd[host] = sshd_server.Sshd(where, address=self.addr[host], port=22, netns=self.ns[host])

    def sent(self):
        """host -> bytes its egress qdisc has sent."""
        out = {}
        for host in self.hosts:
            text = sh(["tc", "-n", self.ns[host], "-s", "qdisc", "show", "dev", "eth0"])
            out[host] = int(text.split("Sent ", 1)[1].split(" ", 1)[0])
        return out

    def start(self, host, module, args, tag):
        """`python -m <module> args.json` in host's namespace; stdout/stderr to files."""
        base = os.path.join(self.workdir, "runs", tag)
        os.makedirs(os.path.dirname(base), exist_ok=True)
        with open(base + ".args.json", "w") as f:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, f)
        env = dict(os.environ, PYTHONPATH=COLLECTIONS, LANG="C", LC_ALL="C")
        with open(base + ".out", "w") as out, open(base + ".err", "w") as err:
            proc = subprocess.Popen(["ip", "netns", "exec", self.ns[host], sys.executable, "-m", MODULES + module,
                                     base + ".args.json"], stdout=out, stderr=err, env=env, cwd=self.workdir,
                                    start_new_session=True)
        proc.tag, proc.host, proc.base = tag, host, base
        self.procs.append(proc)
        return proc

    def wait(self, procs, started):
        """Wait for every process (bounded by the deadline); {host: (seconds since
        started, result)}. A failed module fails the bench."""
        done = {}
        pending = list(procs)
        while pending:
            for proc in list(pending):
                if proc.poll() is not None:
                    done[proc.host] = time.monotonic() - started
                    pending.remove(proc)
            if pending and time.monotonic() > self.deadline:
                raise RuntimeError("out of time (--max-minutes) waiting for %s" % [p.tag for p in pending])
            time.sleep(0.02)
        results = {}
        for proc in procs:
            with open(proc.base + ".out") as f:
                text = f.read()
            try:
                result = json.loads(text)
            except ValueError:
                result = {"failed": True, "msg": "no JSON result: %s" % text[-2000:]}
            if result.get("failed") or proc.returncode:
                with open(proc.base + ".err") as f:
                    raise RuntimeError("%s failed: %s\n%s" % (proc.tag, result.get("msg"), f.read()[-2000:]))
            results[proc.host] = (round(done[proc.host], 2), result)
        return results

    def clear_nodes(self):
        for node in self.nodes:
            shutil.rmtree(os.path.dirname(self.cache[node]), ignore_errors=True)
            os.makedirs(os.path.dirname(self.cache[node]))

    def down(self, sshd_server):
        """Only what this lab made: its processes (by their own session), its sshds, its namespaces."""
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        for sshd in self.sshd.values():
            sshd.stop()
        # What those left behind, reparented to this process (a child subreaper, see
        # main): sshd sessions, ssh control masters that daemonised themselves.
        for pid in sshd_server.descendants(os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reap()
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        self.made = []


def rsync_args(lab, node, source):
    args = {"src": lab.cache[source], "dest": lab.cache[node]}
    args.update(lab.sshd[source].params())
    return args


def run_one(lab, _args, tag):
    started = time.monotonic()
    return started, lab.wait([lab.start("node1", "model_cache_sync", rsync_args(lab, "node1", "golden"),
                                        tag + "-node1")], started)


def run_waves(lab, fanout, _args, tag):
    waves = {}
    for node in lab.nodes:
        waves.setdefault(fanout.fanout_wave(lab.nodes, node), []).append(node)
    started = time.monotonic()
    results = {}
    for wave in sorted(waves):
        procs = [lab.start(node, "model_cache_sync",
                           rsync_args(lab, node, fanout.fanout_source(lab.nodes, node, "golden")),
                           "%s-w%d-%s" % (tag, wave, node)) for node in waves[wave]]
        results.update(lab.wait(procs, started))
    return started, results


def run_p2p(lab, args, tag, nodes, origin=True):
    torrent = os.path.join(lab.workdir, "golden", "cache.torrent")
    remaining = max(30, int(lab.deadline - time.monotonic()))
    started = time.monotonic()
    seeder = lab.start("golden", "cache_seed", {
        "torrent": torrent, "path": lab.cache["golden"], "address": lab.addr["golden"], "port": SWARM_PORT,
        # with an origin the nodes call golden by their links, golden calls none of them
        "peers": [lab.addr[n] if origin else "%s:%d" % (lab.addr[n], SWARM_PORT) for n in nodes],
        "timeout": remaining, "idle_timeout": 60}, tag + "-seed")
    procs = []
    golden = "%s:%d" % (lab.addr["golden"], SWARM_PORT)
    for node in nodes:
        peers = ["%s:%d" % (lab.addr[h], SWARM_PORT) for h in nodes if h != node]
        params = rsync_args(lab, node, "golden")
        params.update(transport="p2p", swarm={
            "torrent": torrent, "address": lab.addr[node], "port": SWARM_PORT,
            "peers": peers if origin else [golden] + peers, "origin": golden if origin else None,
            "timeout": remaining, "stall_timeout": args.stall_timeout})
        procs.append(lab.start(node, "model_cache_sync", params, "%s-%s" % (tag, node)))
    results = lab.wait(procs, started)
    results.update(lab.wait([seeder], started))
    return started, results


def make_golden(lab, args, log):
    out = sh([sys.executable, MAKE_CACHE, lab.cache["golden"], "--weights-mb", str(args.weights_mb),
              "--small-files", str(args.small_files)], timeout=600)
    log("golden's cache made: %s" % " ".join(json.dumps(json.loads(out), sort_keys=True).split())[:200])
    torrent_args = {"path": lab.cache["golden"], "torrent": os.path.join(lab.workdir, "golden", "cache.torrent")}
    if args.piece_kib:
        torrent_args["piece_size"] = args.piece_kib * 1024
    started = time.monotonic()
    made = lab.wait([lab.start("golden", "cache_torrent", torrent_args, "cache_torrent")], started)["golden"][1]
    return time.monotonic() - started, made


def summarise(runs, cache_bytes):
    by = {}
    for run in runs:
        by.setdefault(run["method"], []).append(run)
    single = statistics.median(r["wall"] for r in by["one node"]) if "one node" in by else None
    summary = {}
    for method, rows in by.items():
        wall = statistics.median(r["wall"] for r in rows)
        summary[method] = {
            "runs": len(rows),
            "wall_median": round(wall, 2),
            "wall_all": [r["wall"] for r in rows],
            "vs_one_node": round(wall / single, 2) if single else None,
            "golden_egress_over_cache": round(statistics.median(r["sent"]["golden"] for r in rows) / cache_bytes, 3),
            "all_egress_over_cache": round(statistics.median(sum(r["sent"].values()) for r in rows) / cache_bytes, 3),
            "cpu_busy_median": round(statistics.median(r["cpu_busy"] for r in rows), 2),
        }
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--weights-mb", type=int, default=64, help="MiB of generated weights in golden's cache")
    parser.add_argument("--small-files", type=int, default=200, help="small files in golden's cache")
    parser.add_argument("--rate", default="40mbit", help="every host's egress rate (tc tbf syntax)")
    parser.add_argument("--burst", default="64kb", help="tbf burst (at least the 64 KiB of a veth GSO packet)")
    parser.add_argument("--latency", default="50ms", help="tbf latency (the longest a packet may wait)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method, interleaved")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, of: %s" % ", ".join(METHODS))
    parser.add_argument("--piece-kib", type=int, default=0, help="torrent piece size (0: cache_torrent's default)")
    parser.add_argument("--stall-timeout", type=int, default=60, help="the nodes' swarm.stall_timeout")
    parser.add_argument("--max-minutes", type=float, default=40, help="give up (and clean up) after this long")
    parser.add_argument("--output", help="write the results (JSON) here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (namespaces always go)")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown or not methods:
        parser.error("--methods: unknown %s; choose from %s" % (unknown, ", ".join(METHODS)))
    if os.geteuid() != 0:
        parser.error("needs root (ip netns, tc, sshd)")
    fanout, sshd_server = imports()
    if sshd_server.SSHD is None:
        parser.error("needs sshd (openssh-server)")

    def log(text):
        print("[%6.1f s] %s" % (time.monotonic() - begun, text), flush=True)

    begun = time.monotonic()
    # Orphans of what this bench starts (sshd sessions, ssh control masters, which
    # daemonise) become its children, so that clean-up finds them and nothing else.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    workdir = tempfile.mkdtemp(prefix="fanout-bench-")
    lab = Lab(workdir, args.nodes, args.rate, args.burst, args.latency, begun + args.max_minutes * 60)
    try:
        lab.up()
        log("lab up: %d namespaces, every host's egress: tbf %s" % (len(lab.made), lab.shaping))
        sources = {"golden"} | {fanout.fanout_source(lab.nodes, n, "golden") for n in lab.nodes}
        lab.start_sshds(sshd_server, sorted(sources, key=lab.hosts.index))
        torrent_seconds, made = make_golden(lab, args, log)
        cache_bytes = sum(v for v in tree(lab.cache["golden"]).values() if isinstance(v, int))
        golden_tree = tree(lab.cache["golden"])
        piece = made.get("piece_size")
        log("cache %.1f MiB (%d paths); cache_torrent took %.2f s, piece size %s"
            % (cache_bytes / 2 ** 20, len(golden_tree), torrent_seconds, piece))
        runs = []
        for rep in range(args.repeat):
            order = methods[rep % len(methods):] + methods[:rep % len(methods)]  # interleaved, rotated
            for method in order:
                lab.clear_nodes()
                tag = "%d-%s" % (rep, method.replace(" ", "_"))
                sent0, cpu0 = lab.sent(), cpu_times()
                if method == "one node":
                    started, results = run_one(lab, args, tag)
                elif method == "waves":
                    started, results = run_waves(lab, fanout, args, tag)
                else:
                    started, results = run_p2p(lab, args, tag, ["node1"] if method == "p2p one" else lab.nodes,
                                               origin=method != "p2p golden a peer")
                nodes_done = max(t for h, (t, _r) in results.items() if h != "golden")
                sent1, cpu1 = lab.sent(), cpu_times()
                total, idle = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
                synced = [h for h in results if h != "golden"]
                wrong = [h for h in synced if tree(lab.cache[h]) != golden_tree]
                if wrong:
                    raise RuntimeError("%s: %s's cache differs from golden's" % (method, wrong))
                row = {"method": method, "rep": rep, "wall": round(nodes_done, 2),
                       "sent": dict((h, sent1[h] - sent0[h]) for h in lab.hosts),
                       "cpu_busy": round(1 - idle / float(total), 3) if total else None,
                       "done_at": dict((h, t) for h, (t, _r) in sorted(results.items())),
                       "swarm": dict((h, r.get("swarm")) for h, (_t, r) in results.items() if "swarm" in r),
                       # each node's seconds in its transport (p2p: the swarm and the rsync dry run, plan, links)
                       # and verifying blobs; the rest of done_at is module start, publishing, lingering
                       "transport_seconds": dict((h, r["stats"].get("elapsed")) for h, (_t, r)
                                                 in results.items() if "stats" in r),
                       # each node's rsync runs and swarm, by name and seconds, in the order they ended
                       "node_runs": dict((h, r["stats"].get("runs")) for h, (_t, r) in results.items()
                                         if "stats" in r),
                       "verify_seconds": dict((h, r["stats"].get("verify_seconds")) for h, (_t, r)
                                              in results.items() if "stats" in r),
                       "seeder": dict((k, v) for k, v in results.get("golden", (0, {}))[1].items()
                                      if k in ("outcome", "uploaded", "seconds", "peers_missing"))}
                fallbacks = [h for h, s in row["swarm"].items() if s and s.get("fallback")]
                if fallbacks:
                    row["fallback"] = fallbacks
                runs.append(row)
                log("%-9s run %d: %6.2f s, golden sent %.2fx the cache, all hosts %.2fx, CPUs %.0f%% busy%s"
                    % (method, rep + 1, row["wall"], row["sent"]["golden"] / float(cache_bytes),
                       sum(row["sent"].values()) / float(cache_bytes), 100 * (row["cpu_busy"] or 0),
                       ", FELL BACK TO RSYNC: %s" % fallbacks if fallbacks else ""))
        summary = summarise(runs, cache_bytes)
        print("\n%d nodes, cache %.1f MiB, every host's egress %s; medians of %d runs" % (
            args.nodes, cache_bytes / 2 ** 20, args.rate, args.repeat))
        print("  %-9s %9s %9s %16s %15s %9s" % ("method", "wall", "vs one", "golden / cache", "all / cache", "CPU"))
        for method in methods:
            s = summary[method]
            print("  %-9s %7.2f s %8sx %15.2fx %14.2fx %8.0f%%" % (
                method, s["wall_median"], s["vs_one_node"], s["golden_egress_over_cache"],
                s["all_egress_over_cache"], 100 * s["cpu_busy_median"]))
        results = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()},
            "lab": {"nodes": args.nodes, "network": SUBNET + "0/24 in network namespaces on one bridge",
                    "egress_shaping_every_host": lab.shaping,
                    "invocation": "python -m <module> args.json inside each host's namespace, no controller"},
            "cache": {"bytes": cache_bytes, "paths": len(golden_tree), "weights_mb": args.weights_mb,
                      "small_files": args.small_files, "torrent_piece_bytes": piece,
                      "cache_torrent_seconds": round(torrent_seconds, 2)},
            "repeat": args.repeat, "summary": summary, "runs": runs,
        }
        if args.output:
            with open(args.output, "w") as f:
                json.dump(results, f, indent=1, sort_keys=True)
                f.write("\n")
            log("results written to %s" % args.output)
    except (Interrupted, KeyboardInterrupt) as exc:
        print("interrupted (%s); cleaning up" % (str(exc) or "Ctrl-C"), file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the clean-up
        lab.down(sshd_server)
        if args.keep:
            print("kept %s" % workdir, file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
