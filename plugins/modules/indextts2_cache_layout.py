#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: indextts2_cache_layout
short_description: Lay out and check the golden IndexTTS2 model cache for a release
version_added: 0.1.0
description:
  - Runs on the golden host, on the authoritative cache O(cache_dir) (C(checkpoints/) and a
    Hugging Face hub cache C(hf_cache/)), before any node pulls it.
  - Releases from upstream commit 803a082 on (v2.5.0) read their Hugging Face models from a
    flat C(<model_dir>/hf_cache/) (C(w2v-bert-2.0/), C(semantic_codec_model.safetensors),
    C(campplus_cn_common.bin), C(bigvgan/)) and, when it is missing, copy them there out of
    a hub cache at first start, which fails on a read-only cache. For such a release this
    module builds C(<cache_dir>/checkpoints/hf_cache/) once, here, as hard links to the
    blobs of the hub cache (resolved C(refs/main) -> snapshot -> blob), so it takes no space
    and nodes get it with the cache. What the release reads and where comes from its source
    (see M(indextts.deploy.indextts2_preflight)).
  - A flat path that already holds the blob (the same inode) is left alone. A file there with
    the blob's content (sha256 for LFS blobs, else byte for byte), or a link to another blob of
    the same repo (an earlier revision laid out before), is replaced by the link. Any
    other file, symlink or directory there is never touched; the module fails naming each,
    before changing anything.
  - Never follows a link out of O(cache_dir); snapshot entries must link into their repo's
    C(blobs/), and the flat directories must be real directories inside O(cache_dir).
  - Releases that read the hub layout (before 803a082, v2.0.0) need nothing laid out.
  - Then checks the whole manifest of the release (the same check as
    M(indextts.deploy.indextts2_preflight), that is the checkpoints named by C(config.yaml), the flat or
    hub files) and fails naming every missing file.
author:
  - indextts.deploy maintainers (@indextts)
attributes:
  check_mode:
    description: Reports what it would link (RV(linked)) and checks the cache as it would be after.
    support: full
  diff_mode:
    description: The flat files in place before and after.
    support: full
options:
  app_dir:
    description: The source tree of the pinned IndexTTS2 release (holding C(webui.py)).
    type: path
    required: true
  cache_dir:
    description:
      - The golden cache, holding C(checkpoints/) (the model directory, C(--model_dir) on
        the nodes) and C(hf_cache/) (a Hugging Face hub cache). Hard links need both on one
        filesystem.
    type: path
    required: true
  model_version:
    description: The model version the nodes will serve. Empty for the release's default.
    type: str
    default: ""
notes:
  - Nodes must receive the flat files as files; rsync without C(-H) sends each link as a
    copy of the blob, which is correct but moves those bytes twice.
seealso:
  - module: indextts.deploy.indextts2_preflight
  - module: indextts.deploy.model_cache_sync
"""

EXAMPLES = r"""
- name: Lay out the golden cache for the pinned release and prove it complete
  indextts.deploy.indextts2_cache_layout:
    app_dir: /opt/indextts2/releases/39207d9
    cache_dir: /srv/indextts/cache
  register: layout
"""

RETURN = r"""
linked:
  description: >-
    Flat paths (relative to C(<cache_dir>/checkpoints/hf_cache)) linked to their blob in this
    run, or that would be in check mode.
  returned: always
  type: list
  elements: str
  sample: [w2v-bert-2.0/model.safetensors, bigvgan/bigvgan_generator.pt]
era:
  description: C(flat) (laid out here) or C(hub) (nothing to lay out).
  returned: always
  type: str
  sample: flat
model_version:
  description: The model version laid out and checked.
  returned: always
  type: str
  sample: "2.5"
flat_dir:
  description: The flat directory (C(<cache_dir>/checkpoints/hf_cache)).
  returned: always
  type: str
  sample: /srv/indextts/cache/checkpoints/hf_cache
manifest:
  description: What the release reads at start, as the manifest indextts.deploy.indextts2_preflight returns.
  returned: always
  type: list
  elements: dict
  sample: [{kind: hf_flat, path: campplus_cn_common.bin, repo: funasr/campplus, file: campplus_cn_common.bin,
            why: "indextts/infer_v2_5.py:216 reads hf_cache/campplus_cn_common.bin"}]
