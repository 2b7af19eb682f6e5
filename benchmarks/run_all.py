"""Run every benchmark and print the goals table (markdown), or --json for all of it.

    python benchmarks/run_all.py [--quick] [--json] [--out results.json] [--only SCRIPT[:PART]]

`make bench` runs it with --out benchmarks/results.json: every script's JSON (goal rows, the
extra figures the README quotes, raw per-run samples, how each was measured) plus the machine,
the command and the time each script took. ``python benchmarks/readme_table.py --write
README.md`` renders the README's Benchmarks section from that file.

Each script also runs alone (benchmarks/overhead.py, cold_start.py, import_time.py, builds.py)
and takes --json. Work files go to $EDGEPACK_BENCH_DIR (default: a temp folder). A failing
script stops the run (exit 1) and nothing is written.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import common
import readme_table

SCRIPTS = {"overhead": "overhead.py", "cold_start": "cold_start.py",
           "import_time": "import_time.py", "builds": "builds.py"}
# --only SCRIPT:PART -> that script's own options
PARTS = {
    "overhead": {"mlp": ["--model", "tiny MLP"], "digits": ["--model", "digits CNN"],
                 "mobilenetv2": ["--model", "MobileNetV2"],
                 "python_call": ["--extra", "python_call"], "threads": ["--extra", "threads"],
                 "run_into": ["--extra", "run_into"]},
    "builds": {p: ["--only", p] for p in ("rebuild", "multi", "memory", "parallel")},
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    p.add_argument("--json", action="store_true", help="print everything as JSON")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.add_argument("--only", action="append", metavar="SCRIPT[:PART]",
                   help="only this script or part of it (repeatable): "
                        + "; ".join(f"{s}" + (f" (parts: {', '.join(PARTS[s])})" if s in PARTS
                                               else "") for s in SCRIPTS))
    p.add_argument("--note", default=os.environ.get("EDGEPACK_BENCH_NOTE", ""),
                   help="a word about the host the README quotes, e.g. 'a quiet 2-core VM' "
                        "(default: $EDGEPACK_BENCH_NOTE)")
    args = p.parse_args()
    chosen = selection(args.only)
    started = datetime.datetime.now(datetime.timezone.utc)
    t_all = time.perf_counter()
    docs, seconds = [], {}
    for name, extra in chosen.items():
        print(f"running {SCRIPTS[name]} {' '.join(extra)} ...", file=sys.stderr, flush=True)
        cmd = [common.PY, str(common.HERE / SCRIPTS[name]), "--json", *extra] + \
            (["--quick"] if args.quick else [])
        t0 = time.perf_counter()
        proc = common.run(cmd)
        seconds[name] = time.perf_counter() - t0
        if proc.returncode:
            print(proc.stdout[-2000:] + proc.stderr[-4000:], file=sys.stderr)
            print(f"{SCRIPTS[name]} failed (exit {proc.returncode}); nothing written",
                  file=sys.stderr)
            return 1
        doc = json.loads(proc.stdout)
        doc["seconds"] = seconds[name]
        doc["argv"] = cmd[2:]
        docs.append(doc)
    all_doc = {"machine": common.machine(), "note": args.note, "quick": args.quick,
               "only": args.only or [],
               "command": "python benchmarks/run_all.py " + " ".join(sys.argv[1:]),
               "started": started.isoformat(timespec="seconds"),
               "seconds": time.perf_counter() - t_all, "script_seconds": seconds,
               "results": docs}
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
    print(f"\ntook {all_doc['seconds'] / 60:.1f} min ("
          + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + ")")
    if args.out:
        print(f"wrote {args.out}; render the README with: python benchmarks/readme_table.py "
              f"--results {args.out} --write README.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
