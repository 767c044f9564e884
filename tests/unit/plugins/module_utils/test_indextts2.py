# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_indextts2 against the two real releases (tests/unit/plugins/conftest.py unpacks them)."""

import os

import pytest
import yaml

from ansible_collections.indextts.deploy.plugins.module_utils import _indextts2 as release

from conftest import v2_config

FLAT_V2 = ["w2v-bert-2.0/preprocessor_config.json", "w2v-bert-2.0/config.json", "w2v-bert-2.0/model.safetensors",
           "semantic_codec_model.safetensors", "campplus_cn_common.bin", "bigvgan/config.json",
           "bigvgan/bigvgan_generator.pt"]


def labels(entries):
    return [release.entry_label(e) for e in entries]


def test_v200_facts(releases):
    facts = release.release_facts(releases["v2.0.0"])
    assert facts["versions"] == ["2"] and facts["default_version"] == "2"
    assert facts["has_version_flag"] is False and facts["era"] == "hub"
    assert facts["flat"] is None and facts["cli_required"] is None
    info = facts["per_version"]["2"]
    assert info["module"] == "indextts/infer_v2.py" and info["broken"] is None
    # gradio (webui.py:50) is imported before infer_v2 (webui.py:51), whose line 4 sets
    # HF_HUB_CACHE: huggingface_hub has read the environment by then.
    assert facts["hf_cache_env_wins"] is True
    assert info["hf_cache_reason"].startswith("webui.py:50 imports gradio")
    assert "webui.py:51 imports indextts/infer_v2.py" in info["hf_cache_reason"]
    assert "(indextts/infer_v2.py:4)" in info["hf_cache_reason"]
    assert facts["webui_required"] == {"2": ["bpe.model", "gpt.pth", "config.yaml", "s2mel.pth",
                                             "wav2vec2bert_stats.pt"]}
    assert release.webui_args(facts, "2") == []


def test_v200_manifest(releases):
    facts = release.release_facts(releases["v2.0.0"])
    entries = release.manifest(facts, "", v2_config(releases["v2.0.0"]))
    assert labels(entries) == [
        "checkpoints config.yaml", "checkpoints bpe.model", "checkpoints gpt.pth", "checkpoints s2mel.pth",
        "checkpoints wav2vec2bert_stats.pt", "checkpoints qwen0.6bemo4-merge/", "checkpoints feat2.pt",
        "checkpoints feat1.pt",
        "hf_cache amphion/MaskGCT semantic_codec/model.safetensors",
        "hf_cache funasr/campplus campplus_cn_common.bin",
        "hf_cache facebook/w2v-bert-2.0 preprocessor_config.json",
        "hf_cache facebook/w2v-bert-2.0 config.json",
        "hf_cache facebook/w2v-bert-2.0 model.safetensors",
        "hf_cache nvidia/bigvgan_v2_22khz_80band_256x config.json",
        "hf_cache nvidia/bigvgan_v2_22khz_80band_256x bigvgan_generator.pt",
    ]
    by_path = dict((e.get("path"), e["why"]) for e in entries)
    assert by_path["feat1.pt"] == "config.yaml spk_matrix, read by indextts/infer_v2.py:186"
    assert by_path["feat2.pt"] == "config.yaml emo_matrix, read by indextts/infer_v2.py:182"
    assert by_path["qwen0.6bemo4-merge"] == "config.yaml qwen_emo_path, read by indextts/infer_v2.py:83"


def test_v200_names_come_from_config(releases):
    facts = release.release_facts(releases["v2.0.0"])
    text = v2_config(releases["v2.0.0"]).replace("spk_matrix: feat1.pt", "spk_matrix: speakers/feat1-v2.pt")
    text = text.replace('name: "nvidia/bigvgan_v2_22khz_80band_256x"', "name: nvidia/bigvgan_v2_24khz_100band_256x")
    got = labels(release.manifest(facts, "2", text))
    assert "checkpoints speakers/feat1-v2.pt" in got and "checkpoints feat1.pt" not in got
    assert "hf_cache nvidia/bigvgan_v2_24khz_100band_256x bigvgan_generator.pt" in got
    # A key the code reads that the config lacks is a problem of its own.
    entries = release.manifest(facts, "2", text.replace("emo_matrix: feat2.pt", ""))
    assert [e for e in entries if e["kind"] == "config_key"] == [
        {"kind": "config_key", "key": "emo_matrix",
         "why": "config.yaml has no emo_matrix, read by indextts/infer_v2.py:182"}]
    # A name leaving the model directory is marked.
    unsafe = [e for e in release.manifest(facts, "2", text.replace("feat2.pt", "../../etc/feat2.pt"))
              if e.get("unsafe")]
    assert unsafe[0]["path"] == "../../etc/feat2.pt" and unsafe[0]["unsafe"] == "'..' leaves the cache"


