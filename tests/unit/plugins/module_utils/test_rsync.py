# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsers and argv builders of _rsync, on output captured from real rsync 3.2.7 runs
(fixtures/rsync/capture.sh) and, where a rule must mean to rsync what it says, against
the real rsync of this host."""

import os
import shlex
import subprocess

import pytest

from ansible_collections.indextts.deploy.plugins.module_utils import _rsync

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "rsync")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def test_parse_itemized_full_sync_lists_every_entry_once_with_types():
    changes = _rsync.parse_itemized(fixture("full.txt"))
    assert len(changes) == 51  # "Number of created files: 51" in the same output
    kinds = {c["type"] for c in changes}
    assert kinds == {"dir", "file", "symlink"}
    links = [c for c in changes if c["type"] == "symlink"]
    assert len(links) == 9  # "link: 9"
    assert all("/snapshots/" in c["path"] and " -> " not in c["path"] for c in links)
    # rsync's %l of a link is its target's length: ../../blobs/<40 or 64 hex> or deeper
    assert all(c["size"] >= len("../../blobs/") + 40 for c in links)
    assert changes[0] == {"item": "cd+++++++++", "path": "./", "type": "dir", "size": 4096}
    # the files' sizes add up to "Total transferred file size" of the same output
    assert sum(c["size"] for c in changes if c["type"] == "file") == 67109488


def test_parse_itemized_ignores_rsync_messages_and_statistics():
    text = fixture("dry-run-full.txt")
    assert text.startswith("created directory")
    paths = [c["path"] for c in _rsync.parse_itemized(text)]
    assert "directory /tmp/cap/dst" not in " ".join(paths)
    assert not any(p.startswith(("Number", "Total", "sent ")) for p in paths)


def test_parse_itemized_noop_is_empty():
    assert _rsync.parse_itemized(fixture("noop.txt")) == []


def test_parse_itemized_reports_deletions_and_attribute_changes():
    changes = _rsync.parse_itemized(fixture("delete.txt"))
    assert changes == [
        {"item": ".d..t......", "path": "checkpoints/", "type": "dir", "size": 4096},
        {"item": "*deleting", "path": "checkpoints/extra.bin", "type": "deleted", "size": 0},
    ]


def test_parse_itemized_root_attributes_alone_are_no_change():
    assert _rsync.parse_itemized(".d..t...... 4096 ./\n") == []


def test_parse_itemized_takes_names_as_rsync_escapes_them():
    """As rsync 3.x prints them (--out-format='%i %l %n%L' --8-bit-output): UTF-8 as is, a
    tab as is, a newline as \\#012, a control character as \\#001, a backslash before '#'
    as \\#134, and ' -> ' is part of a name, and of a link's target, whose length splits it."""
    text = (">f+++++++++ 1 a -> b.bin\n"
            ">f+++++++++ 1 back\\#134#001lit.bin\n"
            ">f+++++++++ 1 ctl\\#001x.bin\n"
            "cL+++++++++ 11 link -> odd -> x -> ../y\\#012z\n"
            ">f+++++++++ 1 new\\#012line.bin\n"
            ">f+++++++++ 1 tab\tname.bin\n"
            ">f+++++++++ 1 \u00fcn\u00efcode.bin\n")
    changes = _rsync.parse_itemized(text)
    assert [c["path"] for c in changes] == [
        "a -> b.bin", "back\\#001lit.bin", "ctl\x01x.bin", "link -> odd", "new\nline.bin", "tab\tname.bin",
        "\u00fcn\u00efcode.bin"]
    assert changes[3]["target"] == "x -> ../y\nz"


ODD_NAMES = ["plain", "a -> b", "new\nline", "tab\tname", "ctl\x01x", "back\\#001lit", "\u00fcn\u00efcode",
             "ends with ->", " -> "]


@pytest.mark.parametrize("target", ODD_NAMES + ["../../blobs/" + "ab" * 32, "x -> y -> z"])
def test_parse_itemized_splits_links_real_rsync_printed(tmp_path, target):
    """Real rsync's dry run of links whose names and targets hold anything a name can:
    each comes back as it is on disk, name and target apart."""
    src = tmp_path / "src"
    src.mkdir()
    for i, name in enumerate(ODD_NAMES):
        os.symlink(target, str(src / name))
        (src / ("file %d%s" % (i, name))).write_text("x")
    argv = _rsync.build_argv("rsync", str(src) + "/", str(tmp_path / "dst"), dry_run=True, preserve_owner=False)
    out = subprocess.run(argv, check=True, capture_output=True).stdout.decode("utf-8", "surrogateescape")
    changes = _rsync.parse_itemized(out)
    links = sorted((c["path"], c["target"]) for c in changes if c["type"] == "symlink")
    assert links == sorted((name, target) for name in ODD_NAMES)
    files = sorted(c["path"] for c in changes if c["type"] == "file")
    assert files == sorted("file %d%s" % (i, name) for i, name in enumerate(ODD_NAMES))


