"""Build benchmarks with the `edgepack build` CLI, every build a fresh subprocess timed from outside:

- rebuild: nothing changed vs the same build cold (fresh --cache-dir), digits example
  (manifests/digits-cnn.yaml, x86-cpu + rpi4). N cold builds, each followed by a rebuild;
  min and median of both, ratio of medians. Goal: <= 10 % of cold.
- multi: one build for x86-cpu, rpi4, rpi5 vs three separate builds, all --no-cache (digits).
  Goal: shared steps (export, simplify, ...) run once; counted from the build JSON.
- memory: peak memory of a whole build (digits, --no-cache; the summed PSS of its process tree,
  worker processes included, sampled every 2 ms; the summed RSS beside it) vs the largest single
  conversion step done alone in its own process (torch.onnx.export, litert-torch convert),
  measured the same way (common.measure_tree). Goal: <= 1.3x.
- parallel: MobileNetV2 (benchmarks/manifests/mobilenetv2.yaml) for rpi4, --no-cache, with
  `-j 2` (conversions sent to worker processes) against `-j 1` (serial), alternating. No goal:
  a figure the README quotes. The most expensive part (about 1 minute a build on 2 cores).

A build whose report is not ok (a target or candidate that is not "ok") fails the benchmark.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import common

MANIFEST = common.REPO / "manifests" / "digits-cnn.yaml"
MOBILENET = common.HERE / "manifests" / "mobilenetv2.yaml"
PARTS = ["rebuild", "multi", "memory", "parallel"]

STEP = {
    "torch.onnx.export (dynamo)": """
import sys, torch, io
sys.path.insert(0, {ex!r})
from model import build_model
m = build_model().eval()
torch.onnx.export(m, (torch.zeros(1, 1, 8, 8),), {out!r}, dynamo=True,
                  input_names=["image"], output_names=["logits"])
""",
    "litert-torch convert (fp32)": """
import sys, torch
sys.path.insert(0, {ex!r})
from model import build_model
import litert_torch
m = build_model().eval()
litert_torch.convert(m, (torch.zeros(1, 1, 8, 8),)).export({out!r})
""",
    "litert-torch convert (int8 static, PT2E)": """
import sys, torch
sys.path.insert(0, {ex!r})
from model import build_model
import litert_torch
from litert_torch.quantize import pt2e_quantizer
from litert_torch.quantize.quant_config import QuantConfig
from torchao.quantization.pt2e import quantize_pt2e
m = build_model().eval()
args = (torch.zeros(1, 1, 8, 8),)
q = pt2e_quantizer.PT2EQuantizer().set_global(
    pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=False, is_dynamic=False))
prepared = quantize_pt2e.prepare_pt2e(torch.export.export(m, args).module(), q)
for _ in range(64):
    prepared(torch.rand(1, 1, 8, 8))
converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
litert_torch.convert(converted, args, quant_config=QuantConfig(pt2e_quantizer=q)).export({out!r})
""",
}


class BenchFailure(SystemExit):
    """A build or step that failed: the benchmark stops (run_all.py exits non-zero)."""


def check_report(report: dict[str, Any], what: str, allowed: tuple[str, ...] = ("ok",)) -> None:
    """Fail unless the build report says ok, every target is "ok" and every candidate's status
    is in ``allowed``."""
    bad = [f"{t.get('target')}: {t.get('status')}" for t in report.get("targets", [])
           if t.get("status") != "ok"]
    bad += [f"{t.get('target')}/{c.get('id')}: {c.get('status')} {c.get('message') or ''}".strip()
            for t in report.get("targets", []) for c in t.get("candidates", [])
            if c.get("status") not in allowed]
    if report.get("ok") is not True or bad or not report.get("targets"):
        raise BenchFailure(f"{what}: the build is not ok (ok={report.get('ok')!r}): "
                           + ("; ".join(bad) or "no targets in its report"))


def build(manifest: Path, out: Path, *extra: str,
          allowed: tuple[str, ...] = ("ok",)) -> tuple[float, dict[str, Any]]:
    """(seconds, build report) of one `edgepack build` subprocess into a fresh ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [common.PY, "-m", "packager", "build", str(manifest), "--out", str(out), "-q", *extra]
    t0 = time.perf_counter()
    proc = common.run(cmd)
    dt = time.perf_counter() - t0
    return dt, _report(manifest, out, cmd, proc.returncode, proc.stdout, proc.stderr, allowed)


def _report(manifest: Path, out: Path, cmd: list[str], rc: int, stdout: str,
            stderr: str, allowed: tuple[str, ...] = ("ok",)) -> dict[str, Any]:
    name = _name(manifest)
    path = out / f"{name}.build.json"
    if rc or not path.is_file():
        raise BenchFailure(f"{' '.join(cmd)} failed (exit {rc}):\n{stdout[-2000:]}{stderr[-3000:]}")
    report = json.loads(path.read_text())
    check_report(report, " ".join(cmd[3:]), allowed)
    return report


def _name(manifest: Path) -> str:
    for line in manifest.read_text().splitlines():
        if line.startswith("name:"):
            return line.split(":", 1)[1].split("#")[0].strip()
    raise BenchFailure(f"{manifest}: no name")


