# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gap matrix (issue 12): for each pinned IndexTTS2 release, indextts2_preflight
fails exactly when the real application fails to start, and names the file.

For each pin a golden-style cache is made of hard links to the lab weights
(tests/lab/indextts2/assets.sh, cached in ~/.cache/indextts-deploy) and laid out with
the real indextts2_cache_layout module. The real indextts2_preflight gives the
manifest of the complete cache. Then, case by case, a hard-link copy of the cache has
one thing taken away and is bind-mounted read-only in a private mount namespace
with no network but loopback (as the service sees it: ``smoke.sh`` does the same);
there the preflight runs, and then the real ``webui.py``, started as the service
starts it, until it answers HTTP 200 on / or exits (or the case times out).

Cases: the complete cache (the app must serve); each manifest entry removed (a file,
a directory entry's directory, a hub file's snapshot link); for hub-era pins a
``refs/main`` and a blob removed; the other release's layout (v2.5.0 with only the
hub cache, v2.0.0 with only the flat one); negative controls (removing what the
manifest does not list: the app must start and the preflight pass); probes of the
files inside a manifest directory beyond its marker. Each case asserts that the
preflight passes exactly when the app serves; manifest cases also that the failure
names exactly the removed entry.

Needs root (mount namespaces). Runs ``GAP_PARALLEL`` (default 2) cases at a time.
Env: ``GAP_APP_TIMEOUT`` (s, default 240) bounds a case, ``GAP_PINS`` (comma list of
tags) limits the pins.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "tests", "lab", "indextts2")
SOURCES = os.path.normpath(os.path.join(ROOT, "..", "shared", "indextts2-src"))
ASSETS = os.path.join(os.path.expanduser("~"), ".cache", "indextts-deploy")
COLLECTIONS = os.path.join(ROOT, ".cache", "collections")
PINS = {
    "v2.5.0": "39207d91c30899cad1e7c1b9eb678c241f678e55",
    "v2.0.0": "830f6f8f94a51fea23ab1d639027a86200075a4e",
}
MODULES = "ansible_collections.indextts.deploy.plugins.modules."
APP_TIMEOUT = float(os.environ.get("GAP_APP_TIMEOUT", "240"))
# Cases run side by side (each in namespaces of its own, so they share no port or
# mount): two on this 2-core machine, where a start is mostly one busy thread.
PARALLEL = max(1, int(os.environ.get("GAP_PARALLEL", "2")))
# The first start of a release builds the text normaliser's cache (about a minute).
COMPLETE_TIMEOUT = max(APP_TIMEOUT, 600.0)
PORT = 7860
# Files of a from_pretrained directory that are not needed to load it (negative controls:
# each costs a whole start, so two of them).
DIR_OPTIONAL = ("generation_config.json", "tokenizer_config.json")
# Files of it the manifest checks inside the directory (probes).
DIR_PROBES = ("model.safetensors", "tokenizer.json")
# A network namespace with only loopback up, a private mount namespace where the cache
# is bind-mounted read-only over itself; W is the cache.
NAMESPACE = ("unshare", "-n", "-m", "--propagation", "private", "sh", "-c",
             'ip link set lo up && mount --bind "$W" "$W" && mount -o remount,bind,ro "$W" '
             '&& exec env -u W "$@"', "sh")
SERVICE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "USE_MODELSCOPE": "false",
               "GRADIO_ANALYTICS_ENABLED": "False", "CUDA_VISIBLE_DEVICES": ""}
FAILURE_RE = re.compile(r"^(\w+\.)*\w*(Error|Exception|Exit)\b.*|.*(Failed|does not exist|Please download).*")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="needs root: each case mounts the cache read-only in a private mount namespace "
                              "(unshare -m)"),
    pytest.mark.skipif(not all(shutil.which(t) for t in ("unshare", "nsenter", "curl", "ip")),
                       reason="needs unshare, nsenter (util-linux), curl and ip (iproute2)"),
]


# -- assets --------------------------------------------------------------------

