"""Render the README's Model coverage section from zoo/results.json (what `make zoo` wrote).

    python zoo/readme_table.py                     # print the section
    python zoo/readme_table.py --write README.md   # replace it between the zoo markers (or add it
                                                   # before "## Installing" the first time)
    python zoo/readme_table.py --check README.md   # exit 1 when the README differs

Every figure in the section is read from the results file; tests/test_zoo_readme.py checks that
README.md holds what this renders from the committed zoo/results.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from zoo import scoreboard  # noqa: E402

RESULTS = HERE / "results.json"
HEADING = "## Model coverage"
BEGIN = ("<!-- zoo:begin: rendered by `python zoo/readme_table.py --write README.md` from zoo/results.json; "
         "edit zoo/readme_table.py, not this text -->")
END = "<!-- zoo:end -->"
BEFORE = "## Installing"
TOP_FAILURES = 10


def _count(doc: dict[str, Any], framework: str) -> int:
    return sum(1 for m in doc["models"] if m["framework"] == framework)


def section(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    t = s["totals"]
    mach = doc["machine"]
    opsets = sorted({m["opset"] for m in doc["models"] if m["opset"]})
    emulated = sorted({m["name"] for m in doc["models"] for i in m["targets"].values()
                       if i.get("emulated_verified") is not None})
    with_pi = sorted({m["name"] for m in doc["models"] for t, i in m["targets"].items()
                      if t.startswith("rpi") and i.get("bundle")})
    emu_who = (f"every Pi bundle ({len(emulated)} models)" if emulated and emulated == with_pi else
               f"the Pi bundles of {len(emulated)} models ({', '.join(emulated) or 'none'})")
    emu_ok = sum(1 for m in doc["models"] for i in m["targets"].values() if i.get("emulated_verified") is True)
    emu_run = sum(1 for m in doc["models"] for i in m["targets"].values() if i.get("emulated_verified") is not None)
    v = doc["versions"]
    intro = (
        f"`make zoo` builds {s['models']} models made in code, nothing downloaded (transformers models from "
        "small configs, `keras.applications` with `weights=None`, nets written in code; each fitted for "
        "seconds on data made in code: smooth images, token ids with padding, tones, log-mel features), "
        f"from PyTorch ({_count(doc, 'torch')}), TensorFlow/Keras ({_count(doc, 'tensorflow')}) and ONNX "
        f"files torch.onnx.export wrote at opsets {', '.join(map(str, opsets))} ({_count(doc, 'onnx')}), for "
        f"{', '.join(s['targets'])}, and runs `python -m runtime verify --all` in every bundle, "
        f"{emu_who} also on an emulated aarch64 (`scripts/arm64-emu.sh`: {emu_ok} of {emu_run} passed). "
        "`zoo/run.py` (`--only`, `--targets`, `--quick`, `--json`) writes `zoo/results.json`, every "
        "target x candidate cell with the build's own reason, and `zoo/scoreboard.md`, the full tables; "
        "`tests/test_zoo.py` runs three of the models in `make test`. Failures are the next bugs to fix, "
        "not hidden: a build that crashes is built again target by target, and every candidate of the "
        "target where it crashes counts as failed, with the signal and the step.")
    run = (f"Last run: {doc['started'][:10]}, {doc['seconds'] / 60:.0f} min, one model at a time, on "
           f"{mach['cpu']} ({mach['cores']} cores), Python {mach['python']}, torch {v.get('torch', '?')}, "
           f"transformers {v.get('transformers', '?')}, tensorflow-cpu {v.get('tensorflow-cpu', '?')}, "
           f"onnxruntime {v.get('onnxruntime', '?')}, ai-edge-litert {v.get('ai-edge-litert', '?')}; "
           f"{scoreboard.checkout_text(doc, subjects=False)}. "
           f"{s['cells']} candidate cells: {t['ok']} ok, {t['dropped']} dropped (parity, with a fallback), "
           f"{t['failed']} failed, {t['unsupported']} unsupported (no route for that source).")
    parts = [scoreboard.wrap(intro), scoreboard.wrap(run), "\n".join(scoreboard.goal_rows(s)),
             scoreboard.wrap("Per model and target: ✓ a verified bundle and the candidate the runtime loads "
                             "first (⚙: verified on the emulated aarch64 too), ✗ what went wrong."),
             "\n".join(scoreboard.model_rows(doc)),
             scoreboard.wrap("Per format and precision, all targets together (a cell per model, target and "
                             "candidate):"),
             "\n".join(scoreboard.format_rows(s)),
             "Per target and candidate:", "\n".join(scoreboard.candidate_rows(s)),
             *([scoreboard.wrap(scoreboard.seq_text(s))] if s["seq_check"]["candidates"] else []),
             scoreboard.wrap(f"Most common failure reasons (of {len(s['failures'])}; all in `zoo/scoreboard.md`, "
                             "with an example of each):"),
             "\n".join(scoreboard.failure_rows(s, TOP_FAILURES)),
             scoreboard.wrap(f"Unsupported routes, by reason (of {len(s['unsupported'])}; TorchScript from "
                             "TensorFlow is unsupported by design, the others are a converter refusing "
                             "the model):"),
             "\n".join(scoreboard.failure_rows(s, TOP_FAILURES, key="unsupported"))]
    return "\n\n".join(parts)


def block(doc: dict[str, Any]) -> str:
    return f"{BEGIN}\n\n{section(doc)}\n\n{END}"


def replace(readme: str, doc: dict[str, Any]) -> str:
    """``readme`` with its zoo block rendered from ``doc``; the first time, the section goes in
    before "## Installing" (ValueError when neither is there)."""
    start, end = readme.find("<!-- zoo:begin"), readme.find(END)
    if start >= 0 and end > start:
        return readme[:start] + block(doc) + readme[end + len(END):]
    at = readme.find(f"\n{BEFORE}\n")
    if at < 0:
        raise ValueError(f"no zoo markers and no {BEFORE!r} heading to put the section before")
    return readme[:at + 1] + f"{HEADING}\n\n{block(doc)}\n\n" + readme[at + 1:]


def current(readme: str) -> str:
    start, end = readme.find("<!-- zoo:begin"), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {BEGIN[:15]}... {END} markers")
    return readme[start:end + len(END)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--results", type=Path, default=RESULTS, help="default: zoo/results.json")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write", type=Path, metavar="README", help="replace the section in this file")
    g.add_argument("--check", type=Path, metavar="README", help="exit 1 when this file's section differs")
    args = p.parse_args()
    doc = json.loads(args.results.read_text(encoding="utf-8"))
    if args.write:
        args.write.write_text(replace(args.write.read_text(encoding="utf-8"), doc), encoding="utf-8")
        print(f"{args.write}: Model coverage section rendered from {args.results}")
        return 0
    if args.check:
        try:
            same = current(args.check.read_text(encoding="utf-8")) == block(doc)
        except ValueError as exc:
            print(f"{args.check}: {exc}", file=sys.stderr)
            return 1
        if not same:
            print(f"{args.check}: the Model coverage section differs from {args.results}; run "
                  f"python zoo/readme_table.py --write {args.check}", file=sys.stderr)
            return 1
        return 0
    print(section(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
