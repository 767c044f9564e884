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


# The collection-wide inputs (roles/indextts): every role depends on it, so each refuses
# them before its own first task, and so does every stage playbook, run alone.
@pytest.mark.parametrize("variables, message", [
    ({"indextts_cache_mode": "rsycn"}, "value of indextts_cache_mode must be one of: rsync, iscsi, got: rsycn"),
    ({"indextts_cache_dir": "/usr"}, "indextts_cache_dir must be an absolute path of its own (not / or a system "
                                     "directory such as /usr), got /usr"),
    ({"indextts_cache_dir": "srv/cache"}, "indextts_cache_dir must be an absolute path of its own"),
    ({"indextts_cache_waves": "[1, 0, 4]"}, "indextts_cache_waves must list positive numbers of nodes, got [1, 0, 4]"),
    ({"indextts_cache_waves": "[1, two]"}, "indextts_cache_waves"),
])
@pytest.mark.parametrize("role", ["model_cache", "multipath"])
def test_roles_refuse_bad_collection_wide_inputs_before_their_first_task(tmp_path, role, variables, message):
    rc, out = run_role(tmp_path, role, variables)
    assert rc == 2, out
    assert message in out, out
    assert "indextts.deploy.%s : " % role not in out.replace("indextts.deploy.indextts : ", "")


def test_the_internal_role_refuses_direct_use(tmp_path):
    rc, out = run_role(tmp_path, "indextts", {"indextts_cache_mode": "rsync"})
    assert rc == 2, out
    assert "indextts.deploy.indextts is internal" in out


def run_playbook(tmp_path, name, variables):
    """A stage playbook of the collection, alone, against an inventory of localhost only."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    localhost: {ansible_connection: local}\n  vars:\n"
                         + "".join("    %s: %s\n" % kv for kv in variables.items()))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    done = subprocess.run([PLAYBOOK, "-i", str(inventory), "indextts.deploy.%s" % name], env=env, cwd=str(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=300, check=False)
    return done.returncode, done.stdout


@pytest.mark.parametrize("name", ["storage_target", "storage_nodes", "model_cache"])
def test_a_stage_run_alone_refuses_a_misspelt_mode(tmp_path, name):
    """A misspelt mode used to make these stages skip their roles without a word."""
    rc, out = run_playbook(tmp_path, name, {"indextts_cache_mode": "isci"})
    assert rc == 2, out
    assert "value of indextts_cache_mode must be one of: rsync, iscsi, got: isci" in out, out


@pytest.mark.parametrize("name", ["storage_target", "storage_nodes", "model_cache", "report"])
def test_a_stage_settles_good_inputs_for_its_plays(tmp_path, name):
    """Control: good inputs pass the check and are settled (on a host in none of the
    collection's groups, a stage then does nothing more)."""
    rc, out = run_playbook(tmp_path, name, {"indextts_cache_mode": "iscsi"})
    assert rc == 0, out
    assert "TASK [indextts.deploy.indextts : Settle the collection-wide inputs for the plays that follow]" in out
    assert "ok: [localhost]" in out
