"""Cold start: process start -> first result, `python -m runtime run` against a minimal script
that calls onnxruntime directly on the same artifact and input.

Goal (issue 6): at most 1.2x the minimal script. Both are timed from outside (subprocess start
to exit, output written), alternating, median of the runs. The bundle is the tiny MLP's, with
`--prefer onnx-fp32` so both sides load the same .onnx file.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import common
import numpy as np

MINIMAL = """import sys, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
y = s.run(None, {s.get_inputs()[0].name: np.load(sys.argv[2])})
np.savez(sys.argv[3], *y)
"""


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = common.run(cmd, cwd=cwd)
    dt = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-1000:]}{proc.stderr[-2000:]}")
    return dt


def main() -> int:
    args = common.parser(__doc__).parse_args()
    n = 5 if args.quick else 11
    root = common.bundle(common.HERE / "manifests" / "mlp.yaml", "../targets/bench-fp32.yaml")
    doc = json.loads((root / "bundle.json").read_text())
    cand = next(c for c in doc["candidates"] if c["id"] == "onnx-fp32")
    scratch = common.work_dir() / "cold"
    scratch.mkdir(exist_ok=True)
    x = scratch / "x.npy"
    np.save(x, np.random.default_rng(0).standard_normal((1, 16)).astype(np.float32))
    script = scratch / "minimal_ort.py"
    script.write_text(MINIMAL)
    ours = [common.PY, "-m", "runtime", "run", ".", "--input", str(x), "--output",
            str(scratch / "ours.npz"), "--prefer", "onnx-fp32"]
    raw = [common.PY, str(script), str(root / cand["file"]), str(x), str(scratch / "raw.npz")]
    # `python -m runtime` runs the bundle's own copy of the runtime, as on a device
    timed(raw, scratch), timed(ours, root)  # warm the file cache
    t_raw, t_ours = [], []
    for i in range(n):  # alternating, the order flipping every pair
        if i % 2 == 0:
            t_raw.append(timed(raw, scratch))
            t_ours.append(timed(ours, root))
        else:
            t_ours.append(timed(ours, root))
            t_raw.append(timed(raw, scratch))
    raw_s, ours_s = common.median(t_raw), common.median(t_ours)
    ratio = ours_s / raw_s
    pairs = [o / r for o, r in zip(t_ours, t_raw, strict=True)]
    common.emit(args, "cold_start", [common.row(
        "cold start, `python -m runtime run` (tiny MLP, onnx-fp32)", "≤ 1.2×",
        f"{raw_s * 1e3:.0f} ms (minimal onnxruntime script)",
        f"{ours_s * 1e3:.0f} ms ({ratio:.2f}×)", ratio <= 1.2, key="cold_start", runs=n, raw_ms=raw_s * 1e3,
        ours_ms=ours_s * 1e3, ratio=ratio,
        raw_samples_ms=[t * 1e3 for t in t_raw], ours_samples_ms=[t * 1e3 for t in t_ours],
        pair_ratio=common.stats(pairs),
        pair_ratio_p10=common.quantile(pairs, 0.1), pair_ratio_p90=common.quantile(pairs, 0.9))],
        method=f"fresh subprocesses timed from outside (start to exit, output written), "
               f"alternating minimal script and `python -m runtime run` (the order flipping every "
               f"pair), {n} pairs; figure: "
               "ratio of the medians")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
