#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: indextts2_preflight
short_description: Prove an IndexTTS2 install will start offline from its model cache
version_added: 0.1.0
description:
  - Run before starting IndexTTS2. Checks that every file the installed IndexTTS2 release
    reads at start is in place, so the application never tries to download a model (which,
    with C(HF_HUB_OFFLINE=1), is an error at start, and without it a silent download), and
    never tries to write into a read-only cache.
  - Learns what to check from the release itself (O(app_dir)), not from a list kept by hand.
    It reads C(webui.py) for the model versions it serves (C(--version) choices and default;
    releases before v2.5.0 have no C(--version) and serve version 2 only) and the inference
    module that serves the chosen version; the checkpoint names come from the cache's
    C(config.yaml) (C(gpt_checkpoint), C(s2mel_checkpoint), C(w2v_stat), C(emo_matrix),
    C(spk_matrix), C(qwen_emo_path), C(dataset.bpe_model), C(vocoder.name)), the lists
    C(webui.py) checks itself are added, and for version 2 those of C(indextts/cli_v2.py).
    RV(manifest) lists everything checked and why.
  - Releases before upstream commit 803a082 (v2.0.0) read the Hugging Face models through the
    hub layout, resolved here as huggingface_hub resolves them offline (C(refs/main), then the
    snapshot of that commit, then the blob it links to), in O(hf_cache). C(webui.py) imports
    gradio, and with it huggingface_hub, before the inference module that sets C(HF_HUB_CACHE)
    in code, so the environment's C(HF_HUB_CACHE) wins; the module checks that order in the
    source (RV(hf_cache_from) says what it found).
  - Releases from 803a082 on (v2.5.0) read them from a flat C(<model_dir>/hf_cache/)
    (C(w2v-bert-2.0/), C(semantic_codec_model.safetensors), C(campplus_cn_common.bin),
    C(bigvgan/)) and, when that is missing, copy them there out of a hub cache at first start,
    which fails on a read-only cache. Lay the flat cache out on the golden host with
    M(indextts.deploy.indextts2_cache_layout). A cache in the other release's layout is named
    as such in the failure.
  - Refuses a O(model_version) the release does not serve (naming those it does), and one it
    serves but cannot synthesize with (v2.5.0's web UI passes C(duration_factor) to the
    version 2 model, which does not take it; the page loads, speech fails).
  - Fails listing every missing file; changes nothing.
author:
  - indextts.deploy maintainers (@indextts)
attributes:
  check_mode:
    description: Read-only; runs the same in check mode.
    support: full
  diff_mode:
    description: Changes nothing, so there is no diff.
    support: none
