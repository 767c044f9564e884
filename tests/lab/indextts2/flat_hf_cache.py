"""Build the flat auxiliary-model dir IndexTTS2 >= 803a082 (v2.5.0) reads, from a hub cache.

    python3 flat_hf_cache.py HUB_CACHE MODEL_DIR/hf_cache [--copy]

Mapping (hub repo, file in snapshot of refs/main) -> flat path, taken from
indextts/utils/model_download.py:ensure_models_available() at 39207d9:

    facebook/w2v-bert-2.0               <every file>                      -> w2v-bert-2.0/<file>
    amphion/MaskGCT                     semantic_codec/model.safetensors  -> semantic_codec_model.safetensors
    funasr/campplus                     campplus_cn_common.bin            -> campplus_cn_common.bin
    nvidia/bigvgan_v2_22khz_80band_256x config.json                       -> bigvgan/config.json
    nvidia/bigvgan_v2_22khz_80band_256x bigvgan_generator.pt              -> bigvgan/bigvgan_generator.pt

Entries are hard links to the blobs (same inode, no extra space; needs the
same filesystem) unless --copy.  Only the standard library: runs anywhere.
"""
import os
import shutil
import sys

FLAT_MAP = [
    # (repo_id, file in snapshot or "*" for the whole snapshot, flat path)
    ("facebook/w2v-bert-2.0", "*", "w2v-bert-2.0"),
    ("amphion/MaskGCT", "semantic_codec/model.safetensors", "semantic_codec_model.safetensors"),
    ("funasr/campplus", "campplus_cn_common.bin", "campplus_cn_common.bin"),
    ("nvidia/bigvgan_v2_22khz_80band_256x", "config.json", "bigvgan/config.json"),
    ("nvidia/bigvgan_v2_22khz_80band_256x", "bigvgan_generator.pt", "bigvgan/bigvgan_generator.pt"),
]


def snapshot_dir(hub, repo_id):
    root = os.path.join(hub, "models--" + repo_id.replace("/", "--"))
    with open(os.path.join(root, "refs", "main")) as f:
        return os.path.join(root, "snapshots", f.read().strip())


def _place(src, dst, copy):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    real = os.path.realpath(src)
    if os.path.exists(dst) and not copy and os.path.samefile(real, dst):
        return
    tmp = dst + ".tmp"
    if os.path.lexists(tmp):
        os.remove(tmp)
    if copy:
        shutil.copy2(real, tmp)
    else:
        os.link(real, tmp)
    os.replace(tmp, dst)


def build_flat(hub, flat, copy=False):
    for repo_id, rel, dst in FLAT_MAP:
        snap = snapshot_dir(hub, repo_id)
        if rel == "*":
            for base, dummy, files in os.walk(snap):
                for f in files:
                    p = os.path.join(base, f)
                    _place(p, os.path.join(flat, dst, os.path.relpath(p, snap)), copy)
        else:
            _place(os.path.join(snap, rel), os.path.join(flat, dst), copy)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--copy"]
    if len(args) != 2:
        sys.exit(__doc__)
    build_flat(args[0], args[1], copy="--copy" in sys.argv)
