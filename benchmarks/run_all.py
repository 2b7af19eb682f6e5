"""Run every benchmark and print the goals table (markdown), or --json for all of it.

    python benchmarks/run_all.py [--quick] [--json] [--out results.json] [--only SCRIPT[:PART]]
    python benchmarks/run_all.py --only SCRIPT --merge --out benchmarks/results.json

`make bench` runs it with --out benchmarks/results.json: every script's JSON (goal rows, the
extra figures the README quotes, raw per-run samples, how each was measured) plus the machine,
the command and the time each script took. ``python benchmarks/readme_table.py --write
README.md`` renders the README's Benchmarks section from that file.

``--merge`` (with --only and --out) runs only the chosen scripts and puts their results into the
existing --out file in place of those scripts' earlier ones, keeping every other script's
results: one benchmark can be re-run (or a new one added) without re-running the 20-minute
whole. The file records each such update (``updated``: scripts, command, date, time taken) and
the README says which scripts were re-run when. Only whole scripts merge (not SCRIPT:PART), and
only into a file of the same kind of run (--quick or not) on the same machine (CPU, cores, arch).

Each script also runs alone (benchmarks/overhead.py, cold_start.py, import_time.py, builds.py,
optimum_compare.py, mixed_int8.py) and takes --json. Work files go to $EDGEPACK_BENCH_DIR (default: a temp
folder). A failing script stops the run (exit 1) and nothing is written.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import common
import readme_table

SCRIPTS = {"overhead": "overhead.py", "cold_start": "cold_start.py",
           "import_time": "import_time.py", "builds": "builds.py", "optimum": "optimum_compare.py",
           "mixed": "mixed_int8.py", "serve": "serve.py", "fleet": "fleet.py"}
# --only SCRIPT:PART -> that script's own options
PARTS = {
    "overhead": {"mlp": ["--model", "tiny MLP"], "digits": ["--model", "digits CNN"],
                 "mobilenetv2": ["--model", "MobileNetV2"],
                 "python_call": ["--extra", "python_call"], "threads": ["--extra", "threads"],
                 "run_into": ["--extra", "run_into"]},
    "builds": {p: ["--only", p] for p in ("rebuild", "multi", "memory", "parallel")},
    "mixed": {p: ["--only", p] for p in ("softmax1000", "encoder", "outlier-cnn", "detection")},
    "serve": {p: ["--only", p] for p in ("overhead", "batching", "swap")},
    "fleet": {p: ["--only", p] for p in ("pull", "cache", "tamper")},
}


def selection(only: list[str] | None) -> dict[str, list[str]]:
    """{script: extra argv} for the --only arguments (all scripts, whole, without any)."""
    if not only:
        return {s: [] for s in SCRIPTS}
    chosen: dict[str, list[str]] = {}
    for item in only:
        script, _, part = item.partition(":")
        if script not in SCRIPTS:
            raise SystemExit(f"--only {item}: no script {script!r} (one of {', '.join(SCRIPTS)})")
        if part and part not in PARTS.get(script, {}):
            raise SystemExit(f"--only {item}: no part {part!r} of {script} (one of "
                             f"{', '.join(PARTS.get(script, {})) or 'none'})")
        argv = chosen.setdefault(script, [])
        if part:
            argv += PARTS[script][part]
    return {s: chosen[s] for s in SCRIPTS if s in chosen}  # in the usual order


# the "benchmark" name each script's JSON carries
BENCHMARK = {"overhead": "overhead", "cold_start": "cold_start", "import_time": "import",
             "builds": "builds", "optimum": "optimum", "mixed": "mixed_int8", "serve": "serve", "fleet": "fleet"}


def script_of(doc: dict[str, Any]) -> str:
    """The SCRIPTS key of a script's result document (by its "benchmark" name)."""
    for key, bench in BENCHMARK.items():
        if doc.get("benchmark") == bench:
            return key
    raise SystemExit(f"--merge: a result of benchmark {doc.get('benchmark')!r}, from none of "
                     f"{', '.join(SCRIPTS.values())}")


MACHINE_KEYS = ("cpu", "cores", "arch")


