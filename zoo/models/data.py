"""Data made in code for the zoo: structured, seeded, with labels (for the quick training) and
with the statistics of real inputs (smooth images, Zipf-distributed token ids with [CLS]/[SEP]
and padding, tones with harmonics, log-mel-like spectrograms), never white noise alone.

Every generator is ``fn(n, seed) -> (feeds, targets)``: ``feeds`` the arrays a model's samples
entry point yields (keyed by the model's input names, added by the family module), ``targets``
what its training fits. Calibration and golden data use seeds the training never sees.
"""
from __future__ import annotations

from typing import Any

import numpy as np

CLASSES = 4


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# -- images ---------------------------------------------------------------------------------------


def images(n: int, seed: int, size: int = 32, channels: int = 3, layout: str = "NCHW",
           classes: int = CLASSES, scale: str = "unit") -> tuple[np.ndarray, np.ndarray]:
    """Smooth images: a soft bright blob in one of ``classes`` places (the label) over a colour
    gradient and low-frequency texture, plus a little sensor noise. ``scale``: "unit" is [0, 1],
    "signed" [-1, 1], "pixel" [0, 255] (what keras.applications models take)."""
    rng = _rng(seed)
    labels = rng.integers(0, classes, n)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    out = np.empty((n, size, size, channels), np.float32)
    for i, k in enumerate(labels):
        angle = 2 * np.pi * k / classes
        cy, cx = 0.5 + 0.28 * np.sin(angle), 0.5 + 0.28 * np.cos(angle)
        cy, cx = cy + 0.05 * rng.standard_normal(), cx + 0.05 * rng.standard_normal()
        r = 0.12 + 0.06 * rng.random()
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        g = rng.uniform(-1, 1, 2)
        grad = 0.5 + 0.25 * (g[0] * (yy - 0.5) + g[1] * (xx - 0.5))
        f = rng.uniform(1, 3, 2)
        tex = 0.08 * np.sin(2 * np.pi * (f[0] * yy + rng.random())) * np.cos(2 * np.pi * (f[1] * xx + rng.random()))
        tint = rng.uniform(0.6, 1.0, channels)
        for c in range(channels):
            out[i, :, :, c] = 0.35 * grad + 0.55 * blob * tint[c] + tex
    out += 0.02 * rng.standard_normal(out.shape).astype(np.float32)
    out = np.clip(out, 0.0, 1.0)
    if scale == "signed":
        out = out * 2 - 1
    elif scale == "pixel":
        out = out * 255
    if layout == "NCHW":
        out = out.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(out, np.float32), labels.astype(np.int64)


