"""Shared helpers for the benchmarks: the machine, medians, bundles built once, JSON output."""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

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


def stats(xs: Sequence[float]) -> dict[str, Any]:
    """min, median, max and every sample (in run order) of a list of measurements."""
    xs = [float(x) for x in xs]
    return {"n": len(xs), "min": min(xs), "median": median(xs), "max": max(xs), "samples": xs}


def quantile(xs: Sequence[float], q: float) -> float:
    """The q-quantile of xs (linear interpolation between order statistics)."""
    ys = sorted(xs)
    pos = q * (len(ys) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ys) - 1)
    return float(ys[lo] + (ys[hi] - ys[lo]) * (pos - lo))


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    return p


def emit(args: argparse.Namespace, bench: str, rows: list[dict[str, Any]],
         extras: dict[str, Any] | None = None, method: str = "", **more: Any) -> None:
    """Print rows (goal | baseline | ours | met?) and the extra measurements (figures the README
    prose quotes, no goal; each a dict with a "text") as text, or everything as JSON."""
    doc = {"benchmark": bench, "machine": machine(), "quick": bool(args.quick), "method": method,
           "rows": rows, "extras": extras or {}, **more}
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    print(machine_line(doc["machine"]))
    if method:
        print(f"method: {method}")
    for r in rows:
        print(f"{r['what']}: baseline {r['baseline']} | ours {r['ours']} | goal {r['goal']} | "
              f"{'met' if r['met'] else 'NOT met'}" + (f" ({r['note']})" if r.get("note") else ""))
    for name, e in (extras or {}).items():
        print(f"{name}: {e.get('text', '')}")