def test_parse_itemized_skips_a_link_line_no_split_fits():
    """A line that looks like a link but whose tail has no target of the length given is
    not rsync's: it is left out, not half-read."""
    assert _rsync.parse_itemized("cL+++++++++ 40 name -> short\ncL+++++++++ 7 no arrow\n") == []


def test_parse_itemized_keeps_names_that_begin_with_digits_and_spaces():
    assert _rsync.parse_itemized(">f+++++++++ 12 7 notes.txt\n") == [
        {"item": ">f+++++++++", "path": "7 notes.txt", "type": "file", "size": 12}]


@pytest.mark.parametrize("name", ["plain.bin", "star*.bin", "what?.bin", "[abc].bin", "back\\slash.bin",
                                  "back\\slash*star.bin", "two words.bin"])
def test_exclude_rule_leaves_out_exactly_that_path(tmp_path, name):
    """The rule means to the real rsync what it says: the one path, wildcards or not."""
    src = tmp_path / "src" / "sub"
    src.mkdir(parents=True)
    decoys = ["starX.bin", "what!.bin", "a.bin", "back/slash.bin", "two"]
    for other in [name] + decoys:
        (src / other.replace("/", "_")).write_text("x")
    (tmp_path / "src" / name).write_text("same name, another directory")
    subprocess.run(["rsync", "-r", "--filter=" + _rsync.exclude_rule("sub/" + name),
                    str(tmp_path / "src") + "/", str(tmp_path / "dst") + "/"], check=True)
    got = sorted(p.name for p in (tmp_path / "dst" / "sub").iterdir())
    assert got == sorted(set(d.replace("/", "_") for d in decoys) - {name})
    assert (tmp_path / "dst" / name).exists()


X86_CPUINFO = ("processor\t: 0\nvendor_id\t: GenuineIntel\n"
               "flags\t\t: fpu vme de pse tsc msr pae mce sse sse2 ssse3 pclmulqdq sse4_1 sse4_2 aes avx avx2 sha_ni\n")
ARM_CPUINFO = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n"


def test_cipher_preference_puts_aes_gcm_first_only_with_aes_instructions():
    assert _rsync.cipher_preference(X86_CPUINFO)[0] == "aes128-gcm@openssh.com"
    assert _rsync.cipher_preference(ARM_CPUINFO)[0] == "aes128-gcm@openssh.com"
    assert _rsync.cipher_preference(X86_CPUINFO.replace(" aes ", " ")) is None
    assert _rsync.cipher_preference("flags : fpu vaes_like\n") is None
    assert _rsync.cipher_preference("") is None
    # the default list follows, so a server without AES-GCM still agrees on one
    assert "chacha20-poly1305@openssh.com" in _rsync.AES_FIRST_CIPHERS


def test_ciphers_are_accepted_by_this_hosts_ssh():
    known = subprocess.run(["ssh", "-Q", "cipher"], capture_output=True, text=True, check=True).stdout.split()
    assert set(_rsync.AES_FIRST_CIPHERS) <= set(known)


def test_ssh_command_shares_a_connection_or_keeps_its_own():
    shared = shlex.split(_rsync.ssh_command(control_path="/tmp/d/ssh", ciphers=("aes128-gcm@openssh.com",)))
    assert shared[shared.index("ControlPath=/tmp/d/ssh") - 1] == "-o"
    assert "ControlMaster=auto" in shared and "ControlPersist=60" in shared
    assert "Ciphers=aes128-gcm@openssh.com" in shared
    own = shlex.split(_rsync.ssh_command(control_path="none"))
    assert "ControlMaster=no" in own and "ControlPath=none" in own
    assert not any(a.startswith(("Control", "Ciphers")) for a in shlex.split(_rsync.ssh_command()))


def test_parse_stats_reads_numbers_with_and_without_commas():
    stats = _rsync.parse_stats(fixture("full.txt"))
    assert stats["files_transferred"] == 18
    assert stats["total_size"] == 67110055
    assert stats["literal_bytes"] == stats["transferred_size"]  # a first sync sends it all
    assert stats["matched_bytes"] == 0
    assert stats["bytes_sent"] + stats["bytes_received"] > stats["literal_bytes"]
    assert _rsync.parse_stats("Total file size: 1,234,567 bytes\n") == {"total_size": 1234567}


