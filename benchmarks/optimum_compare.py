"""edgepack's ONNX artifacts against Hugging Face Optimum's export of the same transformers model.

Goal (the project's issue): every ONNX artifact at least as fast as Optimum's export of the same
transformers model, on the same onnxruntime.

The model: a small BERT sequence classifier built in code from a config (benchmarks/models.py
``bert_hf``: vocab 1000, hidden 128, 2 layers, 4 heads, intermediate 256, 2 labels; weights from
a fixed seed), saved with ``save_pretrained`` into a local folder (nothing downloaded).

- Optimum exports that folder (``optimum.exporters.onnx.main_export``, task
  text-classification) to fp32 ONNX, then quantizes it to dynamic int8 with its ``ORTQuantizer``
  and the AutoQuantizationConfig of this CPU (``avx512_vnni`` where the CPU has AVX512-VNNI, else
  ``avx512``, ``avx2`` or ``arm64``; ``is_static=False, per_channel=False``, Optimum's documented
  dynamic example). Optimum pins transformers (optimum-onnx 0.1.0: transformers < 4.58) and so
  cannot live in edgepack's environment: it runs from a virtual environment of its own that reuses
  edgepack's torch, onnxruntime, onnx and numpy (benchmarks/optimum_env.py; created once,
  ``~/.cache/edgepack/bench/optimum-<version>-py<X.Y>``, ``$EDGEPACK_OPTIMUM_ENV`` moves it).
- edgepack builds benchmarks/manifests/bert-cls.yaml (``bert_cls``: the same ``bert_hf`` model)
  with `edgepack build` for benchmarks/targets/bench-onnx-int8-dynamic.yaml (ONNX fp32 and ONNX
  int8 dynamic, one thread; the build picks its exporter, see packager/convert/exporter_choice.py),
  and the artifacts are taken from the bundle.

Timing: all four artifacts in this process, on this onnxruntime (CPU provider, intra- and
inter-op threads 1, default graph optimizations), the same arrays (batch 1, sequence 32:
input_ids, attention_mask, token_type_ids), in interleaved rounds: each round times a block of
calls of every artifact (``runtime.tuning.timing.time_calls``, a few untimed warm-up calls first),
edgepack and Optimum of one precision next to each other, the order flipping every round so
machine noise hits both alike. Figures: median and 90th percentile over every timed call; the
per-round ratio of medians shows the spread. Every call's time is kept in the JSON.

Parity: each artifact runs 8 padded sequences (two segments); its logits are compared with the
PyTorch model's (this environment's transformers): max abs error and cosine. A "faster" artifact
that is wrong is visible (and fails the row for edgepack). The PyTorch model Optimum loaded
(its own transformers) is compared too, proving both sides export the same weights.

Graphs: per artifact the opset, node counts by op type in the file and after onnxruntime's graph
optimizations (``SessionOptions.optimized_model_filepath``), so a difference in speed can be
traced to a difference in graphs. Diagnostic variants (``VARIANTS``: edgepack's export before its
onnxsim step, with eager attention, with onnxruntime's transformer fusions), made here from the
same model and timed in the same rounds, say what edgepack's export would need to change.

    python benchmarks/optimum_compare.py [--quick] [--json]
    python benchmarks/optimum_compare.py --setup    # only create the Optimum environment

Where Optimum cannot be installed or cannot export, the output says why (``optimum.reason`` in
the JSON, and the goal rows say "not measured: ..."), and the exit status is still 0 so the other
benchmarks are written; tests/test_benchmarks_optimum.py fails under CI=true with that reason.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import common
import numpy as np
from optimum_env import OPTIMUM_REQUIREMENT, OptimumUnavailable, ensure_env, optimum_side, quantization_arch

MANIFEST = common.HERE / "manifests" / "bert-cls.yaml"
PRECISIONS = ("fp32", "int8")
PARITY = {"fp32": {"max_abs": 1e-4}, "int8": {"min_cosine": 0.98}}  # edgepack's own defaults


# -- edgepack's side --------------------------------------------------------------------------------

def edgepack_side(work: Path) -> dict[str, Any]:
    """`edgepack build` of the manifest (build cache in the work dir); its artifacts and the
    exporter it kept."""
    import builds
    out = work / "edgepack"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [common.PY, "-m", "packager", "build", str(MANIFEST), "--out", str(out), "-q",
           "--cache-dir", str(common.work_dir() / "cache")]
    t0 = time.perf_counter()
    proc = common.run(cmd)
    seconds = time.perf_counter() - t0
    report = builds._report(MANIFEST, out, cmd, proc.returncode, proc.stdout, proc.stderr)
    target = report["targets"][0]
    bundle = Path(target["bundle_dir"])
    doc = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    files = {}
    for c in doc["candidates"]:
        files["int8" if c["precision"] == "int8" else c["precision"]] = str(bundle / c["file"])
    export: dict[str, Any] = next((s for s in doc["provenance"]["steps"] if s.get("step") == "export"), {})
    table = next((n for n in export.get("notes", []) if n.startswith("exporters compared")), None)
    return {"files": files, "exporter": export.get("details", {}).get("exporter"),
            "exporter_choice": table, "seconds": seconds,
            "cache": {"hits": len(report.get("cache", {}).get("hits", [])),
                      "misses": len(report.get("cache", {}).get("misses", []))},
            "candidates": {c["id"]: {"converter": c.get("converter"), "size": c.get("size"),
                                     "notes": c.get("notes", [])} for c in doc["candidates"]}}


# -- measuring --------------------------------------------------------------------------------------

def session(path: str, optimized: Path | None = None) -> Any:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if optimized is not None:
        so.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])


def graph(path: str, optimized: Path) -> dict[str, Any]:
    """Opset and node counts by op type, in the file and after onnxruntime's optimizations."""
    import onnx
    session(path, optimized)  # writes the optimized graph
    model, opt = onnx.load(path), onnx.load(str(optimized))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"opset": opset, "nodes": len(model.graph.node), "ops": dict(Counter(n.op_type for n in model.graph.node)
                                                                         .most_common()),
            "nodes_optimized": len(opt.graph.node),
            "ops_optimized": dict(Counter(n.op_type for n in opt.graph.node).most_common()),
            "inputs": [i.name for i in model.graph.input],
            "bytes": os.path.getsize(path)}


