# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a secret from stdin, then for N seconds read every process's command line
(/proc/*/cmdline, which every user can read) and report any that holds the secret.
Prints {"samples": ..., "processes_seen": ..., "leaks": [[pid, cmdline], ...]}."""

import json
import os
import sys
import time

secret = sys.stdin.readline().strip().encode()
deadline = time.time() + float(sys.argv[1])
samples, seen, leaks = 0, set(), []
me = str(os.getpid())
while time.time() < deadline:
    samples += 1
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == me:
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        seen.add(cmdline.split(b"\0")[0])
        if secret and secret in cmdline:
            leaks.append([pid, cmdline.replace(secret, b"<secret>").decode(errors="replace")])
    time.sleep(0.005)
print(json.dumps({"samples": samples, "processes_seen": sorted(p.decode(errors="replace") for p in seen if p),
                  "leaks": leaks}))
