# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""indextts2_preflight on the real releases (tests/unit/plugins/conftest.py) and small
synthetic caches in their real layouts."""

import os
import shutil
import subprocess

import pytest

from ansible_collections.indextts.deploy.plugins.module_utils._paths import mount_of
from ansible_collections.indextts.deploy.plugins.modules import indextts2_cache_layout, indextts2_preflight

from conftest import V25_CHECKPOINTS
from harness import run_real

HUB_MANIFEST = 15


def preflight(app, cache, **extra):
    params = dict({"app_dir": str(app), "model_dir": str(cache / "checkpoints"),
                   "hf_cache": str(cache / "hf_cache")}, **extra)
    return run_real(indextts2_preflight.main, params)


def test_complete_hub_cache_passes_v200(releases, make_cache):
    cache = make_cache()
    result, failed = preflight(releases["v2.0.0"], cache)
    assert not failed, result
    assert result["changed"] is False and result["missing"] == []
    assert result["era"] == "hub" and result["model_version"] == "2" and result["versions"] == ["2"]
    assert result["webui_args"] == [] and result["checked"] == HUB_MANIFEST == len(result["manifest"])
    assert result["hf_cache"] == str(cache / "hf_cache")
    assert result["hf_cache_from"].startswith("environment: webui.py:50 imports gradio")
    assert {"kind": "checkpoint", "path": "feat1.pt",
            "why": "config.yaml spk_matrix, read by indextts/infer_v2.py:186"} in result["manifest"]


def test_each_gap_is_named(releases, make_cache):
    cache = make_cache()
    os.unlink(str(cache / "checkpoints" / "feat1.pt"))
    os.unlink(str(cache / "checkpoints" / "feat2.pt"))
    shutil.rmtree(str(cache / "checkpoints" / "qwen0.6bemo4-merge"))
    os.unlink(str(cache / "hf_cache" / "models--funasr--campplus" / "refs" / "main"))
    bigvgan = cache / "hf_cache" / "models--nvidia--bigvgan_v2_22khz_80band_256x"
    commit = (bigvgan / "refs" / "main").read_text().strip()
    os.unlink(os.path.realpath(str(bigvgan / "snapshots" / commit / "bigvgan_generator.pt")))
    (cache / "hf_cache" / "models--amphion--MaskGCT" / "refs" / "main").write_bytes(b"\xff\xfe\n")

    result, failed = preflight(releases["v2.0.0"], cache)
    assert failed
    assert result["missing"] == [
        "checkpoints qwen0.6bemo4-merge/",
        "checkpoints feat2.pt",
        "checkpoints feat1.pt",
        "hf_cache amphion/MaskGCT semantic_codec/model.safetensors (refs/main is not a commit hash ('\\xff\\xfe'))",
        "hf_cache funasr/campplus campplus_cn_common.bin (no refs/main)",
        "hf_cache nvidia/bigvgan_v2_22khz_80band_256x bigvgan_generator.pt (snapshot %s links to a missing blob)"
        % commit[:12],
    ]
    assert result["msg"].startswith(
        "IndexTTS2 indextts/infer_v2.py (model version 2) in %s would not start offline: 6 of the %d files"
        % (releases["v2.0.0"], HUB_MANIFEST))
    assert "checkpoints qwen0.6bemo4-merge/; checkpoints feat2.pt; checkpoints feat1.pt; hf_cache" in result["msg"]
    assert result["msg"].endswith("Complete the cache on the golden host and sync again.")


def test_a_directory_model_needs_its_config(releases, make_cache):
    cache = make_cache()
    os.unlink(str(cache / "checkpoints" / "qwen0.6bemo4-merge" / "config.json"))
    result, failed = preflight(releases["v2.0.0"], cache)
    assert failed and result["missing"] == ["checkpoints qwen0.6bemo4-merge/ (no config.json in it)"]


@pytest.mark.parametrize("removed, reason", [
    (["model.safetensors"], "no model weights in it (model.safetensors, model.safetensors.index.json, "
                            "pytorch_model.bin, pytorch_model.bin.index.json)"),
    (["tokenizer.json"], "no tokenizer in it (tokenizer.json or vocab.json and merges.txt)"),
])
def test_a_directory_model_needs_its_weights_and_tokenizer(releases, make_cache, removed, reason):
    # Measured on the real app (tests/integration/test_gap_matrix.py): it does not start without either.
    cache = make_cache()
    for name in removed:
        os.unlink(str(cache / "checkpoints" / "qwen0.6bemo4-merge" / name))
    result, failed = preflight(releases["v2.0.0"], cache)
    assert failed and result["missing"] == ["checkpoints qwen0.6bemo4-merge/ (%s)" % reason]


def test_a_directory_model_may_use_sharded_weights_and_bpe_files(releases, make_cache):
    cache = make_cache()
    qwen = cache / "checkpoints" / "qwen0.6bemo4-merge"
    os.unlink(str(qwen / "model.safetensors"))
    os.unlink(str(qwen / "tokenizer.json"))
    for name in ("model.safetensors.index.json", "vocab.json", "merges.txt"):
        (qwen / name).write_text("{}\n")
    result, failed = preflight(releases["v2.0.0"], cache)
    assert not failed, result


def test_hub_release_facing_a_flat_cache(releases, make_cache):
    cache = make_cache(hub=False)
    os.makedirs(str(cache / "checkpoints" / "hf_cache" / "w2v-bert-2.0"))
    (cache / "checkpoints" / "hf_cache" / "campplus_cn_common.bin").write_text("x")
    result, failed = preflight(releases["v2.0.0"], cache)
    assert failed
    assert "hf_cache facebook/w2v-bert-2.0 model.safetensors (repo not in the cache)" in result["missing"]
    assert ("This release (before upstream commit 803a082) reads its auxiliary models through the Hugging Face hub "
            "layout (refs/main -> snapshot -> blob) in %s, but what is there is the flat layout of later releases in "
            "%s (w2v-bert-2.0, campplus_cn_common.bin), which it never reads."
            % (cache / "hf_cache", cache / "checkpoints" / "hf_cache")) in result["msg"]


def test_flat_release_facing_only_a_hub_cache(releases, make_cache):
    cache = make_cache(checkpoints=V25_CHECKPOINTS)
    result, failed = preflight(releases["v2.5.0"], cache)
    assert failed
    assert result["era"] == "flat" and result["model_version"] == "2.5"
    assert result["missing"] == ["hf_cache (flat) w2v-bert-2.0/preprocessor_config.json",
                                 "hf_cache (flat) w2v-bert-2.0/config.json",
                                 "hf_cache (flat) w2v-bert-2.0/model.safetensors",
                                 "hf_cache (flat) campplus_cn_common.bin",
                                 "hf_cache (flat) bigvgan/config.json",
                                 "hf_cache (flat) bigvgan/bigvgan_generator.pt"]
    assert ("this release reads a flat %s (w2v-bert-2.0/, semantic_codec_model.safetensors, campplus_cn_common.bin, "
            "bigvgan/), but only a hub-layout cache is there (%s)" % (cache / "checkpoints" / "hf_cache",
                                                                      cache / "hf_cache")).lower() in result["msg"].lower()
    assert "Lay the cache out with indextts.deploy.indextts2_cache_layout on the golden host" in result["msg"]


def test_flat_release_with_its_layout_passes(releases, make_cache):
    cache = make_cache(checkpoints=V25_CHECKPOINTS)
    result, failed = run_real(indextts2_cache_layout.main, {"app_dir": releases["v2.5.0"], "cache_dir": str(cache)})
    assert not failed, result
    # The node: only checkpoints/ (with its flat hf_cache) is needed; hf_cache is not read.
    shutil.rmtree(str(cache / "hf_cache"))
    result, failed = preflight(releases["v2.5.0"], cache, hf_cache=None)
    assert not failed, result
    assert result["webui_args"] == ["--version", "2.5"] and result["checked"] == 15
    assert result["hf_cache"] == str(cache / "checkpoints" / "hf_cache")
    assert result["hf_cache_from"].startswith("flat: indextts/infer_v2_5.py reads ")


def test_model_version_the_release_does_not_have(releases, make_cache):
    cache = make_cache()
    result, failed = preflight(releases["v2.0.0"], cache, model_version="2.5")
    assert failed and result["versions"] == ["2"]
    assert result["msg"] == (
        "model_version 2.5 is not in this IndexTTS2 release (%s): its webui.py has no --version option and serves "
        "IndexTTS2 version 2 only; set model_version to 2 (or leave it empty for the release's default, 2), or "
        "install a release that has 2.5" % releases["v2.0.0"])
    result, failed = preflight(releases["v2.5.0"], cache, model_version="3")
    assert failed and "webui.py --version takes 2, 2.5; set model_version to 2 or 2.5" in result["msg"]


def test_version_2_of_v250_is_refused(releases, make_cache):
    result, failed = preflight(releases["v2.5.0"], make_cache(), model_version="2")
    assert failed
    assert result["msg"].startswith("model_version 2 cannot synthesize on this IndexTTS2 release (%s): webui.py:688 "
                                    "passes duration_factor to IndexTTS2.infer, which indextts/infer_v2.py:370 does "
                                    "not take" % releases["v2.5.0"])


@pytest.mark.parametrize("extra, msg", [
    ({"checkpoint_files": ["/etc/passwd", "ok.pt", "../../x"]},
     "refusing paths that would leave the cache or are not paths in it: checkpoint_files '/etc/passwd': absolute "
     "path; checkpoint_files '../../x': '..' leaves the cache"),
    ({"hf_files": {"funasr/campplus": ["../../../etc/shadow"]}},
     "refusing paths that would leave the cache or are not paths in it: hf_files['funasr/campplus'] "
     "'../../../etc/shadow': '..' leaves the cache"),
    ({"hf_files": {"../x": ["a"]}},
     "refusing paths that would leave the cache or are not paths in it: hf_files '../x': not a repo id (org/name)"),
    ({"hf_files": {"funasr/campplus": "campplus_cn_common.bin"}},
     "refusing paths that would leave the cache or are not paths in it: hf_files['funasr/campplus'] must be a "
     "non-empty list of file names in that repo, got 'campplus_cn_common.bin'"),
    ({"app_dir": "/nonexistent/indextts2"},
     "app_dir /nonexistent/indextts2 holds no webui.py; install IndexTTS2 there first, or point app_dir at its "
     "source tree"),
])
def test_bad_input(releases, make_cache, extra, msg):
    result, failed = preflight(releases["v2.0.0"], make_cache(), **extra)
    assert failed and result["msg"] == msg


def test_additions_are_checked(releases, make_cache):
    cache = make_cache()
    result, failed = preflight(releases["v2.0.0"], cache, checkpoint_files=["glossary.yaml"],
                               hf_files={"funasr/campplus": ["configuration.json"]})
    assert failed
    assert result["missing"] == ["checkpoints glossary.yaml",
                                 "hf_cache funasr/campplus configuration.json (not in snapshot c0ffeec0ffee)"]


def test_hub_release_needs_hf_cache(releases, make_cache):
    result, failed = preflight(releases["v2.0.0"], make_cache(), hf_cache=None)
    assert failed and result["msg"].startswith("hf_cache is required for this IndexTTS2 release: it reads the "
                                               "Hugging Face hub cache named by HF_HUB_CACHE")


def test_non_utf8_files_fail_clearly(releases, make_cache, tmp_path):
    cache = make_cache()
    app = tmp_path / "app"
    shutil.copytree(releases["v2.0.0"], str(app))
    (app / "webui.py").write_bytes(b"\xff" + (app / "webui.py").read_bytes())
    result, failed = preflight(app, cache)
    assert failed and result["msg"] == ("%s/webui.py is not UTF-8 (byte 0xff at offset 0): Python cannot run it "
                                        "either; reinstall the release from a clean source" % app)
    (cache / "checkpoints" / "config.yaml").write_bytes(b"gpt_checkpoint: \xe9.pth\n")
    result, failed = preflight(releases["v2.0.0"], cache)
    assert failed and result["msg"].startswith("%s is not UTF-8 (byte 0xe9 at offset 16): IndexTTS2 cannot load it "
                                               "either" % (cache / "checkpoints" / "config.yaml"))


def test_runs_before_the_link_exists(releases, make_cache, tmp_path):
    # The role checks the cache before pointing the release at it: model_dir names it.
    cache = make_cache()
    app = tmp_path / "app"
    shutil.copytree(releases["v2.0.0"], str(app))
    shutil.rmtree(str(app / "checkpoints"))
    result, failed = preflight(app, cache)
    assert not failed, result
    result, failed = run_real(indextts2_preflight.main, {"app_dir": str(app), "hf_cache": str(cache / "hf_cache")})
    assert failed and "checkpoints config.yaml" in result["missing"]


def test_a_release_that_sets_the_cache_before_huggingface_hub(releases, make_cache, tmp_path):
    # Were infer_v2 imported before gradio, its HF_HUB_CACHE=./checkpoints/hf_cache would win.
    cache = make_cache()
    app = tmp_path / "app"
    shutil.copytree(releases["v2.0.0"], str(app))
    webui = (app / "webui.py").read_text()
    webui = webui.replace("import gradio as gr\nfrom indextts.infer_v2 import IndexTTS2\n",
                          "from indextts.infer_v2 import IndexTTS2\nimport gradio as gr\n")
    (app / "webui.py").write_text(webui)
    result, failed = preflight(app, cache)
    assert failed
    assert result["hf_cache_from"] == ("indextts/infer_v2.py:4 sets HF_HUB_CACHE=./checkpoints/hf_cache before "
                                       "huggingface_hub is imported")
    assert result["hf_cache"] == str(cache / "checkpoints" / "hf_cache")
    os.symlink(str(cache / "hf_cache"), str(cache / "checkpoints" / "hf_cache"))
    result, failed = preflight(app, cache)
    assert not failed, result


def test_the_cache_must_be_on_its_mount_before_it_is_read(releases, make_cache, tmp_path):
    """iSCSI mode: an unmounted LUN leaves an empty (or stale) directory at the mount
    point; the preflight refuses to judge it (a check that had borrowed cache_link's)."""
    cache = make_cache()
    lun = tmp_path / "lun"
    lun.mkdir()
    result, failed = preflight(releases["v2.0.0"], cache, mount_point=str(lun))
    assert failed
    assert result["msg"] == ("mount_point %s is not mounted; mount the cache (for example the iSCSI LUN) first" % lun)
    if os.stat(str(tmp_path)).st_dev == os.stat("/").st_dev:
        result, failed = preflight(releases["v2.0.0"], cache, require_mount=True)
        assert failed
        assert result["msg"].startswith("model_dir %s is on the root filesystem, not on a mounted cache"
                                        % (cache / "checkpoints"))
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(lun)], capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        result, failed = preflight(releases["v2.0.0"], cache, mount_point=str(lun))
        assert failed
        assert result["msg"] == "model_dir %s lies on %s, not under mount_point %s" % (
            cache / "checkpoints", mount_of(str(cache / "checkpoints")), lun)
        on_lun = lun / "cache"
        shutil.copytree(str(cache), str(on_lun), symlinks=True)
        result, failed = preflight(releases["v2.0.0"], on_lun, mount_point=str(lun))
        assert not failed, result
    finally:
        subprocess.run(["umount", str(lun)], check=True)
