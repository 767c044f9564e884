# -*- coding: utf-8 -*-
# Copyright (c) indextts.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an IndexTTS2 release loads at start, read from the release's own source.

Two modules use this: ``indextts2_preflight`` (on each node, before the service starts)
and ``indextts2_cache_layout`` (on the golden host, before any node pulls). Both ask
the same two questions, answered here by pure functions (no Ansible, no writes):

``release_facts(app_dir)``
    Reads ``webui.py`` and the inference modules it imports, and returns what the
    release does: the model versions ``webui.py`` serves (``--version`` choices and
    default; none before v2.5.0), which inference module serves each, the era of its
    auxiliary models (``hub``: read through the Hugging Face hub layout, ``refs/main``
    -> snapshot -> blob, releases before upstream commit 803a082; ``flat``: read from
    ``<model_dir>/hf_cache/{w2v-bert-2.0/, semantic_codec_model.safetensors, ...}``
    from 803a082 on), whether ``HF_HUB_CACHE`` of the service's environment wins
    (it does when ``webui.py`` imports gradio, and with it huggingface_hub, before the
    inference module that sets the variable in code), and versions that start but
    cannot synthesize.

``manifest(facts, model_version, config_text)``
    Every file that version reads at start, as entries ``{kind, path | repo+file,
    why}``; the checkpoint names come from the cache's ``config.yaml``
    (``gpt_checkpoint``, ``emo_matrix`` ...), found in the source as
    ``os.path.join(self.model_dir, self.cfg.<key>)``.

