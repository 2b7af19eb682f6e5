"""Per-call overhead of Model.run against raw onnxruntime / raw LiteRT on the same artifact.

Each model is built once with the packager (benchmarks/manifests, the digits example), loaded
with ``runtime.load(prefer=...)``, and timed against a session/interpreter the way a user would
write it by hand on the very same artifact file and the very same input arrays. Raw,
``Model.run`` and ``Model.run(validate=False)`` alternate in blocks inside one process (the
order changes every round, through all 6 orders) so drift cancels; the figure is the median
over rounds of (ours - raw) per call.

Goals (issue 6): <= 2 µs median extra on a tiny MLP; <= 2 % on the digits CNN and MobileNetV2.

Extra measurements (no goal; figures the README quotes), part ``extras``:
- validate=False: the same rounds, ``Model.run(validate=False)`` against raw;
- python_call: one call of an empty Python function (what a 2 % goal on a µs model compares to);
- threads: the digits int8 TFLite candidate in the rpi4 bundle (4 threads) against the same
  candidate with 1 thread: the spread of per-call times over rounds, raw and ours;
- run_into: ``Model.run_into`` against ``Model.run`` (and raw ``InferenceSession.run``) on a
  single Relu with a 16 MiB output (benchmarks/manifests/relu16mb.yaml).
"""
from __future__ import annotations

import gc
import itertools
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import numpy as np

DIGITS = common.REPO / "manifests" / "digits-cnn.yaml"
MODELS = {
    # name: (manifest, target, {backend: (candidate id, raw I/O?[, target])}, goal kind,
    # input shapes). digits is timed in its x86-cpu bundle (ONNX) and a 1-thread bundle of the
    # rpi4 int8 TFLite candidate: the rpi4 target asks for 4 threads, which on a 2-core host
    # makes both sides spin against each other (the ``threads`` extra measures that).
    "tiny MLP": (common.HERE / "manifests" / "mlp.yaml", "../targets/bench-fp32.yaml",
                 {"onnxruntime": ("onnx-fp32", False), "tflite": ("tflite-fp32", False)},
                 "abs", {"x": (1, 16)}),
    "digits CNN": (DIGITS, "rpi4",
                   {"onnxruntime": ("onnx-fp32", False, "x86-cpu"),
                    "tflite": ("tflite-int8-static-int8io", True,
                               "../benchmarks/targets/bench-int8-tflite.yaml")},
                   "rel", {"image": (1, 1, 8, 8)}),
    "MobileNetV2": (common.HERE / "manifests" / "mobilenetv2.yaml", "../targets/bench-fp32.yaml",
                    {"onnxruntime": ("onnx-fp32", False), "tflite": ("tflite-fp32", False)},
                    "rel", {"image": (1, 224, 224, 3)}),
}
RELU = common.HERE / "manifests" / "relu16mb.yaml"
EXTRAS = ["python_call", "threads", "run_into"]


def raw_onnxruntime(path: Path, feeds: dict[str, np.ndarray],
                    threads: int | None) -> Callable[[], Any]:
    import onnxruntime as ort
    so = ort.SessionOptions()
    if threads:  # the same thread count the bundle's target asks for
        so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, feeds)


def raw_litert(path: Path, feeds: dict[str, np.ndarray],
               threads: int | None) -> Callable[[], Any]:
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_path=str(path), num_threads=threads or None)
    interp.allocate_tensors()
    ins = [(d["index"], feeds[d["name"]] if d["name"] in feeds else next(iter(feeds.values())))
           for d in interp.get_input_details()]
    outs = [d["index"] for d in interp.get_output_details()]
    set_tensor, invoke, get_tensor = interp.set_tensor, interp.invoke, interp.get_tensor

    def call() -> list[np.ndarray]:
        for index, arr in ins:
            set_tensor(index, arr)
        invoke()
        return [get_tensor(i) for i in outs]
    return call


def interleaved(fns: dict[str, Callable[[], Any]], *, block: int,
                rounds: int) -> dict[str, Any]:
    """Per-call seconds of each function, every round (blocks of ``block`` calls, the order of
    the functions going through every permutation, one per round)."""
    for _ in range(max(3, block)):  # warm all (allocators, caches, first-run paths)
        for fn in fns.values():
            fn()
    orders = list(itertools.permutations(fns))
    per: dict[str, list[float]] = {k: [] for k in fns}
    clock = time.perf_counter_ns
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            for name in orders[r % len(orders)]:
                fn = fns[name]
                t0 = clock()
                for _ in range(block):
                    fn()
                per[name].append((clock() - t0) / block / 1e9)
    finally:
        if gc_was:
            gc.enable()
    return {"rounds": rounds, "block": block, "per_call_s": per,
            "median_s": {k: common.median(v) for k, v in per.items()}}


