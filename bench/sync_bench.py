# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: raw rsync, ansible.posix.synchronize and model_cache_sync, same run.

On the lab (make lab-up), the golden host gets a generated cache (random weights,
many small files, the real Hugging Face layout). This machine pulls it over SSH from
golden three times, once per method, each into its own directory:

  raw     rsync -a over ssh (the peer for speed)
  sync    ansible golden -m ansible.posix.synchronize mode=pull
  module  ansible localhost -m indextts.deploy.model_cache_sync

for three cases: full sync into an empty directory, a no-op rerun, and a new revision
whose largest file changed in 5 % of its bytes. It prints wall time (the whole
process), bytes on the wire (rsync's --stats; the module's own stats) and the ratios
against raw rsync measured in the same run. Golden's egress can be shaped with tc
(--rate, e.g. 1gbit) to stand for a real network; the default leaves it as is.

Usage: .venv/bin/python bench/sync_bench.py [--weights-mb 2048] [--small-files 20000] [--rate 1gbit]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(ROOT, ".lab")
INVENTORY = os.path.join(LAB, "inventory.yml")
KEY = os.path.join(LAB, "ssh", "id_ed25519")
KNOWN_HOSTS = os.path.join(LAB, "known_hosts")
GOLDEN = "indextts-lab-golden1"
SRC = "/srv/bench/cache"
REPO = "facebook/w2v-bert-2.0"


def sh(argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


def golden(cmd):
    return sh(["docker", "exec", GOLDEN, "sh", "-c", cmd]).stdout


def golden_address():
    if not os.path.exists(INVENTORY):
        raise SystemExit("no lab inventory at %s: run `make lab-up` first" % INVENTORY)
    return sh(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
               GOLDEN]).stdout.strip()


def stats_from(text):
    sent = received = 0
    for line in text.splitlines():
        if line.startswith("Total bytes sent:"):
            sent = int(line.split(":")[1].split()[0].replace(",", ""))
        elif line.startswith("Total bytes received:"):
            received = int(line.split(":")[1].split()[0].replace(",", ""))
    return sent + received


def ansible_json(argv):
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise SystemExit("%s failed:\n%s\n%s" % (argv[:4], proc.stdout[-2000:], proc.stderr[-2000:]))
    result = next(iter(data["plays"][0]["tasks"][0]["hosts"].values()))
    if result.get("failed") or proc.returncode:
        raise SystemExit("%s failed: %s" % (argv[:4], result.get("msg")))
    return result


def run_raw(address, dest):
    ssh = "ssh -i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes" % (KEY, KNOWN_HOSTS)
    started = time.monotonic()
    out = sh(["rsync", "-a", "--stats", "-e", ssh, "ansible@%s:%s/" % (address, SRC), dest + "/"]).stdout
    return time.monotonic() - started, stats_from(out), None


def run_synchronize(address, dest):
    started = time.monotonic()
    result = ansible_json(["ansible", "-i", INVENTORY, "golden", "-m", "ansible.posix.synchronize",
                           "-a", "mode=pull src=%s/ dest=%s/ rsync_opts=--stats" % (SRC, dest)])
    return time.monotonic() - started, stats_from("\n".join(result.get("stdout_lines", []))), None


def run_module(address, dest):
    started = time.monotonic()
    result = ansible_json(["ansible", "localhost", "-m", "indextts.deploy.model_cache_sync", "-a", json.dumps({
        "src": SRC, "dest": dest, "src_host": address, "src_user": "ansible",
        "ssh_key": KEY, "known_hosts": KNOWN_HOSTS})])
    return time.monotonic() - started, result["stats"]["bytes_transferred"], result["stats"]["elapsed"]


METHODS = (("raw rsync -a", run_raw), ("synchronize", run_synchronize), ("model_cache_sync", run_module))


