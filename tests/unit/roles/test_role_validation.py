# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Roles refuse bad input before they change anything, with the rule the modules use.

Runs the real ansible-playbook against localhost (connection local); the roles fail at
their first check, so nothing is installed or written.
"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")


def run_role(tmp_path, role, variables):
    play = tmp_path / "play.yml"
    lines = ["- hosts: localhost", "  connection: local", "  gather_facts: false", "  roles:",
             "    - role: indextts.deploy.%s" % role, "      vars:"]
    lines += ["        %s: %s" % (k, v) for k, v in variables.items()]
    play.write_text("\n".join(lines) + "\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    done = subprocess.run([PLAYBOOK, "-i", "localhost,", str(play)], env=env, cwd=str(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=300, check=False)
    return done.returncode, done.stdout


TARGET = {"iscsi_target_backing_store": "/nonexistent/lun.img",
          "iscsi_target_initiator_names": "[iqn.2026-11.io.indextts.lab:node1]"}


@pytest.mark.parametrize("iqn, problem", [
    # The role's old regex accepted this one; the module refused it.
    ("iqn.2026-13.com.example:x", "month 13 of the date is not 01 to 12"),
    ("iqn.2026-11.com.example:a/b", "it contains '/'"),
    ("iqn.2026-11.com.example:" + "x" * 220, "bytes long; RFC 3720 allows at most 223"),
    ("eui.123", "eui. is followed by exactly 16 hexadecimal digits"),
])
def test_iscsi_target_refuses_a_name_the_module_refuses(tmp_path, iqn, problem):
    rc, out = run_role(tmp_path, "iscsi_target", dict(TARGET, iscsi_target_iqn=iqn))
    assert rc == 2, out
    assert 'iscsi_target_iqn "%s" is not an iSCSI name' % iqn in out
    assert problem in out
    assert "Install tgt" not in out


def test_iscsi_target_checks_pass_a_good_name(tmp_path):
    """Control: a good name gets past the name check (the settings check stops it, on purpose)."""
    rc, out = run_role(tmp_path, "iscsi_target",
                       dict(TARGET, iscsi_target_iqn="iqn.2026-11.io.indextts.lab:cache",
                            iscsi_target_backing_store="relative.img"))
    assert rc == 2, out
    assert "is not an iSCSI name" not in out
    assert "iscsi_target_backing_store must be an absolute path" in out
