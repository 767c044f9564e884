# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RsyncTransport.close(): the run's SSH control directory goes, whoever removes the
master's socket first. Real Unix sockets in a real directory; the SSH master is
played by the test (close() asks it to exit through module.run_command), because
what matters is the moment its own cleanup lands, which a real master leaves to
chance (CI once saw the race: an empty directory left, no master running)."""

import os
import shutil
import socket
import tempfile

import pytest

from ansible_collections.indextts.deploy.plugins.module_utils._model_cache import transport


class Master(object):
    """The module's side of close(): run_command plays the SSH master told to exit."""

    def __init__(self, on_exit=None):
        self.on_exit = on_exit
        self.commands = []
        self.warnings = []

    def get_bin_path(self, name):
        return None

    def run_command(self, argv):
        self.commands.append(argv)
        if self.on_exit:
            self.on_exit()
        return 0, "", ""

    def warn(self, msg):
        self.warnings.append(msg)


@pytest.fixture
def control_dir():
    # Not under the module's prefix: the SSH tests count those directories as theirs.
    path = tempfile.mkdtemp(prefix="indextts-test-close-")
    sockets = []

    def bind(name):
        s = socket.socket(socket.AF_UNIX)
        s.bind(os.path.join(path, name))
        sockets.append(s)
        return os.path.join(path, name)

    yield path, bind
    for s in sockets:
        s.close()
    shutil.rmtree(path, ignore_errors=True)


def closing(module, path):
    t = object.__new__(transport.RsyncTransport)
    t.module, t.host, t.control_dir = module, "golden", path
    t.close()
    return t


def test_the_master_removing_its_socket_between_our_look_and_our_unlink_is_no_error(control_dir, monkeypatch):
    path, bind = control_dir
    sock = bind("ssh")
    real_unlink = os.unlink

    def master_wins(target):
        # The exiting master's own unlink lands first, then ours runs.
        if target == sock and os.path.lexists(target):
            real_unlink(target)
        real_unlink(target)

    monkeypatch.setattr(transport.os, "unlink", master_wins)
    module = Master()
    t = closing(module, path)
    assert module.commands == [["ssh", "-o", "ControlPath=%s" % sock, "-O", "exit", "golden"]]
    assert module.warnings == []
    assert not os.path.exists(path) and t.control_dir is None


def test_a_master_gone_before_we_look_and_a_racing_masters_temporary_socket_both_go(control_dir):
    path, bind = control_dir
    sock = bind("ssh")
    bind("ssh.Xq3vL0aZ9kTn2mPw")  # a racing master's name before its link(2)
    module = Master(on_exit=lambda: os.unlink(sock))
    closing(module, path)
    assert module.warnings == []
    assert not os.path.exists(path)


def test_what_is_not_a_socket_of_ours_stays_and_the_directory_is_named(control_dir):
    path, bind = control_dir
    bind("ssh")
    with open(os.path.join(path, "notes"), "w") as f:
        f.write("someone else's file\n")
    module = Master()
    t = closing(module, path)
    assert os.listdir(path) == ["notes"]
    assert len(module.warnings) == 1
    assert module.warnings[0].startswith("could not remove the SSH control directory %s: " % path)
    assert t.control_dir == path


def test_closing_without_a_connection_does_nothing():
    module = Master()
    closing(module, None)
    assert module.commands == [] and module.warnings == []
