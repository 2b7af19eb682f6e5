"""Where an int8 candidate's error starts, measured on this device (``verify --explain``).

"Fine on the PC, wrong on the device" is the case nobody can debug: the build's per-node table
says where int8 loses signal on the build host, not on the Pi. A bundle built with the target
option ``explain_bytes`` carries, per int8 candidate, what it takes to make that table here: for
ONNX a *probe* (the int8 model with its most telling intermediate tensors as extra outputs), for
TFLite nothing more than the candidate's file (LiteRT reads any intermediate tensor by name), and
the float model's values of those tensors on the first golden samples. The probe runs on this
device's providers; each tensor's signal-to-noise ratio against the float values, the SNR lost
at it (its nearest measured inputs' lowest minus its own) and the host's SNR for the same tensor
say where the error starts, and whether this device loses more than the build host did.

numpy only at import (the backend is imported when a probe runs); the SNR rules are the build's
(``packager.diagnose`` imports them from here).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .bundle import Bundle
    from .bundle_json import Candidate

SNR_CAP_DB = 120.0  # an exact match; keeps the numbers finite in JSON
INT8_SNR_DB = 6.02 * 8 + 1.76  # an ideal 8-bit quantizer on a full-range signal: what int8 can do at best
WORSE_THAN_HOST_DB = 6.0  # a tensor this much below the host's SNR: the device computes it differently


def snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """20 log10(|ref| / |ref - got|), at most ``SNR_CAP_DB``."""
    ref, got = ref.astype(np.float64), got.astype(np.float64)
    noise = float(np.linalg.norm(ref - got))
    if noise == 0.0:
        return SNR_CAP_DB
    return min(SNR_CAP_DB, 20 * math.log10(max(float(np.linalg.norm(ref)), 1e-30) / noise))


def channel_snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """The median SNR of the channels (along axis 1, and along the last axis: NCHW and NHWC, tokens'
    features), the lower of the two, and at most the whole tensor's. One huge channel (an outlier,
    a transformer's massive activation, box pixels beside probabilities) sets a per-tensor int8
    range that rounds the other channels away while the whole tensor's SNR, which that channel
    dominates, stays high; the median sees the other channels."""
    if ref.ndim < 2 or ref.shape != got.shape:
        return snr_db(ref, got)
    worst = SNR_CAP_DB
    for axis in sorted({1, ref.ndim - 1}):
        r = np.moveaxis(ref, axis, 0).reshape(ref.shape[axis], -1).astype(np.float64)
        g = np.moveaxis(got, axis, 0).reshape(ref.shape[axis], -1).astype(np.float64)
        energy, noise = np.linalg.norm(r, axis=1), np.linalg.norm(r - g, axis=1)
        live = energy > 0
        if len(r) < 2 or not live.any():
            continue
        with np.errstate(divide="ignore"):
            snr = np.where(noise[live] == 0, SNR_CAP_DB,
                           20 * np.log10(energy[live] / np.maximum(noise[live], 1e-300)))
        worst = min(worst, float(np.median(np.minimum(snr, SNR_CAP_DB))))
    return min(worst, snr_db(ref, got))


def explain_here(bundle: Bundle, cand: Candidate, providers: list[str]) -> dict[str, Any]:
    """The per-tensor table of ``cand`` on this device: rows in graph order, the first rows where
    the error starts (most SNR lost), and the tensors where this device is worse than the host."""
    record = cand.explain
    if record is None:
        return {"error": f"the bundle carries no per-node references for {cand.id}",
                "hint": "rebuild with the target option explain_bytes (e.g. 4000000) for int8 candidates"}
    from .golden import load_golden, load_npz
    refs = load_npz(str(bundle.path(record.references)), where=record.references)
    golden = load_golden(bundle)
    feeds = [{cand.artifact_input(name): np.asarray(values[i:i + 1] if golden.batched else values[i])
              for name, values in golden.inputs.items()}
             for i in range(record.samples)]
    outputs = [t.output for t in record.tensors]
    if record.probe.endswith(".tflite"):  # a TFLite candidate's own file: LiteRT keeps every tensor when asked
        from .tflite_tensors import tensors
        got = tensors(str(bundle.path(record.probe)), outputs, feeds)
        providers = ["LiteRT interpreter, every tensor kept (no delegate)"]
    else:
        got = _run_probe(str(bundle.path(record.probe)), outputs, feeds, providers, cand.provider_options)
    snr: list[float] = []
    rows: list[dict[str, Any]] = []
    for t in record.tensors:
        ref, out = refs[t.tensor], got[t.output]
        snr.append(channel_snr_db(ref, out.reshape(ref.shape)) if ref.size == out.size else -SNR_CAP_DB)
        added = max(0.0, min([snr[i] for i in t.inputs] + [INT8_SNR_DB]) - snr[-1])
        rows.append({"node": t.node, "op_type": t.op_type, "depth": t.depth, "snr_db": round(snr[-1], 3),
                     "host_snr_db": round(t.host_snr_db, 3), "added_db": round(added, 3)})
    starts = sorted(rows, key=lambda r: (-r["added_db"], r["depth"]))[:5]
    worse = [r for r in rows if r["snr_db"] < r["host_snr_db"] - WORSE_THAN_HOST_DB]
    return {"samples": record.samples, "providers": providers, "rows": rows, "starts": starts,
            "worse_than_host": worse[:5], "first_worse_than_host": worse[0]["node"] if worse else None}


def _run_probe(path: str, outputs: list[str], feeds: list[dict[str, np.ndarray]], providers: list[str],
               options: tuple[dict[str, Any], ...]) -> dict[str, np.ndarray]:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=list(zip(providers, options, strict=False)) if options
                                else providers)
    runs = [sess.run(outputs, feed) for feed in feeds]
    return {name: np.concatenate([np.asarray(r[i], dtype=np.float32) for r in runs]) for i, name in enumerate(outputs)}


def format_explained(doc: dict[str, Any], indent: str = "  ") -> str:
    """The text form: where the error starts on this device, and where it is worse than the host."""
    if "error" in doc:
        hint = f"\n{indent}hint: {doc['hint']}" if doc.get("hint") else ""
        return f"{indent}no per-node table: {doc['error']}{hint}"
    lines = [f"{indent}where the error starts on this device ({doc['samples']} golden samples, "
             f"{len(doc['rows'])} tensors probed):"]
    lines += [f"{indent}  {r['node']} ({r['op_type']}): SNR {r['snr_db']:.1f} dB (host {r['host_snr_db']:.1f}), "
              f"-{r['added_db']:.1f} dB here" for r in doc["starts"][:3]]
    if doc["worse_than_host"]:
        lines.append(f"{indent}worse than on the build host (by more than {WORSE_THAN_HOST_DB:g} dB), first at "
                     f"{doc['first_worse_than_host']}: " + "; ".join(
                         f"{r['node']} {r['snr_db']:.1f} dB vs {r['host_snr_db']:.1f}" for r in doc["worse_than_host"]))
    else:
        lines.append(f"{indent}every probed tensor is within {WORSE_THAN_HOST_DB:g} dB of the build host's SNR: "
                     "int8 loses here what it lost there")
    return "\n".join(lines)
