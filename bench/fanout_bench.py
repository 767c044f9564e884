# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: fan-out in doubling waves against a naive parallel pull, same run.

Starts its own lab (golden + N nodes, default 8), seeds golden with a generated
cache, and shapes golden's egress with tc tbf (default 200mbit) so that the golden
host's uplink is the bottleneck, as it is for a fleet. Then it syncs the nodes with
playbooks/model_cache.yml three ways, clearing the nodes' caches in between:

  single   one node alone (the unit everything is compared with)
  naive    every node pulls from golden at once (model_cache_fanout=false, one batch)
  fan-out  the default: waves of 1, 2, 4 ... nodes, later waves pull from earlier nodes

It prints wall time (the whole ansible-playbook run), the ratio to the single-node
sync, and the bytes golden sent (tc's counter on its egress).

Usage: .venv/bin/python bench/fanout_bench.py [--nodes 8] [--weights-mb 256] [--rate 200mbit]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_NAME = "indextts-fanout"
INVENTORY = os.path.join(ROOT, ".lab", LAB_NAME + ".inventory.yml")
GOLDEN = LAB_NAME + "-golden1"


def run(argv, **kwargs):
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode:
        raise SystemExit("%s failed:\n%s\n%s" % (" ".join(argv[:4]), proc.stdout[-3000:], proc.stderr[-2000:]))
    return proc.stdout


def lab_vars(nodes):
    hosts = [{"name": "golden1", "groups": ["golden"]}] + [
        {"name": "node%d" % i, "groups": ["tts_nodes"]} for i in range(1, nodes + 1)]
    return json.dumps({"lab_name": LAB_NAME, "lab_network": LAB_NAME, "lab_hosts": hosts,
                       "lab_inventory": INVENTORY,
                       "lab_known_hosts": os.path.join(ROOT, ".lab", LAB_NAME + ".known_hosts")})


def golden_sent_bytes():
    out = run(["docker", "exec", GOLDEN, "tc", "-s", "qdisc", "show", "dev", "eth0"])
    return int(re.search(r"Sent (\d+) bytes", out).group(1))


def clear_nodes():
    run(["ansible", "-i", INVENTORY, "tts_nodes", "-b", "-m", "ansible.builtin.file",
         "-a", "path=/srv/indextts/cache state=absent"])


def sync(extra=None, limit=None):
    argv = ["ansible-playbook", "-i", INVENTORY, "playbooks/model_cache.yml"]
    if extra:
        argv += ["-e", json.dumps(extra)]
    if limit:
        argv += ["--limit", limit]
    before = golden_sent_bytes()
    started = time.monotonic()
    run(argv)
    return time.monotonic() - started, golden_sent_bytes() - before


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--weights-mb", type=int, default=256)
    parser.add_argument("--rate", default="200mbit")
    parser.add_argument("--keep", action="store_true", help="leave the lab running")
    args = parser.parse_args()

    run(["ansible-playbook", "tests/lab/lab-up.yml", "-e", lab_vars(args.nodes)])
    try:
        run(["ansible-playbook", "-i", INVENTORY, "tests/lab/seed-golden.yml",
             "-e", "lab_cache_weights_mb=%d" % args.weights_mb])
        run(["ansible-playbook", "-i", INVENTORY, "playbooks/golden.yml"])
        run(["docker", "exec", GOLDEN, "tc", "qdisc", "replace", "dev", "eth0", "root",
             "tbf", "rate", args.rate, "burst", "1mb", "latency", "50ms"])
        print("golden's egress shaped to %s; cache of %d MB of weights; %d nodes"
              % (args.rate, args.weights_mb, args.nodes))
        rows = []
        clear_nodes()
        rows.append(("single node", ) + sync(limit="node1"))
        clear_nodes()
        rows.append(("naive parallel", ) + sync({"model_cache_fanout": False, "indextts_cache_waves": ["100%"]}))
        clear_nodes()
        rows.append(("fan-out waves", ) + sync())
        single = rows[0][1]
        for name, wall, sent in rows:
            print("  %-15s %7.1f s  %.2fx single-node  golden sent %7.1f MB" % (name, wall, wall / single, sent / 1e6))
        print("  fan-out / naive: %.2fx time, %.2fx golden egress"
              % (rows[2][1] / rows[1][1], rows[2][2] / float(rows[1][2])))
    finally:
        if not args.keep:
            run(["ansible-playbook", "tests/lab/lab-down.yml", "-e", lab_vars(args.nodes)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
