"""Run every benchmark and print the goals table (markdown), or --json for all of it.

    python benchmarks/run_all.py [--quick] [--json] [--out results.json]

Each script also runs alone (benchmarks/overhead.py, cold_start.py, import_time.py, builds.py)
and takes --json. Work files go to $EDGEPACK_BENCH_DIR (default: a temp folder).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import common

SCRIPTS = ["overhead.py", "cold_start.py", "import_time.py", "builds.py"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.add_argument("--json", action="store_true", help="print everything as JSON")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    args = p.parse_args()
    docs = []
    for script in SCRIPTS:
        print(f"running {script} ...", file=sys.stderr, flush=True)
        cmd = [common.PY, str(common.HERE / script), "--json"] + (["--quick"] if args.quick else [])
        proc = common.run(cmd)
        if proc.returncode:
            print(proc.stdout[-2000:] + proc.stderr[-4000:], file=sys.stderr)
            return 1
        docs.append(json.loads(proc.stdout))
    all_doc = {"machine": common.machine(), "results": docs}
    if args.out:
        args.out.write_text(json.dumps(all_doc, indent=2) + "\n")
    if args.json:
        json.dump(all_doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(common.machine_line(all_doc["machine"]))
    print()
    print("| what | goal | baseline | ours | met? |")
    print("| --- | --- | --- | --- | --- |")
    for doc in docs:
        for r in doc["rows"]:
            met = "yes" if r["met"] else "**no**"
            print(f"| {r['what']} | {r['goal']} | {r['baseline']} | {r['ours']} | {met} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