The source is scanned with patterns of the code it has (``hf_hub_download(repo,
filename=...)``, ``self.cfg.<key>``, ``aux_paths[...]``); what no pattern finds is not
guessed: ``ReleaseError`` says what could not be read. Knowledge that is not in the
release lives in two tables here: which files a transformers class reads from a repo
(``TRANSFORMERS_FILES``) and, as a fallback when ``config.yaml`` is absent, the names
v2.0.0's own ``checkpoints/config.yaml`` gives (``CONFIG_DEFAULTS``).
"""

import ast
import os
import posixpath
import re

from ansible_collections.indextts.deploy.plugins.module_utils._hfcache import cached_file_problem, repo_dir_name

# Files the transformers classes IndexTTS2 uses read from a repo (hub era) or a
# local directory (flat era).
TRANSFORMERS_FILES = {
    "SeamlessM4TFeatureExtractor": ("preprocessor_config.json",),
    "Wav2Vec2BertModel": ("config.json", "model.safetensors"),
}
# v2.0.0's checkpoints/config.yaml: the names when the cache has no config.yaml (then
# config.yaml itself is reported missing; these only name what else to bring).
CONFIG_DEFAULTS = {
    "gpt_checkpoint": "gpt.pth",
    "w2v_stat": "wav2vec2bert_stats.pt",
    "s2mel_checkpoint": "s2mel.pth",
    "emo_matrix": "feat2.pt",
    "spk_matrix": "feat1.pt",
    "qwen_emo_path": "qwen0.6bemo4-merge/",
    "dataset.bpe_model": "bpe.model",
    "vocoder.name": "nvidia/bigvgan_v2_22khz_80band_256x",
}
# A directory IndexTTS2 loads with from_pretrained (QwenEmotion: AutoTokenizer and
# AutoModelForCausalLM): it must hold this file, one of the weight files transformers
# looks for (PyTorch, whole or sharded), and a tokenizer (the fast tokenizer.json, or
# the BPE files the Qwen tokenizer is built from). Measured on the real app
# (tests/integration/test_gap_matrix.py): without the weights or tokenizer.json it
# does not start; without tokenizer_config.json, generation_config.json or
# chat_template.jinja it does.
DIR_MARKER = "config.json"
DIR_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
DIR_TOKENIZER = (("tokenizer.json",), ("vocab.json", "merges.txt"))
FLAT_DIR = "hf_cache"
# What the flat layout of releases from upstream 803a082 on has in <model_dir>/hf_cache
# (indextts/utils/model_download.py there): recognised in a cache to tell a user who
# runs an older release against it what is wrong.
FLAT_NAMES = ("w2v-bert-2.0", "semantic_codec_model.safetensors", "campplus_cn_common.bin", "bigvgan")

_HF_OVERRIDE_RE = re.compile(r"""^os\.environ\[\s*["']HF_HUB_CACHE["']\s*\]\s*=\s*["']([^"']+)["']""", re.M)
_HUB_LIB_IMPORT_RE = re.compile(r"^[ \t]*(?:import|from)\s+(gradio|huggingface_hub|transformers|diffusers)\b", re.M)
_INFER_IMPORT_RE = re.compile(r"^[ \t]*from\s+indextts\.(infer_v2(?:_\d+)?)\s+import\s+IndexTTS2\b", re.M)
_INDEXTTS_IMPORT_RE = re.compile(r"^[ \t]*from\s+(indextts(?:\.\w+)+)\s+import\s+([\w, ]+)$", re.M)
_VERSION_ARG_RE = re.compile(r"""add_argument\(\s*["']--version["']([^)]*)\)""")
_JOIN = r"os\.path\.join\(\s*self\.model_dir\s*,\s*"
_CFG_JOIN_RE = re.compile(_JOIN + r"self\.cfg\.(\w+)(?:\[\s*[\"'](\w+)[\"']\s*\])?\s*\)")
_CALL_CFG_JOIN_RE = re.compile(r"(\w+)\(\s*" + _JOIN + r"self\.cfg\.(\w+)\s*\)")
_CLASS_RE = re.compile(r"^class\s+(\w+)", re.M)
_LITERAL_JOIN_RE = re.compile(r"(?:self\.(\w+)\s*=\s*)?" + _JOIN + r"[\"']([^\"']+)[\"']\s*\)")
_FLAT_JOIN_RE = re.compile(_JOIN + r"[\"']hf_cache[\"']\s*,\s*[\"']([^\"']+)[\"']\s*\)")
_AUX_KEY_RE = re.compile(r"""aux_paths\[\s*["'](\w+)["']\s*\]""")
_HF_DOWNLOAD_RE = re.compile(r"""hf_hub_download\(\s*["']([\w.-]+/[\w.-]+)["']\s*,\s*filename\s*=\s*["']([^"']+)["']""")
_TF_PRETRAINED_RE = re.compile(r"""\b(%s)\.from_pretrained\(\s*["']([\w.-]+/[\w.-]+)["']""" % "|".join(TRANSFORMERS_FILES))
_BIGVGAN_RE = re.compile(r"BigVGAN\.from_pretrained\(\s*(\w+)")
_TOKENIZER_RE = re.compile(r"get_tokenizer\(\s*multilingual\s*=\s*True")
_ENCODING_NAME_RE = re.compile(r"""if\s+multilingual\s*:\s*\n\s*encoding_name\s*=\s*["']([^"']+)["']""")
_WEBUI_JOIN_RE = re.compile(r"""os\.path\.join\(\s*cmd_args\.model_dir\s*,\s*["']([^"']+)["']\s*\)""")
# indextts/utils/model_download.py (803a082 on): the flat layout it fills.
_MD_TUPLE_RE = re.compile(r"""\(\s*["'](\w+)["']\s*,\s*["']([\w.-]+/[\w.-]+)["']\s*,\s*["']([^"']+)["']\s*,\s*"""
                          r"""os\.path\.join\(\s*cache_dir\s*,\s*["']([^"']+)["']\s*\)""")
_MD_DIR_RE = re.compile(r"""(\w+)_dir\s*=\s*os\.path\.join\(\s*cache_dir\s*,\s*["']([^"']+)["']\s*\)""")
_MD_LOCATE_RE = re.compile(r"""_locate_snapshot\(\s*["']([\w.-]+/[\w.-]+)["']""")
_MD_BIGVGAN_REPO_RE = re.compile(r"""^_BIGVGAN_REPO\s*=\s*["']([\w.-]+/[\w.-]+)["']""", re.M)
_MD_BIGVGAN_FILES_RE = re.compile(r"""bigvgan_files\s*=\s*\(([^)]*)\)""")
_STRING_RE = re.compile(r"""["']([^"']+)["']""")


class ReleaseError(Exception):
    """The release source cannot be read or understood; the message says why."""


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


def decode(data, label, consequence="Python cannot run it either; reinstall the release from a clean source"):
    """UTF-8 text of ``data``; ReleaseError naming ``label`` and the bad byte otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = e.start
    raise ReleaseError("%s is not UTF-8 (byte 0x%02x at offset %d): %s"
                       % (label, bytearray(data[bad:bad + 1])[0], bad, consequence))


def read_config(model_dir):
    """The text of ``<model_dir>/config.yaml``; None when absent; ReleaseError when it
    is not UTF-8 (IndexTTS2's OmegaConf could not read it either)."""
    path = os.path.join(model_dir, "config.yaml")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (IOError, OSError):
        return None
    return decode(data, path, "IndexTTS2 cannot load it either; replace it with the model's config.yaml "
                              "on the golden host")


def read_source(app_dir, rel, required=False):
    """The text of ``app_dir/rel``; None when absent (ReleaseError when required)."""
    path = os.path.join(app_dir, rel)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (IOError, OSError) as e:
        if required:
            raise ReleaseError("cannot read %s: %s" % (path, e.strerror or e))
        return None
    return decode(data, path)


def safe_relpath(path):
    """Why ``path`` (relative to a cache directory) could leave it; None when it cannot."""
    if not isinstance(path, str) or not path.strip():
        return "empty path"
    if path.startswith("/") or path.startswith("\\") or re.match(r"^[A-Za-z]:", path):
        return "absolute path"
    if "\0" in path:
        return "NUL in path"
    if ".." in re.split(r"[/\\]+", path):
        return "'..' leaves the cache"
    return None


# -- config.yaml ---------------------------------------------------------------

def _scalar(raw):
    value = raw.strip()
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        return value[1:end] if end > 0 else value[1:]
    value = re.sub(r"\s+#.*$", "", value)
    return value.strip()


def parse_config(text):
    """The keys of an IndexTTS2 ``config.yaml`` this module needs: top-level scalars
    (``gpt_checkpoint: gpt.pth``) and scalars one level down, as ``section.key``
    (``dataset.bpe_model``). A restricted parser on purpose: modules run with the
    managed host's Python, where PyYAML may be absent, and one parser everywhere gives
    the golden host and the nodes the same answer. Anchors, block scalars and flow
    mappings are not followed (IndexTTS2's config uses none for these keys); a
    duplicated key keeps its last value, as YAML loaders do."""
    found = {}
    section, section_indent, child_indent = None, 0, None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped in ("---", "..."):
            continue
        indent = len(line) - len(line.lstrip(" "))
        m = re.match(r"""^([A-Za-z_][\w.-]*|"[^"]+"|'[^']+')\s*:(?:\s+(.*))?$""", stripped)
        if not m:
            continue
        key = m.group(1).strip("\"'")
        value = m.group(2)
        if indent == 0:
            section, child_indent = None, None
            if value is None or not value.strip() or value.strip().startswith("#"):
                section, section_indent = key, indent
            else:
                found[key] = _scalar(value)
        elif section is not None and indent > section_indent:
            if child_indent is None:
                child_indent = indent
            if indent == child_indent and value is not None and value.strip() and not value.strip().startswith("#"):
                found["%s.%s" % (section, key)] = _scalar(value)
    return found


# -- reading the release -------------------------------------------------------

def _module_path(dotted):
    return dotted.replace(".", "/") + ".py"


def _parse(text):
    try:
        return ast.parse(text)
    except SyntaxError:
        return None


def _version_option(webui, tree):
    """(has_flag, choices, default) of webui.py's --version option."""
    if tree is not None:
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"
                    and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "--version"):
                kw = dict((k.arg, k.value) for k in node.keywords if k.arg)
                choices = default = None
                try:
                    if "choices" in kw:
                        choices = [str(c) for c in ast.literal_eval(kw["choices"])]
                    if "default" in kw:
                        default = ast.literal_eval(kw["default"])
                        default = None if default is None else str(default)
                except ValueError:
                    pass
                return True, choices, default
        return False, None, None
    m = _VERSION_ARG_RE.search(webui)
    if not m:
        return False, None, None
    choices = re.search(r"choices\s*=\s*\[([^\]]*)\]", m.group(1))
    default = re.search(r"""default\s*=\s*["']([^"']+)["']""", m.group(1))
    return (True, _STRING_RE.findall(choices.group(1)) if choices else None,
            default.group(1) if default else None)


def _webui_required(tree, default_version):
    """What webui.py itself checks in --model_dir before loading: ``REQUIRED_FILES``
    (v2.5.0, per version) or a ``for file in [...]`` list (v2.0.0)."""
    required = {}
    if tree is None:
        return required
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", "") == "REQUIRED_FILES"):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            if isinstance(value, dict):
                for version, files in value.items():
                    required[str(version)] = [str(f) for f in files]
        elif isinstance(node, ast.For) and isinstance(node.iter, (ast.List, ast.Tuple)):
            try:
                files = ast.literal_eval(node.iter)
            except ValueError:
                continue
            body = ast.dump(ast.Module(body=node.body, type_ignores=[]))
            if files and all(isinstance(f, str) for f in files) and "exists" in body:
                required.setdefault(default_version, [str(f) for f in files])
    return required


def _webui_infer_keywords(tree):
    """The keywords webui.py passes to ``tts.infer`` (following ``**name`` to a
    ``name = dict(...)`` in the module), with the line of the call."""
    if tree is None:
        return [], 0
    dicts = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "dict"):
            dicts[node.targets[0].id] = [k.arg for k in node.value.keywords if k.arg]
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "infer"
                and getattr(node.func.value, "id", "") == "tts"):
            names = []
            for k in node.keywords:
                if k.arg:
                    names.append(k.arg)
                elif isinstance(k.value, ast.Name) and k.value.id in dicts:
                    names.extend(dicts[k.value.id])
            return names, node.lineno
    return [], 0


def _infer_params(tree):
    """(named parameters of IndexTTS2.infer, has **kwargs, line) in an inference module."""
    if tree is None:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "IndexTTS2":
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "infer":
                    a = item.args
                    names = [x.arg for x in a.args + a.kwonlyargs]
                    return names, a.kwarg is not None, item.lineno
    return None


def _read_cli_required(app_dir):
    """indextts/cli_v2.py's REQUIRED_* lists (v2.5.0 has them; they name what the v2
    model needs, aux files in the flat layout)."""
    text = read_source(app_dir, "indextts/cli_v2.py")
    tree = _parse(text) if text else None
    if tree is None:
        return None
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            name = getattr(node.targets[0], "id", "")
            if name.startswith("REQUIRED_") and name != "REQUIRED_PACKAGES":
                try:
                    found[name] = [str(v) for v in ast.literal_eval(node.value)]
                except ValueError:
                    pass
            elif name == "MODEL_REPO_ID":
                try:
                    found[name] = str(ast.literal_eval(node.value))
                except ValueError:
                    pass
    return found or None


def _flat_layout(app_dir):
    """The flat layout ``indextts/utils/model_download.py`` fills (803a082 on):
    ``{group: {"repo": id, "dir": flat dir or None, "files": [(hub file, flat path)]}}``;
    None when the release has no such file or its code is not the known shape."""
    rel = "indextts/utils/model_download.py"
    text = read_source(app_dir, rel)
    if not text or "def ensure_models_available" not in text:
        return None
    groups = {}
    dirs = dict((m.group(1), m.group(2)) for m in _MD_DIR_RE.finditer(text))
    # w2v-bert-2.0: the whole snapshot is copied to a directory, which transformers
    # then loads with the classes below.
    start = text.find("w2v_dir =")
    w2v = _MD_LOCATE_RE.search(text, start) if "w2v" in dirs and start >= 0 else None
    if w2v:
        files = []
        for cls in ("SeamlessM4TFeatureExtractor", "Wav2Vec2BertModel"):
            files.extend(f for f in TRANSFORMERS_FILES[cls] if f not in files)
        groups["w2v_bert"] = {"repo": w2v.group(1), "dir": dirs["w2v"],
                              "files": [(f, posixpath.join(dirs["w2v"], f)) for f in files]}
    for m in _MD_TUPLE_RE.finditer(text):
        groups[m.group(1)] = {"repo": m.group(2), "dir": None, "files": [(m.group(3), m.group(4))]}
    repo = _MD_BIGVGAN_REPO_RE.search(text)
    names = _MD_BIGVGAN_FILES_RE.search(text)
    if repo and names and "bigvgan" in dirs:
        groups["bigvgan"] = {"repo": repo.group(1), "dir": dirs["bigvgan"],
                             "files": [(f, posixpath.join(dirs["bigvgan"], f)) for f in _STRING_RE.findall(names.group(1))]}
    if set(groups) != set(("w2v_bert", "semantic_codec", "campplus", "bigvgan")):
        return None
    return groups


def flat_group_of(name, flat):
    """The group of ``hf_cache/<name>`` (``w2v-bert-2.0``, ``campplus_cn_common.bin`` ...)."""
    for group, info in flat.items():
        if info["dir"] == name or any(path == name for _hub, path in info["files"]):
            return group
    return None


def _imported_sources(app_dir, text):
    """(rel, text) of the indextts modules ``text`` imports from (one level)."""
    out = []
    for m in _INDEXTTS_IMPORT_RE.finditer(text):
        dotted = m.group(1)
        for name in [n.strip() for n in m.group(2).split(",")]:
            candidate = _module_path(dotted + "." + name)
            if os.path.isfile(os.path.join(app_dir, candidate)):
                out.append(candidate)
        if os.path.isfile(os.path.join(app_dir, _module_path(dotted))):
            out.append(_module_path(dotted))
    seen, result = set(), []
    for rel in out:
        if rel not in seen:
            seen.add(rel)
            result.append((rel, read_source(app_dir, rel)))
    return result


def _scan_module(app_dir, rel, text, flat):
    """What one inference module loads: ``loads`` (ordered list of load specs) and its era."""
    loads = []
    # A config path handed to a class of this module that loads it with
    # from_pretrained (QwenEmotion) is a directory.
    starts = [(m.start(), m.group(1)) for m in _CLASS_RE.finditer(text)] + [(len(text), None)]
    loaders = set(name for (pos, name), (end, _n) in zip(starts, starts[1:])
                  if ".from_pretrained(self.model_dir" in text[pos:end])
    dir_keys = set(m.group(2) for m in _CALL_CFG_JOIN_RE.finditer(text) if m.group(1) in loaders)
    for m in _CFG_JOIN_RE.finditer(text):
        key = m.group(1) + ("." + m.group(2) if m.group(2) else "")
        kind = "checkpoint_dir" if key in dir_keys else "checkpoint"
        loads.append({"kind": kind, "config_key": key, "source": "%s:%d" % (rel, line_of(text, m.start()))})
    for m in _LITERAL_JOIN_RE.finditer(text):
        attr, name = m.group(1), m.group(2)
        if attr and re.search(r"if\s+os\.path\.exists\(\s*self\.%s\s*\)" % re.escape(attr), text):
            continue  # optional (glossary.yaml)
        if name == FLAT_DIR:
            continue
        loads.append({"kind": "checkpoint", "path": name, "source": "%s:%d" % (rel, line_of(text, m.start()))})
    if _TOKENIZER_RE.search(text):
        tok = read_source(app_dir, "indextts/utils/tokenizer.py") or ""
        enc = _ENCODING_NAME_RE.search(tok)
        if enc and ".tiktoken" in tok:
            pos = _TOKENIZER_RE.search(text).start()
            loads.append({"kind": "checkpoint", "path": enc.group(1) + ".tiktoken",
                          "source": "%s:%d get_tokenizer -> indextts/utils/tokenizer.py:%d"
                          % (rel, line_of(text, pos), line_of(tok, enc.start()))})
    # Auxiliary models: flat (803a082 on) or through the hub.
    flat_groups = []
    for m in _AUX_KEY_RE.finditer(text):
        if m.group(1) not in [g for g, _s in flat_groups]:
            flat_groups.append((m.group(1), "%s:%d" % (rel, line_of(text, m.start()))))
    for m in _FLAT_JOIN_RE.finditer(text):
        group = flat_group_of(m.group(1), flat) if flat else None
        if group and group not in [g for g, _s in flat_groups]:
            flat_groups.append((group, "%s:%d" % (rel, line_of(text, m.start()))))
    hub = []
    sources = [(rel, text)] + [(r, t) for r, t in _imported_sources(app_dir, text) if t]
    for srel, stext in sources:
        for m in _HF_DOWNLOAD_RE.finditer(stext):
            hub.append({"repo": m.group(1), "files": [m.group(2)], "source": "%s:%d" % (srel, line_of(stext, m.start()))})
        for m in _TF_PRETRAINED_RE.finditer(stext):
            if stext[max(0, stext.rfind("\n", 0, m.start())):m.start()].lstrip().startswith("#"):
                continue
            hub.append({"repo": m.group(2), "files": list(TRANSFORMERS_FILES[m.group(1)]),
                        "source": "%s:%d %s" % (srel, line_of(stext, m.start()), m.group(1))})
    bigvgan = _BIGVGAN_RE.search(text)
    if bigvgan and not flat_groups:
        var = bigvgan.group(1)
        cfg = re.search(r"\b%s\s*=\s*self\.cfg\.(\w+)\.(\w+)" % re.escape(var), text)
        files = []
        for brel, btext in sources:
            if brel.endswith("bigvgan.py") and btext:
                files = re.findall(r"""filename\s*=\s*["']([^"']+)["']""", btext)
        if cfg and files:
            hub.append({"config_key": "%s.%s" % cfg.groups(), "files": sorted(set(files), key=files.index),
                        "source": "%s:%d BigVGAN.from_pretrained" % (rel, line_of(text, bigvgan.start()))})
    if flat_groups:
        era = "flat"
    elif hub:
        era = "hub"
    else:
        raise ReleaseError("cannot tell how %s loads its auxiliary models (w2v-bert-2.0, MaskGCT, campplus, "
                           "BigVGAN): neither hf_hub_download nor a flat hf_cache is in its code; this "
                           "release is not one indextts.deploy knows" % rel)
    if era == "flat" and not flat:
        raise ReleaseError("%s reads a flat <model_dir>/hf_cache, but indextts/utils/model_download.py does not "
                           "have the layout this module knows; update indextts.deploy for this release" % rel)
    return {"loads": loads, "era": era, "flat_groups": flat_groups, "hub": hub}


def release_facts(app_dir):
    """What the release in ``app_dir`` does at start, read from its source. See the
    module docstring; raises ReleaseError when the source cannot be read or understood."""
    webui = read_source(app_dir, "webui.py", required=True)
    tree = _parse(webui)
    has_flag, choices, default = _version_option(webui, tree)
    imported = dict((m.group(1), m.start()) for m in _INFER_IMPORT_RE.finditer(webui))
    if not imported:
        raise ReleaseError("%s/webui.py imports no indextts.infer_v2* IndexTTS2; this is not an IndexTTS2 "
                           "(v2) web UI indextts.deploy knows" % app_dir)

    def module_for(version):
        name = "infer_v" + version.replace(".", "_")
        return name if name in imported else None

    if has_flag and choices:
        versions = list(choices)
    elif has_flag:
        versions = sorted(v for v in ("2", "2.5") if module_for(v))
    else:
        versions = ["2"]
    if has_flag:
        default_version = default if default in versions else versions[0]
    else:
        default_version = "2"
    modules = {}
    for version in versions:
        name = module_for(version) or (sorted(imported)[0] if len(imported) == 1 else None)
        if not name:
            raise ReleaseError("webui.py offers --version %s but imports no module that serves it" % version)
        modules[version] = _module_path("indextts." + name)

    flat = _flat_layout(app_dir)
    hub_lib = _HUB_LIB_IMPORT_RE.search(webui)
    keywords, call_line = _webui_infer_keywords(tree)
    per_version = {}
    for version in versions:
        rel = modules[version]
        text = read_source(app_dir, rel, required=True)
        scan = _scan_module(app_dir, rel, text, flat)
        override = _HF_OVERRIDE_RE.search(text)
        import_pos = imported[os.path.basename(rel)[:-3]]
        info = {"module": rel, "era": scan["era"], "scan": scan, "hf_cache_override": None,
                "hf_cache_env_wins": True, "hf_cache_reason": "no HF_HUB_CACHE set in %s" % rel, "broken": None}
        if override:
            value = override.group(1)
            where = "%s:%d" % (rel, line_of(text, override.start()))
            if hub_lib and hub_lib.start() < import_pos:
                info["hf_cache_reason"] = (
                    "webui.py:%d imports %s (and with it huggingface_hub, which reads HF_HUB_CACHE once, at "
                    "import) before webui.py:%d imports %s, whose HF_HUB_CACHE=%s (%s) comes too late"
                    % (line_of(webui, hub_lib.start()), hub_lib.group(1), line_of(webui, import_pos), rel, value, where))
            else:
                info.update(hf_cache_env_wins=False, hf_cache_override=value,
                            hf_cache_reason="%s sets HF_HUB_CACHE=%s before huggingface_hub is imported" % (where, value))
        params = _infer_params(_parse(text))
        if params and keywords:
            names, has_kwargs, line = params
            unknown = [k for k in keywords if k not in names]
            if unknown:
                info["broken"] = (
                    "webui.py:%d passes %s to IndexTTS2.infer, which %s:%d does not take%s: the web UI starts "
                    "and answers GET /, but every synthesis fails"
                    % (call_line, ", ".join(unknown), rel, line,
                       " (it goes on to the GPT's generate() as an unknown argument)" if has_kwargs else ""))
        per_version[version] = info

    webui_required = _webui_required(tree, default_version)
    webui_files = [m.group(1) for m in _WEBUI_JOIN_RE.finditer(webui)]
    default_info = per_version[default_version]
    return {
        "app_dir": app_dir,
        "versions": versions,
        "default_version": default_version,
        "has_version_flag": has_flag,
        "era": default_info["era"],
        "hf_cache_env_wins": default_info["hf_cache_env_wins"],
        "per_version": per_version,
        "webui_required": webui_required,
        "webui_files": webui_files,
        "webui_uses_ensure_config": "ensure_config_available" in webui,
        "cli_required": _read_cli_required(app_dir),
        "flat": flat,
    }


def version_facts(facts, model_version):
    """(version, per-version facts, error): the version to serve ('' = the release's
    default) and why it cannot be served, naming the versions the release has."""
    version = model_version or facts["default_version"]
    if version not in facts["versions"]:
        if facts["has_version_flag"]:
            how = "webui.py --version takes %s" % ", ".join(facts["versions"])
        else:
            how = "its webui.py has no --version option and serves IndexTTS2 version 2 only"
        return version, None, ("model_version %s is not in this IndexTTS2 release (%s): %s; set model_version to %s"
                               " (or leave it empty for the release's default, %s), or install a release that "
                               "has %s" % (version, facts["app_dir"], how, " or ".join(facts["versions"]),
                                           facts["default_version"], version))
    info = facts["per_version"][version]
    if info["broken"]:
        others = [v for v in facts["versions"] if v != version and not facts["per_version"][v]["broken"]]
        return version, info, ("model_version %s cannot synthesize on this IndexTTS2 release (%s): %s. Use %s, or a "
                               "release that serves %s" % (version, facts["app_dir"], info["broken"],
                                                           " or ".join(others) or "another release", version))
    return version, info, None


def webui_args(facts, version):
    """The --version arguments for webui.py: none when it has no such option."""
    return ["--version", version] if facts["has_version_flag"] else []


# -- the manifest --------------------------------------------------------------

def _add(entries, seen, entry):
    if entry["kind"] in ("hf_hub",):
        key = (entry["kind"], entry["repo"], entry["file"])
    else:
        key = (entry["kind"] if entry["kind"] != "checkpoint_dir" else "checkpoint", entry["path"].rstrip("/"))
    if key in seen:
        return
    seen.add(key)
    entries.append(entry)


def manifest(facts, model_version, config_text):
    """Every file ``model_version`` of the release reads at start from its model
    directory and the Hugging Face cache.

    ``config_text`` is the cache's ``config.yaml`` (None when absent: the names then
    default to v2.0.0's, and config.yaml itself is in the list). Entries, in the
    order the application reads them:

    - ``{kind: checkpoint, path, why}``: a file in the model directory;
    - ``{kind: checkpoint_dir, path, why}``: a directory there, loaded with
      from_pretrained (it must hold ``config.json``);
    - ``{kind: hf_hub, repo, file, why}``: read through the hub layout (hub era);
    - ``{kind: hf_flat, path, repo, file, why}``: ``<model_dir>/hf_cache/<path>``
      (flat era), laid out from ``file`` of hub ``repo``;
    - ``{kind: config_key, key, why}``: a key the code reads that config.yaml lacks
      (always a problem).

    A checkpoint ``path`` taken from config.yaml that would leave the model directory
    carries ``unsafe`` (the reason)."""
    version, info, error = version_facts(facts, model_version)
    if error and info is None:
        raise ReleaseError(error)
    config = parse_config(config_text) if config_text is not None else None
    entries, seen = [], set()
    why_config = "--model_dir config.yaml, read by webui.py"
    if facts["webui_uses_ensure_config"]:
        why_config += " (downloaded at start when missing)"
    for name in facts["webui_files"]:
        _add(entries, seen, {"kind": "checkpoint", "path": name, "why": why_config})
    for name in facts["webui_required"].get(version, []):
        _add(entries, seen, {"kind": "checkpoint", "path": name,
                             "why": "webui.py checks it in --model_dir at start (v%s)" % version})

    def config_value(key):
        if config is None:
            return CONFIG_DEFAULTS.get(key), "config.yaml missing, default name"
        if key in config and config[key]:
            return config[key], "config.yaml %s" % key
        return None, None

    scan = info["scan"]
    for load in scan["loads"]:
        if "path" in load:
            _add(entries, seen, {"kind": load["kind"], "path": load["path"], "why": "read by %s" % load["source"]})
            continue
        key = load["config_key"]
        value, origin = config_value(key)
        if value is None:
            entries.append({"kind": "config_key", "key": key,
                            "why": "config.yaml has no %s, read by %s" % (key, load["source"])})
            continue
        entry = {"kind": load["kind"], "path": value.rstrip("/") or value,
                 "why": "%s, read by %s" % (origin, load["source"])}
        problem = safe_relpath(value)
        if problem:
            entry["unsafe"] = problem
        _add(entries, seen, entry)
    if info["era"] == "flat":
        for group, source in scan["flat_groups"]:
            spec = facts["flat"][group]
            for hub_file, flat_path in spec["files"]:
                _add(entries, seen, {"kind": "hf_flat", "path": flat_path, "repo": spec["repo"], "file": hub_file,
                                     "why": "%s reads %s/%s (laid out from %s %s)"
                                     % (source, FLAT_DIR, flat_path, spec["repo"], hub_file)})
    else:
        for hub in scan["hub"]:
            repo = hub.get("repo")
            origin = ""
            if repo is None:
                repo, origin = config_value(hub["config_key"])
                if repo is None:
                    entries.append({"kind": "config_key", "key": hub["config_key"],
                                    "why": "config.yaml has no %s, read by %s" % (hub["config_key"], hub["source"])})
                    continue
                origin = " (%s)" % origin
            for name in hub["files"]:
                _add(entries, seen, {"kind": "hf_hub", "repo": repo, "file": name,
                                     "why": "%s%s" % (hub["source"], origin)})
    # What upstream's own CLI checks for the v2 model; it agrees with the scan above
    # (the unit tests hold it to that) and backs it up should the code move.
    cli = facts["cli_required"]
    if cli and version == "2":
        for name in cli.get("REQUIRED_MODEL_FILES", []):
            _add(entries, seen, {"kind": "checkpoint", "path": name, "why": "indextts/cli_v2.py REQUIRED_MODEL_FILES"})
        for name in cli.get("REQUIRED_MODEL_DIRS", []):
            _add(entries, seen, {"kind": "checkpoint_dir", "path": name, "why": "indextts/cli_v2.py REQUIRED_MODEL_DIRS"})
    return entries


def cli_agreement(facts, entries):
    """What indextts/cli_v2.py's REQUIRED_* lists name that ``entries`` (the v2
    manifest) lack; empty when they agree."""
    cli = facts["cli_required"] or {}
    have = set(e["path"] for e in entries if "path" in e and e["kind"] in ("checkpoint", "checkpoint_dir"))
    flat = set(e["path"] for e in entries if e["kind"] == "hf_flat")
    gaps = [n for n in cli.get("REQUIRED_MODEL_FILES", []) + cli.get("REQUIRED_MODEL_DIRS", []) if n not in have]
    prefix = FLAT_DIR + "/"
    for name in cli.get("REQUIRED_AUX_MODEL_FILES", []):
        if name[len(prefix):] not in flat:
            gaps.append(name)
    for name in cli.get("REQUIRED_AUX_MODEL_DIRS", []):
        if not any(p.startswith(name[len(prefix):] + "/") for p in flat):
            gaps.append(name)
    return gaps


def entry_label(entry):
    """How a missing entry is named: ``checkpoints feat1.pt``, ``hf_cache (flat)
    w2v-bert-2.0/model.safetensors``, ``hf_cache facebook/w2v-bert-2.0 config.json``."""
    kind = entry["kind"]
    if kind in ("checkpoint", "checkpoint_dir"):
        return "checkpoints %s%s" % (entry["path"], "/" if kind == "checkpoint_dir" else "")
    if kind == "hf_flat":
        return "hf_cache (flat) %s" % entry["path"]
    if kind == "hf_hub":
        return "hf_cache %s %s" % (entry["repo"], entry["file"])
    return "config.yaml %s" % entry["key"]


# -- checking a cache against the manifest -------------------------------------

def entry_problem(entry, model_dir, hf_cache, present=()):
    """Why ``entry`` is not in place (None when it is): checkpoints in ``model_dir``,
    flat files in ``<model_dir>/hf_cache``, hub files resolved in ``hf_cache`` as
    huggingface_hub resolves them offline. ``present``: flat paths about to be laid
    out (check mode of the layout module). Read-only."""
    kind = entry["kind"]
    if kind == "config_key":
        return "not set"
    if entry.get("unsafe"):
        return "outside model_dir: %s" % entry["unsafe"]
    if kind == "checkpoint":
        return None if os.path.isfile(os.path.join(model_dir, entry["path"])) else "missing"
    if kind == "checkpoint_dir":
        path = os.path.join(model_dir, entry["path"])
        if not os.path.isdir(path):
            return "missing"
        if not os.path.isfile(os.path.join(path, DIR_MARKER)):
            return "no %s in it" % DIR_MARKER
        if not any(os.path.isfile(os.path.join(path, name)) for name in DIR_WEIGHTS):
            return "no model weights in it (%s)" % ", ".join(DIR_WEIGHTS)
        if not any(all(os.path.isfile(os.path.join(path, name)) for name in names) for names in DIR_TOKENIZER):
            return "no tokenizer in it (%s)" % " or ".join(" and ".join(names) for names in DIR_TOKENIZER)
        return None
    if kind == "hf_flat":
        if entry["path"] in present or os.path.isfile(os.path.join(model_dir, FLAT_DIR, entry["path"])):
            return None
        return "missing"
    if kind == "hf_hub":
        if not hf_cache:
            return "no hub cache given"
        return cached_file_problem(hf_cache, entry["repo"], entry["file"])
    return "unknown entry kind %s" % kind


def check(entries, model_dir, hf_cache, present=()):
    """(missing, checked): each entry not in place, as ``<label> (<reason>)`` (the
    reason left out for a plain missing file)."""
    missing = []
    for entry in entries:
        problem = entry_problem(entry, model_dir, hf_cache, present)
        if problem:
            label = entry_label(entry)
            missing.append(label if problem == "missing" else "%s (%s)" % (label, problem))
    return missing, len(entries)


def layout_mismatch(era, entries, missing, model_dir, hf_cache):
    """A sentence when the cache is laid out for the other era, else None: a flat-era
    release facing only a hub cache, or a hub-era release facing only a flat one."""
    flat_dir = os.path.join(model_dir, FLAT_DIR)
    if era == "flat":
        # Only when no flat file is there: a flat layout with a gap is a missing file.
        flat_missing = [m for m in missing if m.startswith("hf_cache (flat) ")]
        if not flat_missing or len(flat_missing) < len([e for e in entries if e["kind"] == "hf_flat"]):
            return None
        repos = sorted(set(e["repo"] for e in entries if e["kind"] == "hf_flat"))
        found = []
        for where in (flat_dir, hf_cache):
            if where and any(os.path.isdir(os.path.join(where, repo_dir_name(r) or r)) for r in repos):
                found.append(where)
        if not found:
            return None
        return ("this release reads a flat %s (w2v-bert-2.0/, semantic_codec_model.safetensors, "
                "campplus_cn_common.bin, bigvgan/), but only a hub-layout cache is there (%s); at first start "
                "it would copy the models out of it, which fails on a read-only cache. Lay the cache out with "
                "indextts.deploy.indextts2_cache_layout on the golden host, then sync again"
                % (flat_dir, ", ".join(found)))
    if not any(m.startswith("hf_cache ") and not m.startswith("hf_cache (flat) ") for m in missing):
        return None
    flat = [n for n in FLAT_NAMES if os.path.exists(os.path.join(flat_dir, n))]
    if not flat:
        return None
    return ("this release (before upstream commit 803a082) reads its auxiliary models through the Hugging Face "
            "hub layout (refs/main -> snapshot -> blob) in %s, but what is there is the flat layout of later "
            "releases in %s (%s), which it never reads. Sync the hub cache (hf_cache/) from the golden host, or "
            "set hf_cache to where it is" % (hf_cache or "HF_HUB_CACHE", flat_dir, ", ".join(flat)))
