"""Shared helpers for the benchmarks: the machine, medians, bundles built once, JSON output."""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PY = sys.executable
PACKAGES = ("numpy", "onnxruntime", "ai-edge-litert", "torch", "tensorflow-cpu", "onnx",
            "onnxsim", "litert-torch", "tf2onnx")

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def work_dir() -> Path:
    """Where bundles, caches and scratch files go ($EDGEPACK_BENCH_DIR, else a temp folder)."""
    path = Path(os.environ.get("EDGEPACK_BENCH_DIR")
                or Path(tempfile.gettempdir()) / "edgepack-bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "arch": platform.machine(),
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "packages": versions}


def machine_line(m: dict[str, Any] | None = None) -> str:
    m = m or machine()
    pk = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    return (f"machine: {m['cpu']}, {m['cores']} cores, {m['arch']}, {m['os']}, "
            f"Python {m['python']}; {pk}")


def median(xs: Iterable[float]) -> float:
    return float(statistics.median(list(xs)))


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    return p


def emit(args: argparse.Namespace, bench: str, rows: list[dict[str, Any]],
         extra: dict[str, Any] | None = None) -> None:
    """Print rows (goal | baseline | ours | met?) as text, or everything as JSON."""
    doc = {"benchmark": bench, "machine": machine(), "rows": rows, **(extra or {})}
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    print(machine_line(doc["machine"]))
    for r in rows:
        print(f"{r['what']}: baseline {r['baseline']} | ours {r['ours']} | goal {r['goal']} | "
              f"{'met' if r['met'] else 'NOT met'}" + (f" ({r['note']})" if r.get("note") else ""))


def row(what: str, goal: str, baseline: str, ours: str, met: bool, **more: Any) -> dict[str, Any]:
    return {"what": what, "goal": goal, "baseline": baseline, "ours": ours, "met": bool(met),
            **more}


def run(cmd: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONDONTWRITEBYTECODE="")
    env.update(kw.pop("env", {}))
    return subprocess.run(list(cmd), capture_output=True, text=True, env=env, cwd=kw.pop("cwd", REPO),
                          check=False, **kw)


def edgepack(*argv: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    """The edgepack CLI of this checkout (the interpreter running the benchmarks)."""
    proc = run([PY, "-m", "packager", *argv], **kw)
    return proc


def ensure_digits_weights() -> None:
    if not (REPO / "examples" / "digits" / "artifacts" / "digits_cnn.pt").is_file():
        proc = run([PY, str(REPO / "examples" / "digits" / "train.py")])
        if proc.returncode:
            raise SystemExit("training the digits example failed:\n" + proc.stderr[-2000:])


def bundle(manifest: Path, target: str) -> Path:
    """The bundle of ``manifest`` for ``target``, built once (cached in the work dir)."""
    if manifest.name.startswith("digits"):
        ensure_digits_weights()
    out = work_dir() / "bundles"
    name = None
    for line in manifest.read_text().splitlines():
        if line.startswith("name:"):
            name = line.split(":", 1)[1].split("#")[0].strip()
    tname = Path(target).stem
    path = out / f"{name}-{tname}"
    if (path / "bundle.json").is_file() and _same_runtime(path / "runtime"):
        return path
    proc = edgepack("build", str(manifest), "--target", target, "--out", str(out),
                    "--cache-dir", str(work_dir() / "cache"), "-q")
    if not (path / "bundle.json").is_file():
        raise SystemExit(f"building {manifest.name} for {target} failed:\n"
                         + proc.stdout[-2000:] + proc.stderr[-3000:])
    return path


def _same_runtime(copy: Path) -> bool:
    """Whether a bundle carries this checkout's runtime (else it is rebuilt, from the cache)."""
    src = REPO / "runtime"
    mine = sorted(p.relative_to(src) for p in src.rglob("*.py"))
    theirs = sorted(p.relative_to(copy) for p in copy.rglob("*.py"))
    return mine == theirs and all((src / p).read_bytes() == (copy / p).read_bytes() for p in mine)


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"