def measure(case, address, workdir, results, repeat=1, fresh=False):
    """Each method ``repeat`` times, interleaved (raw, synchronize, module, raw, ...) so
    that a drift of the machine hits all three alike; the median is reported. ``fresh``:
    into an empty directory each time. Before every run, dirty pages are flushed and
    golden's cache is read, so that no method pays for another's writes or reads."""
    print("\n== %s" % case + (" (median of %d runs)" % repeat if repeat > 1 else ""))
    runs = {name: [] for name, _run in METHODS}
    for _rep in range(repeat):
        for name, run in METHODS:
            dest = os.path.join(workdir, name.split()[0])
            if fresh and os.path.exists(dest):
                shutil.rmtree(dest)
            os.sync()
            golden("find %s -type f -exec cat {} + > /dev/null" % SRC)
            runs[name].append(run(address, dest))
    raw_time = raw_bytes = None
    for name, _run in METHODS:
        wall, wire, own = sorted(runs[name], key=lambda r: r[0])[len(runs[name]) // 2]
        if raw_time is None:
            raw_time, raw_bytes = wall, wire
        row = {"case": case, "method": name, "wall_s": round(wall, 2), "wire_bytes": wire,
               "time_ratio": round(wall / raw_time, 3), "bytes_ratio": round(wire / raw_bytes, 3) if raw_bytes else None,
               "runs_wall_s": [round(r[0], 2) for r in runs[name]]}  # each run, in order; the median is wall_s
        if own is not None:
            row["rsync_work_s"] = own
            row["rsync_work_ratio"] = round(own / raw_time, 3)
            row["runs_rsync_work_s"] = [r[2] for r in runs[name]]
        results.append(row)
        print("  %-17s %7.2f s  %14d B on the wire  time %.3fx  bytes %s%s" % (
            name, wall, wire, row["time_ratio"], row["bytes_ratio"],
            "  (its rsync work %.2f s = %.3fx raw)" % (own, row["rsync_work_ratio"]) if own is not None else ""))


def measure_revision(address, workdir, results):
    """A new revision of REPO on golden whose largest file changed in 5 %, then one run each."""
    rev = json.loads(golden("python3 /usr/local/lib/make_hf_cache.py %s --new-revision %s --change-percent 5"
                            % (SRC, REPO)))
    print("\nnew revision of %s: %s changed in %d of %d bytes" % (REPO, rev["file"], rev["changed_bytes"], rev["file_bytes"]))
    measure("new revision (5%)", address, workdir, results)
    for row in results[-3:]:
        row["changed_bytes"] = rev["changed_bytes"]
        row["wire_per_changed_byte"] = round(row["wire_bytes"] / rev["changed_bytes"], 3)
    print("  bytes on the wire per changed byte: " + ", ".join(
        "%s %.2f" % (r["method"], r["wire_per_changed_byte"]) for r in results[-3:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights-mb", type=int, default=2048)
    parser.add_argument("--small-files", type=int, default=20000)
    parser.add_argument("--rate", help="shape golden's egress with tc tbf to this rate (e.g. 1gbit)")
    parser.add_argument("--workdir", default="/var/tmp/indextts-bench")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method for the full sync (median)")
    parser.add_argument("--noop-repeat", type=int, help="runs per method for the no-op rerun (default: --repeat, at least 5)")
    parser.add_argument("--cases", default="full,noop,revision",
                        help="which cases, comma-separated (the no-op and the revision need the full sync first;"
                             " without it, one unmeasured sync per method comes first)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    address = golden_address()
    if os.path.exists(args.workdir):
        shutil.rmtree(args.workdir)
    os.makedirs(args.workdir)
    sh(["docker", "cp", os.path.join(ROOT, "tests", "fixtures", "make_hf_cache.py"), GOLDEN + ":/usr/local/lib/make_hf_cache.py"])
    golden("rm -rf /srv/bench && mkdir -p /srv/bench")
    print("generating the cache on golden: %d MB of weights, %d small files" % (args.weights_mb, args.small_files))
    info = json.loads(golden("python3 /usr/local/lib/make_hf_cache.py %s --weights-mb %d --small-files %d"
                             % (SRC, args.weights_mb, args.small_files)))
    print("  %d files, %.1f MB" % (info["files"], info["bytes"] / 1e6))
    if args.rate:
        golden("tc qdisc replace dev eth0 root tbf rate %s burst 1mb latency 50ms" % args.rate)
        print("golden's egress shaped to %s" % args.rate)
    results = []
    cases = args.cases.split(",")
    try:
        if "full" in cases:
            measure("full sync", address, args.workdir, results, repeat=args.repeat, fresh=True)
        else:
            for name, run in METHODS:
                run(address, os.path.join(args.workdir, name.split()[0]))
        if "noop" in cases:
            measure("no-op rerun", address, args.workdir, results, repeat=args.noop_repeat or max(args.repeat, 5))
        if "revision" in cases:
            measure_revision(address, args.workdir, results)
    finally:
        if args.rate:
            golden("tc qdisc del dev eth0 root || true")
        golden("rm -rf /srv/bench")
        shutil.rmtree(args.workdir, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
