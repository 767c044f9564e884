#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: indextts2_preflight
short_description: Prove an IndexTTS2 install will start offline from its model cache
version_added: 0.1.0
description:
  - Run before starting IndexTTS2. Checks that every file the pinned IndexTTS2 reads at
    start is in place, so the application never tries to download a model (which, with
    C(HF_HUB_OFFLINE=1), is an error at start, and without it a silent download).
  - The checkpoint files in O(model_dir), and every Hugging Face file in O(hf_files),
    resolved as huggingface_hub resolves them offline (C(refs/main), then the snapshot
    of that commit, then the blob the snapshot links to).
  - Reads the installed source to learn what the pinned version does. Some IndexTTS2
    releases set C(HF_HUB_CACHE) to C(./checkpoints/hf_cache) in their code, overriding
    the environment; the cache checked is then that one, relative to O(app_dir), the
    service's working directory. Older C(webui.py) take no C(--version) option.
  - Fails listing exactly which files are missing; changes nothing.
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
      - The Hugging Face cache the service's environment names (C(HF_HUB_CACHE)).
        Ignored, with the reason in RV(hf_cache_from), when the source overrides it.
    type: path
    required: true
  checkpoint_files:
    description: Files IndexTTS2 checks in O(model_dir) at start.
    type: list
    elements: str
    default: [bpe.model, gpt.pth, config.yaml, s2mel.pth, wav2vec2bert_stats.pt]
  hf_files:
    description:
      - The Hugging Face files it loads, as a mapping of repo id (C(org/name)) to the
        list of files in that repo.
    type: dict
    required: true
  model_version:
    description:
      - The model version to serve (C(--version) of newer C(webui.py), V(2) or V(2.5)).
        Empty to pass no C(--version). A build whose C(webui.py) has no C(--version)
        serves IndexTTS2 only, so it accepts V(2) (passing nothing) and refuses others.
    type: str
    default: ""
notes:
  - Checks presence and resolution, not content; model_cache_sync verifies content.
seealso:
  - module: indextts.deploy.cache_link
  - module: indextts.deploy.model_cache_sync
"""

EXAMPLES = r"""
- name: Prove the cache is complete for the pinned IndexTTS2
  indextts.deploy.indextts2_preflight:
    app_dir: /opt/indextts2/current
    hf_cache: /srv/indextts/cache/hf_cache
    model_version: "2"
    hf_files:
      facebook/w2v-bert-2.0: [config.json, preprocessor_config.json, model.safetensors]
      amphion/MaskGCT: [semantic_codec/model.safetensors]
      funasr/campplus: [campplus_cn_common.bin]
      nvidia/bigvgan_v2_22khz_80band_256x: [config.json, bigvgan_generator.pt]
  register: preflight
"""

RETURN = r"""
hf_cache:
  description: The Hugging Face cache the application will read, resolved to a real path.
  returned: always
  type: str
  sample: /srv/indextts/cache/hf_cache
hf_cache_from:
  description: Why that cache (C(environment), or the source file that sets it).
  returned: always
  type: str
  sample: environment
webui_args:
  description: The version arguments to pass to C(webui.py) (empty when it takes none).
  returned: always
  type: list
  elements: str
  sample: [--version, "2"]
checked:
  description: How many files were checked.
  returned: always
  type: int
  sample: 13
missing:
  description: Each missing file, with the reason for Hugging Face files.
  returned: always
  type: list
  elements: str
  sample: ["hf_cache funasr/campplus campplus_cn_common.bin (no refs/main)"]
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.indextts.deploy.plugins.module_utils._hfcache import cached_file_problem

# An unconditional `os.environ['HF_HUB_CACHE'] = '<literal>'` in the source: it wins
# over the service's environment. (Newer releases only set it when it is unset.)
_HF_OVERRIDE_RE = re.compile(r"""^os\.environ\[\s*["']HF_HUB_CACHE["']\s*\]\s*=\s*["']([^"']+)["']""", re.M)
_VERSION_OPTION_RE = re.compile(r"""add_argument\(\s*["']--version["']""")
# Where IndexTTS2 decides its cache at import time.
SOURCE_FILES = ("webui.py", "indextts/infer_v2.py", "indextts/infer_v2_5.py", "indextts/infer.py")


def read_source(app_dir, rel):
    try:
        with open(os.path.join(app_dir, rel)) as f:
            return f.read()
    except (IOError, OSError):
        return None