options:
  app_dir:
    description: The IndexTTS2 source tree the service runs from (its working directory, holding C(webui.py)).
    type: path
    required: true
  model_dir:
    description:
      - The checkpoints directory the application will read through C(--model_dir), that is
        what C(<app_dir>/checkpoints) points at, or will point at once linked (the check
        runs before the link is made). Defaults to C(<app_dir>/checkpoints).
    type: path
  hf_cache:
    description:
      - The Hugging Face hub cache the service's environment names (C(HF_HUB_CACHE)).
      - Required for releases that read the hub layout (before 803a082), unless the
        release sets the cache in code before huggingface_hub is imported (then that path
        is checked; RV(hf_cache_from) says so). Releases reading the flat layout ignore
        it, except to check O(hf_files) and to recognise a cache that was not laid out.
    type: path
  model_version:
    description:
      - The model version to serve (C(--version) of C(webui.py)). Empty for the release's
        default (C(2.5) on v2.5.0, C(2) on releases without C(--version)).
    type: str
    default: ""
  checkpoint_files:
    description:
      - Files to check in O(model_dir) in addition to those the release reads. Paths
        relative to O(model_dir); absolute paths and C(..) are refused.
    type: list
    elements: str
    default: []
  hf_files:
    description:
      - Hugging Face files to check in the hub cache O(hf_cache) in addition to those the
        release reads, as a mapping of repo id (C(org/name)) to the list of files in that
        repo. Paths with C(..) or absolute are refused.
    type: dict
    default: {}
  mount_point:
    description:
      - The mount the cache must lie under (for example the iSCSI LUN's). When the cache
        (O(model_dir), and O(hf_cache) when given) is not on it, the module fails before
        reading anything, so an unmounted LUN is never judged by the empty directory under it.
    type: path
  require_mount:
    description:
      - Fail when the cache lies on the root filesystem rather than on a mounted cache.
        Implied by O(mount_point).
    type: bool
    default: false
notes:
  - Checks presence and resolution, not content; model_cache_sync verifies content.
seealso:
  - module: indextts.deploy.indextts2_cache_layout
  - module: indextts.deploy.cache_link
  - module: indextts.deploy.model_cache_sync
"""

EXAMPLES = r"""
- name: Prove the cache is complete for the pinned IndexTTS2 (before the link is made)
  indextts.deploy.indextts2_preflight:
    app_dir: /opt/indextts2/releases/39207d9
    model_dir: /srv/indextts/cache/checkpoints
    hf_cache: /srv/indextts/cache/hf_cache
  register: preflight

- name: Start the web UI with the arguments the release takes
  ansible.builtin.debug:
    msg: "webui.py --model_dir /srv/indextts/cache/checkpoints {{ preflight.webui_args | join(' ') }}"
"""

RETURN = r"""
era:
  description: >-
    How the release reads its Hugging Face models: C(hub) (the hub layout, before upstream
    803a082) or C(flat) (C(<model_dir>/hf_cache/), from 803a082 on).
  returned: success or a missing file
  type: str
  sample: flat
model_version:
  description: The model version checked (O(model_version), or the release's default).
  returned: success or a missing file
  type: str
  sample: "2.5"
versions:
  description: The model versions the release's C(webui.py) serves.
  returned: success or a missing file
  type: list
  elements: str
  sample: ["2", "2.5"]
webui_args:
  description: The version arguments to pass to C(webui.py) (empty when it takes none).
  returned: success or a missing file
  type: list
  elements: str
  sample: [--version, "2.5"]
hf_cache:
  description: The Hugging Face cache checked, resolved to a real path (the flat directory for C(flat) releases).
  returned: success or a missing file
  type: str
  sample: /srv/indextts/cache/checkpoints/hf_cache
hf_cache_from:
  description: Why that cache, with the places in the source that decide it.
  returned: success or a missing file
  type: str
  sample: "environment: webui.py:50 imports gradio (and with it huggingface_hub ...) before webui.py:51 imports indextts/infer_v2.py ..."
manifest:
  description: >-
    What was checked: one entry per file or directory, with C(kind) (C(checkpoint),
    C(checkpoint_dir), C(hf_hub), C(hf_flat), C(config_key)), C(path) or C(repo) and C(file),
    and C(why) (the key of C(config.yaml) and the line of the source that reads it).
  returned: success or a missing file
  type: list
  elements: dict
  sample: [{kind: checkpoint, path: feat1.pt, why: "config.yaml spk_matrix, read by indextts/infer_v2.py:186"}]
checked:
  description: How many entries were checked.
  returned: success or a missing file
  type: int
  sample: 15
missing:
  description: Each entry not in place, with the reason where it is more than absence.
  returned: success or a missing file
  type: list
  elements: str
  sample: ["checkpoints feat1.pt", "hf_cache funasr/campplus campplus_cn_common.bin (no refs/main)",
           "hf_cache (flat) w2v-bert-2.0/model.safetensors"]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.indextts.deploy.plugins.module_utils import _indextts2 as release
from ansible_collections.indextts.deploy.plugins.module_utils._hfcache import repo_dir_name
from ansible_collections.indextts.deploy.plugins.module_utils._paths import mount_problem


class Preflight(object):
    def __init__(self, module):
        self.module = module
        p = module.params
        self.app_dir = p["app_dir"].rstrip(os.sep) or os.sep
        self.model_dir = p["model_dir"] or os.path.join(self.app_dir, "checkpoints")

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, **kwargs)

    # -- inspect: reads only ---------------------------------------------------
    def additions(self):
        """The extra entries asked for, refusing any path that would leave the cache."""
        p = self.module.params
        entries, bad = [], []
        for name in p["checkpoint_files"]:
            problem = release.safe_relpath(name)
            if problem:
                bad.append("checkpoint_files %r: %s" % (name, problem))
            else:
                entries.append({"kind": "checkpoint", "path": name, "why": "checkpoint_files"})
        for repo in sorted(p["hf_files"]):
            files = p["hf_files"][repo]
            if not repo_dir_name(repo):
                bad.append("hf_files %r: not a repo id (org/name)" % repo)
                continue
            if not isinstance(files, list) or not files or not all(isinstance(f, str) and f for f in files):
                bad.append("hf_files[%r] must be a non-empty list of file names in that repo, got %r" % (repo, files))
                continue
            for name in files:
                problem = release.safe_relpath(name)
                if problem:
                    bad.append("hf_files[%r] %r: %s" % (repo, name, problem))
                else:
                    entries.append({"kind": "hf_hub", "repo": repo, "file": name, "why": "hf_files"})
        if bad:
            self.fail("refusing paths that would leave the cache or are not paths in it: %s" % "; ".join(bad))
        return entries

    def inspect(self):
        """Read the release and the cache's config.yaml: (facts, version, info, config)."""
        if not os.path.isfile(os.path.join(self.app_dir, "webui.py")):
            self.fail("app_dir %s holds no webui.py; install IndexTTS2 there first, or point app_dir at its "
                      "source tree" % self.app_dir)
        try:
            facts = release.release_facts(self.app_dir)
            version, info, error = release.version_facts(facts, self.module.params["model_version"])
            if error:
                self.fail(error, versions=facts["versions"])
            config = release.read_config(self.model_dir)
        except release.ReleaseError as e:
            self.fail(str(e))
        return facts, version, info, config

    def hub_cache(self, info):
        """(path, from): the hub cache a hub-era release reads."""
        given = self.module.params["hf_cache"]
        if info["hf_cache_env_wins"]:
            if not given:
                self.fail("hf_cache is required for this IndexTTS2 release: it reads the Hugging Face hub cache "
                          "named by HF_HUB_CACHE in the service's environment (%s)" % info["hf_cache_reason"])
            return given, "environment: %s" % info["hf_cache_reason"]
        # The release sets it in code, relative to the working directory (app_dir),
        # where app_dir/checkpoints is (or will be) model_dir.
        path = info["hf_cache_override"]
        inside = os.path.normpath(path)
        if inside == "checkpoints" or inside.startswith("checkpoints" + os.sep):
            resolved = os.path.join(self.model_dir, inside[len("checkpoints"):].lstrip(os.sep))
        else:
            resolved = os.path.join(self.app_dir, path)
        return resolved.rstrip(os.sep), info["hf_cache_reason"]

    # -- plan: what the release needs, and what of it is missing -----------------
    def plan(self, facts, version, info, config):
        try:
            entries = release.manifest(facts, version, config) + self.additions()
        except release.ReleaseError as e:
            self.fail(str(e))
        if info["era"] == "flat":
            hf_cache = os.path.join(self.model_dir, release.FLAT_DIR)
            hf_cache_from = ("flat: %s reads %s/ (the layout of releases from upstream 803a082 on); "
                             "HF_HUB_CACHE is not read for these" % (info["module"], hf_cache))
            hub = self.module.params["hf_cache"]
        else:
            hf_cache, hf_cache_from = self.hub_cache(info)
            hub = hf_cache
        missing, checked = release.check(entries, self.model_dir, hub)
        return entries, missing, checked, hf_cache, hf_cache_from, hub

    def check_mount(self):
        """The cache is on the mount it should be on, before anything of it is read."""
        p = self.module.params
        if not (p["mount_point"] or p["require_mount"]):
            return
        for name, path in (("model_dir", self.model_dir), ("hf_cache", p["hf_cache"])):
            if path:
                problem = mount_problem(path, name, p["mount_point"], p["require_mount"])[1]
                if problem:
                    self.fail(problem)

    def run(self):
        self.check_mount()
        facts, version, info, config = self.inspect()
        entries, missing, checked, hf_cache, hf_cache_from, hub = self.plan(facts, version, info, config)
        result = {"changed": False, "era": info["era"], "model_version": version, "versions": facts["versions"],
                  "webui_args": release.webui_args(facts, version), "hf_cache": os.path.realpath(hf_cache),
                  "hf_cache_from": hf_cache_from, "manifest": entries, "checked": checked, "missing": missing}
        if missing:
            mismatch = release.layout_mismatch(info["era"], entries, missing, self.model_dir, hub)
            where = ("model_dir %s and its flat %s/" % (self.model_dir, hf_cache) if info["era"] == "flat"
                     else "model_dir %s and the Hugging Face cache %s" % (self.model_dir, hf_cache))
            msg = ("IndexTTS2 %s (model version %s) in %s would not start offline: %d of the %d files it reads at "
                   "start are missing from %s: %s. "
                   % (info["module"], version, self.app_dir, len(missing), checked, where, "; ".join(missing)))
            if mismatch:
                msg += mismatch[0].upper() + mismatch[1:] + "."
            elif info["era"] == "flat":
                msg += ("Complete the cache on the golden host (indextts.deploy.indextts2_cache_layout lays out "
                        "and checks the flat hf_cache) and sync again.")
            else:
                msg += "Complete the cache on the golden host and sync again."
            self.fail(msg, **result)
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            app_dir=dict(type="path", required=True),
            model_dir=dict(type="path"),
            hf_cache=dict(type="path"),
            model_version=dict(type="str", default=""),
            checkpoint_files=dict(type="list", elements="str", default=[]),
            hf_files=dict(type="dict", default={}),
            mount_point=dict(type="path"),
            require_mount=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**Preflight(module).run())


if __name__ == "__main__":
    main()
