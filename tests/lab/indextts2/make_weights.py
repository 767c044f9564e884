"""Write tiny random-weight IndexTTS2 checkpoints with the release's OWN classes.

Run with a release venv's python (torch, transformers, ... installed):

    python make_weights.py --src RELEASE_SRC_DIR --version {2,2.5} --out DIR [--seed N]
                           [--codes N] [--flat]

Layout written (what a golden host holds):

    DIR/checkpoints/   config.yaml gpt.pth s2mel.pth wav2vec2bert_stats.pt feat1.pt feat2.pt
                       qwen0.6bemo4-merge/  +  bpe.model (2)  |  codec.pth and
                       multilingual_zh_ja_yue_char_del.tiktoken (2.5)
    DIR/hf_cache/      Hugging Face hub layout: models--ORG--NAME/{blobs,refs/main,snapshots/<sha1>/}
                       facebook/w2v-bert-2.0, amphion/MaskGCT, funasr/campplus,
                       nvidia/bigvgan_v2_22khz_80band_256x
    --flat             also DIR/checkpoints/hf_cache/ (the flat layout v2.5.0 reads),
                       hard-linked from the hub blobs (see flat_hf_cache.py)

Widths fixed in the code stay real (GPT 1280, semantic features 1024, w2v-bert
17+ layers, CAMPPlus 80/192); everything else is shrunk.  The GPT is shaped so
that generation is short and bounded: transformer blocks contribute nothing,
the mel position embedding switches from pattern U to pattern V after
--codes positions, and the mel head maps U to ordinary codes (never the start
token) and V to the stop token.  Same seed -> byte-identical tree (checked), and
hf_cache/ does not depend on --version, so one hub cache serves both pins.
"""
import argparse
import hashlib
import io
import json
import os
import shutil
import sys

HUB_REPOS = {
    "w2v": "facebook/w2v-bert-2.0",
    "maskgct": "amphion/MaskGCT",
    "campplus": "funasr/campplus",
    "bigvgan": "nvidia/bigvgan_v2_22khz_80band_256x",
}
EMO_NUM = [3, 17, 2, 8, 4, 5, 10, 24]


def tiny_config(version, number_text_tokens):
    gpt = {
        "model_dim": 1280, "max_mel_tokens": 1815, "max_text_tokens": 600, "heads": 20,
        "use_mel_codes_as_input": True, "mel_length_compression": 1024, "layers": 1,
        "number_text_tokens": number_text_tokens, "number_mel_codes": 8194,
        "start_mel_token": 8192, "stop_mel_token": 8193, "start_text_token": 0,
        "stop_text_token": 1, "train_solo_embeddings": False,
        "condition_type": "conformer_perceiver",
        "condition_module": {"output_size": 64, "linear_units": 64, "attention_heads": 2,
                             "num_blocks": 1, "input_layer": "conv2d2", "perceiver_mult": 1},
        "emo_condition_module": {"output_size": 64, "linear_units": 64, "attention_heads": 2,
                                 "num_blocks": 1, "input_layer": "conv2d2", "perceiver_mult": 1},
    }
    cfg = {
        "dataset": {"bpe_model": "bpe.model", "sample_rate": 24000, "squeeze": False,
                    "mel": {"sample_rate": 24000, "n_fft": 1024, "hop_length": 256,
                            "win_length": 1024, "n_mels": 100, "mel_fmin": 0, "normalize": False}},
        "gpt": gpt,
        "semantic_codec": {"codebook_size": 8192, "hidden_size": 1024, "codebook_dim": 8,
                           "vocos_dim": 32, "vocos_intermediate_dim": 64, "vocos_num_layers": 1},
        "s2mel": {
            "preprocess_params": {"sr": 22050, "spect_params": {
                "n_fft": 1024, "win_length": 1024, "hop_length": 256, "n_mels": 80,
                "fmin": 0, "fmax": "None"}},
            "dit_type": "DiT", "reg_loss_type": "l1",
            "style_encoder": {"dim": 192},
            "length_regulator": {"channels": 64, "is_discrete": False, "in_channels": 1024,
                                 "content_codebook_size": 2048, "sampling_ratios": [1, 1, 1, 1],
                                 "vector_quantize": False, "n_codebooks": 1,
                                 "quantizer_dropout": 0.0, "f0_condition": False, "n_f0_bins": 512},
            "DiT": {"hidden_dim": 64, "num_heads": 2, "depth": 1, "class_dropout_prob": 0.1,
                    "block_size": 8192, "in_channels": 80, "style_condition": True,
                    "final_layer_type": "wavenet", "target": "mel", "content_dim": 64,
                    "content_codebook_size": 1024, "content_type": "discrete",
                    "f0_condition": False, "n_f0_bins": 512, "content_codebooks": 1,
                    "is_causal": False, "long_skip_connection": True,
                    "zero_prompt_speech_token": False, "time_as_token": False,
                    "style_as_token": False, "uvit_skip_connection": True,
                    "add_resblock_in_transformer": False},
            "wavenet": {"hidden_dim": 64, "num_layers": 1, "kernel_size": 5, "dilation_rate": 1,
                        "p_dropout": 0.2, "style_condition": True},
        },
        "gpt_checkpoint": "gpt.pth", "w2v_stat": "wav2vec2bert_stats.pt",
        "s2mel_checkpoint": "s2mel.pth", "emo_matrix": "feat2.pt", "spk_matrix": "feat1.pt",
        "emo_num": EMO_NUM, "qwen_emo_path": "qwen0.6bemo4-merge/",
        "vocoder": {"type": "bigvgan", "name": HUB_REPOS["bigvgan"]},
        "version": 2.0 if version == "2" else 2.5,
    }
    if version == "2.5":
        del cfg["dataset"]["bpe_model"]
        cfg["semantic_codec"].update({"num_quantizers": 1, "downsample_scale": 2})
    return cfg