def step_counts(report: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in report.get("steps", []):
        counts[s.get("step", "?")] = counts.get(s.get("step", "?"), 0) + 1
    return counts


def rebuild(work: Path, runs: int) -> dict[str, Any]:
    cold, warm, caches = [], [], []
    for i in range(runs):
        cache = work / f"cache-{i}"
        shutil.rmtree(cache, ignore_errors=True)
        cold.append(build(MANIFEST, work / "out", "--cache-dir", str(cache))[0])
        t, report = build(MANIFEST, work / "out", "--cache-dir", str(cache))
        warm.append(t)
        c = report.get("cache", {})
        caches.append({"hits": len(c.get("hits", [])), "misses": c.get("misses", [])})
        shutil.rmtree(cache, ignore_errors=True)
    c, w = common.stats(cold), common.stats(warm)
    ratio, ratio_min = w["median"] / c["median"], w["min"] / c["min"]
    hits = common.median([x["hits"] for x in caches])
    misses = sorted({m for x in caches for m in x["misses"]})
    miss_txt = f"{len(caches[-1]['misses'])} misses" if not misses else \
        f"misses: {', '.join(misses)}"
    return common.row(
        "rebuild, nothing changed (digits, x86-cpu + rpi4)", "≤ 10 % of cold",
        f"{c['median']:.1f} s (cold, empty cache; median of {runs}, min {c['min']:.1f} s)",
        f"{w['median']:.2f} s (median of {runs}, min {w['min']:.2f} s; {100 * ratio:.0f} % of cold, "
        f"mins {100 * ratio_min:.0f} %; {hits:.0f} cache hits, {miss_txt})",
        ratio <= 0.10, key="rebuild", cold_s=c, warm_s=w, ratio=ratio, ratio_of_mins=ratio_min, runs=runs,
        caches=caches, hits=hits, misses=misses)


def multi_target(work: Path, rounds: int) -> dict[str, Any]:
    targets = ["x86-cpu", "rpi4", "rpi5"]
    args = [a for t in targets for a in ("--target", t)]
    one, separate, one_steps, sep_steps = [], [], {}, {}
    for r in range(rounds):
        def single() -> None:
            nonlocal sep_steps
            total, counts = 0.0, {}
            for t in targets:
                dt, rep = build(MANIFEST, work / f"single-{t}", "--target", t, "--no-cache")
                total += dt
                for k, v in step_counts(rep).items():
                    counts[k] = counts.get(k, 0) + v
            separate.append(total)
            sep_steps = counts

        def multi() -> None:
            nonlocal one_steps
            dt, rep = build(MANIFEST, work / "multi", *args, "--no-cache")
            one.append(dt)
            one_steps = step_counts(rep)
        for fn in ((multi, single) if r % 2 == 0 else (single, multi)):
            fn()
    o, s = common.stats(one), common.stats(separate)
    ratio = o["median"] / s["median"]
    shared = [k for k in sep_steps if k in one_steps]
    ok = one_steps.get("export") == 1 and all(one_steps[k] <= 1 for k in shared
                                              if sep_steps[k] >= len(targets))
    return common.row(
        "build for 3 targets (digits: x86-cpu, rpi4, rpi5), --no-cache",
        "shared steps once per model",
        f"{s['median']:.1f} s (3 separate builds; export ran {sep_steps.get('export', 0)}×)",
        f"{o['median']:.1f} s ({ratio:.2f}×; export ran {one_steps.get('export', 0)}×)", ok,
        key="multi",
        one_build_s=o, separate_s=s, ratio=ratio, rounds=rounds, steps_one_build=one_steps,
        steps_separate=sep_steps, exports=one_steps.get("export", 0),
        separate_exports=sep_steps.get("export", 0))


def peak_memory(work: Path, runs: int, interval: float) -> dict[str, Any]:
    ex = str(common.REPO / "examples" / "digits")
    steps: dict[str, list[dict[str, Any]]] = {name: [] for name in STEP}
    builds: list[dict[str, Any]] = []
    for _ in range(runs):
        for name, code in STEP.items():
            out = work / ("step.onnx" if name.startswith("torch.onnx") else "step.tflite")
            cmd = [common.PY, "-c", code.format(ex=ex, out=str(out))]
            m = common.measure_tree(cmd, interval=interval)
            if m["returncode"]:
                raise BenchFailure(f"{name} failed:\n{m['stdout'][-2000:]}{m['stderr'][-3000:]}")
            steps[name].append(_mem(m))
        out = work / "mem"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [common.PY, "-m", "packager", "build", str(MANIFEST), "--out", str(out), "-q",
               "--no-cache"]
        m = common.measure_tree(cmd, interval=interval)
        report = _report(MANIFEST, out, cmd, m["returncode"], m["stdout"], m["stderr"])
        builds.append({**_mem(m), "parallel": report.get("parallel", {})})
    step_peak = {name: common.median([x["peak"] for x in xs]) for name, xs in steps.items()}
    biggest = max(step_peak, key=lambda k: step_peak[k])
    build_peak = common.median([b["peak"] for b in builds])
    ratio = build_peak / step_peak[biggest]
    ratio_rss = common.median([b["peak_rss"] for b in builds]) / \
        common.median([x["peak_rss"] for x in steps[biggest]])
    measure = builds[0]["measure"]
    checks = [x["missed"] for xs in [builds, *steps.values()] for x in xs]
    missed = True if True in checks else None if None in checks else False
    return common.row(
        "peak memory of a build (digits, x86-cpu + rpi4, --no-cache), whole process tree",
        "≤ 1.3×", f"{step_peak[biggest]:.0f} MiB ({biggest} alone)",
        f"{build_peak:.0f} MiB ({ratio:.2f}×"
        + (f"; summed RSS {ratio_rss:.2f}×)" if measure == "PSS" else ")"),
        ratio <= 1.3, key="memory", build_mib=build_peak, step_mib=step_peak,
        biggest_step=biggest, ratio=ratio, ratio_rss=ratio_rss, measure=measure, runs=runs,
        builds=builds, steps=steps, missed_peak=missed, interval_ms=interval * 1e3,
        pss_slack_mib=common.PSS_SLACK_KIB / 1024, pss_max_age_ms=common.PSS_MAX_AGE * 1e3)


def _mem(m: dict[str, Any]) -> dict[str, Any]:
    keys = ("seconds", "peak", "peak_pss", "peak_rss", "hwm_sum", "largest_process",
            "parent_at_spawn", "missed",
            "processes", "samples", "pss_reads", "mean_interval_ms", "measure")
    return {k: m[k] for k in keys}


def parallel(work: Path, rounds: int) -> dict[str, Any]:
    """-j 2 against -j 1 on MobileNetV2 for rpi4, --no-cache, the order flipping each round."""
    times: dict[str, list[float]] = {"1": [], "2": []}
    jobs2: dict[str, Any] = {}
    for r in range(rounds):
        for j in (("1", "2") if r % 2 == 0 else ("2", "1")):
            # random weights and calibration: the int8 candidates may fail parity and be dropped,
            # or be unsupported when the fallback route fails too (seen with the TFLite int8 one on
            # an AMD EPYC host); they were still converted and checked, which is timed. The
            # statuses are in the row ("candidates")
            dt, rep = build(MOBILENET, work / f"par-j{j}", "--target", "rpi4", "--no-cache", "-j", j,
                            allowed=("ok", "dropped", "unsupported"))
            times[j].append(dt)
            if j == "2":
                jobs2 = {"parallel": rep.get("parallel", {}), "warnings": rep.get("warnings", []),
                         "candidates": {c["id"]: c["status"] for t in rep["targets"]
                                        for c in t["candidates"]}}
            elif rep.get("parallel"):
                raise BenchFailure(f"-j 1 used worker processes: {rep['parallel']}")
    if not jobs2["parallel"].get("conversions"):
        raise BenchFailure(f"-j 2 sent no conversion to a worker process: {jobs2}")
    from packager import pipeline  # the thresholds of the default (-j 0), as the build uses them
    serial, par = common.stats(times["1"]), common.stats(times["2"])
    ratio = par["median"] / serial["median"]
    return {"what": "MobileNetV2 for rpi4, --no-cache: -j 2 against -j 1", "rounds": rounds,
            "serial_s": serial, "j2_s": par, "ratio": ratio, **jobs2,
            "default_min_mb": pipeline.PARALLEL_CONVERT_MIN_BYTES / 1024**2,
            "default_min_cores": pipeline.PARALLEL_CONVERT_MIN_CORES,
            "text": f"-j 2 {par['median']:.1f} s against -j 1 {serial['median']:.1f} s "
                    f"({ratio:.2f}×; medians of {rounds}; in workers: "
                    f"{', '.join(jobs2['parallel'].get('conversions', []))})"}


def main() -> int:
    p = common.parser(__doc__)
    p.add_argument("--only", choices=PARTS, action="append", help="only this part (repeatable)")
    p.add_argument("--interval-ms", type=float, default=2.0,
                   help="memory sampling period (default: 2 ms)")
    args = p.parse_args()
    common.ensure_digits_weights()
    work = common.work_dir() / "builds"
    work.mkdir(exist_ok=True)
    only = args.only or PARTS
    rows, extras, timings = [], {}, {}
    for part in PARTS:
        if part not in only:
            continue
        t0 = time.perf_counter()
        if part == "rebuild":
            rows.append(rebuild(work, 2 if args.quick else 5))
        elif part == "multi":
            rows.append(multi_target(work, 1 if args.quick else 3))
        elif part == "memory":
            rows.append(peak_memory(work, 1 if args.quick else 3, args.interval_ms / 1e3))
        else:
            extras["parallel"] = parallel(work, 1 if args.quick else 3)
        timings[part] = time.perf_counter() - t0
    method = ("every build is an `edgepack build` subprocess timed from outside (wall clock); "
              "memory: " + common.MEMORY_METHOD.format(ms=f"{args.interval_ms:g}"))
    common.emit(args, "builds", rows, extras, method=method, part_seconds=timings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
