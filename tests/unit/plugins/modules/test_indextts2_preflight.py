# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""indextts2_preflight on real files: the lab's IndexTTS2 stand-in (tests/fixtures/
indextts2_app) and a synthetic cache written by tests/fixtures/make_hf_cache.py."""

import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.indextts.deploy.plugins.modules import indextts2_preflight

from harness import run_real

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures")
HF_FILES = {
    "facebook/w2v-bert-2.0": ["config.json", "preprocessor_config.json", "model.safetensors"],
    "amphion/MaskGCT": ["semantic_codec/model.safetensors"],
    "funasr/campplus": ["campplus_cn_common.bin"],
    "nvidia/bigvgan_v2_22khz_80band_256x": ["config.json", "bigvgan_generator.pt"],
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    subprocess.run([sys.executable, os.path.join(FIXTURES, "make_hf_cache.py"), str(root),
                    "--weights-mb", "1", "--small-files", "2"], check=True, stdout=subprocess.DEVNULL)
    return root


@pytest.fixture
def app(tmp_path, cache):
    """The fixture app installed as the role installs it: checkpoints linked to the cache."""
    app = tmp_path / "app"
    shutil.copytree(os.path.join(FIXTURES, "indextts2_app"), str(app))
    shutil.move(str(app / "checkpoints"), str(app / "checkpoints.bak"))
    os.symlink(str(cache / "checkpoints"), str(app / "checkpoints"))
    return app


def preflight(app, cache, **extra):
    params = dict({"app_dir": str(app), "hf_cache": str(cache / "hf_cache"), "hf_files": HF_FILES,
                   "model_version": "2"}, **extra)
    return run_real(indextts2_preflight.main, params)


def test_complete_cache_passes_and_passes_the_version(app, cache):
    result, failed = preflight(app, cache)
    assert not failed, result
    assert result["changed"] is False
    assert result["missing"] == [] and result["checked"] == 5 + 7
    assert result["hf_cache"] == str(cache / "hf_cache") and result["hf_cache_from"] == "environment"
    assert result["webui_args"] == ["--version", "2"]


def test_each_gap_is_named(app, cache, tmp_path):
    # A copy of the cache with one checkpoint, one ref and one blob missing.
    broken = tmp_path / "broken"
    shutil.copytree(str(cache), str(broken), symlinks=True)
    os.unlink(str(broken / "checkpoints" / "s2mel.pth"))
    os.unlink(str(broken / "hf_cache" / "models--funasr--campplus" / "refs" / "main"))
    bigvgan = broken / "hf_cache" / "models--nvidia--bigvgan_v2_22khz_80band_256x"
    commit = (bigvgan / "refs" / "main").read_text().strip()
    os.unlink(os.path.realpath(str(bigvgan / "snapshots" / commit / "bigvgan_generator.pt")))
    os.unlink(str(app / "checkpoints"))
    os.symlink(str(broken / "checkpoints"), str(app / "checkpoints"))

    result, failed = preflight(app, broken)
    assert failed
    assert result["missing"] == [
        "checkpoints s2mel.pth",
        "hf_cache funasr/campplus campplus_cn_common.bin (no refs/main)",
        "hf_cache nvidia/bigvgan_v2_22khz_80band_256x bigvgan_generator.pt (snapshot %s links to "
        "a missing blob)" % commit[:12],
    ]
    assert result["msg"].startswith("IndexTTS2 in %s would try to download 3 of the 12 files" % app)
    assert "checkpoints s2mel.pth; hf_cache funasr/campplus" in result["msg"]


def test_a_repo_absent_from_the_cache(app, cache):
    result, failed = preflight(app, cache, hf_files=dict(HF_FILES, **{"IndexTeam/IndexTTS-2": ["gpt.pth"]}))
    assert failed
    assert result["missing"] == ["hf_cache IndexTeam/IndexTTS-2 gpt.pth (repo not in the cache)"]


def test_source_that_hard_codes_the_cache_is_checked_where_it_reads(app, cache):
    # IndexTTS v2.0.0's infer_v2.py sets HF_HUB_CACHE itself, relative to the working directory.
    (app / "indextts" / "infer_v2.py").write_text(
        "import os\nfrom subprocess import CalledProcessError\n\n"
        "os.environ['HF_HUB_CACHE'] = './checkpoints/hf_cache'\nimport json\n")
    result, failed = preflight(app, cache)
    assert failed
    assert result["hf_cache_from"] == "indextts/infer_v2.py (sets HF_HUB_CACHE=./checkpoints/hf_cache itself)"
    assert "hf_cache facebook/w2v-bert-2.0 config.json (repo not in the cache)" in result["missing"]
    # The same cache laid out as that release writes it (hf_cache inside checkpoints) passes.
    os.symlink(str(cache / "hf_cache"), str(cache / "checkpoints" / "hf_cache"))
    try:
        result, failed = preflight(app, cache)
        assert not failed, result
        assert result["hf_cache"] == str(cache / "hf_cache")
    finally:
        os.unlink(str(cache / "checkpoints" / "hf_cache"))


def test_runs_before_the_link_exists(app, cache):
    # The role checks the cache before pointing the release at it: model_dir names the
    # target, and a hard-coded ./checkpoints/hf_cache is resolved inside it.
    os.unlink(str(app / "checkpoints"))
    (app / "indextts" / "infer_v2.py").write_text("import os\nos.environ['HF_HUB_CACHE'] = './checkpoints/hf_cache'\n")
    os.symlink(str(cache / "hf_cache"), str(cache / "checkpoints" / "hf_cache"))
    try:
        result, failed = preflight(app, cache, model_dir=str(cache / "checkpoints"))
        assert not failed, result
        assert result["hf_cache"] == str(cache / "hf_cache")
    finally:
        os.unlink(str(cache / "checkpoints" / "hf_cache"))
    result, failed = preflight(app, cache, model_dir=str(cache / "hf_cache"))
    assert failed and "checkpoints bpe.model" in result["missing"]


def test_webui_without_version_option(app, cache):
    webui = app / "webui.py"
    webui.write_text(webui.read_text().replace('"--version"', '"--release"'))
    result, failed = preflight(app, cache)
    assert not failed and result["webui_args"] == []
    result, failed = preflight(app, cache, model_version="2.5")
    assert failed
    assert result["msg"] == ("model_version is 2.5, but this IndexTTS2 build's webui.py has no --version "
                             "option and serves IndexTTS2 (version 2) only; set model_version to 2 or "
                             "install a newer release")


@pytest.mark.parametrize("extra, msg", [
    ({"app_dir": "/nonexistent/indextts2"},
     "app_dir /nonexistent/indextts2 holds no webui.py; install IndexTTS2 there first, or point "
     "app_dir at its source tree"),
    ({"hf_files": {"funasr/campplus": "campplus_cn_common.bin"}},
     "hf_files['funasr/campplus'] must be a non-empty list of file names in that repo, got "
     "'campplus_cn_common.bin'"),
    ({"model_version": "3"}, "model_version must be 2, 2.5 or empty, got '3'"),
])
def test_bad_input(app, cache, extra, msg):
    result, failed = preflight(app, cache, **extra)
    assert failed and result["msg"] == msg


def test_parsers_on_source_text():
    assert indextts2_preflight.source_hf_override({"webui.py": "import os\n"}) is None
    conditional = "def set_hf_env():\n    if 'HF_HUB_CACHE' not in os.environ:\n        os.environ['HF_HUB_CACHE'] = d\n"
    assert indextts2_preflight.source_hf_override({"indextts/infer_v2.py": conditional}) is None
    assert indextts2_preflight.version_args('parser.add_argument("--version", type=str)', "2.5") == (
        ["--version", "2.5"], None)
    assert indextts2_preflight.version_args("", "") == ([], None)