def source_hf_override(sources):
    """(file, path) of the first unconditional HF_HUB_CACHE assignment, else None.
    ``sources`` maps relative file names to their text (None when absent)."""
    for rel in SOURCE_FILES:
        m = _HF_OVERRIDE_RE.search(sources.get(rel) or "")
        if m:
            return rel, m.group(1)
    return None


def version_args(webui_source, model_version):
    """(args, error): the --version arguments for webui.py, or why none can serve it."""
    if not model_version:
        return [], None
    if _VERSION_OPTION_RE.search(webui_source):
        return ["--version", model_version], None
    if model_version == "2":
        return [], None
    return None, ("model_version is %s, but this IndexTTS2 build's webui.py has no --version "
                  "option and serves IndexTTS2 (version 2) only; set model_version to 2 or "
                  "install a newer release" % model_version)


class Preflight(object):
    def __init__(self, module):
        self.module = module
        p = module.params
        self.app_dir = p["app_dir"]
        self.model_dir = p["model_dir"] or os.path.join(self.app_dir, "checkpoints")

    # -- inspect: reads only ---------------------------------------------------
    def check_params(self):
        p = self.module.params
        if not os.path.isfile(os.path.join(self.app_dir, "webui.py")):
            self.module.fail_json(msg="app_dir %s holds no webui.py; install IndexTTS2 there first, "
                                      "or point app_dir at its source tree" % self.app_dir)
        for repo, files in p["hf_files"].items():
            if not isinstance(files, list) or not files or not all(isinstance(f, str) and f for f in files):
                self.module.fail_json(msg="hf_files[%r] must be a non-empty list of file names in that "
                                          "repo, got %r" % (repo, files))
        if p["model_version"] not in ("", "2", "2.5"):
            self.module.fail_json(msg="model_version must be 2, 2.5 or empty, got %r" % p["model_version"])

    def effective_hf_cache(self, sources):
        override = source_hf_override(sources)
        if override is None:
            return self.module.params["hf_cache"], "environment"
        rel, path = override
        # A relative path is relative to the working directory, which is app_dir, and
        # app_dir/checkpoints is (or will be) model_dir.
        inside = os.path.normpath(path)
        if inside == "checkpoints" or inside.startswith("checkpoints" + os.sep):
            resolved = os.path.join(self.model_dir, inside[len("checkpoints"):].lstrip(os.sep))
        else:
            resolved = os.path.join(self.app_dir, path)
        return resolved.rstrip(os.sep), "%s (sets HF_HUB_CACHE=%s itself)" % (rel, path)

    def missing(self, hf_cache):
        p = self.module.params
        gaps, checked = [], 0
        for name in p["checkpoint_files"]:
            checked += 1
            if not os.path.exists(os.path.join(self.model_dir, name)):
                gaps.append("checkpoints %s" % name)
        for repo in sorted(p["hf_files"]):
            for name in p["hf_files"][repo]:
                checked += 1
                problem = cached_file_problem(hf_cache, repo, name)
                if problem:
                    gaps.append("hf_cache %s %s (%s)" % (repo, name, problem))
        return gaps, checked

    def run(self):
        self.check_params()
        sources = dict((rel, read_source(self.app_dir, rel)) for rel in SOURCE_FILES)
        args, error = version_args(sources["webui.py"], self.module.params["model_version"])
        if error:
            self.module.fail_json(msg=error)
        hf_cache, hf_cache_from = self.effective_hf_cache(sources)
        gaps, checked = self.missing(hf_cache)
        result = {"changed": False, "hf_cache": os.path.realpath(hf_cache), "hf_cache_from": hf_cache_from,
                  "webui_args": args, "checked": checked, "missing": gaps}
        if gaps:
            result["msg"] = ("IndexTTS2 in %s would try to download %d of the %d files it loads at "
                             "start; with HF_HUB_OFFLINE=1 it would fail instead. Missing from model_dir "
                             "%s and Hugging Face cache %s (%s): %s. Complete the cache on the golden "
                             "host and sync again." % (self.app_dir, len(gaps), checked, self.model_dir,
                                                       hf_cache, hf_cache_from, "; ".join(gaps)))
            self.module.fail_json(**result)
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            app_dir=dict(type="path", required=True),
            model_dir=dict(type="path"),
            hf_cache=dict(type="path", required=True),
            checkpoint_files=dict(type="list", elements="str",
                                  default=["bpe.model", "gpt.pth", "config.yaml", "s2mel.pth",
                                           "wav2vec2bert_stats.pt"]),
            hf_files=dict(type="dict", required=True),
            model_version=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**Preflight(module).run())


if __name__ == "__main__":
    main()
