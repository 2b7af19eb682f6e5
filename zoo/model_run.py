"""One zoo model, start to finish, each step a subprocess: prepare (fit, export), ``edgepack build
--json``, ``python -m runtime verify --all --json`` in every bundle on this host, and on the
emulated aarch64 for the Pi bundles of the models chosen. Returns the model's record: its matrix
cells (target x candidate: status ok / dropped / failed / unsupported and the build's reason, with
parity figures) and per target whether a verified bundle came out."""
from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from zoo.crash import crash_reason

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TARGETS = ("x86-cpu", "rpi4", "rpi5")
PI_CPU = {"rpi4": "cortex-a72", "rpi5": "cortex-a76"}
EMU = REPO / ".edgepack-cache" / "arm64-emu"
QUICK = {"calibration": 24, "golden": 8}
STATUS = {"ok": "ok", "dropped": "dropped", "unsupported": "unsupported", "failed": "failed",
          "parity-failed": "failed", "parity-failed-allowed": "failed"}  # packager.results' CandidateStatus

ENTRY_FILE = '''"""Entry points of the zoo model {name} (written by zoo/run.py from zoo/models/)."""
import sys

REPO = {repo!r}
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from zoo.models import entry  # noqa: E402

MODEL = entry({name!r})


def build(weights):
    """The model with the weights zoo/prepare.py fitted."""
    return MODEL.load(weights)


def samples(n={n}):
    """Feed dicts of samples made in code (never the training draw)."""
    yield from MODEL.samples(n)
'''


@dataclass(frozen=True)
class Options:
    work: Path
    targets: tuple[str, ...] = DEFAULT_TARGETS
    quick: bool = False
    threads: int = 1
    timeout: int = 2400
    emulate: frozenset[str] = frozenset()
    only: str | None = None


@dataclass
class Called:
    rc: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool


