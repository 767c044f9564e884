"""Prove an IndexTTS2 web UI speaks: synthesize through its own Gradio API.

    indextts2_speech_check.py --url http://127.0.0.1:7860 --voice ref.wav \
        --text "Hello." --out /tmp/x.wav [--timeout 300] [--expect-rate 22050 | --config config.yaml]

Run with the release venv's python (gradio_client comes with gradio).  No
internet needed: only the given URL is contacted.

The endpoint is discovered at run time from the server's API description
(gradio_client's view of /gradio_api/info): the one whose parameters include
`prompt` (the speaker reference audio) and `text` - the web UI's `gen_single`
(api_name "/gen_single" in v2.0.0 and v2.5.0).  Only `prompt` and `text` are
passed (plus None for parameters declaring no default, e.g. emo_ref_path, and
--lang); every other parameter keeps the default the server declares (emotion
mode "Same as the voice reference", v2.5.0's lang_choice "ZH", duration 1.0 ...).

Prints one JSON line {"ok", "seconds", "sample_rate", "frames", "bytes", "api", ...}
and exits 0 only if a non-empty WAV came back at the expected sample rate
(IndexTTS2 writes 22050 Hz: infer_v2*.py use sampling_rate = 22050, the
BigVGAN 22 kHz vocoder's rate, s2mel.preprocess_params.sr in config.yaml).
"""
import argparse
import json
import os
import shutil
import sys
import time
import wave

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def fail(result, msg, code=1):
    result.update(ok=False, error=msg)
    print(json.dumps(result))
    print(f"indextts2_speech_check: {msg}", file=sys.stderr)
    sys.exit(code)


def expected_rate(args):
    if args.expect_rate:
        return args.expect_rate
    if args.config:
        try:
            import yaml
            with open(args.config) as f:
                return int(yaml.safe_load(f)["s2mel"]["preprocess_params"]["sr"])
        except Exception as e:  # noqa: BLE001
            print(f"indextts2_speech_check: cannot read sr from {args.config}: {e}", file=sys.stderr)
    return 22050


def find_endpoint(info):
    """Return (api_name, [parameter dicts]) of the synthesis endpoint."""
    named = info.get("named_endpoints", {})
    best = None
    for name, ep in named.items():
        params = ep.get("parameters", [])
        names = [p.get("parameter_name") for p in params]
        if "prompt" in names and "text" in names:
            if name == "/gen_single":
                return name, params
            best = best or (name, params)
    return best or (None, None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    ap.add_argument("--url", default="http://127.0.0.1:7860")
    ap.add_argument("--voice", required=True, help="reference voice WAV")
    ap.add_argument("--text", default="Hello, this is a speech check.")
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--expect-rate", type=int, default=0)
    ap.add_argument("--config", help="model config.yaml, to read the sample rate from")
    ap.add_argument("--lang", help="v2.5.0 only: lang_choice (ZH, EN, JA, ...); default: the UI's")
    args = ap.parse_args()
    result = {"ok": False, "url": args.url}
    rate = expected_rate(args)

    if not os.path.isfile(args.voice):
        fail(result, f"voice file not found: {args.voice}", 2)
    try:
        from gradio_client import Client, handle_file
    except ImportError as e:
        fail(result, f"gradio_client not importable with {sys.executable}: {e}", 2)

    t0 = time.monotonic()
    try:
        client = Client(args.url, verbose=False, download_files=os.path.dirname(
            os.path.abspath(args.out)) or ".")
        info = client.view_api(print_info=False, return_format="dict")
    except Exception as e:  # noqa: BLE001
        fail(result, f"cannot reach the web UI API at {args.url}: {e}")
    api_name, params = find_endpoint(info or {})
    if not api_name:
        fail(result, "no endpoint with 'prompt' and 'text' parameters in the web UI API: "
             + ", ".join(sorted((info or {}).get("named_endpoints", {}))))
    result["api"] = api_name
    result["params"] = len(params)
    kwargs = {}
    for p in params:  # parameters without a declared default (e.g. emo_ref_path): None
        if not p.get("parameter_has_default") and p.get("parameter_name") not in ("prompt", "text"):
            kwargs[p["parameter_name"]] = None
    if args.lang:
        kwargs["lang_choice"] = args.lang
    kwargs.update(prompt=handle_file(os.path.abspath(args.voice)), text=args.text)

    job = client.submit(api_name=api_name, **kwargs)
    try:
        out = job.result(timeout=args.timeout)
    except Exception as e:  # noqa: BLE001
        fail(result, f"synthesis failed or timed out after {time.monotonic() - t0:.1f}s: {e}")
    result["seconds"] = round(time.monotonic() - t0, 2)

    # gen_single returns gr.update(value=path): the client gives a local file path
    # (or a dict with "value"/"path" depending on the gradio version)
    path = out
    if isinstance(out, (list, tuple)):
        path = out[0] if out else None
    if isinstance(path, dict):
        path = path.get("value") or path.get("path") or path.get("name")
        if isinstance(path, dict):
            path = path.get("path") or path.get("name")
    if not path or not isinstance(path, str) or not os.path.isfile(path):
        fail(result, f"no audio returned (got {out!r:.200})")
    if os.path.abspath(path) != os.path.abspath(args.out):
        shutil.copyfile(path, args.out)
    result["bytes"] = os.path.getsize(args.out)
    try:
        with wave.open(args.out, "rb") as w:
            result.update(sample_rate=w.getframerate(), frames=w.getnframes(),
                          channels=w.getnchannels())
    except Exception as e:  # noqa: BLE001
        fail(result, f"returned file is not a readable WAV: {e}")
    if result["frames"] <= 0:
        fail(result, "returned WAV has zero length")
    if result["sample_rate"] != rate:
        fail(result, f"sample rate {result['sample_rate']} != expected {rate}")
    result["ok"] = True
    print(json.dumps(result))


if __name__ == "__main__":
    main()
