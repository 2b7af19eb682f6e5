"""Dynamic sequence axes, checked after the build: every candidate of a model whose signature has a
``seq`` axis is run from its bundle at twice the length the build calibrated and checked at (the
golden inputs concatenated with themselves along that axis) and compared with the source model on
the same feeds. A candidate compiled for one length (litert-torch's TFLite) should refuse other
lengths with a FeedError saying so, never compute something else.

    python -m zoo.seqcheck NAME --work DIR BUNDLE...   # prints one JSON line: {target: {candidate: ...}}
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROWS = 4
MIN_COSINE = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.98}


def longer(entry: Any, golden: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The first golden rows with every ``seq`` axis doubled (each sequence followed by itself)."""
    feeds = {}
    for spec in entry.inputs:
        x = golden[spec["name"]][:ROWS]
        for axis, dim in enumerate(spec["shape"]):
            if dim == "seq":
                x = np.concatenate([x, x], axis=axis)
        feeds[spec["name"]] = np.ascontiguousarray(x)
    return feeds


def reference(entry: Any, work: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The source model's outputs (an ONNX entry: the torch model it was exported from)."""
    from zoo.models.onnx_exports import base_of
    src = base_of(entry) if entry.framework == "onnx" else entry
    model = src.load(work / "weights" / f"{src.name}{src.weights_suffix}")
    args = [feeds[s["name"]] for s in entry.inputs]
    if src.framework == "torch":
        import torch
        with torch.no_grad():
            out = model(*[torch.from_numpy(a) for a in args])
        return [o.numpy() for o in (out if isinstance(out, (tuple, list)) else (out,))]
    out = model(args if len(args) > 1 else args[0], training=False)
    if isinstance(out, dict):
        out = [out[o["name"]] for o in entry.outputs]
    return [np.asarray(o) for o in (out if isinstance(out, (tuple, list)) else (out,))]


def compare(ref: np.ndarray, got: np.ndarray) -> dict[str, Any]:
    if ref.shape != got.shape:
        return {"shape": list(got.shape), "expected": list(ref.shape)}
    a, b = ref.astype(np.float64).ravel(), got.astype(np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return {"max_abs": float(np.max(np.abs(a - b))), "cosine": float(a @ b / denom) if denom else None}


def check_bundle(entry: Any, bundle: Path, work: Path) -> dict[str, Any]:
    import runtime
    from runtime.errors import FeedError
    doc = json.loads((bundle / "bundle.json").read_text())
    with np.load(bundle / "golden" / "inputs.npz") as g:
        feeds = longer(entry, {k: g[k] for k in g.files})
    ref = reference(entry, work, feeds)
    seq = {s["name"]: feeds[s["name"]].shape[list(s["shape"]).index("seq")]
           for s in entry.inputs if "seq" in s["shape"]}
    out: dict[str, Any] = {}
    for cand in doc["candidates"]:
        cid = cand["id"]
        try:
            with runtime.load(bundle, candidate=cid, tuned=False) as model:
                got = model.run(feeds)
        except FeedError as exc:
            out[cid] = {"status": "refused", "reason": f"FeedError: {exc}".splitlines()[0][:400], "seq": seq}
            continue
        except Exception as exc:
            out[cid] = {"status": "error", "reason": f"{type(exc).__name__}: {exc}".splitlines()[0][:400], "seq": seq}
            continue
        outputs = {o["name"]: compare(r, got[o["name"]]) for o, r in zip(entry.outputs, ref, strict=True)}
        want = MIN_COSINE.get(cand.get("precision", "fp32"), 0.98)
        good = all("cosine" in c and c["cosine"] is not None and c["cosine"] >= want for c in outputs.values())
        out[cid] = {"status": "ok" if good else "mismatch", "outputs": outputs, "seq": seq,
                    **({} if good else {"reason": f"outputs differ from the source model at seq {seq} "
                                                  f"(cosine < {want}): {outputs}"})}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("name")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("bundles", nargs="+", type=Path)
    args = p.parse_args()
    from zoo.models import entry
    e = entry(args.name)
    result: dict[str, Any] = {}
    for bundle in args.bundles:
        target = json.loads((bundle / "bundle.json").read_text())["target"]["name"]
        try:
            result[target] = check_bundle(e, bundle.resolve(), args.work.resolve())
        except Exception as exc:
            traceback.print_exc()
            result[target] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
