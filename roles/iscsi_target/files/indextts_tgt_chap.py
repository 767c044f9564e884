# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Give tgtd its CHAP accounts without putting a secret on any command line.

  indextts-tgt-chap CONFIG.json [--control-port N]

tgtadm takes CHAP secrets only as arguments (--password), which every local user can
read in /proc/*/cmdline while it runs. This talks to tgtd's management socket the way
tgtadm does, so the secrets go from a 0600 file straight into the socket. It also
drops tgt-admin's catch-all address rule ("ALL") from targets whose access list is by
initiator name only (tgt lets in an initiator whose address or name is listed).

CONFIG: {"targets": {"<iqn>": {"incoming": [{"user": u, "password": p}],
                               "outgoing": {"user": u, "password": p} or null,
                               "acl_names_only": true|false}}}
Runs at tgt.service start (before tgtd accepts logins) and when the config changes.
"""

import json
import re
import socket
import struct
import subprocess
import sys

# usr/tgtadm.h: enum tgtadm_mode, enum tgtadm_op, struct tgtadm_req / tgtadm_rsp
MODE_TARGET, MODE_ACCOUNT = 1, 7
OP_NEW, OP_DELETE, OP_BIND, OP_UNBIND = 0, 1, 3, 4
REQ = struct.Struct("=ii64sIiQQIIIIII")
RSP = struct.Struct("=II")
# enum tgtadm_errno of tgt 1.0.85 (Debian 12), as tgtd answers tgtadm (seen with strace)
NO_TARGET, ACL_NOEXIST, USER_EXIST, NO_USER, OUTACCOUNT_EXIST = 4, 13, 14, 15, 18
ERRORS = {NO_TARGET: "can't find the target", ACL_NOEXIST: "this access control rule does not exist",
          USER_EXIST: "this account already exists", NO_USER: "can't find the account",
          OUTACCOUNT_EXIST: "this target already has an outgoing account"}
UINT64_MAX = 2 ** 64 - 1


class TgtError(Exception):
    def __init__(self, code):
        super().__init__(ERRORS.get(code, "tgtd error %d" % code))
        self.code = code


def request(port, mode, op, params, tid=-1, ac_dir=0):
    """One management request, as tgtadm sends it; raises TgtError on a refusal."""
    body = params.encode() + b"\0"  # a C string, as tgtadm sends it
    head = REQ.pack(mode, op, b"iscsi", REQ.size + len(body), tid, 0, UINT64_MAX, 0, 0, 0, ac_dir, 0, 0)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect("/var/run/tgtd/socket.%d" % port)
        sock.sendall(head + body)
        err, length = RSP.unpack(sock.recv(RSP.size, socket.MSG_WAITALL))
        rest = length - RSP.size
        while rest > 0:
            chunk = sock.recv(min(rest, 4096))
            if not chunk:
                break
            rest -= len(chunk)
    if err:
        raise TgtError(err)


def target_ids(port):
    out = subprocess.run(["tgtadm", "--control-port", str(port), "--lld", "iscsi", "--mode", "target",
                          "--op", "show"], stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    return dict((m.group(2), int(m.group(1))) for m in re.finditer(r"^Target (\d+): (\S+)$", out, re.M))


def set_account(port, tid, account, ac_dir):
    """(Re)create the account with its current secret, and bind it to the target."""
    try:
        request(port, MODE_ACCOUNT, OP_DELETE, "user=%s" % account["user"])
    except TgtError as e:
        if e.code != NO_USER:
            raise
    request(port, MODE_ACCOUNT, OP_NEW, "user=%s,password=%s" % (account["user"], account["password"]))
    request(port, MODE_ACCOUNT, OP_BIND, "user=%s" % account["user"], tid=tid, ac_dir=ac_dir)


def main(argv):
    config_path = argv[1]
    port = int(argv[argv.index("--control-port") + 1]) if "--control-port" in argv else 0
    with open(config_path) as f:
        config = json.load(f)
    tids = target_ids(port)
    for iqn, spec in sorted(config.get("targets", {}).items()):
        if iqn not in tids:
            sys.exit("indextts-tgt-chap: tgtd has no target %s; check /etc/tgt/conf.d" % iqn)
        for account in spec.get("incoming", []):
            set_account(port, tids[iqn], account, 0)
        if spec.get("outgoing"):
            set_account(port, tids[iqn], spec["outgoing"], 1)
        if spec.get("acl_names_only"):
            try:
                request(port, MODE_TARGET, OP_UNBIND, "initiator-address=ALL", tid=tids[iqn])
            except TgtError as e:
                if e.code != ACL_NOEXIST:
                    raise
        print("indextts-tgt-chap: %s: %d incoming account(s)%s%s" % (
            iqn, len(spec.get("incoming", [])), ", an outgoing account" if spec.get("outgoing") else "",
            ", access by initiator name only" if spec.get("acl_names_only") else ""))


if __name__ == "__main__":
    main(sys.argv)