def diff(res: dict[str, Any], a: str, b: str) -> float:
    """Median over rounds of the per-call difference a - b (the same round's blocks)."""
    return common.median([x - y for x, y in zip(res["per_call_s"][a], res["per_call_s"][b], strict=True)])


def plan(t_one: float, quick: bool) -> tuple[int, int]:
    """(block, rounds) for a call of about ``t_one`` seconds: blocks of about 10 ms."""
    block = max(1, min(2000, int(0.01 / max(t_one, 1e-7))))
    rounds = (24 if quick else 240) if t_one < 1e-3 else (6 if quick else 42)
    return block, rounds


def measure(name: str, quick: bool) -> list[dict[str, Any]]:
    import runtime
    manifest, target, backends, kind, shapes = MODELS[name]
    rows = []
    rng = np.random.default_rng(0)
    for backend, (cid, raw_io, *where) in backends.items():
        root = common.bundle(manifest, where[0] if where else target)
        with runtime.load(root, prefer=cid, tuned=False) as model:
            res = _timed(model, cid, raw_io, backend, shapes, rng, quick)
        extra, extra_nv = diff(res, "ours", "raw"), diff(res, "ours_novalidate", "raw")
        raw_s, ours_s = res["median_s"]["raw"], res["median_s"]["ours"]
        pct, pct_nv = 100.0 * extra / raw_s, 100.0 * extra_nv / raw_s
        if kind == "abs":
            goal, met, ours_txt = "≤ 2 µs extra", extra <= 2e-6, \
                f"{common.fmt_time(ours_s)} ({extra * 1e6:+.2f} µs, {pct:+.1f} %)"
        else:
            goal, met, ours_txt = "≤ 2 % extra", pct <= 2.0, \
                f"{common.fmt_time(ours_s)} ({pct:+.2f} %, {extra * 1e6:+.1f} µs)"
        raw_name = "onnxruntime InferenceSession.run" if backend == "onnxruntime" else \
            "LiteRT set_tensor/invoke/get_tensor"
        what = f"Model.run overhead, {name}, {cid}" + (" (raw=True)" if raw_io else "")
        rows.append(common.row(
            what, goal, f"{common.fmt_time(raw_s)} ({raw_name})", ours_txt, met,
            key=f"overhead:{name}:{backend}",
            extra_us=extra * 1e6, extra_pct=pct, raw_us=raw_s * 1e6, ours_us=ours_s * 1e6,
            novalidate_us=res["median_s"]["ours_novalidate"] * 1e6,
            novalidate_extra_us=extra_nv * 1e6, novalidate_extra_pct=pct_nv,
            rounds=res["rounds"], block=res["block"], model=name, backend=backend,
            candidate=cid, threads=res["threads"],
            samples_us={k: [x * 1e6 for x in v] for k, v in res["per_call_s"].items()}))
    return rows


def _timed(model: Any, cid: str, raw_io: bool, backend: str, shapes: dict[str, tuple[int, ...]],
           rng: np.random.Generator, quick: bool) -> dict[str, Any]:
    """Raw, Model.run and Model.run(validate=False) interleaved on one loaded model."""
    if model.candidate["id"] != cid:
        raise SystemExit(f"candidate {cid} did not load ({model.explain()})")
    path = model.bundle.path(model.candidate["file"])
    feeds = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    if raw_io:  # int8 I/O artifact: both sides get the same int8 arrays
        dtypes = model._backend.raw_input_dtypes  # noqa: SLF001 (benchmark only)
        feeds = {k: rng.integers(-128, 127, s).astype(dtypes.get(k, "int8"))
                 for k, s in shapes.items()}
    threads = model.candidate_spec.threads
    raw_fn = (raw_onnxruntime if backend == "onnxruntime" else raw_litert)(path, feeds, threads)
    run = model.run
    if raw_io:
        fns = {"raw": raw_fn, "ours": lambda: run(feeds, raw=True),
               "ours_novalidate": lambda: run(feeds, raw=True, validate=False)}
    else:
        fns = {"raw": raw_fn, "ours": lambda: run(feeds),
               "ours_novalidate": lambda: run(feeds, validate=False)}
    t_one = min(_once(raw_fn) for _ in range(3))
    block, rounds = plan(t_one, quick)
    return {**interleaved(fns, block=block, rounds=rounds), "threads": threads}


def python_call(quick: bool) -> dict[str, Any]:
    """Per-call time of an empty Python function (best of 5 and median of 5 timeit repeats)."""
    def f() -> None:
        pass
    n = 200_000 if quick else 1_000_000
    times = [t / n for t in timeit.repeat(f, number=n, repeat=5)]
    return {"ns": common.median(times) * 1e9, "min_ns": min(times) * 1e9,
            "samples_ns": [t * 1e9 for t in times],
            "text": f"an empty Python function call: {common.median(times) * 1e9:.0f} ns"}


