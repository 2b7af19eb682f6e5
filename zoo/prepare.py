"""Prepare one zoo model in a process of its own: fit its weights (or reuse them when the zoo's
model code has not changed) and, for an ONNX entry, export its torch base with torch.onnx.export.

    python -m zoo.prepare NAME --work DIR     # prints one JSON line: weights, onnx, seconds

zoo/run.py calls it before ``edgepack build``, so a crash here (an exporter's segfault, say) is
recorded for that model alone, with its reason.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def code_hash() -> str:
    """What the weights depend on: the zoo's model code."""
    h = hashlib.sha256()
    for p in sorted((REPO / "zoo" / "models").glob("*.py")):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


QUICK_TRAIN_SCALE = 0.3  # --quick: a third of the training steps/epochs (weights of their own)


def weights_for(name: str, work: Path, quick: bool = False) -> tuple[Path, float, bool]:
    """(the weights file of torch/tensorflow entry ``name``, seconds spent fitting, reused?)."""
    from zoo.models import entry
    e = entry(name)
    folder = work / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{'.quick' if quick else ''}{e.weights_suffix}"
    stamp = path.with_name(path.name + ".stamp")
    want = code_hash()
    if path.is_file() and stamp.is_file() and stamp.read_text() == want:
        return path, 0.0, True
    t0 = time.perf_counter()
    if quick:
        os.environ["ZOO_TRAIN_SCALE"] = str(QUICK_TRAIN_SCALE)
    model = e.fit()
    tmp = path.with_name("tmp-" + path.name)
    e.save(model, tmp)
    tmp.replace(path)
    stamp.write_text(want)
    return path, time.perf_counter() - t0, False


def prepare(name: str, work: Path, quick: bool = False) -> dict[str, object]:
    from zoo.models import entry
    from zoo.models.onnx_exports import base_of, export
    e = entry(name)
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if e.framework != "onnx":
        weights, fit_s, reused = weights_for(name, work, quick)
        return {"weights": str(weights), "fit_s": round(fit_s, 2), "reused": reused,
                "seconds": round(time.perf_counter() - t0, 2)}
    base = base_of(e)
    weights, fit_s, reused = weights_for(base.name, work, quick)
    model = base.load(weights)
    path = folder / "model.onnx"
    t1 = time.perf_counter()
    export(e, model, path)
    return {"weights": str(weights), "fit_s": round(fit_s, 2), "reused": reused, "onnx": str(path),
            "export_s": round(time.perf_counter() - t1, 2), "seconds": round(time.perf_counter() - t0, 2)}


def limit_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = str(n)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(max(1, n))  # torch and TensorFlow read these at import


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("name")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--quick", action="store_true", help="shorter training (weights of their own)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads for torch and TensorFlow "
                   "(0: their default; on a shared machine 1 is often several times faster)")
    args = p.parse_args()
    if args.threads:
        limit_threads(args.threads)
    try:
        doc = prepare(args.name, args.work.resolve(), args.quick)
    except Exception as exc:
        traceback.print_exc()
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