def ensure_assets(commit):
    """(env dir, weights dir) of a pin, made by tests/lab/indextts2/assets.sh when missing."""
    env_dir = os.path.join(ASSETS, "env-%s" % commit)
    weights = os.path.join(ASSETS, "weights-%s" % commit)
    ready = (os.path.isfile(os.path.join(env_dir, ".venv", ".indextts-installed"))
             and os.path.isfile(os.path.join(weights, ".complete")))
    if not ready:
        archive = os.path.join(SOURCES, "index-tts-%s.tar.gz" % commit)
        if not os.path.isfile(archive):
            pytest.fail("no IndexTTS2 source archive %s (the releases come from ../shared/indextts2-src)" % archive)
        wheelhouse = os.environ.get("INDEXTTS_WHEELHOUSE", os.path.join(ASSETS, "wheelhouse"))
        subprocess.run(["bash", os.path.join(LAB, "assets.sh"), archive, wheelhouse, weights], check=True)
    return env_dir, weights


def link_farm(src, dst):
    """A copy of the tree ``src`` at ``dst``: directories made, symlinks copied as
    symlinks, files hard-linked (same filesystem: no data is copied)."""
    for base, dirs, files in os.walk(src):
        rel = os.path.relpath(base, src)
        target = os.path.normpath(os.path.join(dst, rel))
        os.makedirs(target, exist_ok=True)
        for name in list(dirs):
            path = os.path.join(base, name)
            if os.path.islink(path):
                os.symlink(os.readlink(path), os.path.join(target, name))
                dirs.remove(name)
        for name in files:
            path = os.path.join(base, name)
            if os.path.islink(path):
                os.symlink(os.readlink(path), os.path.join(target, name))
            else:
                os.link(path, os.path.join(target, name))


def work_dir(tmp_path_factory, weights):
    """A scratch directory on the weights' filesystem (hard links need it)."""
    base = str(tmp_path_factory.mktemp("gap"))
    if os.stat(base).st_dev == os.stat(weights).st_dev:
        return base
    return tempfile.mkdtemp(prefix="gap-", dir=ASSETS)


# -- the modules, run as Ansible runs them ---------------------------------------

def run_module(name, params, args_dir, namespace_root=None):
    """Run plugins/modules/<name>.py as a subprocess with an args file; (result, failed)."""
    args = os.path.join(args_dir, "%s-args.json" % name)
    with open(args, "w") as f:
        json.dump({"ANSIBLE_MODULE_ARGS": params}, f)
    cmd = [sys.executable, "-m", MODULES + name, args]
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    if namespace_root:
        cmd = list(NAMESPACE) + cmd
        env["W"] = namespace_root
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        pytest.fail("%s printed no result (rc %d): %s %s" % (name, proc.returncode, proc.stdout, proc.stderr))
    result = json.loads(lines[-1])
    return result, bool(result.get("failed"))


def preflight(app_dir, cache, args_dir, version):
    params = {"app_dir": app_dir, "model_dir": os.path.join(cache, "checkpoints"),
              "hf_cache": os.path.join(cache, "hf_cache"), "model_version": version}
    return run_module("indextts2_preflight", params, args_dir, namespace_root=cache)


# -- the real application --------------------------------------------------------

def kill_group(proc):
    """End the application this test started (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def http_code(pid):
    """The status of GET / from inside the app's network namespace ('' before it is up)."""
    try:
        if os.readlink("/proc/%d/ns/net" % pid) == os.readlink("/proc/self/ns/net"):
            return ""   # unshare has not switched yet: never ask the host's loopback
    except OSError:
        return ""
    proc = subprocess.run(["nsenter", "-t", str(pid), "-n", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                           "--max-time", "3", "http://127.0.0.1:%d/" % PORT],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False)
    return proc.stdout.strip()


