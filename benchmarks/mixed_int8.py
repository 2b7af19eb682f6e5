"""Mixed precision: int8 that misses parity, repaired by keeping the nodes that break it in float.

Four models where plain int8 fails parity (benchmarks/mixed_models.py: a 1000-way softmax
classifier, a transformer encoder with massive activations, a CNN with an outlier channel, a
YOLO-style detection head) are built with `edgepack build` for benchmarks/targets/
bench-int8-mixed.yaml: the same ONNX QDQ int8 candidate plainly (int8-plain) and with
``fallback: mixed`` (int8-mixed), beside fp32, with --allow-parity-failure so the plain one is in
the bundle to be timed. From the build's records: whether each passed parity, the nodes kept in
float (of the float model's), the first rows of the plain candidate's per-node table. Then the
three artifacts are timed the same way: onnxruntime CPU, one thread, batch 1 (the bundle's first
golden sample), rounds interleaved, the median of each.

Goal per model: plain int8 fails parity, the mixed candidate passes keeping at most 10 % of the
nodes in float. Its speed against fp32 and plain int8 is printed beside it, no goal: on models this
small int8's quantize/dequantize steps can cost more than the int8 arithmetic saves.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import common
import numpy as np

MODELS = {"softmax1000": "1000-way softmax classifier", "encoder": "transformer encoder, massive activations",
          "outlier-cnn": "CNN, one outlier channel", "detection": "YOLO-style detection head"}
CANDIDATES = ("fp32", "int8-plain", "int8-mixed")
MAX_SHARE = 0.10


def build(model: str) -> tuple[dict[str, Any], Path]:
    """The build report and the bundle folder of benchmarks/manifests/mixed-<model>.yaml."""
    manifest = common.HERE / "manifests" / f"mixed-{model}.yaml"
    out = common.work_dir() / "mixed"
    proc = common.edgepack("build", str(manifest), "--out", str(out), "--cache-dir", str(common.work_dir() / "cache"),
                           "--allow-parity-failure", "-q")
    report_path = out / f"mixed-{model}.build.json"
    if proc.returncode or not report_path.is_file():
        raise SystemExit(f"building {manifest.name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    [target] = report["targets"]
    return report, Path(target["bundle_dir"])


def timed(bundle: Path, files: dict[str, str], quick: bool) -> dict[str, list[float]]:
    """Seconds per run of each candidate's file, one thread, batch 1, rounds interleaved."""
    import onnxruntime as ort
    golden = np.load(bundle / "golden" / "inputs.npz")
    feed = {k: golden[k][:1] for k in golden.files}
    sessions = {}
    for cid, rel in files.items():
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        sessions[cid] = ort.InferenceSession(str(bundle / rel), options, providers=["CPUExecutionProvider"])
        for _ in range(5):
            sessions[cid].run(None, feed)
    samples: dict[str, list[float]] = {cid: [] for cid in files}
    for _ in range(10 if quick else 60):
        for cid, sess in sessions.items():
            reps = 10
            t = time.perf_counter()
            for _ in range(reps):
                sess.run(None, feed)
            samples[cid].append((time.perf_counter() - t) / reps)
    return samples


def measure(model: str, quick: bool) -> dict[str, Any]:
    report, bundle = build(model)
    [target] = report["targets"]
    results = {c["id"]: c for c in target["candidates"]}
    doc = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    entries = {c["id"]: c for c in doc["candidates"]}
    missing = [c for c in CANDIDATES if c not in entries]
    if missing:
        raise SystemExit(f"mixed-{model}: {', '.join(missing)} not in the bundle: "
                         + "; ".join(f"{c}: {results.get(c, {}).get('message')}" for c in missing))
    mixed = entries["int8-mixed"]["conversion"]["mixed"]
    kept = entries["int8-mixed"]["conversion"].get("kept_float", [])
    plain_failures = [f"{o['name']}: {f}" for o in results["int8-plain"]["parity"]["outputs"]
                      for f in o.get("failures", [])]
    samples = timed(bundle, {c: entries[c]["file"] for c in CANDIDATES}, quick)
    median = {c: statistics.median(v) for c, v in samples.items()}
    table = (results["int8-plain"].get("explained") or {}).get("rows", [])[:3]
    return {"model": model, "title": MODELS[model], "plain_passed": results["int8-plain"]["status"] == "ok",
            "plain_failures": plain_failures,
            "mixed_passed": results["int8-mixed"]["status"] == "ok" and mixed["passed"],
            "kept_float": kept, "float_nodes": mixed["float_nodes"],
            "kept_share": len(kept) / mixed["float_nodes"],
            "rounds": mixed["rounds"], "bytes": {c: entries[c]["size"] if "size" in entries[c] else
                                                 (bundle / entries[c]["file"]).stat().st_size for c in CANDIDATES},
            "median_ms": {c: v * 1e3 for c, v in median.items()},
            "samples_ms": {c: [x * 1e3 for x in v] for c, v in samples.items()},
            "plain_table": [{k: r[k] for k in ("node", "op_type", "snr_db", "added_db", "seen_at") if k in r}
                            for r in table]}


def row(m: dict[str, Any]) -> dict[str, Any]:
    ms = m["median_ms"]
    baseline = "plain int8: " + ("passes parity" if m["plain_passed"]
                                 else "parity FAILED (" + m["plain_failures"][0] + ")")
    ours = (f"int8 mixed: {'passes' if m['mixed_passed'] else 'FAILS'} parity, {len(m['kept_float'])} of "
            f"{m['float_nodes']} nodes float ({100 * m['kept_share']:.1f} %); {ms['int8-mixed']:.3f} ms vs "
            f"fp32 {ms['fp32']:.3f} ms ({ms['fp32'] / ms['int8-mixed']:.2f}x), plain int8 {ms['int8-plain']:.3f} ms")
    met = m["mixed_passed"] and not m["plain_passed"] and m["kept_share"] <= MAX_SHARE
    return common.row(f"int8 mixed precision, {m['title']}", "plain int8 fails, mixed passes, <= 10 % of nodes float",
                      baseline, ours, met, key=f"mixed:{m['model']}", **m)


def main() -> None:
    p = common.parser(__doc__ or "")
    p.add_argument("--only", choices=sorted(MODELS), action="append", help="these models only")
    args = p.parse_args()
    measured = [measure(m, args.quick) for m in (args.only or MODELS)]
    extras = {f"table:{m['model']}": {"text": f"{m['title']}: plain int8's per-node table starts at "
                                      + "; ".join(f"{r['node']} ({r['op_type']}, -{r['added_db']:.1f} dB"
                                                  + (f", seen at {r['seen_at']}" if r.get("seen_at") else "") + ")"
                                                  for r in m["plain_table"])
                                      + f"; kept float: {', '.join(m['kept_float'])}"} for m in measured}
    common.emit(args, "mixed_int8", [row(m) for m in measured], extras,
                method="edgepack build --allow-parity-failure for bench-int8-mixed (onnxruntime QDQ int8, per-channel "
                       "weights, 96 calibration samples, parity on 32 golden samples held out of calibration); "
                       "each artifact timed with onnxruntime CPU, 1 thread, batch 1, "
                       + ("10" if args.quick else "60") + " interleaved rounds of 10 runs, median")


if __name__ == "__main__":
    main()
