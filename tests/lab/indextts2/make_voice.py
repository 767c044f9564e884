"""Write a short synthetic 'voice' WAV (vowel-like harmonics, varying pitch, pauses).

    python3 make_voice.py OUT.wav [--seconds 3] [--rate 16000] [--seed 1]

Mono 16-bit PCM.  Deterministic.  Needs numpy.  Used for the role's
reference_voice.wav and for the example WAVs the v2.5.0 web UI wants locally.
"""
import argparse
import wave

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--seconds", type=float, default=3.0)
ap.add_argument("--rate", type=int, default=16000)
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
rng = np.random.default_rng(a.seed)
sr, n = a.rate, int(a.rate * a.seconds)
t = np.arange(n) / sr
f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t) + 10 * np.sin(2 * np.pi * 3.1 * t)
phase = 2 * np.pi * np.cumsum(f0) / sr
formants = [(700, 130), (1220, 70), (2600, 160)]          # an "a"-like vowel
sig = np.zeros(n)
for k in range(1, 30):
    fk = k * f0
    amp = sum(np.exp(-((fk - F) ** 2) / (2 * (3 * bw) ** 2)) for F, bw in formants) / k ** 0.5
    sig += amp * np.sin(k * phase)
sig += 0.01 * rng.standard_normal(n)
syll = 0.5 * (1 - np.cos(2 * np.pi * 2.5 * t))               # 2.5 syllables/s
env = np.where((t % 1.2) < 1.0, syll, 0.0)                  # short pauses
sig = sig * env
sig = 0.6 * sig / np.max(np.abs(sig))
with wave.open(a.out, "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(sr)
    w.writeframes((sig * 32767).astype("<i2").tobytes())