def parity(sess: Any, feeds: dict[str, np.ndarray], reference: np.ndarray, precision: str) -> dict[str, Any]:
    names = [i.name for i in sess.get_inputs()]
    got = sess.run(None, {n: feeds[n] for n in names})[0].astype(np.float64)
    ref = reference.astype(np.float64)
    max_abs = float(np.max(np.abs(got - ref)))
    cosine = float(np.dot(got.ravel(), ref.ravel()) / (np.linalg.norm(got) * np.linalg.norm(ref) or 1.0))
    top1 = float(np.mean(got.argmax(-1) == ref.argmax(-1)))
    rule = PARITY[precision]
    ok = max_abs <= rule["max_abs"] if "max_abs" in rule else cosine >= rule["min_cosine"]
    return {"max_abs": max_abs, "cosine": cosine, "top1": top1, "ok": bool(ok), "rule": rule,
            "ref_max_abs": float(np.max(np.abs(ref))), "samples": int(ref.shape[0])}


def timing(sessions: dict[str, tuple[Any, dict[str, np.ndarray]]], rounds: int, calls: int,
           warmup: int) -> dict[str, list[list[float]]]:
    """Per artifact key ("side:precision"), per round, the ms of each timed call. In each round
    every precision's edgepack/Optimum pair runs side by side, then that precision's variants; the
    order inside a pair flips every round, the precisions' order every second round, and the
    whole order reverses every round."""
    from runtime.tuning.timing import time_calls
    samples: dict[str, list[list[float]]] = {k: [] for k in sessions}
    for r in range(rounds):
        order = []
        for precision in (PRECISIONS if (r // 2) % 2 == 0 else PRECISIONS[::-1]):
            sides = ["edgepack", "optimum"] if r % 2 == 0 else ["optimum", "edgepack"]
            order += [f"{side}:{precision}" for side in sides]
            order += [k for k in sessions if k.endswith(f":{precision}") and k.split(":")[0] not in sides]
        for key in (order if r % 2 == 0 else order[::-1]):
            sess, feeds = sessions[key]
            t = time_calls(partial(sess.run, None, feeds), runs=calls, warmup=warmup)
            samples[key].append([round(float(x), 4) for x in t.ms])  # 0.1 µs
    return samples


# Diagnostic variants, timed in the same rounds (not goals): what edgepack's export would need to
# change. Each is made here from the same model (models.bert_cls) with the exporter edgepack keeps
# for it (torch.onnx.export, dynamo=False, opset 17), int8 with edgepack's own quantize_dynamic
# settings: "trace" is that export before edgepack's onnxsim step; "eager" the same with
# transformers' eager attention instead of SDPA; "eager+fusion" that one through onnxruntime's
# transformer optimizer (model_type bert: Attention, EmbedLayerNormalization, SkipLayerNormalization,
# BiasGelu; onnxruntime-only ops).
VARIANTS = {"trace": "TorchScript-exporter graph without onnxsim",
            "eager": "eager attention instead of SDPA, without onnxsim",
            "eager+fusion": "eager attention, onnxruntime's transformer fusions"}
VARIANTS_INT8 = ("trace", "eager")


def variants(work: Path) -> dict[str, str]:
    """{"variant:precision": path} of the diagnostic variants."""
    import models
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer
    out = work / "variants"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    example = models.bert_feeds(2, seed=3)
    names = list(models.BERT_INPUTS)
    axes = {n: {0: "batch", 1: "seq"} for n in names}
    files = {}
    for name, attn in (("trace", "sdpa"), ("eager", "eager")):
        model = models.bert_cls()
        model.model.set_attn_implementation(attn)
        path = out / f"{name}.fp32.onnx"
        with warnings_quiet():
            torch.onnx.export(model, tuple(torch.from_numpy(example[n]) for n in names), str(path),
                              dynamo=False, opset_version=17, input_names=names, output_names=["logits"],
                              dynamic_axes={**axes, "logits": {0: "batch"}})
        files[f"{name}:fp32"] = str(path)
    cfg = models.BERT
    with warnings_quiet():
        fused = optimizer.optimize_model(files["eager:fp32"], model_type="bert", num_heads=cfg["num_attention_heads"],
                                         hidden_size=cfg["hidden_size"], opt_level=0)
    fused.save_model_to_file(str(out / "eager+fusion.fp32.onnx"))
    files["eager+fusion:fp32"] = str(out / "eager+fusion.fp32.onnx")
    for name in VARIANTS_INT8:
        path = out / f"{name}.int8.onnx"
        with warnings_quiet():
            quantize_dynamic(files[f"{name}:fp32"], str(path), weight_type=QuantType.QInt8)
        onnx.checker.check_model(str(path))
        files[f"{name}:int8"] = str(path)
    return files


@contextlib.contextmanager
def warnings_quiet() -> Iterator[None]:
    import logging
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        level = logging.root.level
        logging.root.setLevel(logging.ERROR)
        try:
            yield
        finally:
            logging.root.setLevel(level)


def summary(per_round: list[list[float]]) -> dict[str, Any]:
    flat = [x for block in per_round for x in block]
    return {"median_ms": common.median(flat), "p90_ms": common.quantile(flat, 0.9),
            "p10_ms": common.quantile(flat, 0.1), "min_ms": min(flat), "calls": len(flat),
            "round_medians_ms": [common.median(b) for b in per_round], "samples_ms": per_round}


def diff_ops(a: dict[str, int], b: dict[str, int]) -> dict[str, list[int]]:
    """{op: [count in a, count in b]} for the op types whose counts differ."""
    return {op: [a.get(op, 0), b.get(op, 0)] for op in sorted(set(a) | set(b)) if a.get(op, 0) != b.get(op, 0)}


def save_model(work: Path) -> tuple[Any, Path]:
    import models
    model = models.bert_hf()
    folder = work / "model"
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(str(folder))
    return model, folder


def reference_logits(model: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import torch
    with torch.no_grad():
        return model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()


def what(precision: str) -> str:
    label = "dynamic int8" if precision == "int8" else precision
    return (f"ONNX {label} vs Hugging Face Optimum {label} (small BERT classifier, batch 1, seq 32, "
            "onnxruntime CPU, 1 thread)")


GOAL = "≤ Optimum's latency"


def not_measured(args: Any, reason: str, stage: str, env: dict[str, Any] | None,
                 ep: dict[str, Any] | None) -> None:
    rows = [common.row(what(p), GOAL,
                       f"not measured: Optimum {stage} failed ({reason})", "not measured", False,
                       key=f"optimum:{p}", measured=False) for p in PRECISIONS]
    common.emit(args, "optimum", rows, {}, method="not measured: Optimum is not available here",
                optimum={"available": False, "stage": stage, "reason": reason, "env": env},
                edgepack=ep)
    print(f"Optimum not measured: {stage} failed: {reason}", file=sys.stderr)


def main() -> int:
    p = common.parser(__doc__)
    p.add_argument("--setup", action="store_true",
                   help="only create the Optimum environment (make test runs this first)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 60, --quick 4)")
    p.add_argument("--calls", type=int, help="timed calls per artifact and round (default 20, --quick 10)")
    args = p.parse_args()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.setup:
        try:
            stamp = ensure_env(log)
        except OptimumUnavailable as exc:
            log(f"Optimum environment not created: {exc}")
            return 1
        log(f"Optimum environment: {stamp['path']} ({'created now' if stamp['created_now'] else 'already there'}; "
            f"{stamp['size_mb']:.0f} MB; " + ", ".join(f"{k} {v}" for k, v in stamp["versions"].items()) + ")")
        return 0

    rounds = args.rounds or (4 if args.quick else 60)
    calls = args.calls or (10 if args.quick else 20)
    warmup = 3
    work = common.work_dir() / "optimum_compare"
    work.mkdir(parents=True, exist_ok=True)
    import models
    parity_feeds = models.bert_feeds(8, seed=1)
    feeds_path = work / "parity_feeds.npz"
    np.savez(feeds_path, **parity_feeds)  # type: ignore[arg-type]
    timed_feeds = {k: v[:1] for k, v in models.bert_feeds(1, seed=2, seq=models.BERT_SEQ).items()}
    timed_feeds["attention_mask"][:] = 1  # one full sequence of 32 tokens, no padding
    timed_feeds["input_ids"][timed_feeds["input_ids"] == 0] = 1

    model, _ = save_model(work)
    reference = reference_logits(model, parity_feeds)
    arch = quantization_arch()
    ep = edgepack_side(work)
    try:
        env = ensure_env(log)
    except OptimumUnavailable as exc:
        not_measured(args, exc.reason, exc.stage, None, ep)
        return 0
    try:
        opt = optimum_side(env, work, feeds_path, arch)
    except OptimumUnavailable as exc:
        not_measured(args, exc.reason, exc.stage, env, ep)
        return 0
    optimum_reference = np.load(work / "optimum" / "reference.npy")
    files = {f"edgepack:{p}": ep["files"][p] for p in PRECISIONS}
    files.update({f"optimum:{p}": opt[p] for p in PRECISIONS})
    files.update(variants(work))

    graphs, checks, sessions = {}, {}, {}
    for key, path in files.items():
        graphs[key] = graph(path, work / f"optimized-{key.replace(':', '-')}.onnx")
        sess = session(path)
        checks[key] = parity(sess, parity_feeds, reference, key.split(":")[1])
        names = [i.name for i in sess.get_inputs()]
        sessions[key] = (sess, {n: np.ascontiguousarray(timed_feeds[n]) for n in names})
    t0 = time.perf_counter()
    samples = timing(sessions, rounds, calls, warmup)
    timing_seconds = time.perf_counter() - t0
    stats = {k: summary(v) for k, v in samples.items()}
    variant_stats = {}
    for key in files:
        name, prec = key.split(":")
        if name in VARIANTS:
            base = stats[f"optimum:{prec}"]["round_medians_ms"]
            mine = stats[key]["round_medians_ms"]
            per_round = [a / b for a, b in zip(mine, base, strict=True)]
            variant_stats[key] = {"what": VARIANTS[name], "precision": prec,
                                  "median_ms": stats[key]["median_ms"], "p90_ms": stats[key]["p90_ms"],
                                  "vs_optimum": stats[key]["median_ms"] / stats[f"optimum:{prec}"]["median_ms"],
                                  "round_ratio_median": common.median(per_round),
                                  "parity": checks[key], "graph": graphs[key], "round_medians_ms": mine}

    rows = []
    for prec in PRECISIONS:
        ours, base = stats[f"edgepack:{prec}"], stats[f"optimum:{prec}"]
        ratio = ours["median_ms"] / base["median_ms"]
        per_round = [a / b for a, b in zip(ours["round_medians_ms"], base["round_medians_ms"], strict=True)]
        po, pb = checks[f"edgepack:{prec}"], checks[f"optimum:{prec}"]
        rows.append(common.row(
            what(prec), GOAL,
            f"{base['median_ms']:.3f} ms (p90 {base['p90_ms']:.3f} ms; max abs error "
            f"{pb['max_abs']:.1e}{'' if pb['ok'] else ', parity FAILED'})",
            f"{ours['median_ms']:.3f} ms ({ratio:.2f}×; p90 {ours['p90_ms']:.3f} ms; max abs error "
            f"{po['max_abs']:.1e}{'' if po['ok'] else ', parity FAILED'})",
            po["ok"] and ratio <= 1.0, key=f"optimum:{prec}", measured=True, precision=prec,
            ratio=ratio, round_ratio_p10=common.quantile(per_round, 0.1),
            round_ratio_p90=common.quantile(per_round, 0.9), round_ratios=per_round,
            edgepack=ours, optimum=base, parity_edgepack=po, parity_optimum=pb,
            exporter=ep["exporter"]))
    fp32_diff = diff_ops(graphs["edgepack:fp32"]["ops_optimized"], graphs["optimum:fp32"]["ops_optimized"])
    int8_diff = diff_ops(graphs["edgepack:int8"]["ops_optimized"], graphs["optimum:int8"]["ops_optimized"])
    extras = {
        "optimum_variants": {
            "variants": variant_stats,
            "text": "; ".join(f"{k} {v['median_ms']:.3f} ms ({v['vs_optimum']:.2f}× Optimum's)"
                              for k, v in variant_stats.items())},
        "optimum_graphs": {
            "graphs": {k: v for k, v in graphs.items() if k.split(":")[0] in ("edgepack", "optimum")},
            "fp32_ops_differ": fp32_diff, "int8_ops_differ": int8_diff,
            "text": "after onnxruntime's optimizations, nodes edgepack/Optimum: fp32 "
                    f"{graphs['edgepack:fp32']['nodes_optimized']}/{graphs['optimum:fp32']['nodes_optimized']}, "
                    f"int8 {graphs['edgepack:int8']['nodes_optimized']}/{graphs['optimum:int8']['nodes_optimized']}; "
                    "fp32 op counts that differ: "
                    + ", ".join(f"{op} {a}/{b}" for op, (a, b) in fp32_diff.items())},
    }
    same_model = float(np.max(np.abs(optimum_reference.astype(np.float64) - reference)))
    method = (f"{rounds} interleaved rounds of {calls} timed calls per artifact ({warmup} untimed "
              "warm-up calls per block, runtime.tuning.timing.time_calls), onnxruntime CPU provider, "
              "intra/inter-op threads 1, default graph optimizations, the same arrays (batch 1, seq "
              f"{models.BERT_SEQ}); median and 90th percentile over all timed calls. Parity: logits of "
              f"{reference.shape[0]} padded sequences against the PyTorch model (max abs error, cosine). "
              f"Optimum: {OPTIMUM_REQUIREMENT} in its own environment, main_export (text-classification), "
              f"ORTQuantizer with AutoQuantizationConfig.{arch}(is_static=False, per_channel=False).")
    common.emit(args, "optimum", rows, extras, method=method,
                model={"config": models.BERT, "seq": models.BERT_SEQ, "inputs": list(models.BERT_INPUTS),
                       "parity_samples": int(reference.shape[0]), "same_model_max_abs": same_model,
                       "transformers": metadata.version("transformers")},
                optimum={"available": True, "requirement": OPTIMUM_REQUIREMENT,
                         "versions": env["versions"], "env": {k: env.get(k) for k in (
                             "path", "size_mb", "install_seconds", "installed", "created_now", "pinned")},
                         "quantization": f"AutoQuantizationConfig.{arch}(is_static=False, per_channel=False)",
                         "quantization_config": opt.get("quantization_config"),
                         "attn_implementation": opt.get("attn_implementation"),
                         "export_seconds": opt.get("export_seconds"), "seconds": opt.get("seconds")},
                edgepack=ep, rounds=rounds, calls=calls, warmup=warmup, timing_seconds=timing_seconds,
                feeds={k: v.tolist() for k, v in timed_feeds.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