def save_torch(obj, path):
    import torch
    buf = io.BytesIO()
    torch.save(obj, buf)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def half(sd):
    """fp16 copy of a state dict (load_state_dict casts back to the fp32 params)."""
    return {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}


def shape_gpt(gpt, n_codes, torch):
    """Make generation emit ~n_codes ordinary codes, then the stop token."""
    d = gpt.model_dim
    with torch.no_grad():
        for blk in gpt.gpt.h:  # residual blocks contribute nothing
            for lin in (blk.attn.c_proj, blk.mlp.c_proj):
                lin.weight.zero_()
                lin.bias.zero_()
        gpt.mel_embedding.weight.zero_()
        u = torch.ones(d)
        u[d // 2:] = -1          # "keep talking"
        v = torch.ones(d)
        v[1::2] = -1             # "stop now"  (u . v = 0, both mean 0 -> LayerNorm keeps them)
        pos = gpt.mel_pos_embedding.emb.weight
        pos[:n_codes] = u
        pos[n_codes:] = v
        head = gpt.mel_head
        head.weight.normal_(0.0, 0.02)
        head.weight[:] -= head.weight @ v.unsqueeze(1) / d * v  # ordinary codes blind to v
        head.bias.zero_()
        head.weight[gpt.start_mel_token] = 0
        head.bias[gpt.start_mel_token] = -100.0
        head.weight[gpt.stop_mel_token] = 40.0 * v / d
        head.bias[gpt.stop_mel_token] = -20.0


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def publish_hub_repo(hf_cache, repo_id, files):
    """files: {relpath: bytes}. Write blobs/refs/snapshots like huggingface_hub does."""
    root = os.path.join(hf_cache, "models--" + repo_id.replace("/", "--"))
    os.makedirs(os.path.join(root, "blobs"), exist_ok=True)
    os.makedirs(os.path.join(root, "refs"), exist_ok=True)
    listing = []
    names = {}
    for rel in sorted(files):
        data = files[rel]
        lfs = len(data) > 1_000_000 or not rel.endswith((".json", ".txt", ".md", ".yaml"))
        name = hashlib.sha256(data).hexdigest() if lfs else git_blob_sha1(data)
        names[rel] = name
        listing.append(f"{rel}\0{name}")
        blob = os.path.join(root, "blobs", name)
        if not os.path.exists(blob):
            with open(blob + ".tmp", "wb") as f:
                f.write(data)
            os.replace(blob + ".tmp", blob)
    commit = hashlib.sha1(("\n".join(listing)).encode()).hexdigest()
    snap = os.path.join(root, "snapshots", commit)
    for rel, name in names.items():
        link = os.path.join(snap, rel)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        target = os.path.relpath(os.path.join(root, "blobs", name), os.path.dirname(link))
        if os.path.islink(link):
            os.remove(link)
        os.symlink(target, link)
    with open(os.path.join(root, "refs", "main"), "w") as f:
        f.write(commit)
    return commit


def dir_files(d):
    out = {}
    for base, dummy, fs in os.walk(d):
        for f in fs:
            p = os.path.join(base, f)
            out[os.path.relpath(p, d)] = open(p, "rb").read()
    return out


def make_tiktoken(path):
    import base64
    with open(path, "w") as f:
        for i in range(256):
            f.write(f"{base64.b64encode(bytes([i])).decode()} {i}\n")


def make_bpe(path, tmp):
    import sentencepiece as spm
    corpus = os.path.join(tmp, "corpus.txt")
    words = ("the quick brown fox jumps over the lazy dog hello world this is a test of "
             "index tts speech synthesis on a cpu with tiny random weights").upper().split()
    with open(corpus, "w") as f:
        for i in range(200):
            f.write(" ".join(words[i % len(words):] + words[:i % len(words)]) + "\n")
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=os.path.join(tmp, "bpe"),
                                   vocab_size=400, model_type="bpe", character_coverage=1.0,
                                   byte_fallback=True, bos_id=-1, eos_id=-1, unk_id=0,
                                   num_threads=1, minloglevel=2)
    shutil.copy(os.path.join(tmp, "bpe.model"), path)


