"""Build benchmarks on the digits example (manifests/digits-cnn.yaml), `edgepack build` CLI:

- rebuild: nothing changed vs the same build cold (fresh --cache-dir). Goal: <= 10 % of cold.
- N targets: one build for x86-cpu, rpi4, rpi5 vs three separate builds, all --no-cache.
  Goal: shared steps (export, simplify, ...) run once; read from the build JSON.
- peak memory: peak RSS of a whole build (--no-cache) vs the largest single conversion step
  done alone in its own process (torch.onnx.export, litert-torch convert). Goal: <= 1.3x.

Every process is timed from outside; peak RSS is getrusage(RUSAGE_CHILDREN).ru_maxrss of a
wrapper process that runs exactly one command.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import common

MANIFEST = common.REPO / "manifests" / "digits-cnn.yaml"
WRAP = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")

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


def measured(cmd: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB, stdout) of one command."""
    t0 = time.perf_counter()
    proc = common.run([common.PY, "-c", WRAP, *cmd])
    dt = time.perf_counter() - t0
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return dt, int(lines[-1]) / 1024.0, "\n".join(lines[:-1])


def build(out: Path, *extra: str) -> tuple[float, float, dict[str, Any]]:
    shutil.rmtree(out, ignore_errors=True)
    dt, rss, _ = measured([common.PY, "-m", "packager", "build", str(MANIFEST), "--out", str(out),
                           "-q", *extra])
    report = json.loads((out / "digits-cnn.build.json").read_text())
    return dt, rss, report


def rebuild(work: Path, runs: int) -> dict[str, Any]:
    cold, warm = [], []
    for i in range(runs):
        cache = work / f"cache-{i}"
        shutil.rmtree(cache, ignore_errors=True)
        cold.append(build(work / "out", "--cache-dir", str(cache))[0])
        t, _, report = build(work / "out", "--cache-dir", str(cache))
        warm.append(t)
        shutil.rmtree(cache, ignore_errors=True)
    c, w = common.median(cold), common.median(warm)
    hits = len(report.get("cache", {}).get("hits", []))
    misses = len(report.get("cache", {}).get("misses", []))
    return common.row("rebuild, nothing changed (digits, x86-cpu + rpi4)", "≤ 10 % of cold",
                      f"{c:.1f} s (cold, empty cache)",
                      f"{w:.1f} s ({100 * w / c:.0f} % of cold; {hits} cache hits, {misses} misses)",
                      w <= 0.10 * c, cold_s=c, warm_s=w, runs=runs, hits=hits, misses=misses)


def multi_target(work: Path) -> dict[str, Any]:
    targets = ["x86-cpu", "rpi4", "rpi5"]
    args = [a for t in targets for a in ("--target", t)]
    t_one, _, report = build(work / "multi", *args, "--no-cache")
    exports = sum(1 for s in report.get("steps", []) if s.get("step") == "export")
    separate, sep_exports = 0.0, 0
    for t in targets:
        dt, _, rep = build(work / f"single-{t}", "--target", t, "--no-cache")
        separate += dt
        sep_exports += sum(1 for s in rep.get("steps", []) if s.get("step") == "export")
    ok = exports == 1 and all(tr.get("ok", True) is not False for tr in report.get("targets", []))
    return common.row("build for 3 targets (digits: x86-cpu, rpi4, rpi5), --no-cache",
                      "shared steps once per model",
                      f"{separate:.1f} s (3 separate builds; export ran {sep_exports}×)",
                      f"{t_one:.1f} s ({t_one / separate:.2f}×; export ran {exports}×)", ok,
                      one_build_s=t_one, separate_s=separate, exports=exports,
                      separate_exports=sep_exports)


def peak_memory(work: Path) -> dict[str, Any]:
    ex = str(common.REPO / "examples" / "digits")
    steps = {}
    for name, code in STEP.items():
        out = work / ("step.onnx" if name.startswith("torch.onnx") else "step.tflite")
        _, rss, _ = measured([common.PY, "-c", code.format(ex=ex, out=str(out))])
        steps[name] = rss
    biggest = max(steps, key=steps.get)
    _, build_rss, _ = build(work / "mem", "--no-cache")
    ratio = build_rss / steps[biggest]
    return common.row("peak memory of a build (digits, x86-cpu + rpi4, --no-cache)", "≤ 1.3×",
                      f"{steps[biggest]:.0f} MiB ({biggest} alone)",
                      f"{build_rss:.0f} MiB ({ratio:.2f}×)", ratio <= 1.3,
                      build_mib=build_rss, steps_mib=steps, ratio=ratio)


def main() -> int:
    p = common.parser(__doc__)
    p.add_argument("--only", choices=["rebuild", "multi", "memory"], action="append")
    args = p.parse_args()
    common.ensure_digits_weights()
    work = common.work_dir() / "builds"
    work.mkdir(exist_ok=True)
    only = args.only or ["rebuild", "multi", "memory"]
    rows = []
    if "rebuild" in only:
        rows.append(rebuild(work, 1 if args.quick else 2))
    if "multi" in only:
        rows.append(multi_target(work))
    if "memory" in only:
        rows.append(peak_memory(work))
    common.emit(args, "builds", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
