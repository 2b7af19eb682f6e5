"""Build every zoo model with edgepack for the shipped targets and write the scoreboard.

    python zoo/run.py [--only NAME,...] [--targets x86-cpu,rpi4,rpi5] [--quick] [--json]
                      [--jobs N] [--emulate all|subset|none|NAME,...] [--out zoo/results.json]

Per model, each step in a process of its own (one crash never stops the zoo; it is recorded as
``failed`` with the reason): ``python -m zoo.prepare`` (fit the weights, export ONNX), then the
manifest and entry file are written into ``WORK/NAME/`` and ``edgepack build --json`` runs; its
``coverage`` cells (target x candidate: ok / dropped / failed / unsupported with the build's
reason) become the matrix. Every bundle is then verified with ``python -m runtime verify --all
--json`` from inside it on this host; the Pi bundles (of the models ``--emulate`` names: all by default)
also on an emulated aarch64 Python (scripts/arm64-emu.sh, QEMU_CPU cortex-a72 for rpi4, cortex-a76 for rpi5).

``zoo/results.json`` (raw results, machine, versions, seconds per model) and ``zoo/scoreboard.md``
are written for a whole run; a run with --only or --quick writes into WORK instead unless --out is
given. ``python zoo/readme_table.py --write README.md`` renders the README's Model coverage section.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from zoo import scoreboard  # noqa: E402
from zoo.model_run import DEFAULT_TARGETS, Options, run_model  # noqa: E402

# `--emulate subset`: one or two Pi bundles per family and framework. The default is all of them:
# these models are small, a verify under qemu takes 5 to 20 s here
EMULATE_SUBSET = ("resnet-tiny", "ssd-tiny", "lstm-text", "bert-cls", "vit-cls", "whisper-encoder-cls",
                   "keras-mobilenetv2", "keras-two-in-two-out", "keras-gru-signal",
                   "onnx-resnet-tiny-op11", "onnx-bert-cls-op14")


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "arch": platform.machine(),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version()}


def versions() -> dict[str, str]:
    from importlib import metadata
    out = {}
    for pkg in ("numpy", "torch", "transformers", "tensorflow-cpu", "keras", "onnx", "onnxruntime", "onnxsim",
                "onnxscript", "tf2onnx", "litert-torch", "ai-edge-litert"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_state() -> dict[str, Any]:
    """The checkout the zoo ran on: HEAD, and whether packager/ or runtime/ had uncommitted changes."""
    import subprocess

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else ""
    return {"commit": git("rev-parse", "HEAD"),
            "uncommitted": [ln[3:] for ln in git("status", "--porcelain", "--", "packager", "runtime").splitlines()]}


def git_during(start: dict[str, Any]) -> dict[str, Any]:
    """The checkout at the start and the end of a run, and the commits to packager/ or runtime/ that
    landed in between (others may commit while the zoo runs: a model built after such a commit
    was built by the newer code)."""
    import subprocess
    end = git_state()
    landed: list[str] = []
    if start.get("commit") and end.get("commit") and start["commit"] != end["commit"]:
        proc = subprocess.run(["git", "log", "--format=%h %cI %s", f"{start['commit']}..{end['commit']}", "--",
                               "packager", "runtime"], cwd=REPO, capture_output=True, text=True)
        landed = [ln[:200] for ln in proc.stdout.splitlines()]
    return {"start": start, "end": end, "packager_commits_during_run": landed}


def select(only: str | None) -> list[str]:
    from zoo.models import ENTRIES
    if not only:
        return list(ENTRIES)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in ENTRIES]
    if unknown:
        raise SystemExit(f"--only: no zoo model {unknown}; known: {', '.join(ENTRIES)}")
    return names


def emulated(spec: str, names: list[str]) -> set[str]:
    if spec == "none":
        return set()
    if spec == "all":
        return set(names)
    chosen = EMULATE_SUBSET if spec == "subset" else tuple(n.strip() for n in spec.split(","))
    return {n for n in chosen if n in names}


def run(names: list[str], opts: Options, jobs: int = 1, log: Any = sys.stderr) -> dict[str, Any]:
    """Run the zoo for ``names``; the results document (models in the order given)."""
    started = datetime.datetime.now(datetime.timezone.utc)
    git_start = git_state()
    t0 = time.perf_counter()
    done: dict[str, dict[str, Any]] = {}

    def one(name: str) -> None:
        print(f"zoo: {name} ...", file=log, flush=True)
        rec = run_model(name, opts)
        done[name] = rec
        got = ", ".join(f"{t}: {v['summary']}" for t, v in rec["targets"].items())
        print(f"zoo: {name} done in {rec['seconds']['total']:.0f} s ({got})", file=log, flush=True)

    if jobs <= 1:
        for n in names:
            one(n)
    else:
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(one, names))
    doc = {"kind": "edgepack-zoo-results", "version": 1,
           "started": started.isoformat(timespec="seconds"),
           "seconds": round(time.perf_counter() - t0, 1),
           "command": " ".join(["python", "zoo/run.py", *sys.argv[1:]]) if sys.argv[0].endswith("run.py") else "",
           "machine": machine(), "versions": versions(), "git": git_during(git_start),
           "options": {"targets": list(opts.targets), "quick": opts.quick, "jobs": jobs,
                       "threads": opts.threads, "emulated": sorted(opts.emulate),
                       "only": opts.only, "timeout_s": opts.timeout},
           "models": [done[n] for n in names]}
    doc["summary"] = scoreboard.summarize(doc)
    return doc


def rescore(doc: dict[str, Any]) -> dict[str, Any]:
    """The per-target verdicts and the summary computed again from the cells (after a change to
    the scoreboard's rules; nothing is rebuilt)."""
    for m in doc["models"]:
        for target in doc["options"]["targets"]:
            m["targets"][target].update(scoreboard.target_summary(m, target))
    doc["summary"] = scoreboard.summarize(doc)
    return doc


def write(doc: dict[str, Any], out: Path) -> Path:
    """results JSON at ``out``, the markdown scoreboard beside it; returns the markdown's path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    md = out.with_name("scoreboard.md") if out.name == "results.json" else out.with_suffix(".md")
    md.write_text(scoreboard.markdown(doc), encoding="utf-8")
    return md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--only", metavar="NAME,...", help="only these zoo models (comma-separated)")
    p.add_argument("--targets", default=",".join(DEFAULT_TARGETS),
                   help="comma-separated targets (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="fewer calibration and golden samples, shorter training "
                   "(a smoke run; its results are not the scoreboard's)")
    p.add_argument("--json", action="store_true", help="print the results document on stdout")
    p.add_argument("--jobs", type=int, default=1, help="models built at once (default 1)")
    p.add_argument("--threads", type=int, default=1, help="OMP/TF intra-op threads for fitting and building "
                   "(default 1: on a shared machine more is slower; 0: the libraries' default)")
    p.add_argument("--emulate", default="all", help="whose Pi bundles are also verified on the emulated aarch64 "
                   "(scripts/arm64-emu.sh, root on x86-64): all (default), subset (EMULATE_SUBSET), none, or NAME,...")
    p.add_argument("--timeout", type=int, default=2400, help="seconds per build (default %(default)s)")
    p.add_argument("--work", type=Path, default=REPO / ".edgepack-cache" / "zoo",
                   help="work folder: weights, manifests, bundles, the build cache (default %(default)s)")
    p.add_argument("--out", type=Path, help="results JSON (default zoo/results.json for a whole run, else "
                   "WORK/results.json); the markdown scoreboard goes beside it")
    p.add_argument("--rescore", type=Path, metavar="RESULTS", help="recompute the summary and scoreboard of "
                   "this results file from its cells (no builds) and write them back")
    args = p.parse_args(argv)
    if args.rescore:
        doc = rescore(json.loads(args.rescore.read_text(encoding="utf-8")))
        md = write(doc, args.rescore)
        print(scoreboard.goals_text(doc) + f"\nresults: {args.rescore}\nscoreboard: {md}")
        return 0
    names = select(args.only)
    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    work = args.work.resolve()
    opts = Options(work=work, targets=targets, quick=args.quick, threads=args.threads, timeout=args.timeout,
                   emulate=frozenset(emulated(args.emulate, names)), only=args.only)
    whole = not args.only and not args.quick and targets == DEFAULT_TARGETS
    out = args.out or (HERE / "results.json" if whole else work / "results.json")
    doc = run(names, opts, args.jobs)
    md = write(doc, out)
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print(scoreboard.goals_text(doc))
        print(f"results: {out}\nscoreboard: {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
