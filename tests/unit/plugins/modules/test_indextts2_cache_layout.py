# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""indextts2_cache_layout on the real releases and a small golden cache in the real
hub layout (tests/unit/plugins/conftest.py)."""

import os

from ansible_collections.indextts.deploy.plugins.modules import indextts2_cache_layout

from conftest import V2_CHECKPOINTS, V25_CHECKPOINTS
from harness import run_real

FLAT_25 = ["w2v-bert-2.0/preprocessor_config.json", "w2v-bert-2.0/config.json", "w2v-bert-2.0/model.safetensors",
           "campplus_cn_common.bin", "bigvgan/config.json", "bigvgan/bigvgan_generator.pt"]
SOURCES = {"w2v-bert-2.0/preprocessor_config.json": ("facebook--w2v-bert-2.0", "preprocessor_config.json"),
           "w2v-bert-2.0/config.json": ("facebook--w2v-bert-2.0", "config.json"),
           "w2v-bert-2.0/model.safetensors": ("facebook--w2v-bert-2.0", "model.safetensors"),
           "semantic_codec_model.safetensors": ("amphion--MaskGCT", "semantic_codec/model.safetensors"),
           "campplus_cn_common.bin": ("funasr--campplus", "campplus_cn_common.bin"),
           "bigvgan/config.json": ("nvidia--bigvgan_v2_22khz_80band_256x", "config.json"),
           "bigvgan/bigvgan_generator.pt": ("nvidia--bigvgan_v2_22khz_80band_256x", "bigvgan_generator.pt")}


def layout(app, cache, check_mode=False, diff=False, **extra):
    params = dict({"app_dir": app, "cache_dir": str(cache)}, **extra)
    return run_real(indextts2_cache_layout.main, params, check_mode=check_mode, diff=diff)


def blob_of(cache, flat):
    repo, rel = SOURCES[flat]
    repo_path = cache / "hf_cache" / ("models--" + repo)
    commit = (repo_path / "refs" / "main").read_text().strip()
    return os.path.realpath(str(repo_path / "snapshots" / commit / rel))


def test_links_the_flat_files_to_the_blobs(releases, make_cache):
    cache = make_cache(checkpoints=V25_CHECKPOINTS)
    result, failed = layout(releases["v2.5.0"], cache, diff=True)
    assert not failed, result
    assert result["changed"] is True and result["era"] == "flat" and result["model_version"] == "2.5"
    assert result["linked"] == FLAT_25 and result["missing"] == []
    assert result["flat_dir"] == str(cache / "checkpoints" / "hf_cache")
    for flat in FLAT_25:
        dest = cache / "checkpoints" / "hf_cache" / flat
        assert not os.path.islink(str(dest))
        assert os.stat(str(dest)).st_ino == os.stat(blob_of(cache, flat)).st_ino
    assert result["diff"]["before"] == "" and result["diff"]["after"] == "".join(sorted(p + "\n" for p in FLAT_25))


def test_second_run_changes_nothing(releases, make_cache):
    cache = make_cache(checkpoints=V25_CHECKPOINTS)
    assert layout(releases["v2.5.0"], cache)[0]["changed"] is True
    result, failed = layout(releases["v2.5.0"], cache, diff=True)
    assert not failed and result["changed"] is False and result["linked"] == []
    assert result["diff"]["before"] == result["diff"]["after"]


def test_version_2_is_refused_on_v250(releases, make_cache):
    result, failed = layout(releases["v2.5.0"], make_cache(checkpoints=V2_CHECKPOINTS), model_version="2")
    assert failed and "model_version 2 cannot synthesize" in result["msg"]


def test_check_mode_changes_nothing(releases, make_cache):
    cache = make_cache(checkpoints=V25_CHECKPOINTS)
    result, failed = layout(releases["v2.5.0"], cache, check_mode=True)
    assert not failed, result
    assert result["changed"] is True and result["linked"] == FLAT_25 and result["missing"] == []
    assert not os.path.exists(str(cache / "checkpoints" / "hf_cache"))


def test_refuses_a_foreign_file_and_keeps_a_copy_of_the_blob(releases, make_cache):
    cache = make_cache(checkpoints=V25_CHECKPOINTS)
    flat = cache / "checkpoints" / "hf_cache"
    os.makedirs(str(flat / "bigvgan"))
    (flat / "bigvgan" / "bigvgan_generator.pt").write_text("my own fine-tune\n")
    with open(blob_of(cache, "campplus_cn_common.bin"), "rb") as f:
        (flat / "campplus_cn_common.bin").write_bytes(f.read())   # an identical copy
    os.symlink("/etc/hostname", str(flat / "bigvgan" / "config.json"))
    result, failed = layout(releases["v2.5.0"], cache)
    assert failed and result["linked"] == []
    assert result["msg"].startswith("refusing to lay out the flat hf_cache for IndexTTS2 in %s: " % releases["v2.5.0"])
    assert result["msg"].endswith("Nothing was changed; move these aside (they are not the hub cache's blobs) and "
                                  "run again")
    assert "%s/bigvgan/config.json is a symlink (to /etc/hostname)" % flat in result["msg"]
    assert ("%s/bigvgan/bigvgan_generator.pt is a different file (its content is not that of "
            "nvidia/bigvgan_v2_22khz_80band_256x bigvgan_generator.pt)" % flat) in result["msg"]
    assert "campplus" not in result["msg"].split(": ", 1)[1].split(". Nothing")[0]
    assert (flat / "bigvgan" / "bigvgan_generator.pt").read_text() == "my own fine-tune\n"
    assert not os.path.exists(str(flat / "w2v-bert-2.0"))
    # Once the user moved them aside, the copy is replaced by the link too.
    os.unlink(str(flat / "bigvgan" / "bigvgan_generator.pt"))
    os.unlink(str(flat / "bigvgan" / "config.json"))
    result, failed = layout(releases["v2.5.0"], cache)
    assert not failed and "campplus_cn_common.bin" in result["linked"]
    assert os.stat(str(flat / "campplus_cn_common.bin")).st_ino == os.stat(blob_of(cache, "campplus_cn_common.bin")).st_ino


def test_never_writes_through_a_symlinked_directory(releases, make_cache, tmp_path):
    cache = make_cache(checkpoints=V25_CHECKPOINTS)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), str(cache / "checkpoints" / "hf_cache"))
    result, failed = layout(releases["v2.5.0"], cache)
    assert failed and "%s is a symlink (to %s)" % (cache / "checkpoints" / "hf_cache", outside) in result["msg"]
    assert os.listdir(str(outside)) == []


def test_a_snapshot_link_leaving_the_repo_is_not_followed(releases, make_cache):
    cache = make_cache(checkpoints=V25_CHECKPOINTS)
    repo = cache / "hf_cache" / "models--funasr--campplus"
    commit = (repo / "refs" / "main").read_text().strip()
    link = repo / "snapshots" / commit / "campplus_cn_common.bin"
    os.unlink(str(link))
    os.symlink("../../../../checkpoints/gpt.pth", str(link))
    result, failed = layout(releases["v2.5.0"], cache)
    assert failed
    assert result["missing"] == ["hf_cache (flat) campplus_cn_common.bin (hub funasr/campplus campplus_cn_common.bin: "
                                 "snapshot %s campplus_cn_common.bin links outside the repo's blobs "
                                 "(../../../../checkpoints/gpt.pth))" % commit[:12]]


def test_names_every_missing_file(releases, make_cache):
    cache = make_cache(checkpoints=[n for n in V25_CHECKPOINTS if n not in ("codec.pth", "feat1.pt")])
    os.unlink(str(cache / "hf_cache" / "models--nvidia--bigvgan_v2_22khz_80band_256x" / "refs" / "main"))
    result, failed = layout(releases["v2.5.0"], cache)
    assert failed and result["changed"] is True
    assert result["missing"] == [
        "checkpoints codec.pth", "checkpoints feat1.pt",
        "hf_cache (flat) bigvgan/config.json (hub nvidia/bigvgan_v2_22khz_80band_256x config.json: no refs/main)",
        "hf_cache (flat) bigvgan/bigvgan_generator.pt (hub nvidia/bigvgan_v2_22khz_80band_256x bigvgan_generator.pt: "
        "no refs/main)"]
    assert result["msg"].startswith("the golden cache %s is not complete for IndexTTS2 indextts/infer_v2_5.py "
                                    "(model version 2.5, flat layout): 4 of the 15 files" % cache)


def test_hub_release_needs_no_layout(releases, make_cache):
    cache = make_cache()
    result, failed = layout(releases["v2.0.0"], cache, diff=True)
    assert not failed, result
    assert result["changed"] is False and result["linked"] == [] and result["era"] == "hub"
    assert "diff" not in result and not os.path.exists(str(cache / "checkpoints" / "hf_cache"))
    os.unlink(str(cache / "checkpoints" / "feat2.pt"))
    result, failed = layout(releases["v2.0.0"], cache)
    assert failed and result["missing"] == ["checkpoints feat2.pt"]


def test_a_new_revision_moves_the_link(releases, make_cache):
    from conftest import make_hub
    cache = make_cache(checkpoints=V25_CHECKPOINTS)
    assert not layout(releases["v2.5.0"], cache)[1]
    flat = cache / "checkpoints" / "hf_cache" / "campplus_cn_common.bin"
    old_inode = os.stat(str(flat)).st_ino
    # A new revision of funasr/campplus with different content.
    repo = cache / "hf_cache" / "models--funasr--campplus"
    make_hub(str(cache / "hf_cache"), {"funasr/campplus": {"campplus_cn_common.bin": 4096}}, commit="ab" * 20)
    result, failed = layout(releases["v2.5.0"], cache)
    assert not failed and result["linked"] == ["campplus_cn_common.bin"]
    assert os.stat(str(flat)).st_ino == os.stat(blob_of(cache, "campplus_cn_common.bin")).st_ino != old_inode
    assert len(os.listdir(str(repo / "blobs"))) == 2