def test_v250_facts(releases):
    facts = release.release_facts(releases["v2.5.0"])
    assert facts["versions"] == ["2", "2.5"] and facts["default_version"] == "2.5"
    assert facts["has_version_flag"] is True and facts["era"] == "flat"
    assert facts["per_version"]["2"]["module"] == "indextts/infer_v2.py"
    assert facts["per_version"]["2.5"]["module"] == "indextts/infer_v2_5.py"
    assert [facts["per_version"][v]["era"] for v in ("2", "2.5")] == ["flat", "flat"]
    assert release.webui_args(facts, "2.5") == ["--version", "2.5"]
    # --version 2 starts but cannot synthesize: webui passes duration_factor, infer_v2 lacks it.
    assert facts["per_version"]["2.5"]["broken"] is None
    assert facts["per_version"]["2"]["broken"].startswith(
        "webui.py:688 passes duration_factor to IndexTTS2.infer, which indextts/infer_v2.py:370 does not take")


def test_flat_mapping_read_from_model_download(releases):
    flat = release.release_facts(releases["v2.5.0"])["flat"]
    assert flat == {
        "w2v_bert": {"repo": "facebook/w2v-bert-2.0", "dir": "w2v-bert-2.0", "files": [
            ("preprocessor_config.json", "w2v-bert-2.0/preprocessor_config.json"),
            ("config.json", "w2v-bert-2.0/config.json"),
            ("model.safetensors", "w2v-bert-2.0/model.safetensors")]},
        "semantic_codec": {"repo": "amphion/MaskGCT", "dir": None,
                           "files": [("semantic_codec/model.safetensors", "semantic_codec_model.safetensors")]},
        "campplus": {"repo": "funasr/campplus", "dir": None,
                     "files": [("campplus_cn_common.bin", "campplus_cn_common.bin")]},
        "bigvgan": {"repo": "nvidia/bigvgan_v2_22khz_80band_256x", "dir": "bigvgan", "files": [
            ("config.json", "bigvgan/config.json"), ("bigvgan_generator.pt", "bigvgan/bigvgan_generator.pt")]},
    }


@pytest.mark.parametrize("config", [True, False])
def test_v250_manifest_of_25(releases, config):
    facts = release.release_facts(releases["v2.5.0"])
    entries = release.manifest(facts, "", v2_config(releases["v2.0.0"]) if config else None)
    got = labels(entries)
    assert got == [
        "checkpoints config.yaml", "checkpoints gpt.pth", "checkpoints s2mel.pth", "checkpoints codec.pth",
        "checkpoints multilingual_zh_ja_yue_char_del.tiktoken", "checkpoints wav2vec2bert_stats.pt",
        "checkpoints qwen0.6bemo4-merge/", "checkpoints feat2.pt", "checkpoints feat1.pt",
        "hf_cache (flat) w2v-bert-2.0/preprocessor_config.json", "hf_cache (flat) w2v-bert-2.0/config.json",
        "hf_cache (flat) w2v-bert-2.0/model.safetensors", "hf_cache (flat) campplus_cn_common.bin",
        "hf_cache (flat) bigvgan/config.json", "hf_cache (flat) bigvgan/bigvgan_generator.pt",
    ]
    # 2.5 reads its tokenizer and codec instead of bpe.model and the MaskGCT codec.
    assert "checkpoints bpe.model" not in got
    tiktoken = [e for e in entries if e.get("path") == "multilingual_zh_ja_yue_char_del.tiktoken"][0]
    assert tiktoken["why"] == "webui.py checks it in --model_dir at start (v2.5)"
    if not config:
        assert [e["why"] for e in entries if e.get("path") == "feat1.pt"] == [
            "config.yaml missing, default name, read by indextts/infer_v2_5.py:249"]