missing:
  description: Each entry of the manifest not in place after the layout.
  returned: always
  type: list
  elements: str
  sample: ["checkpoints feat1.pt", "hf_cache (flat) bigvgan/bigvgan_generator.pt (not in snapshot 4c1fa0b2aa3c)"]
"""

import errno
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.indextts.deploy.plugins.module_utils import _indextts2 as release
from ansible_collections.indextts.deploy.plugins.module_utils._hfcache import blob_matches, resolve_blob

_TMP_SUFFIX = ".indextts2-layout.tmp"


def inside(path, root):
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class CacheLayout(object):
    def __init__(self, module):
        self.module = module
        p = module.params
        self.app_dir = p["app_dir"]
        self.cache_dir = p["cache_dir"].rstrip(os.sep) or os.sep
        self.model_dir = os.path.join(self.cache_dir, "checkpoints")
        self.hub = os.path.join(self.cache_dir, "hf_cache")
        self.flat_dir = os.path.join(self.model_dir, release.FLAT_DIR)

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, **kwargs)

    # -- inspect: reads only ---------------------------------------------------
    def inspect(self):
        if not os.path.isfile(os.path.join(self.app_dir, "webui.py")):
            self.fail("app_dir %s holds no webui.py; point it at the IndexTTS2 release's source tree" % self.app_dir)
        if not os.path.isdir(self.model_dir):
            self.fail("cache_dir %s has no checkpoints/ directory; put the model's checkpoints there first"
                      % self.cache_dir)
        try:
            facts = release.release_facts(self.app_dir)
            version, info, error = release.version_facts(facts, self.module.params["model_version"])
            if error:
                self.fail(error, versions=facts["versions"])
            entries = release.manifest(facts, version, release.read_config(self.model_dir))
        except release.ReleaseError as e:
            self.fail(str(e))
        return facts, version, info, entries

    def flat_state(self, entry):
        """(state, blob, detail) of one flat file: ``linked`` (already the blob),
        ``absent``, ``same`` (a copy with the blob's content), ``older`` (a link to an
        older blob of the repo, from an earlier revision), ``foreign`` (anything else;
        never touched) or ``unresolved`` (no blob to link: reported missing)."""
        blob, problem = resolve_blob(self.hub, entry["repo"], entry["file"])
        if blob is not None and not inside(blob, self.cache_dir):
            blob, problem = None, "blob %s is outside cache_dir" % os.path.realpath(blob)
        dest = os.path.join(self.flat_dir, entry["path"])
        if os.path.islink(dest):
            return "foreign", blob, "a symlink (to %s)" % os.readlink(dest)
        if os.path.isdir(dest):
            return "foreign", blob, "a directory"
        if os.path.lexists(dest) and not os.path.isfile(dest):
            return "foreign", blob, "not a regular file"
        if blob is None:
            return "unresolved", None, problem
        if not os.path.exists(dest):
            return "absent", blob, None
        if os.path.samefile(dest, blob):
            return "linked", blob, None
        if blob_matches(blob, dest):
            return "same", blob, None
        if self.older_blob(blob, dest):
            return "older", blob, None
        return "foreign", blob, "a different file (its content is not that of %s %s)" % (entry["repo"], entry["file"])

    @staticmethod
    def older_blob(blob, dest):
        """Whether ``dest`` is a link to another blob of the same repo: laid out here
        from an earlier revision, so the link may move to the current one."""
        blobs = os.path.dirname(blob)
        st = os.stat(dest)
        for name in os.listdir(blobs):
            other = os.path.join(blobs, name)
            if not os.path.islink(other) and os.path.isfile(other):
                ost = os.stat(other)
                if (ost.st_ino, ost.st_dev) == (st.st_ino, st.st_dev):
                    return True
        return False

    def unsafe_dirs(self, entries):
        """The flat directories that are symlinks or lead out of cache_dir."""
        bad = []
        dirs = set([self.model_dir, self.flat_dir])
        for entry in entries:
            parts = entry["path"].split("/")[:-1]
            for i in range(len(parts)):
                dirs.add(os.path.join(self.flat_dir, *parts[:i + 1]))
        for d in sorted(dirs):
            if os.path.islink(d) and d != self.model_dir:
                bad.append("%s is a symlink (to %s)" % (d, os.readlink(d)))
            elif os.path.lexists(d) and not os.path.isdir(d):
                bad.append("%s is not a directory" % d)
            elif os.path.exists(d) and not inside(d, self.cache_dir):
                bad.append("%s leads out of cache_dir" % d)
        return bad

    # -- plan: what must change ---------------------------------------------------
    def plan(self, info, entries):
        flat = [e for e in entries if e["kind"] == "hf_flat"]
        links, before, unresolved = [], [], {}
        if info["era"] != "flat" or not flat:
            return links, before, unresolved
        bad = self.unsafe_dirs(flat)
        for entry in flat:
            state, blob, detail = self.flat_state(entry)
            if state == "foreign":
                bad.append("%s is %s" % (os.path.join(self.flat_dir, entry["path"]), detail))
            elif state == "unresolved":
                unresolved[release.entry_label(entry)] = "hub %s %s: %s" % (entry["repo"], entry["file"], detail)
            else:
                if state in ("absent", "same", "older"):
                    links.append((entry["path"], blob))
                if state in ("linked", "same"):
                    before.append(entry["path"])
        if bad:
            self.fail("refusing to lay out the flat hf_cache for IndexTTS2 in %s: %s. Nothing was changed; move "
                      "these aside (they are not the hub cache's blobs) and run again" % (self.app_dir, "; ".join(bad)),
                      era=info["era"], linked=[], missing=[], manifest=entries)
        return links, before, unresolved

    # -- apply ------------------------------------------------------------------------
    def make_dirs(self, path):
        missing = []
        d = os.path.dirname(path)
        while not os.path.isdir(d):
            missing.append(d)
            d = os.path.dirname(d)
        parent = os.stat(d)
        for d in reversed(missing):
            os.mkdir(d, 0o755)
            if os.geteuid() == 0:
                os.chown(d, parent.st_uid, parent.st_gid)

    def link(self, rel, blob):
        dest = os.path.join(self.flat_dir, rel)
        tmp = dest + _TMP_SUFFIX
        try:
            self.make_dirs(dest)
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.link(blob, tmp)
            os.rename(tmp, dest)
        except OSError as e:
            if e.errno == errno.EXDEV:
                self.fail("cannot hard-link %s to %s: the hub cache and checkpoints/ are on different filesystems; "
                          "keep cache_dir on one filesystem" % (blob, dest))
            self.fail("cannot link %s to %s: %s" % (blob, dest, e.strerror or e))

    def run(self):
        _facts, version, info, entries = self.inspect()
        links, before, unresolved = self.plan(info, entries)
        linked = [rel for rel, _blob in links]
        if links and not self.module.check_mode:
            for rel, blob in links:
                self.link(rel, blob)
        missing, checked = release.check(entries, self.model_dir, self.hub,
                                         present=set(linked) if self.module.check_mode else ())
        missing = ["%s (%s)" % (m, unresolved[m]) if m in unresolved else m for m in missing]
        result = {"changed": bool(links), "linked": linked, "era": info["era"], "model_version": version,
                  "flat_dir": self.flat_dir, "manifest": entries, "missing": missing, "checked": checked}
        if self.module._diff and info["era"] == "flat":
            after = sorted(set(before) | set(linked))
            result["diff"] = {"before_header": self.flat_dir, "after_header": self.flat_dir,
                              "before": "".join(p + "\n" for p in sorted(before)),
                              "after": "".join(p + "\n" for p in after)}
        if missing:
            self.fail("the golden cache %s is not complete for IndexTTS2 %s (model version %s, %s layout): %d of "
                      "the %d files it reads at start are missing: %s. Add them on the golden host (checkpoints/ "
                      "from the model repo, Hugging Face files into hf_cache/) before any node pulls."
                      % (self.cache_dir, info["module"], version, info["era"], len(missing), checked,
                         "; ".join(missing)), **result)
        return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            app_dir=dict(type="path", required=True),
            cache_dir=dict(type="path", required=True),
            model_version=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**CacheLayout(module).run())


if __name__ == "__main__":
    main()