def call(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> Called:
    """Run ``cmd`` in a session of its own; on timeout SIGABRT the whole group first (with
    PYTHONFAULTHANDLER set, Python prints where it was), then SIGKILL it."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return Called(proc.returncode, out, err, time.perf_counter() - t0, False)
    except subprocess.TimeoutExpired:
        for sig, wait in ((signal.SIGABRT, 10), (signal.SIGKILL, 30)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                out, err = proc.communicate(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                out, err = "", ""
        return Called(proc.returncode, out or "", err or "", time.perf_counter() - t0, True)


def env_for(opts: Options) -> dict[str, str]:
    env = {**os.environ, "EDGEPACK_CACHE_DIR": str(opts.work / "cache"), "PYTHONFAULTHANDLER": "1",
           "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    if opts.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
            env[var] = str(opts.threads)
    return env


def edgepack() -> list[str]:
    exe = Path(sys.executable).parent / "edgepack"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "packager"]


def write_inputs(name: str, opts: Options, folder: Path) -> Path:
    """The manifest and the entry file the build reads, in ``folder``."""
    from zoo.models import entry
    e = entry(name)
    cal = QUICK["calibration"] if opts.quick else e.calibration
    golden = min(QUICK["golden"] if opts.quick else e.golden, cal)
    (folder / "zoo_entry.py").write_text(ENTRY_FILE.format(name=name, repo=str(REPO), n=cal))
    if e.framework == "onnx":
        source: dict[str, Any] = {"framework": "onnx", "path": "model.onnx"}
    else:
        weights = opts.work / "weights" / f"{name}{'.quick' if opts.quick else ''}{e.weights_suffix}"
        source = {"framework": e.framework, "entry": "zoo_entry.py:build", "kwargs": {"weights": str(weights)}}
    doc = {"name": name, "description": e.arch, "source": source, "inputs": list(e.inputs),
           "outputs": list(e.outputs),
           "calibration": {"entry": "zoo_entry.py:samples", "samples": cal, "batch_size": 16, "seed": 0},
           "golden": {"samples": golden}, "targets": list(opts.targets)}
    path = folder / f"{name}.yaml"
    path.write_text(f"# zoo model {name}: written by zoo/run.py (zoo/models/)\n"
                    + yaml.safe_dump(doc, sort_keys=False))
    return path


def candidate_ids(target: str) -> list[dict[str, str]]:
    """The target's candidates, for the cells of a build that never reported them."""
    try:
        from packager.config.targets import load_target
        return [{"candidate": c.id, "format": c.format, "precision": c.precision}
                for c in load_target(target).candidates]
    except Exception:  # an unknown target: one cell for the whole target
        return [{"candidate": "(target)", "format": "-", "precision": "-"}]


def worst_parity(c: dict[str, Any]) -> dict[str, Any] | None:
    p = c.get("parity")
    if not p or not p.get("outputs"):
        return None

    def pick(key: str, fn: Any) -> Any:
        vals = [o[key] for o in p["outputs"] if o.get(key) is not None]
        return fn(vals) if vals else None
    return {"passed": p.get("passed"), "max_abs": pick("max_abs", max), "cosine": pick("cosine", min),
            "top1": pick("top1", min),
            "failures": [f"{o['name']}: {f}" for o in p["outputs"] for f in o.get("failures", [])],
            "outputs": {o["name"]: {k: o.get(k) for k in ("max_abs", "mean_abs", "cosine", "top1", "passed")}
                        for o in p["outputs"]}}


def cells_from_build(doc: dict[str, Any]) -> list[dict[str, Any]]:
    details = {(t["target"], c["id"]): c for t in doc["targets"] for c in t["candidates"]}
    if "coverage" in doc:
        base = doc["coverage"]["cells"]
    else:  # a packager without the coverage matrix: map the candidates' statuses the same way
        base = [{"target": t["target"], "candidate": c["id"], "format": c["format"], "precision": c["precision"],
                 "result": STATUS[c["status"]], "reason": None if c["status"] == "ok" else c["message"]}
                for t in doc["targets"] for c in t["candidates"]]
    cells = []
    for cell in base:
        c = details.get((cell["target"], cell["candidate"]), {})
        cells.append({"target": cell["target"], "candidate": cell["candidate"], "format": cell["format"],
                      "precision": cell["precision"], "status": cell["result"], "reason": cell["reason"],
                      "build_status": c.get("status"), "parity": worst_parity(c), "size": c.get("size"),
                      "host_ms": c.get("host_latency_ms"), "cached": c.get("cached")})
    return cells


def crash_cells(targets: tuple[str, ...], reason: str, stage: str) -> list[dict[str, Any]]:
    return [{"target": t, **c, "status": "failed", "reason": reason, "stage": stage, "parity": None}
            for t in targets for c in candidate_ids(t)]


def verify(bundle: Path, python: list[str], home: Path, timeout: float, env: dict[str, str]) -> dict[str, Any]:
    """``python -m runtime verify --all --json`` from inside the bundle (HOME outside it)."""
    home.mkdir(parents=True, exist_ok=True)
    got = call([*python, "-m", "runtime", "verify", "--all", "--json"], bundle, {**env, "HOME": str(home)}, timeout)
    rec: dict[str, Any] = {"seconds": round(got.seconds, 1), "rc": got.rc}
    try:
        doc = json.loads(got.stdout)
    except ValueError:
        rec.update(passed=False, reason=crash_reason("verify", got.rc, got.stderr, got.timed_out, timeout))
        return rec
    cands = {c["candidate"]: bool(c.get("passed")) for c in doc.get("candidates", [])}
    failing = [f"{c['candidate']}: " + "; ".join(
        [f"{o['name']}: {f}" for o in c.get("outputs", []) for f in o.get("failures", [])]
        or [str(c.get("error") or c.get("reason") or "not passed")])
        for c in doc.get("candidates", []) if not c.get("passed")]
    rec.update(passed=got.rc == 0 and bool(doc.get("passed")), candidates=cands,
               reason=None if got.rc == 0 else ("; ".join(failing) or doc.get("error") or f"exit {got.rc}"))
    return rec


def emulator(requirements: Path) -> tuple[list[str] | None, str]:
    if platform.machine() != "x86_64" or os.geteuid() != 0:
        return None, f"the arm64 emulator needs root on x86-64 (this is {platform.machine()}, uid {os.geteuid()})"
    script = REPO / "scripts" / "arm64-emu.sh"
    got = call(["sh", str(script), str(EMU), str(requirements)], REPO, dict(os.environ), 1800)
    if got.rc != 0:
        return None, "scripts/arm64-emu.sh failed: " + got.stderr.strip()[-500:]
    return [got.stdout.strip().splitlines()[-1]], ""


def verify_emulated(bundle: Path, target: str, opts: Options) -> dict[str, Any]:
    python, why = emulator(bundle / "requirements.txt")
    if python is None:
        return {"passed": None, "reason": why}
    env = {"PATH": os.environ["PATH"], "QEMU_CPU": PI_CPU[target]}
    rec = verify(bundle, python, opts.work / "home-emu", 3600, env)
    rec["cpu"] = PI_CPU[target]
    return rec


def run_model(name: str, opts: Options) -> dict[str, Any]:
    from zoo.models import entry
    e = entry(name)
    folder = opts.work / name
    shutil.rmtree(folder / "out", ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    env = env_for(opts)
    rec: dict[str, Any] = {"name": name, "family": e.family, "framework": e.framework, "arch": e.arch,
                           "tags": list(e.tags), "base": e.base, "opset": e.opset,
                           "exporter": None if e.framework != "onnx" else f"dynamo={e.dynamo}",
                           "seconds": {}, "targets": {}}
    t0 = time.perf_counter()
    prep_cmd = [sys.executable, "-m", "zoo.prepare", name, "--work", str(opts.work), "--threads", str(opts.threads)]
    prep = call(prep_cmd + (["--quick"] if opts.quick else []), REPO, env, opts.timeout)
    rec["seconds"]["prepare"] = round(prep.seconds, 1)
    prepared = _last_json(prep.stdout)
    rec["prepare"] = prepared
    manifest = write_inputs(name, opts, folder)
    if prep.rc != 0 or not prepared or "error" in prepared:
        what = (f"torch.onnx.export(opset_version={e.opset}, dynamo={e.dynamo})" if e.framework == "onnx"
                else "fitting the weights")
        reason = f"zoo prepare ({what}) failed: " + crash_reason("prepare", prep.rc, prep.stderr, prep.timed_out,
                                                                 opts.timeout, (prepared or {}).get("error"))
        rec["cells"] = crash_cells(opts.targets, reason, "prepare")
        rec["build"] = {"rc": None, "crashed": True, "reason": reason, "stage": "prepare"}
        return _finish(rec, opts, t0)
    t_build = time.perf_counter()
    outcome = build(manifest, folder, opts.targets, env, opts.timeout)
    rec["build"], rec["cells"], bundles = outcome
    if rec["build"].get("crashed") and len(opts.targets) > 1 and rec["build"].get("rc") != 2 \
            and not rec["build"].get("timed_out"):
        # one build for all targets died: build each target alone, so the crash is pinned on the
        # target(s) where it happens and the others get their real cells (the combined crash stays
        # recorded as the model's build result)
        rec["build"]["isolated"] = {}
        rec["cells"], bundles = [], {}
        for target in opts.targets:
            b, cells, got = build(manifest, folder, (target,), env, opts.timeout)
            rec["build"]["isolated"][target] = b
            rec["cells"] += cells
            bundles.update(got)
    rec["seconds"]["build"] = round(time.perf_counter() - t_build, 1)
    t1 = time.perf_counter()
    for target in opts.targets:
        t = bundles.get(target)
        info: dict[str, Any] = {"status": t["status"] if t else "failed", "message": t and t.get("message"),
                                "bundle": bool(t and t.get("bundle_dir"))}
        if info["bundle"]:
            info["verify"] = verify(folder / t["bundle_dir"], [sys.executable], opts.work / "home", 900, env)
            if target in PI_CPU and name in opts.emulate:
                info["emulated"] = verify_emulated(folder / t["bundle_dir"], target, opts)
        rec["targets"][target] = info
    if any(d == "seq" for s in e.inputs for d in s["shape"]):
        made = [str(folder / bundles[t]["bundle_dir"]) for t in opts.targets if rec["targets"][t]["bundle"]]
        if made:
            got = call([sys.executable, "-m", "zoo.seqcheck", name, "--work", str(opts.work), *made], REPO,
                       {**env, "HOME": str(opts.work / "home")}, 1800)
            rec["seq_check"] = _last_json(got.stdout) or {
                "error": crash_reason("seqcheck", got.rc, got.stderr, got.timed_out, 1800)}
    rec["seconds"]["verify"] = round(time.perf_counter() - t1, 1)
    return _finish(rec, opts, t0)


def build(manifest: Path, folder: Path, targets: tuple[str, ...], env: dict[str, str], timeout: float
          ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """``edgepack build MANIFEST --json`` (with ``--target`` each when given a subset): the build
    record, the matrix cells and the build JSON's targets by name."""
    only = [a for t in targets for a in ("--target", t)] if len(targets) == 1 else []
    got = call([*edgepack(), "build", manifest.name, "--out", "out", "--json", *only], folder, env, timeout)
    doc = _last_json(got.stdout) if got.stdout.strip().startswith("{") else None
    if doc and "targets" in doc:
        rec = {"rc": got.rc, "ok": doc.get("ok"), "seconds": round(got.seconds, 1),
               "warnings": doc.get("warnings", []), "cache": doc.get("cache", {}),
               "steps": [s.get("step") for s in doc.get("steps", [])]}
        return rec, cells_from_build(doc), {t["target"]: t for t in doc["targets"]}
    if doc and doc.get("message"):  # a user error (exit 2), as JSON: message, where, hint
        reason = f"error: {doc['message']}" + (f" (at {doc['where']})" if doc.get("where") else "") + (
            f"; hint: {doc['hint']}" if doc.get("hint") else "")
    else:
        reason = crash_reason("build", got.rc, got.stderr, got.timed_out, timeout)
    tag = "-".join(targets) if len(targets) == 1 else "all"
    (folder / f"build-{tag}.stderr.txt").write_text(got.stderr[-200000:])
    rec = {"rc": got.rc, "crashed": True, "reason": reason, "stage": "build", "seconds": round(got.seconds, 1),
           "timed_out": got.timed_out}
    return rec, crash_cells(targets, reason, "build"), {}


def _finish(rec: dict[str, Any], opts: Options, t0: float) -> dict[str, Any]:
    from zoo.scoreboard import target_summary
    for target in opts.targets:
        info = rec["targets"].setdefault(target, {"status": "failed", "bundle": False, "message": None})
        info.update(target_summary(rec, target))
    rec["seconds"]["total"] = round(time.perf_counter() - t0, 1)
    return rec


def _last_json(text: str) -> dict[str, Any] | None:
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None
