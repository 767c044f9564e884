# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A private sshd for tests and benchmarks: its own host key, authorised client key,
known_hosts line, config and log, listening on one address (127.0.0.1 unless told),
optionally inside a network namespace (``ip netns exec``).

Used by test_model_cache_sync_ssh.py and by bench/fanout_bench.py (one per source
host of its namespace lab)."""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time

SSHD = shutil.which("sshd", path="/usr/sbin:/usr/bin:/sbin:/bin")


def free_port(address="127.0.0.1"):
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def descendants(root):
    """The pids of every process below root, from /proc, nearest first."""
    parent = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % pid) as f:
                parent[int(pid)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [root]
    while frontier:
        frontier = [pid for pid, ppid in parent.items() if ppid in frontier]
        found += frontier
    return found


class Sshd:
    """sshd -D on ``address``:``port`` (a free port of 127.0.0.1 unless told), in the
    namespace ``netns`` when given; logins as root with ``key`` only."""

    def __init__(self, workdir, address="127.0.0.1", port=None, netns=None):
        workdir = pathlib.Path(workdir)
        self.dir = workdir
        self.address = address
        self.port = port or free_port(address)
        self.log = workdir / "sshd.log"
        self.key = workdir / "client_ed25519"
        self.known_hosts = workdir / "known_hosts"
        for name in ("host_ed25519", "client_ed25519"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / name)], check=True)
        (workdir / "authorized_keys").write_text((workdir / "client_ed25519.pub").read_text())
        host_key = (workdir / "host_ed25519.pub").read_text().split()[:2]
        # ssh looks a host on port 22 up by its bare name, on any other port as [name]:port
        name = address if self.port == 22 else "[%s]:%d" % (address, self.port)
        self.known_hosts.write_text("%s %s\n" % (name, " ".join(host_key)))
        (workdir / "sshd_config").write_text("\n".join([
            "Port %d" % self.port, "ListenAddress %s" % address,
            "HostKey %s" % (workdir / "host_ed25519"),
            "AuthorizedKeysFile %s" % (workdir / "authorized_keys"),
            "StrictModes no", "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password", "PidFile %s" % (workdir / "sshd.pid"),
            "LogLevel DEBUG1", "MaxStartups 20", ""]))
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        argv = [SSHD, "-D", "-f", str(workdir / "sshd_config"), "-E", str(self.log)]
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv  # ip execs sshd: self.proc is sshd
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        # sshd logs this once it listens; read from the log, it holds in any namespace
        listening = "Server listening on %s port %d" % (address, self.port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.log.exists() and listening in self.log.read_text():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("sshd did not listen on %s:%d: %s"
                           % (address, self.port, self.log.read_text() if self.log.exists() else "no log"))

    def sessions(self):
        """The pids of this sshd's descendants: each connection's monitor and its session
        child (which sets up a session of its own, so not in the listener's process group)."""
        return descendants(self.proc.pid)

    def stop(self):
        """The listener and the sessions it still serves: a session whose client's
        namespace or process is gone would otherwise wait for TCP to time out."""
        if self.proc.poll() is None:
            for pid in self.sessions():
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_lines(self):
        return self.log.read_text().splitlines()

    def params(self):
        return {"src_host": self.address, "src_user": "root", "ssh_port": self.port,
                "ssh_key": str(self.key), "known_hosts": str(self.known_hosts)}