def threads(quick: bool) -> dict[str, Any]:
    """The digits int8 TFLite candidate with the rpi4 target's threads vs one thread."""
    import runtime
    cid = "tflite-int8-static-int8io"
    out: dict[str, Any] = {"candidate": cid, "cores": common.machine()["cores"]}
    rng = np.random.default_rng(0)
    for key, target in (("one", "../benchmarks/targets/bench-int8-tflite.yaml"), ("rpi4", "rpi4")):
        with runtime.load(common.bundle(DIGITS, target), prefer=cid, tuned=False) as model:
            res = _timed(model, cid, True, "tflite", {"image": (1, 1, 8, 8)}, rng, quick)
        out[key] = {"threads": res["threads"], "rounds": res["rounds"], "block": res["block"]}
        for side in ("raw", "ours"):
            xs = [x * 1e6 for x in res["per_call_s"][side]]
            out[key][side] = {"median_us": common.median(xs), "p10_us": common.quantile(xs, 0.1),
                              "p90_us": common.quantile(xs, 0.9), "samples_us": xs}
        out[key]["extra_us"] = diff(res, "ours", "raw") * 1e6
    one, four = out["one"], out["rpi4"]
    out["text"] = (f"raw per call with {four['threads']} threads {four['raw']['median_us']:.1f} µs "
                   f"(p10-p90 of rounds {four['raw']['p10_us']:.1f}-{four['raw']['p90_us']:.1f}), "
                   f"ours {four['ours']['median_us']:.1f} µs ({four['ours']['p10_us']:.1f}-"
                   f"{four['ours']['p90_us']:.1f}); with 1 thread raw {one['raw']['median_us']:.2f} "
                   f"µs ({one['raw']['p10_us']:.2f}-{one['raw']['p90_us']:.2f}), ours "
                   f"{one['ours']['median_us']:.2f} µs ({one['ours']['p10_us']:.2f}-"
                   f"{one['ours']['p90_us']:.2f})")
    return out


def run_into(quick: bool) -> dict[str, Any]:
    """Model.run_into against Model.run and raw InferenceSession.run, a 16 MiB Relu output."""
    import runtime
    root = common.bundle(RELU, "../targets/bench-onnx-fp32.yaml")
    with runtime.load(root, prefer="onnx-fp32", tuned=False) as model:
        x = np.random.default_rng(0).standard_normal((1, 1024, 4096)).astype(np.float32)
        feeds = {"x": x}
        out = {"y": np.empty_like(x)}
        raw = raw_onnxruntime(model.bundle.path(model.candidate["file"]), feeds,
                              model.candidate_spec.threads)
        run, into = model.run, model.run_into
        fns = {"raw": raw, "run": lambda: run(feeds), "run_into": lambda: into(feeds, out)}
        block, rounds = plan(min(_once(raw) for _ in range(3)), quick)
        res = interleaved(fns, block=block, rounds=rounds)
    ms = {k: v * 1e3 for k, v in res["median_s"].items()}
    d = diff(res, "run_into", "run") * 1e3
    return {"output_mib": x.nbytes / 2**20, "rounds": rounds, "block": block, "median_ms": ms,
            "run_into_minus_run_ms": d,
            "samples_ms": {k: [x * 1e3 for x in v] for k, v in res["per_call_s"].items()},
            "text": f"{x.nbytes / 2**20:.0f} MiB output: run_into {ms['run_into']:.2f} ms, run "
                    f"{ms['run']:.2f} ms (run_into - run {d:+.3f} ms), raw "
                    f"InferenceSession.run {ms['raw']:.2f} ms"}


def _once(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    p = common.parser(__doc__)
    p.add_argument("--model", action="append", choices=list(MODELS),
                   help="only this model (repeatable; default: all)")
    p.add_argument("--extra", action="append", choices=EXTRAS,
                   help="only this extra measurement (repeatable; default: all unless --model "
                        "is given)")
    args = p.parse_args()
    rows, extras = [], {}
    for name in args.model or ([] if args.extra else list(MODELS)):
        rows += measure(name, args.quick)
    for name in args.extra or ([] if args.model else EXTRAS):
        extras[name] = {"python_call": python_call, "threads": threads,
                        "run_into": run_into}[name](args.quick)
    method = ("raw, Model.run and Model.run(validate=False) interleaved in one process, blocks "
              "of about 10 ms, the order changing each round; figure: median over rounds of the "
              "per-call difference")
    common.emit(args, "overhead", rows, extras, method=method)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