@pytest.mark.parametrize("name, transient, words", [
    ("err-hostkey.txt", False, "not trusted"),
    ("err-denied.txt", False, "refused the SSH login of reader@203.0.113.7"),
    ("err-nosrc.txt", False, "src /srv/cache does not exist on 203.0.113.7"),
    ("err-refused.txt", True, "unreachable over SSH"),
    # The same refusal when rsync sees the closed pipe before it reaps ssh: code 12, not
    # 255 (seen in the cache_sync scenario on a loaded CI machine).
    ("err-refused-rc12.txt", True, "unreachable over SSH"),
    # A full disk (rsync 3.x into a 1 MiB tmpfs): named, with the figures, and not retried.
    ("err-enospc-rc11.txt", False, "dest /srv/dest ran out of space: the sync needs 3002368 bytes (whole "
                                   "blocks), 4096 are free now, and partial files of interrupted transfers "
                                   "hold 1044480 bytes in .indextts-partial/ directories"),
    # A local refusal (an unprivileged rsync reading a 0600 file) is not an SSH login refusal.
    ("err-local-denied-rc23.txt", False, 'rsync was refused access to a file (Permission denied): rsync: '
                                         '[sender] send_files failed to open "/tmp/cap/priv/f": Permission '
                                         'denied (13)'),
])
def test_explain_failure_on_captured_errors(name, transient, words):
    rc = {"err-nosrc.txt": 23, "err-refused-rc12.txt": 12, "err-enospc-rc11.txt": 11,
          "err-local-denied-rc23.txt": 23}.get(name, 255)
    context = {"src": "/srv/cache", "host": "203.0.113.7", "login": "reader@203.0.113.7",
               "where": "203.0.113.7", "known_hosts": "/etc/kh", "dest": "/srv/dest", "needed": 3002368,
               "free": 4096, "held": 1044480, "partial": ".indextts-partial"}
    got_transient, message = _rsync.explain_failure(rc, fixture(name), context)
    assert got_transient is transient
    assert words in message


def test_explain_failure_dns():
    ctx = {"src": "/s", "host": "golden", "login": "golden", "where": "golden", "known_hosts": "k"}
    temporary = "ssh: Could not resolve hostname golden: Temporary failure in name resolution\n"
    assert _rsync.explain_failure(255, temporary, ctx) == (True, "src_host golden did not resolve (a temporary DNS failure)")
    unknown = "ssh: Could not resolve hostname golden: Name or service not known\n"
    assert _rsync.explain_failure(255, unknown, ctx) == (False, "src_host golden does not resolve")


def test_explain_failure_unknown_errors_use_exit_code():
    ctx = {"src": "/s", "host": "h", "login": "h", "where": "h", "known_hosts": "k"}
    # "Connection refused" from the remote side, not from ssh's connect, is not unreachability
    assert _rsync.explain_failure(12, "rsync: [sender] Connection refused\n", ctx) == (
        True, "rsync exited with code 12 (error in the rsync protocol data stream (the connection broke, or the "
              "remote rsync failed))")
    assert _rsync.explain_failure(30, "timeout in data send/receive", ctx) == (True, "rsync exited with code 30 (timeout in data send/receive)")
    assert _rsync.explain_failure(1, "syntax or usage error", ctx) == (
        False, "rsync exited with code 1 (syntax or usage error: an option this rsync does not accept)")
    assert _rsync.explain_failure(99, "", ctx) == (False, "rsync exited with code 99")
    # killed by a signal (the OOM killer, a stray kill): another attempt can succeed
    assert _rsync.explain_failure(-9, "", ctx) == (True, "rsync was killed by signal 9")


def test_ssh_command_quotes_paths_and_pins_host_keys():
    cmd = _rsync.ssh_command(port=2222, key="/etc/my keys/id", known_hosts="/etc/kh")
    argv = shlex.split(cmd)
    assert argv[argv.index("-i") + 1] == "/etc/my keys/id"
    assert "StrictHostKeyChecking=yes" in argv and "UserKnownHostsFile=/etc/kh" in argv
    assert "BatchMode=yes" in argv
    off = shlex.split(_rsync.ssh_command(host_key_checking=False))
    assert "StrictHostKeyChecking=no" in off and "UserKnownHostsFile=/dev/null" in off


def test_ssh_command_is_split_by_rsync_as_shlex_does(tmp_path):
    """rsync itself splits --rsh; a quoted key path with a space must reach ssh whole."""
    fake_ssh = tmp_path / "show-args"
    fake_ssh.write_text("#!/bin/sh\nfor a in \"$@\"; do echo \"[$a]\"; done >&2\nexit 255\n")
    fake_ssh.chmod(0o755)
    cmd = _rsync.ssh_command(key="/etc/my keys/id").replace("ssh", str(fake_ssh), 1)
    proc = subprocess.run(["rsync", "--rsh=" + cmd, "host:/x/", str(tmp_path / "d") + "/"],
                          capture_output=True, text=True, check=False)
    assert "[/etc/my keys/id]" in proc.stderr


def test_source_spec():
    assert _rsync.source_spec("/srv/cache") == "/srv/cache/"
    assert _rsync.source_spec("/srv/cache/", "golden", "reader") == "reader@golden:/srv/cache/"
    assert _rsync.source_spec("/", "fd00::5") == "[fd00::5]:/"


def test_build_argv_list_only_has_no_destination():
    argv = _rsync.build_argv("rsync", "h:/s/", filters=["- x/"], preserve_owner=False)
    assert "--list-only" in argv and argv[-1] == "h:/s/" and "--filter=- x/" in argv
    assert "--stats" not in argv and "--owner" not in argv