def test_v250_manifest_of_2_agrees_with_cli_v2(releases):
    facts = release.release_facts(releases["v2.5.0"])
    entries = release.manifest(facts, "2", v2_config(releases["v2.0.0"]))
    got = labels(entries)
    for name in ("bpe.model", "feat1.pt", "feat2.pt", "qwen0.6bemo4-merge/", "config.yaml"):
        assert "checkpoints " + name in got
    assert ["hf_cache (flat) " + p for p in FLAT_V2] == [g for g in got if g.startswith("hf_cache")]
    assert release.cli_agreement(facts, entries) == []
    assert facts["cli_required"]["REQUIRED_MODEL_DIRS"] == ["qwen0.6bemo4-merge"]


def test_versions_a_release_does_not_have(releases):
    facts = release.release_facts(releases["v2.0.0"])
    version, info, error = release.version_facts(facts, "2.5")
    assert info is None and error.startswith("model_version 2.5 is not in this IndexTTS2 release (%s): its webui.py "
                                             "has no --version option and serves IndexTTS2 version 2 only; set "
                                             "model_version to 2" % releases["v2.0.0"])
    facts = release.release_facts(releases["v2.5.0"])
    assert "webui.py --version takes 2, 2.5" in release.version_facts(facts, "3")[2]
    version, info, error = release.version_facts(facts, "2")
    assert info is not None and error.startswith("model_version 2 cannot synthesize on this IndexTTS2 release")
    assert error.endswith("Use 2.5, or a release that serves 2")
    with pytest.raises(release.ReleaseError):
        release.manifest(facts, "3", None)


def test_config_parser_agrees_with_yaml(releases):
    text = v2_config(releases["v2.0.0"])
    parsed = release.parse_config(text)
    full = yaml.safe_load(text)
    for key in release.CONFIG_DEFAULTS:
        section, dummy, sub = key.partition(".")
        want = full[section][sub] if sub else full[key]
        assert parsed[key] == want, key
    assert release.CONFIG_DEFAULTS == dict((k, parsed[k]) for k in release.CONFIG_DEFAULTS)
    odd = "# c\ngpt_checkpoint: 'my gpt.pth'  \ndataset:\n  # c\n  bpe_model: \"x.model\" # c\n  mel:\n    n: 1\nqwen_emo_path: q/ # c\n"
    assert release.parse_config(odd) == {"gpt_checkpoint": "my gpt.pth", "dataset.bpe_model": "x.model",
                                         "qwen_emo_path": "q/"}


@pytest.mark.parametrize("path, problem", [
    ("feat1.pt", None), ("sub/x.pt", None), ("../x", "'..' leaves the cache"), ("a/../../x", "'..' leaves the cache"),
    ("/etc/passwd", "absolute path"), ("", "empty path"), ("..\\x", "'..' leaves the cache"),
])
def test_safe_relpath(path, problem):
    assert release.safe_relpath(path) == problem


def test_non_utf8_source_is_a_clear_error(releases, tmp_path):
    import shutil
    app = tmp_path / "app"
    shutil.copytree(releases["v2.0.0"], str(app))
    data = (app / "webui.py").read_bytes()
    (app / "webui.py").write_bytes(data.replace(b"# \xe6\x94\xaf", b"# \xff\xfe", 1))
    with pytest.raises(release.ReleaseError) as e:
        release.release_facts(str(app))
    assert "webui.py is not UTF-8 (byte 0xff at offset" in str(e.value)
    assert "Python cannot run it either" in str(e.value)


def test_unknown_source_is_a_clear_error(tmp_path):
    (tmp_path / "webui.py").write_text("import gradio\n")
    with pytest.raises(release.ReleaseError) as e:
        release.release_facts(str(tmp_path))
    assert "imports no indextts.infer_v2* IndexTTS2" in str(e.value)
    (tmp_path / "webui.py").write_text("from indextts.infer_v2 import IndexTTS2\n")
    os.makedirs(str(tmp_path / "indextts"))
    (tmp_path / "indextts" / "infer_v2.py").write_text("class IndexTTS2:\n    pass\n")
    with pytest.raises(release.ReleaseError) as e:
        release.release_facts(str(tmp_path))
    assert "cannot tell how indextts/infer_v2.py loads its auxiliary models" in str(e.value)