def failure_reason(log):
    """The line of the app's log that says why it stopped."""
    try:
        with open(log, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    for line in reversed(lines):
        if FAILURE_RE.match(line):
            return line[:300]
    return lines[-1][:300] if lines else "(empty log)"


def tail(log, count=25):
    try:
        with open(log, errors="replace") as f:
            return "".join(f.readlines()[-count:])
    except OSError:
        return ""


def run_app(env_dir, cache, version_args, log, timeout):
    """Start webui.py as the service does, on the read-only cache, with no network.
    (served, outcome, seconds, detail)."""
    cmd = list(NAMESPACE) + [os.path.join(env_dir, ".venv", "bin", "python"), "webui.py", "--host", "127.0.0.1",
                             "--port", str(PORT), "--model_dir", os.path.join(cache, "checkpoints")] + version_args
    env = dict(os.environ, HF_HUB_CACHE=os.path.join(cache, "hf_cache"), W=cache, **SERVICE_ENV)
    start = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=env_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        while True:
            code = proc.poll()
            elapsed = time.monotonic() - start
            if code is not None:
                return False, "exit %d" % code, elapsed, failure_reason(log)
            if http_code(proc.pid) == "200":
                return True, "HTTP 200", elapsed, "served GET /"
            if elapsed > timeout:
                return False, "timeout", elapsed, "no HTTP 200 in %.0f s; last: %s" % (timeout, failure_reason(log))
            time.sleep(1)
    finally:
        kill_group(proc)


# -- the cases ---------------------------------------------------------------------

def hub_snapshot(cache, repo):
    root = os.path.join(cache, "hf_cache", "models--" + repo.replace("/", "--"))
    with open(os.path.join(root, "refs", "main")) as f:
        return root, os.path.join(root, "snapshots", f.read().strip())


def label(entry):
    """How the preflight names a missing entry (its documented RV(missing) format)."""
    if entry["kind"] == "checkpoint":
        return "checkpoints %s" % entry["path"]
    if entry["kind"] == "checkpoint_dir":
        return "checkpoints %s/" % entry["path"]
    if entry["kind"] == "hf_flat":
        return "hf_cache (flat) %s" % entry["path"]
    return "hf_cache %s %s" % (entry["repo"], entry["file"])


def remove_entry(entry):
    """A mutation of a cache copy taking ``entry`` away."""
    def mutate(cache):
        if entry["kind"] == "checkpoint":
            os.unlink(os.path.join(cache, "checkpoints", entry["path"]))
        elif entry["kind"] == "checkpoint_dir":
            shutil.rmtree(os.path.join(cache, "checkpoints", entry["path"]))
        elif entry["kind"] == "hf_flat":
            os.unlink(os.path.join(cache, "checkpoints", "hf_cache", entry["path"]))
        else:
            dummy, snapshot = hub_snapshot(cache, entry["repo"])
            os.unlink(os.path.join(snapshot, entry["file"]))
    return mutate


def remove_path(*parts):
    def mutate(cache):
        path = os.path.join(cache, *parts)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    return mutate


def remove_refs_main(repo):
    def mutate(cache):
        root, dummy = hub_snapshot(cache, repo)
        os.unlink(os.path.join(root, "refs", "main"))
    return mutate


def remove_blob(repo, name):
    def mutate(cache):
        dummy, snapshot = hub_snapshot(cache, repo)
        os.unlink(os.path.realpath(os.path.join(snapshot, name)))
    return mutate


def flat_only(cache):
    """The layout of releases from upstream 803a082 on, without the hub cache."""
    subprocess.run([sys.executable, os.path.join(LAB, "flat_hf_cache.py"), os.path.join(cache, "hf_cache"),
                    os.path.join(cache, "checkpoints", "hf_cache")], check=True)
    shutil.rmtree(os.path.join(cache, "hf_cache"))


def cases_for(manifest, era):
    """[(name, kind, mutate, expected missing labels or None)] in the order they run.
    kind: complete, manifest, hub-link, layout, control, probe. Expected labels are
    checked exactly for manifest and hub-link cases; None means the preflight must
    pass."""
    cases = [("complete", "complete", None, None)]
    for entry in manifest:
        name = "-" + (entry.get("path") or "%s:%s" % (entry["repo"], entry["file"]))
        cases.append((name, "manifest", remove_entry(entry), [label(entry)]))
    hub = [e for e in manifest if e["kind"] == "hf_hub"]
    dirs = [e["path"] for e in manifest if e["kind"] == "checkpoint_dir"]
    if era == "hub":
        if hub:
            repo = sorted(set(e["repo"] for e in hub))[-1]
            cases.append(("-%s refs/main" % repo, "hub-link", remove_refs_main(repo),
                          [label(e) for e in hub if e["repo"] == repo]))
            big = max(hub, key=lambda e: e["file"].endswith((".pt", ".bin", ".safetensors")))
            cases.append(("-%s:%s blob" % (big["repo"], big["file"]), "hub-link",
                          remove_blob(big["repo"], big["file"]), [label(big)]))
        cases.append(("flat layout only (no hub cache)", "layout", flat_only, "layout"))
    else:
        cases.append(("hub layout only (no flat hf_cache/)", "layout", remove_path("checkpoints", "hf_cache"),
                      "layout"))
        # The hub cache entirely (MaskGCT too, which 2.5 never reads): nothing of it is needed.
        cases.append(("-hub hf_cache/ entirely", "control", remove_path("hf_cache"), None))
    for directory in dirs:
        for name in DIR_OPTIONAL:
            cases.append(("-%s/%s" % (directory, name), "control", remove_path("checkpoints", directory, name), None))
        for name in DIR_PROBES:
            cases.append(("-%s/%s" % (directory, name), "probe", remove_path("checkpoints", directory, name), None))
    return cases


def naming_problem(kind, expected, result):
    """Why the preflight's failure does not name what was removed; None when it does."""
    missing = result.get("missing") or []
    if kind == "layout":
        words = "indextts2_cache_layout" if "hf_cache (flat)" in " ".join(missing) else "flat layout of later releases"
        return None if words in result.get("msg", "") else "message does not name the layout (%r)" % words
    if not isinstance(expected, list):
        return None
    extra = [m for m in missing if not any(m == e or m.startswith(e + " (") for e in expected)]
    absent = [e for e in expected if not any(m == e or m.startswith(e + " (") for m in missing)]
    if extra or absent:
        return "expected missing %r, got %r" % (expected, missing)
    if not all(e in result.get("msg", "") for e in expected):
        return "message does not name %r" % expected
    return None


@pytest.mark.parametrize("tag", [t for t in PINS
                                 if t in os.environ.get("GAP_PINS", ",".join(PINS)).split(",")])
def test_gap_matrix(tag, tmp_path_factory, gap_recorder):
    commit = PINS[tag]
    pin_start = time.monotonic()
    env_dir, weights = ensure_assets(commit)
    base = work_dir(tmp_path_factory, weights)
    logs = os.path.join(base, "logs")
    os.makedirs(logs)

    # The golden cache: hard links of the lab weights, laid out by the real module.
    golden = os.path.join(base, "golden")
    for part in ("checkpoints", "hf_cache"):
        link_farm(os.path.join(weights, part), os.path.join(golden, part))
    layout, failed = run_module("indextts2_cache_layout", {"app_dir": env_dir, "cache_dir": golden}, base)
    assert not failed, layout
    full, failed = preflight(env_dir, golden, base, "")
    assert not failed and full["missing"] == [], full
    manifest, era, version = full["manifest"], full["era"], full["model_version"]
    assert era == layout["era"]
    print("\n%s: era %s, model version %s, %d manifest entries, laid out %s"
          % (tag, era, version, len(manifest), layout.get("linked")))

    cases = cases_for(manifest, era)

    def run_case(index):
        name, kind, mutate, expected = cases[index]
        case_start = time.monotonic()
        cache = os.path.join(base, "case-%02d" % index)
        args_dir = os.path.join(base, "args-%02d" % index)
        os.makedirs(args_dir)
        link_farm(golden, cache)
        if mutate:
            mutate(cache)
        result, pf_failed = preflight(env_dir, cache, args_dir, version)
        log = os.path.join(logs, "case-%02d.log" % index)
        served, outcome, dummy, detail = run_app(env_dir, cache, full["webui_args"], log,
                                                 COMPLETE_TIMEOUT if kind == "complete" else APP_TIMEOUT)
        verdict = ("FAIL: %s" % "; ".join(result.get("missing") or [result.get("msg", "")[:200]])
                   if pf_failed else "pass")
        gap_recorder.row(tag, name, kind, verdict, outcome, pf_failed != served, time.monotonic() - case_start, detail)
        shutil.rmtree(cache)
        return name, kind, expected, result, pf_failed, served, outcome, detail, log

    disagreements, misnamed = [], []
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        for name, kind, expected, result, pf_failed, served, outcome, detail, log in pool.map(run_case, range(len(cases))):
            if pf_failed == served:
                disagreements.append("%s %s (%s): preflight %s (%s); app %s: %s\nlast log lines of %s:\n%s"
                                     % (tag, name, kind, "failed" if pf_failed else "passed", result.get("msg", ""),
                                        outcome, detail, log, tail(log)))
            problem = naming_problem(kind, expected, result) if pf_failed else None
            if problem:
                misnamed.append("%s %s: %s" % (tag, name, problem))
            if kind == "complete" and not (served and not pf_failed):
                disagreements.insert(0, "the complete cache must pass the preflight and serve")
    gap_recorder.pin_time(tag, time.monotonic() - pin_start, len(cases))
    if disagreements or misnamed:
        pytest.fail("\n\n".join(misnamed + disagreements), pytrace=False)
