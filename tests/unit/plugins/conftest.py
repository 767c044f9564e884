# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two pinned IndexTTS2 releases, unpacked from ../shared/indextts2-src, and a
builder of small model caches (checkpoints + Hugging Face hub cache) for them."""

import hashlib
import os
import tarfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SOURCES = os.path.join(ROOT, "..", "shared", "indextts2-src")
RELEASES = {
    "v2.0.0": "830f6f8f94a51fea23ab1d639027a86200075a4e",
    "v2.5.0": "39207d91c30899cad1e7c1b9eb678c241f678e55",
}
# The hub files IndexTTS2 loads: repo -> {file: content size (0: small json)}.
HUB_FILES = {
    "facebook/w2v-bert-2.0": {"config.json": 0, "preprocessor_config.json": 0, "model.safetensors": 4096},
    "amphion/MaskGCT": {"semantic_codec/model.safetensors": 2048},
    "funasr/campplus": {"campplus_cn_common.bin": 1024},
    "nvidia/bigvgan_v2_22khz_80band_256x": {"config.json": 0, "bigvgan_generator.pt": 3072},
}
V2_CHECKPOINTS = ["config.yaml", "bpe.model", "gpt.pth", "s2mel.pth", "wav2vec2bert_stats.pt", "feat1.pt",
                  "feat2.pt", "qwen0.6bemo4-merge/config.json", "qwen0.6bemo4-merge/model.safetensors",
                  "qwen0.6bemo4-merge/tokenizer.json"]
V25_CHECKPOINTS = ["config.yaml", "gpt.pth", "s2mel.pth", "codec.pth", "multilingual_zh_ja_yue_char_del.tiktoken",
                   "wav2vec2bert_stats.pt", "feat1.pt", "feat2.pt", "qwen0.6bemo4-merge/config.json",
                   "qwen0.6bemo4-merge/model.safetensors", "qwen0.6bemo4-merge/tokenizer.json"]


@pytest.fixture(scope="session")
def releases(tmp_path_factory):
    """{'v2.0.0': app_dir, 'v2.5.0': app_dir}: the real release sources."""
    if not os.path.isdir(SOURCES):
        pytest.fail("the IndexTTS2 release sources are not at %s (expected index-tts-<commit>.tar.gz for "
                    "%s); these tests read the real releases" % (os.path.normpath(SOURCES), ", ".join(RELEASES)))
    out = tmp_path_factory.mktemp("releases")
    found = {}
    for tag, commit in RELEASES.items():
        archive = os.path.join(SOURCES, "index-tts-%s.tar.gz" % commit)
        if not os.path.isfile(archive):
            pytest.fail("missing %s (IndexTTS2 %s)" % (archive, tag))
        with tarfile.open(archive) as tar:
            tar.extractall(str(out), filter="data")
        found[tag] = str(out / ("index-tts-%s" % commit))
    return found


def v2_config(app_dir):
    """v2.0.0's own checkpoints/config.yaml, as the model repo ships it."""
    with open(os.path.join(app_dir, "checkpoints", "config.yaml")) as f:
        return f.read()


def _blob(repo_path, data):
    name = hashlib.sha256(data).hexdigest()
    path = os.path.join(repo_path, "blobs", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
    return name


def make_hub(hub, files=None, commit="c0ffee" * 6 + "beef"):
    """A Hugging Face hub cache at ``hub`` (real layout: blobs, snapshot links, refs/main)."""
    for repo, names in (files or HUB_FILES).items():
        repo_path = os.path.join(hub, "models--" + repo.replace("/", "--"))
        for rel, size in names.items():
            data = (b"{\"file\": \"%s\"}\n" % rel.encode()) if not size else hashlib.sha512(rel.encode()).digest() * (size // 64)
            blob = _blob(repo_path, data)
            link = os.path.join(repo_path, "snapshots", commit, rel)
            os.makedirs(os.path.dirname(link), exist_ok=True)
            if not os.path.lexists(link):
                os.symlink(os.path.relpath(os.path.join(repo_path, "blobs", blob), os.path.dirname(link)), link)
        os.makedirs(os.path.join(repo_path, "refs"), exist_ok=True)
        with open(os.path.join(repo_path, "refs", "main"), "w") as f:
            f.write(commit)
    return hub


def make_checkpoints(model_dir, names, config_text):
    for name in names:
        path = os.path.join(model_dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(config_text if name == "config.yaml" else "synthetic %s\n" % name)
    return model_dir


@pytest.fixture
def make_cache(tmp_path, releases):
    """make_cache(checkpoints=..., hub=True) -> the cache dir (checkpoints/, hf_cache/)."""
    def make(checkpoints=None, hub=True, config_text=None, name="cache"):
        checkpoints = V2_CHECKPOINTS if checkpoints is None else checkpoints
        root = tmp_path / name
        make_checkpoints(str(root / "checkpoints"), checkpoints,
                         config_text if config_text is not None else v2_config(releases["v2.0.0"]))
        if hub:
            make_hub(str(root / "hf_cache"))
        return root
    return make
