# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RsyncTransport.close(): the run's SSH control directory goes, whoever removes the
master's socket first. Real Unix sockets in a real directory; the SSH master is
played by the test (close() asks it to exit through module.run_command), because
what matters is the moment its own cleanup lands, which a real master leaves to
chance (CI once saw the race: an empty directory left, no master running).

And run_many(): a run that ended goes to its callback while the others still run."""

import os
import shutil
import socket
import tempfile
import threading

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


class Runs(object):
    """A module whose run_command plays rsync runs: argv[0] "content" runs until the
    test lets it end (or 10 s), "broken" fails for good, the others end at once."""

    def __init__(self):
        self.release = threading.Event()
        self.ended = []

    def run_command(self, argv, data=None, binary_data=False):
        if argv[0] == "content":
            self.release.wait(10)
        self.ended.append(argv[0])
        if argv[0] == "broken":
            return 1, "", "rsync: syntax or usage error"
        return 0, "output of %s" % argv[0], ""


def running(module, failures):
    t = object.__new__(transport.RsyncTransport)
    t.module, t.runs, t.attempts, t.elapsed = module, [], 1, 0.0
    t.params = {"retries": 0, "retry_delay": 0, "src_user": None, "known_hosts": None}
    t.src, t.host, t.dest = "/src", None, "/dest"
    t.figures = lambda: {}
    t.fail = lambda msg, **kwargs: failures.append(msg)
    return t


def test_a_run_that_ended_goes_to_its_callback_while_the_others_still_run():
    """The plan's run ends long before the content's: what follows from the plan
    overlaps the transfer instead of following it."""
    module = Runs()
    seen = []

    def plan_read(out):
        seen.append((out, list(module.ended)))
        module.release.set()  # the content's run ends only now

    t = running(module, [])
    outs = t.run_many([(["content"], "content", None), (["plan"], "plan", None)], {1: plan_read})
    assert seen == [("output of plan", ["plan"])]  # the content was still running
    assert outs == ["output of content", "output of plan"]


def test_a_run_that_failed_gets_no_callback_and_fails_the_task_after_the_others():
    module = Runs()
    failures = []
    t = running(module, failures)
    threading.Timer(0.5, module.release.set).start()
    t.run_many([(["content"], "content", None), (["broken"], "plan", None)], {1: failures.append})
    assert module.ended == ["broken", "content"]
    assert len(failures) == 1 and failures[0].startswith("plan failed after 1 attempt(s)")