def make_qwen(d, torch):
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {s: i for i, s in enumerate(specials)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        chat_template="{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    fast.save_pretrained(d)
    cfg = Qwen3Config(vocab_size=len(vocab), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                      head_dim=32, max_position_embeddings=512, tie_word_embeddings=True,
                      eos_token_id=vocab["<|im_end|>"], pad_token_id=0, bos_token_id=None)
    Qwen3ForCausalLM(cfg).to(torch.float16).save_pretrained(d, safe_serialization=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    ap.add_argument("--src", required=True, help="release source dir (import its classes)")
    ap.add_argument("--version", required=True, choices=["2", "2.5"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--codes", type=int, default=24, help="semantic codes per sentence")
    ap.add_argument("--flat", action="store_true",
                    help="also lay out OUT/checkpoints/hf_cache (flat, v2.5.0), hard links")
    a = ap.parse_args()

    src = os.path.abspath(a.src)
    sys.path.insert(0, src)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch
    import safetensors.torch
    from omegaconf import OmegaConf
    torch.use_deterministic_algorithms(True)

    def seed(k):
        torch.manual_seed(a.seed * 1000 + k)
        np.random.seed((a.seed * 1000 + k) % 2**32)

    ck = os.path.join(os.path.abspath(a.out), "checkpoints")
    hf = os.path.join(os.path.abspath(a.out), "hf_cache")
    tmp = os.path.join(os.path.abspath(a.out), ".tmp")
    for d in (ck, hf, tmp):
        os.makedirs(d, exist_ok=True)

    # text tokenizer files -> number of text tokens
    if a.version == "2":
        make_bpe(os.path.join(ck, "bpe.model"), tmp)
        import sentencepiece as spm
        n_text = spm.SentencePieceProcessor(model_file=os.path.join(ck, "bpe.model")).GetPieceSize()
    else:
        make_tiktoken(os.path.join(ck, "multilingual_zh_ja_yue_char_del.tiktoken"))
        from indextts.utils.tokenizer import get_encoding
        n_text = get_encoding(name="multilingual_zh_ja_yue_char_del", model_dir=ck).n_vocab
    n_text = (n_text + 63) // 64 * 64

    cfg_dict = tiny_config(a.version, n_text)
    with open(os.path.join(ck, "config.yaml"), "w") as f:
        f.write(OmegaConf.to_yaml(OmegaConf.create(cfg_dict)))
    cfg = OmegaConf.load(os.path.join(ck, "config.yaml"))

    # GPT
    from indextts.gpt.model_v2 import UnifiedVoice
    seed(1)
    kw = {"spk_cond_mode": "campplus"} if a.version == "2.5" else {}
    gpt = UnifiedVoice(**cfg.gpt, **kw)
    shape_gpt(gpt, a.codes, torch)
    save_torch(half(gpt.state_dict()), os.path.join(ck, "gpt.pth"))
    del gpt

    # s2mel
    from indextts.s2mel.modules.commons import MyModel
    seed(2)
    s2mel = MyModel(cfg.s2mel, use_gpt_latent=(a.version == "2"))
    save_torch({"net": {k: m.state_dict() for k, m in s2mel.models.items()}},
               os.path.join(ck, "s2mel.pth"))
    del s2mel

    # stats and emotion / speaker matrices
    save_torch({"mean": torch.zeros(1024), "var": torch.ones(1024)},
               os.path.join(ck, "wav2vec2bert_stats.pt"))
    seed(3)
    save_torch(torch.randn(sum(EMO_NUM), 192), os.path.join(ck, "feat1.pt"))
    save_torch(torch.randn(sum(EMO_NUM), 1280) * 0.02, os.path.join(ck, "feat2.pt"))

    # semantic codec
    seed(4)
    if a.version == "2.5":
        from indextts.codec.models import EnhancedCodec
        codec = EnhancedCodec(**cfg.semantic_codec, cfg=cfg.semantic_codec)
        save_torch({"model": half(codec.state_dict())}, os.path.join(ck, "codec.pth"))
    from indextts.utils.maskgct_utils import build_semantic_codec
    mcfg = OmegaConf.create({k: v for k, v in cfg_dict["semantic_codec"].items()
                             if k not in ("num_quantizers", "downsample_scale")})
    seed(9)  # hub-cache models do not depend on --version: one hf_cache serves both pins
    rep = build_semantic_codec(mcfg)
    p = os.path.join(tmp, "model.safetensors")
    safetensors.torch.save_model(rep, p)
    publish_hub_repo(hf, HUB_REPOS["maskgct"],
                     {"semantic_codec/model.safetensors": open(p, "rb").read()})

    # w2v-bert-2.0 (17 layers: hidden_states[17] is read; width 1024 fixed)
    from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel, SeamlessM4TFeatureExtractor
    seed(5)
    wcfg = Wav2Vec2BertConfig(num_hidden_layers=17, intermediate_size=32,
                              conv_depthwise_kernel_size=3, layerdrop=0.0)
    w2v = Wav2Vec2BertModel(wcfg).to(torch.float16)
    wdir = os.path.join(tmp, "w2v")
    w2v.save_pretrained(wdir, safe_serialization=True)
    del w2v
    SeamlessM4TFeatureExtractor(feature_size=80, num_mel_bins=80, padding_value=1.0,
                                sampling_rate=16000, stride=2).save_pretrained(wdir)
    publish_hub_repo(hf, HUB_REPOS["w2v"], dir_files(wdir))

    # CAMPPlus (fixed architecture)
    from indextts.s2mel.modules.campplus.DTDNN import CAMPPlus
    seed(6)
    buf = io.BytesIO()
    torch.save(half(CAMPPlus(feat_dim=80, embedding_size=192).state_dict()), buf)
    publish_hub_repo(hf, HUB_REPOS["campplus"], {"campplus_cn_common.bin": buf.getvalue()})

    # BigVGAN 22 kHz / 80 bands / hop 256 (tiny channels)
    from indextts.s2mel.modules.bigvgan import bigvgan
    from indextts.s2mel.modules.bigvgan.env import AttrDict
    bcfg = json.load(open(os.path.join(src, "indextts/s2mel/modules/bigvgan/config.json")))
    bcfg.update({"upsample_initial_channel": 64, "resblock_kernel_sizes": [3],
                 "resblock_dilation_sizes": [[1, 3, 5]]})
    seed(7)
    voc = bigvgan.BigVGAN(AttrDict(bcfg), use_cuda_kernel=False)
    buf = io.BytesIO()
    torch.save({"generator": voc.state_dict()}, buf)
    publish_hub_repo(hf, HUB_REPOS["bigvgan"], {
        "config.json": (json.dumps(bcfg, indent=2) + "\n").encode(),
        "bigvgan_generator.pt": buf.getvalue()})

    # QwenEmotion stand-in
    seed(8)
    qdir = os.path.join(ck, cfg.qwen_emo_path)
    make_qwen(qdir, torch)

    shutil.rmtree(tmp)
    if a.flat:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from flat_hf_cache import build_flat
        build_flat(hf, os.path.join(ck, "hf_cache"))
    print(json.dumps({"out": os.path.abspath(a.out), "version": a.version,
                      "number_text_tokens": n_text, "codes": a.codes}))


if __name__ == "__main__":
    main()