def merge(old: dict[str, Any], docs: list[dict[str, Any]], update: dict[str, Any]) -> dict[str, Any]:
    """``old`` (a results file) with the results of the scripts in ``docs`` replaced by those (or
    added, in SCRIPTS order), the others kept, and ``update`` appended to its ``updated`` list
    (an earlier update of the same scripts is dropped). SystemExit when they do not fit together."""
    if old.get("only"):
        raise SystemExit("--merge: the file to merge into comes from an --only run; merge into the "
                         "results of a whole run")
    if bool(old.get("quick")) != bool(update.get("quick")):
        raise SystemExit("--merge: cannot merge a " + ("--quick" if update.get("quick") else "full")
                         + " run into the results of a " + ("--quick" if old.get("quick") else "full")
                         + " run")
    for key in MACHINE_KEYS:
        if old["machine"].get(key) != update["machine"].get(key):
            raise SystemExit(f"--merge: another machine ({key}: {update['machine'].get(key)!r} here, "
                             f"{old['machine'].get(key)!r} in the file): run the whole benchmark instead")
    new = {script_of(d): d for d in docs}
    kept = {script_of(d): d for d in old.get("results", []) if script_of(d) not in new}
    merged = {**kept, **new}
    done = set(update["scripts"])
    updates = [u for u in old.get("updated", []) if not set(u["scripts"]) <= done]
    return {**old, "results": [merged[k] for k in SCRIPTS if k in merged],
            "updated": [*updates, update]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    p.add_argument("--json", action="store_true", help="print everything as JSON")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.add_argument("--only", action="append", metavar="SCRIPT[:PART]",
                   help="only this script or part of it (repeatable): "
                        + "; ".join(f"{s}" + (f" (parts: {', '.join(PARTS[s])})" if s in PARTS
                                               else "") for s in SCRIPTS))
    p.add_argument("--merge", action="store_true",
                   help="with --only SCRIPT and --out FILE: replace those scripts' results in FILE, "
                        "keep the others")
    p.add_argument("--note", default=os.environ.get("EDGEPACK_BENCH_NOTE", ""),
                   help="a word about the host the README quotes, e.g. 'a quiet 2-core VM' "
                        "(default: $EDGEPACK_BENCH_NOTE)")
    args = p.parse_args()
    chosen = selection(args.only)
    old = None
    if args.merge:
        if not args.only or not args.out:
            raise SystemExit("--merge needs --only SCRIPT and --out FILE")
        if any(":" in x for x in args.only):
            raise SystemExit("--merge takes whole scripts (--only SCRIPT), not parts")
        if not args.out.is_file():
            raise SystemExit(f"--merge: no {args.out} to merge into (run the whole benchmark first)")
        old = json.loads(args.out.read_text(encoding="utf-8"))
    started = datetime.datetime.now(datetime.timezone.utc)
    t_all = time.perf_counter()
    docs, seconds = [], {}
    for name, extra in chosen.items():
        print(f"running {SCRIPTS[name]} {' '.join(extra)} ...", file=sys.stderr, flush=True)
        cmd = [common.PY, str(common.HERE / SCRIPTS[name]), "--json", *extra] + \
            (["--quick"] if args.quick else [])
        t0 = time.perf_counter()
        began = datetime.datetime.now(datetime.timezone.utc)
        proc = common.run(cmd)
        seconds[name] = time.perf_counter() - t0
        if proc.returncode:
            print(proc.stdout[-2000:] + proc.stderr[-4000:], file=sys.stderr)
            print(f"{SCRIPTS[name]} failed (exit {proc.returncode}); nothing written",
                  file=sys.stderr)
            return 1
        doc = json.loads(proc.stdout)
        doc["seconds"] = seconds[name]
        doc["started"] = began.isoformat(timespec="seconds")
        doc["argv"] = cmd[2:]
        docs.append(doc)
    all_doc = {"machine": common.machine(), "note": args.note, "quick": args.quick,
               "only": args.only or [],
               "command": "python benchmarks/run_all.py " + shlex.join(sys.argv[1:]),
               "started": started.isoformat(timespec="seconds"),
               "seconds": time.perf_counter() - t_all, "script_seconds": seconds,
               "results": docs}
    elapsed = all_doc["seconds"]
    if old is not None:
        all_doc = merge(old, docs, {
            "scripts": list(chosen), "command": all_doc["command"], "started": all_doc["started"],
            "seconds": all_doc["seconds"], "script_seconds": seconds, "quick": args.quick,
            "machine": all_doc["machine"], "note": args.note})
    if args.out:
        args.out.write_text(common.dumps(all_doc), encoding="utf-8")
    if args.json:
        sys.stdout.write(common.dumps(all_doc))
        return 0
    print(common.machine_line(all_doc["machine"]))
    print()
    print(readme_table.table(all_doc))
    print()
    for line in readme_table.extra_lines(all_doc):
        print(line)
    print(f"\ntook {elapsed / 60:.1f} min ("
          + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + ")")
    if args.out:
        print(f"wrote {args.out}; render the README with: python benchmarks/readme_table.py "
              f"--results {args.out} --write README.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