def masks(n: int, seed: int, size: int = 32, channels: int = 3, layout: str = "NCHW",
          classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Segmentation: background (0), a soft disc (1) and a rectangle (2) on a smooth background;
    returns images and per-pixel labels [n, size, size]."""
    rng = _rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    x = np.empty((n, size, size, channels), np.float32)
    y = np.zeros((n, size, size), np.int64)
    for i in range(n):
        cy, cx, r = rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75), rng.uniform(0.1, 0.2)
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2) < r * r
        y0, x0 = rng.uniform(0, 0.6, 2)
        h, w = rng.uniform(0.15, 0.35, 2)
        rect = (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w) & ~disc
        y[i][disc] = 1
        if classes > 2:
            y[i][rect] = 2
        g = rng.uniform(-1, 1, 2)
        base = 0.4 + 0.2 * (g[0] * (yy - 0.5) + g[1] * (xx - 0.5))
        for c in range(channels):
            x[i, :, :, c] = base + 0.45 * disc * (c % 2 == 0) + 0.35 * rect * (c % 2 == 1)
    x += 0.02 * rng.standard_normal(x.shape).astype(np.float32)
    x = np.clip(x, 0, 1)
    if layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, np.float32), y


def boxes(n: int, seed: int, size: int = 32, channels: int = 3, layout: str = "NCHW",
          classes: int = 3) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Detection: one object per image (a disc, a square or a cross: the class) on a smooth
    background; targets: its box (cx, cy, w, h in [0, 1]) and class."""
    rng = _rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    x = np.empty((n, size, size, channels), np.float32)
    box = np.empty((n, 4), np.float32)
    cls = rng.integers(0, classes, n)
    for i, k in enumerate(cls):
        w, h = rng.uniform(0.2, 0.45, 2)
        cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
        inside = (np.abs(xx - cx) < w / 2) & (np.abs(yy - cy) < h / 2)
        if k == 0:
            shape = ((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2 < 1
        elif k == 1:
            shape = inside
        else:
            shape = inside & ((np.abs(xx - cx) < w / 8) | (np.abs(yy - cy) < h / 8))
        g = rng.uniform(-1, 1, 2)
        base = 0.3 + 0.15 * (g[0] * (yy - 0.5) + g[1] * (xx - 0.5))
        for c in range(channels):
            x[i, :, :, c] = base + (0.5 + 0.1 * c) * shape
        box[i] = (cx, cy, w, h)
    x += 0.02 * rng.standard_normal(x.shape).astype(np.float32)
    x = np.clip(x, 0, 1)
    if layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, np.float32), {"box": box, "cls": cls.astype(np.int64)}


# -- text -----------------------------------------------------------------------------------------

CLS_ID, SEP_ID, PAD_ID, FIRST_WORD = 2, 3, 0, 5


def tokens(n: int, seed: int, seq: int = 16, vocab: int = 512, classes: int = CLASSES,
           pad_id: int = PAD_ID, min_len: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Token ids as a tokenizer gives them: [CLS] words [SEP] then padding (attention mask 0).
    Words are Zipf-distributed over the vocabulary, with each topic (the label) favouring its own
    band of ids; lengths vary from ``min_len`` (default seq // 2) to ``seq``."""
    rng = _rng(seed)
    labels = rng.integers(0, classes, n)
    ids = np.full((n, seq), pad_id, np.int64)
    mask = np.zeros((n, seq), np.int64)
    words = vocab - FIRST_WORD
    band = words // classes
    ranks = np.arange(1, words + 1, dtype=np.float64)
    zipf = 1.0 / ranks ** 1.1
    zipf /= zipf.sum()
    lo = min_len or max(3, seq // 2)
    for i, k in enumerate(labels):
        length = int(rng.integers(lo, seq + 1))
        common = rng.choice(words, size=length - 2, p=zipf)
        topical = int(k) * band + rng.integers(0, band, size=length - 2)
        body = np.where(rng.random(length - 2) < 0.5, topical, common) + FIRST_WORD
        ids[i, :length] = np.concatenate([[CLS_ID], body, [SEP_ID]])
        mask[i, :length] = 1
    return {"input_ids": ids, "attention_mask": mask}, labels.astype(np.int64)


def lm_tokens(n: int, seed: int, seq: int = 16, vocab: int = 512) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Sequences a language model can learn: counting in a random stride from a random start,
    with a few repeated words; targets are the next tokens."""
    rng = _rng(seed)
    words = vocab - FIRST_WORD
    start = rng.integers(0, words, (n, 1))
    stride = rng.integers(1, 6, (n, 1))
    seq_ids = (start + stride * np.arange(seq + 1)[None]) % words + FIRST_WORD
    noise = rng.random((n, seq + 1)) < 0.1
    seq_ids = np.where(noise, np.roll(seq_ids, 1, axis=1), seq_ids).astype(np.int64)
    return {"input_ids": seq_ids[:, :-1]}, seq_ids[:, 1:]


# -- signals --------------------------------------------------------------------------------------


def audio(n: int, seed: int, length: int = 1600, rate: int = 16000,
          classes: int = CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """0.1 s clips: a tone whose pitch band is the label, with two harmonics, an attack/decay
    envelope and a little background noise; peak-normalised like a feature extractor's output."""
    rng = _rng(seed)
    labels = rng.integers(0, classes, n)
    t = np.arange(length, dtype=np.float64) / rate
    out = np.empty((n, length), np.float32)
    for i, k in enumerate(labels):
        f0 = 200 * 2 ** (int(k) * 0.75 + rng.uniform(0, 0.5))
        a = rng.uniform(0.2, 0.6, 3) * (1.0, 0.5, 0.25)
        wave = sum(a[h] * np.sin(2 * np.pi * f0 * (h + 1) * t + rng.uniform(0, 6.3)) for h in range(3))
        env = np.minimum(1.0, t / 0.01) * np.exp(-t * rng.uniform(3, 12))
        sig = wave * env + 0.01 * rng.standard_normal(length)
        out[i] = (sig - sig.mean()) / (sig.std() + 1e-6)
    return out, labels.astype(np.int64)


def log_mel(n: int, seed: int, mels: int = 16, frames: int = 64,
            classes: int = CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel-like features [n, mels, frames] computed from audio() clips (STFT power pooled into
    ``mels`` log-spaced bands, log10, scaled as Whisper's feature extractor does)."""
    hop, win = 160, 400
    length = hop * (frames - 1) + win
    wave, labels = audio(n, seed, length=length, classes=classes)
    window = np.hanning(win)
    idx = np.arange(frames)[:, None] * hop + np.arange(win)[None]
    spec = np.abs(np.fft.rfft(wave[:, idx] * window, axis=-1)) ** 2  # n, frames, bins
    bins = spec.shape[-1]
    mel_top = 2595 * np.log10(1 + 8000 / 700)
    hz = 700 * (10 ** (np.linspace(0, mel_top, mels + 1) / 2595) - 1)
    edges = np.round(hz / 8000 * (bins - 1)).astype(int)
    for j in range(1, mels + 1):  # at least one bin per band
        edges[j] = max(edges[j], edges[j - 1] + 1)
    bands = np.stack([spec[..., edges[j]:edges[j + 1]].mean(-1) for j in range(mels)], 1)
    logm = np.log10(np.maximum(bands, 1e-10))
    logm = np.maximum(logm, logm.max(axis=(1, 2), keepdims=True) - 8.0)
    return ((logm + 4.0) / 4.0).astype(np.float32), labels


def signals(n: int, seed: int, steps: int = 24, features: int = 6,
            classes: int = CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """Multichannel sensor traces [n, steps, features]: sinusoids whose frequency is the label,
    with a drift and per-channel phases (an IMU-like window)."""
    rng = _rng(seed)
    labels = rng.integers(0, classes, n)
    t = np.arange(steps, dtype=np.float32)[None, :, None]
    freq = (0.05 + 0.06 * labels + 0.01 * rng.random(n))[:, None, None]
    phase = rng.uniform(0, 6.3, (n, 1, features))
    amp = rng.uniform(0.5, 1.5, (n, 1, features))
    drift = rng.uniform(-0.02, 0.02, (n, 1, features)) * t
    x = amp * np.sin(2 * np.pi * freq * t + phase) + drift + 0.05 * rng.standard_normal((n, steps, features))
    return x.astype(np.float32), labels.astype(np.int64)


def tabular(n: int, seed: int, features: int = 8) -> np.ndarray:
    """Standardised tabular features with correlated columns."""
    rng = _rng(seed)
    base = rng.standard_normal((n, 3))
    mix = _rng(1234).standard_normal((3, features))
    return (base @ mix / np.sqrt(3) + 0.2 * rng.standard_normal((n, features))).astype(np.float32)


def batches(feeds: dict[str, Any], batch: int = 16):  # type: ignore[no-untyped-def]
    """Feed dicts of ``batch`` rows from arrays of n rows (what a samples entry point yields)."""
    n = len(next(iter(feeds.values())))
    for start in range(0, n, batch):
        yield {k: np.ascontiguousarray(v[start:start + batch]) for k, v in feeds.items()}