def rounded(x: Any, digits: int = 6) -> Any:
    """``x`` with every float rounded to ``digits`` significant digits (results.json: the noise
    is far above that)."""
    if isinstance(x, float):
        return float(f"{x:.{digits}g}")
    if isinstance(x, dict):
        return {k: rounded(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [rounded(v, digits) for v in x]
    return x


def dumps(doc: Any) -> str:
    """JSON, indented, floats rounded, each list of numbers on one line."""
    text = json.dumps(rounded(doc), indent=1, ensure_ascii=False)
    return re.sub(r"\[\s*(-?[0-9][-+0-9.eE]*(?:,\s*-?[0-9][-+0-9.eE]*)*)\s*\]",
                  lambda m: "[" + ", ".join(re.split(r",\s*", m[1])) + "]", text) + "\n"


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


# -- peak memory of a whole process tree ------------------------------------------------------------

def _stat(pid: str) -> tuple[int, int] | None:
    """(ppid, start time in clock ticks) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rfind(b")") + 2:].split()  # the command name may hold spaces and ')'
    return int(fields[1]), int(fields[19])


def _kib(path: str, keys: tuple[bytes, ...]) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    try:
        with open(path, "rb") as f:
            for line in f:
                k = line.split(b":", 1)[0]
                if k in keys:
                    out[k] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return out


HAS_PSS = os.path.exists("/proc/self/smaps_rollup")
PSS_SLACK_KIB = 2048   # a process's PSS is read again when its RSS moved by more than this,
PSS_MAX_AGE = 0.1      # when it is older than this (s), or when the tree's process set changed
MEMORY_METHOD = (
    "a sampler thread lists /proc every {ms} ms, finds the measured process and all its "
    "descendants (ppid links from /proc/PID/stat; worker processes included, and a process stays "
    "counted after its parent exits) and sums their memory; "
    + ("the figure is the peak of the summed PSS (/proc/PID/smaps_rollup: a page shared by "
       "several processes split between them, so a forked child's copy-on-write pages and the "
       "libraries workers share are not counted twice). Reading it walks the page tables (about "
       "6 ms for a 650 MB process), so a process's PSS is read again only when the tree's "
       "process set changed, when its RSS moved by more than 2 MiB since, or every 100 ms, "
       "and reused in between. Beside it the peak of the summed RSS (VmRSS, every sample; it "
       "counts shared pages once per process). PSS also drops when unrelated processes map "
       "the same libraries: run on a quiet machine. " if HAS_PSS else
       "the figure is the peak of the summed RSS (VmRSS of /proc/PID/status; no smaps_rollup "
       "here, so shared pages count once per process). ")
    + "Cross-checks: the sum of every process's VmHWM at its last sample (an upper bound: their "
      "peaks need not coincide) and the largest single process's ru_maxrss from wait4 (what "
      "RUSAGE_CHILDREN measured before). The baseline is measured the same way")


def measure_tree(cmd: Sequence[str], *, interval: float = 0.002, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` and sample the memory of its whole process tree every ``interval`` seconds.

    Returns seconds, returncode, stdout, stderr and, in MiB: ``peak`` (the figure: ``peak_pss``
    where /proc/PID/smaps_rollup exists, else ``peak_rss``), ``peak_pss`` (peak of the summed
    PSS, see MEMORY_METHOD), ``peak_rss`` (peak of the summed RSS), ``hwm_sum`` (sum of each
    process's VmHWM at its last sample), ``largest_process`` (ru_maxrss from wait4: the largest
    single process, children the command waited for included) and ``missed`` (True when that
    largest process's ru_maxrss is above every VmHWM the sampler saw: a process grew after its
    last sample, or was never sampled; None when the check cannot tell: Linux keeps in a child's
    ru_maxrss the memory of the parent it was forked from, so a parent at least as big as the
    largest process hides it).
    """
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONDONTWRITEBYTECODE="")
    full_env.update(env or {})
    parent_kib = _kib("/proc/self/status", (b"VmRSS",)).get(b"VmRSS", 0)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, cwd=cwd or REPO, env=full_env,
                                text=True)
        first = _stat(str(proc.pid))
        known = {(proc.pid, first[1])} if first else set()
        hwm: dict[tuple[int, int], int] = {}
        pss_cache: dict[tuple[int, int], tuple[int, int, float]] = {}  # key -> (rss, pss, when)
        peak = {"pss": 0, "rss": 0, "samples": 0, "pss_reads": 0}
        last: set[int] = set()
        seen: dict[int, tuple[int, int]] = {}  # pid -> (ppid, start) from earlier scans
        stop = threading.Event()

        def sample() -> None:
            nonlocal last
            # a process's stat is read once, when it first shows up: only a process born since
            # the last scan can be a new descendant (a parent never changes to one in the tree)
            stats = {}
            for name in os.listdir("/proc"):
                if name.isdigit():
                    pid = int(name)
                    st = seen.get(pid) or _stat(name)
                    if st is not None:
                        stats[pid] = st
            seen.clear()
            seen.update(stats)
            children: dict[int, list[int]] = {}
            for pid, (ppid, _) in stats.items():
                children.setdefault(ppid, []).append(pid)
            todo = [pid for pid, (_, start) in stats.items() if (pid, start) in known]
            members = set(todo)
            while todo:
                for c in children.get(todo.pop(), ()):
                    if c not in members:
                        members.add(c)
                        todo.append(c)
            changed, last = members != last, members
            now = time.perf_counter()
            rss_sum = pss_sum = 0
            for pid in members:
                key = (pid, stats[pid][1])
                known.add(key)
                st = _kib(f"/proc/{pid}/status", (b"VmHWM", b"VmRSS"))
                rss = st.get(b"VmRSS", 0)
                rss_sum += rss
                if b"VmHWM" in st:
                    hwm[key] = st[b"VmHWM"]
                if HAS_PSS:
                    c = pss_cache.get(key)
                    if changed or c is None or abs(rss - c[0]) > PSS_SLACK_KIB or \
                            now - c[2] > PSS_MAX_AGE:
                        pss = _kib(f"/proc/{pid}/smaps_rollup", (b"Pss",)).get(b"Pss", 0)
                        c = pss_cache[key] = (rss, pss, now)
                        peak["pss_reads"] += 1
                    pss_sum += c[1]
            peak["rss"] = max(peak["rss"], rss_sum)
            peak["pss"] = max(peak["pss"], pss_sum)
            peak["samples"] += 1

        def loop() -> None:
            while not stop.is_set():
                t = time.perf_counter()
                sample()
                stop.wait(max(0.0, interval - (time.perf_counter() - t)))

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        thread.join()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    mib = 1 / 1024.0
    largest = usage.ru_maxrss * mib
    hwm_max = max(hwm.values(), default=0) * mib
    peak_pss = peak["pss"] * mib if HAS_PSS else None
    return {"seconds": seconds, "returncode": proc.returncode, "stdout": stdout, "stderr": stderr,
            "peak": peak_pss if HAS_PSS else peak["rss"] * mib, "peak_pss": peak_pss,
            "peak_rss": peak["rss"] * mib, "hwm_sum": sum(hwm.values()) * mib,
            "largest_process": largest, "parent_at_spawn": parent_kib * mib,
            "missed": None if parent_kib * mib >= largest * 0.99 else largest > hwm_max * 1.01 + 1,
            "processes": len(known), "samples": peak["samples"], "pss_reads": peak["pss_reads"],
            "mean_interval_ms": 1e3 * seconds / max(1, peak["samples"]),
            "measure": "PSS" if HAS_PSS else "RSS"}


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"
