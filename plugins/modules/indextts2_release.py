#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: indextts2_release
short_description: Build an IndexTTS2 release's Python environment once, or check that a pulled one fits this host
version_added: 0.2.0
description:
  - With O(state=built) (on the golden build host), makes C(<path>/.venv) for the IndexTTS2
    source tree at O(path) with the host's own Python (never a downloaded one), and
    installs the release with its extras (C(webui) for the web UI) at exactly the
    versions its C(uv.lock) pins, turned into pip constraints for this interpreter and
    platform. Packages come from the package index, or only from O(wheelhouse), a
    directory of wheels made on a connected machine. Then it runs O(warmup) (one-time
    work such as the text normaliser's cache) and writes C(<path>/.indextts-release.json),
    the build record nodes check.
  - The build record names the interpreter path, its version and the machine
    architecture. A release is rebuilt when the record is missing (a cut build) or
    differs in any of them, or in the lock, extras or package source.
  - With O(state=checked) (on a node that pulled the release), reads the build record
    and fails, saying what differs, when this host's interpreter path, Python version
    or architecture is not the one the release was built for. Changes nothing.
author:
  - indextts.deploy maintainers (@indextts)
attributes:
  check_mode:
    description: Reports whether a build would run; builds nothing.
    support: full
  diff_mode:
    description: The build record before and after.
    support: full
options:
  path:
    description: The release's source tree (holding C(pyproject.toml) and C(uv.lock)), for example C(/opt/indextts2/releases/<commit>).
    type: path
    required: true
  state:
    description: V(built) builds when needed; V(checked) only checks a pulled release against this host.
    type: str
    choices: [built, checked]
    default: built
  python:
    description: The interpreter the environment is made with (it must satisfy the release's C(requires-python)).
    type: path
    default: /usr/bin/python3
  extras:
    description: The release's optional extras to install. C(webui) (gradio) is what C(webui.py) needs.
    type: list
    elements: str
    default: [webui]
  wheelhouse:
    description:
      - A directory on this host holding every wheel the release needs. Set, pip reads
        only it (C(--no-index)); a missing package fails naming it.
    type: path
  index_url:
    description: The package index to install from when O(wheelhouse) is not set (pip's own default when omitted).
    type: str
  warmup:
    description:
      - Commands run once in O(path) after the install, each an argv list whose first
        element C(python) means the release's own interpreter. For one-time work the
        release would otherwise do at its first start.
    type: list
    elements: list
    default: []
requirements:
  - Python 3.11 or later on the build host (for C(tomllib)); pip and venv (Debian C(python3-venv)).
notes:
  - Run as the account that owns the release (C(become_user)), never as root.
seealso:
  - module: indextts.deploy.indextts2_preflight
  - module: indextts.deploy.model_cache_sync
"""

EXAMPLES = r"""
- name: Build the pinned release on the golden host, from a wheelhouse
  indextts.deploy.indextts2_release:
    path: /opt/indextts2/releases/39207d91c30899cad1e7c1b9eb678c241f678e55
    wheelhouse: /srv/wheelhouse
  become: true
  become_user: indextts2

- name: On a node, refuse a pulled release built for another interpreter
  indextts.deploy.indextts2_release:
    path: /opt/indextts2/releases/39207d91c30899cad1e7c1b9eb678c241f678e55
    state: checked
"""

RETURN = r"""
build:
  description: The build record (what the release was built for, and from what).
  returned: success
  type: dict
  sample: {"python": "/usr/bin/python3.11", "python_version": "3.11.2", "machine": "x86_64",
           "requires_python": ">=3.10, <3.12", "lock_sha256": "5c1e...", "extras": ["webui"],
           "source": "wheelhouse"}
constraints:
  description: How many locked packages were pinned for this interpreter.
  returned: when built
  type: int
  sample: 188
seconds:
  description: How long the build took.
  returned: when built
  type: float
  sample: 131.5
"""

import hashlib
import json
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.indextts.deploy.plugins.module_utils import _uvlock

try:
    import tomllib
except ImportError:  # Python < 3.11: reported by check_params, not at import
    tomllib = None

RECORD = ".indextts-release.json"
CONSTRAINTS = ".venv/indextts-constraints.txt"
_INTERPRETER_PROBE = ("import json, os, platform, sys; print(json.dumps({'python': os.path.realpath(sys.executable), "
                      "'python_version': platform.python_version(), 'machine': platform.machine()}))")
# pip's words for a package it cannot find: with no constraint, and when the locked
# version a constraint asks for is not there.
_MISSING_DIST_RE = re.compile(r"No matching distribution found for ([^\s(]+)|The user requested \(constraint\) (\S+)")


class Release(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.path = self.p["path"]

    # -- inspect: reads only -------------------------------------------------------
    def check_params(self):
        if not os.path.isfile(os.path.join(self.path, "pyproject.toml")):
            self.module.fail_json(msg="path %s holds no pyproject.toml: put the IndexTTS2 source tree of the "
                                      "release there first" % self.path)
        if self.p["state"] == "checked":
            return
        if tomllib is None:
            self.module.fail_json(msg="this host's Python for Ansible has no tomllib (Python 3.11+ is needed "
                                      "to read uv.lock): set ansible_python_interpreter to Python 3.11 or later")
        if not os.path.isfile(os.path.join(self.path, "uv.lock")):
            self.module.fail_json(msg="path %s holds no uv.lock: IndexTTS2 releases pin their dependencies "
                                      "there; without it nothing says which versions to install" % self.path)
        if not os.access(self.p["python"], os.X_OK):
            self.module.fail_json(msg="python %s is not an executable on this host: install the Python the "
                                      "release needs (Debian: python3 python3-venv) or set python" % self.p["python"])
        wheelhouse = self.p["wheelhouse"]
        if wheelhouse and not os.path.isdir(wheelhouse):
            self.module.fail_json(msg="wheelhouse %s is not a directory on this host: copy the wheels made on "
                                      "a connected machine there, or unset wheelhouse to use the package index"
                                      % wheelhouse)
        for i, argv in enumerate(self.p["warmup"]):
            if not argv or not all(isinstance(a, str) for a in argv):
                self.module.fail_json(msg="warmup[%d] must be a non-empty list of strings (an argv), got %r" % (i, argv))

    def interpreter(self, python):
        rc, out, err = self.module.run_command([python, "-c", _INTERPRETER_PROBE])
        if rc != 0:
            self.module.fail_json(msg="cannot run %s: %s" % (python, (err or out).strip()))
        return json.loads(out)

    def read_toml(self, name):
        with open(os.path.join(self.path, name), "rb") as f:
            try:
                return tomllib.load(f)
            except ValueError as e:
                self.module.fail_json(msg="%s of the release in %s is not valid TOML: %s" % (name, self.path, e))

    def read_record(self):
        try:
            with open(os.path.join(self.path, RECORD)) as f:
                return json.load(f)
        except (IOError, OSError, ValueError):
            return None

    def lock_digest(self):
        with open(os.path.join(self.path, "uv.lock"), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    # -- plan ----------------------------------------------------------------------
    def wanted_record(self, host):
        pyproject = self.read_toml("pyproject.toml")
        wanted = _uvlock.requires_python(pyproject)
        if wanted and not _uvlock.specifier_holds(host["python_version"], wanted):
            self.module.fail_json(msg="the release in %s requires-python %r, and python %s is %s: install a "
                                      "Python that satisfies it on the build host and set python to it (it is "
                                      "never downloaded)" % (self.path, wanted, self.p["python"], host["python_version"]))
        extras = sorted(self.p["extras"])
        known = sorted(((pyproject.get("project") or {}).get("optional-dependencies") or {}).keys())
        unknown = [e for e in extras if e not in known]
        if unknown:
            self.module.fail_json(msg="extras %s are not extras of this release (it has: %s)"
                                      % (", ".join(unknown), ", ".join(known) or "none"))
        record = dict(host, requires_python=wanted, lock_sha256=self.lock_digest(), extras=extras,
                      source="wheelhouse" if self.p["wheelhouse"] else "index")
        return record

    def mismatch(self, record, host):
        """Why a release built as ``record`` cannot run on ``host`` (None when it can)."""
        if record is None:
            return "it has no build record (%s): it was never built completely" % RECORD
        for key, what in (("machine", "architecture"), ("python", "interpreter path"),
                          ("python_version", "Python version")):
            if record.get(key) != host.get(key):
                return "it was built for %s %s, and this host has %s" % (what, record.get(key), host.get(key))
        return None

    # -- apply ---------------------------------------------------------------------
    def pip_failure(self, out, err):
        text = (err or "") + (out or "")
        missing = [found or constrained for found, constrained in _MISSING_DIST_RE.findall(text)]
        if missing and self.p["wheelhouse"]:
            return ("wheelhouse %s lacks %s: add the wheels (tests/lab/indextts2/wheelhouse.sh makes them from "
                    "the release's uv.lock on a connected machine)" % (self.p["wheelhouse"], ", ".join(sorted(set(missing)))))
        if missing:
            return "the package index has no %s for this host: %s" % (", ".join(sorted(set(missing))), text.strip()[-1500:])
        return "pip failed installing the release in %s: %s" % (self.path, text.strip()[-2000:])

    def build(self, record, constraints):
        venv = os.path.join(self.path, ".venv")
        started = time.time()
        if not os.path.exists(os.path.join(venv, "bin", "python")):
            rc, out, err = self.module.run_command([self.p["python"], "-m", "venv", venv])
            if rc != 0:
                self.module.fail_json(msg="cannot make the venv %s with %s (Debian: install python3-venv): %s"
                                          % (venv, self.p["python"], (err or out).strip()))
        with open(os.path.join(self.path, CONSTRAINTS), "w") as f:
            f.write("\n".join(constraints) + "\n")
        target = ".[%s]" % ",".join(record["extras"]) if record["extras"] else "."
        argv = [os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--disable-pip-version-check",
                "--no-input", "--progress-bar", "off", "-c", os.path.join(self.path, CONSTRAINTS)]
        if self.p["wheelhouse"]:
            argv += ["--no-index", "--find-links", self.p["wheelhouse"]]
        elif self.p["index_url"]:
            argv += ["--index-url", self.p["index_url"]]
        # Only the sources named here: no pip configuration or PIP_* settings of the host.
        environ = dict((k, "") for k in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX",
                                         "PIP_CONSTRAINT", "PIP_REQUIREMENT") if k in os.environ)
        environ.update(PIP_NO_CACHE_DIR="1", PIP_CONFIG_FILE=os.devnull)
        rc, out, err = self.module.run_command(argv + [target], cwd=self.path, environ_update=environ)
        if rc != 0:
            self.module.fail_json(msg=self.pip_failure(out, err))
        for argv in self.p["warmup"]:
            argv = [os.path.join(venv, "bin", "python")] + argv[1:] if argv[0] == "python" else argv
            rc, out, err = self.module.run_command(argv, cwd=self.path)
            if rc != 0:
                self.module.fail_json(msg="the warmup %s failed in %s (rc %d): %s"
                                          % (" ".join(argv), self.path, rc, ((err or "") + (out or "")).strip()[-2000:]))
        tmp = os.path.join(self.path, RECORD + ".tmp")
        with open(tmp, "w") as f:
            json.dump(record, f, indent=1, sort_keys=True)
        os.rename(tmp, os.path.join(self.path, RECORD))
        return time.time() - started

    def run(self):
        self.check_params()
        current = self.read_record()
        if self.p["state"] == "checked":
            host = self.interpreter(current["python"] if current and os.access(current.get("python", ""), os.X_OK)
                                    else self.p["python"])
            why = self.mismatch(current, host)
            if why:
                self.module.fail_json(msg="the release in %s cannot run on this host: %s. Build it on the golden "
                                          "host with the interpreter the nodes have, and pull it again" % (self.path, why))
            return dict(changed=False, build=current)
        host = self.interpreter(self.p["python"])
        wanted = self.wanted_record(host)
        env = _uvlock.target_env(host["python_version"], "linux", host["machine"])
        try:
            constraints = _uvlock.lock_constraints(self.read_toml("uv.lock"), env)
        except _uvlock.LockError as e:
            self.module.fail_json(msg="cannot pin the release's uv.lock for this host: %s" % e)
        result = dict(changed=current != wanted, build=wanted, constraints=len(constraints))
        if self.module._diff:
            result["diff"] = dict(before=json.dumps(current, indent=1, sort_keys=True) + "\n" if current else "",
                                  after=json.dumps(wanted, indent=1, sort_keys=True) + "\n")
        if result["changed"] and not self.module.check_mode:
            result["seconds"] = round(self.build(wanted, constraints), 1)
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", default="built", choices=["built", "checked"]),
            python=dict(type="path", default="/usr/bin/python3"),
            extras=dict(type="list", elements="str", default=["webui"]),
            wheelhouse=dict(type="path"),
            index_url=dict(type="str"),
            warmup=dict(type="list", elements="list", default=[]),
        ),
        mutually_exclusive=[("wheelhouse", "index_url")],
        supports_check_mode=True,
    )
    module.exit_json(**Release(module).run())


if __name__ == "__main__":
    main()
