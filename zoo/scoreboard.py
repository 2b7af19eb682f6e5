"""The zoo's scoreboard: totals and goals from the model x target x candidate matrix, failures
grouped by reason, and the markdown zoo/run.py writes beside results.json.

Goals (from the coverage issue):
  - verified bundle for every target, share of models          >= 95 %
  - rpi4 ships a TFLite or ONNX int8 candidate that passes parity >= 85 %
  - rpi4 ships TFLite int8                                      >= 70 %
  - no failure without a specific reason naming the op or the step (count: 0)
"""
from __future__ import annotations

import re
import textwrap
from collections import Counter, defaultdict
from typing import Any

RESULTS = ("ok", "dropped", "failed", "unsupported")
GOALS = {"verified_all_targets": 0.95, "rpi4_int8": 0.85, "rpi4_tflite_int8": 0.70, "generic_failures": 0}
STEP_WORDS = ("export", "torch.onnx", "dynamo", "tf2onnx", "onnx2tf", "litert", "tfliteconverter", "converter",
              "conversion", "convert", "prepare", "simplif", "onnxsim", "quantiz", "calibrat", "opset", "parity",
              "torchscript", "torch.jit", "trace", "script", "load", "savedmodel", "onnxruntime", "pt2e", "verify",
              "fitting the weights", "top-1", "cosine", "max_abs")
# ONNX op names that are also everyday English words at the start of a sentence: not evidence alone
_ENGLISH = {"If", "Not", "And", "Or", "Where", "Size", "Max", "Min", "Less", "Sum", "Mean", "Round", "Sign",
            "Range", "Split", "Loop", "Scan", "Greater", "Equal", "Identity", "Constant", "Shape", "Expand", "Pad"}
OP_PATTERNS = (r"\b(?:aten|prims|tfl|tf|onnx|ai\.onnx|com\.microsoft)(?:::|\.)\w+", r"\bFlex\w+",
               r"'\w+' op\b", r"\bop(?:erator)?s? [`'\"]?[A-Z]\w+", r"\bnode [`'\"]?\S+",
               r"\bop_?type[=: ]+[`'\"]?\w+")


def _onnx_ops() -> set[str]:
    try:
        import onnx.defs
        return {s.name for s in onnx.defs.get_all_schemas_with_history()} - _ENGLISH
    except Exception:  # onnx missing: the patterns alone
        return set()


_OPS: set[str] | None = None


def reason_kind(reason: str | None) -> tuple[str, list[str]]:
    """("op", names) when the reason names an op, ("step", words) when it names the step or tool,
    ("generic", []) otherwise (no reason, an exit code, an internal error naming nothing)."""
    global _OPS
    if not reason or not reason.strip():
        return "generic", []
    if _OPS is None:
        _OPS = _onnx_ops()
    ops = [m for p in OP_PATTERNS for m in re.findall(p, reason)]
    ops += [w for w in re.findall(r"\b[A-Z][A-Za-z0-9]+\b", reason) if w in _OPS]
    if ops:
        return "op", sorted(set(ops))
    low = reason.lower()
    steps = [w for w in STEP_WORDS if w in low]
    return ("step", steps) if steps else ("generic", [])


def normalize(reason: str | None, model: str = "") -> str:
    """The reason with what varies between models taken out (paths, numbers, the model's name)."""
    r = (reason or "(no reason given)").strip()
    if model:
        r = r.replace(model, "MODEL")
    r = re.sub(r"/?[\w.+-]+(?:/[\w.+-]+){2,}/?", "PATH", r)
    r = re.sub(r"0x[0-9a-fA-F]+", "0x…", r)
    r = re.sub(r"(?<=__)\d+", "N", r)  # generated names: __inference___call___720
    r = re.sub(r"(?<![A-Za-z_\d])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![A-Za-z_\d])", "N", r)
    r = re.sub(r"\s+", " ", r)
    return r if len(r) <= 180 else r[:177] + "…"


PARITY_KINDS = (("of the reference's range", "error vs range"), ("max abs error", "max abs"), ("cosine", "cosine"),
                ("top-1", "top-1"), ("mismatch", "mismatch"), ("non-finite", "non-finite"), ("NaN", "non-finite"))


def group_key(cell: dict[str, Any], model: str) -> str:
    """What failures are grouped by: a parity drop by candidate and the checks it missed, anything
    else by its normalised reason."""
    r = cell.get("reason") or ""
    if r.startswith("parity failed"):
        kinds: list[str] = []
        for word, label in PARITY_KINDS:
            if word in r and label not in kinds and not (label == "max abs" and "error vs range" in kinds):
                kinds.append(label)
        return f"{cell['candidate']}: parity failed ({', '.join(kinds) or 'see the reason'})"
    return normalize(r, model)


def _groups(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for c in cells:
        key = (c["status"], group_key(c, c["model"]))
        g = groups.setdefault(key, {"status": c["status"], "reason": key[1], "example": c["reason"], "cells": 0,
                                    "models": [], "candidates": [], "kind": reason_kind(c["reason"])[0]})
        g["cells"] += 1
        if c["model"] not in g["models"]:
            g["models"].append(c["model"])
        if c["candidate"] not in g["candidates"]:
            g["candidates"].append(c["candidate"])
    return sorted(groups.values(), key=lambda g: (-len(g["models"]), -g["cells"], g["reason"]))


def target_summary(rec: dict[str, Any], target: str) -> dict[str, Any]:
    """Per model and target: the bundle, what it ships first, int8 shipped, verification."""
    info = rec["targets"].get(target, {})
    cells = [c for c in rec.get("cells", []) if c["target"] == target]
    bundle = bool(info.get("bundle"))
    ok = [c for c in cells if c["status"] == "ok"]
    host = (info.get("verify") or {}).get("passed")
    emu = (info.get("emulated") or {}).get("passed") if info.get("emulated") else None
    verified = bundle and host is True and emu is not False
    shipped = ok[0]["candidate"] if bundle and ok else None
    if verified:
        summary = f"verified ({shipped})"
    elif bundle:
        summary = "bundle, verify failed" if host is not True else "bundle, emulated verify failed"
    else:
        why = next((c["reason"] for c in cells if c.get("stage")), None) or info.get("message") or ""
        summary = "no bundle" + (f": {short(why)}" if why else "")
    return {"verified": verified, "host_verified": host, "emulated_verified": emu, "shipped": shipped,
            "int8_ok": bundle and any(c["precision"] == "int8" and c["format"] in ("tflite", "onnx") for c in ok),
            "tflite_int8_ok": bundle and any(c["precision"] == "int8" and c["format"] == "tflite" for c in ok),
            "summary": summary}


def short(reason: str, width: int = 90) -> str:
    """The head of a reason, for a table cell: up to its first detail."""
    head = re.split(r" \(|: (?=[A-Z])", reason.strip(), maxsplit=1)[0]
    return head if len(head) <= width else head[:width - 1] + "…"


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def summarize(doc: dict[str, Any]) -> dict[str, Any]:
    models = doc["models"]
    targets = doc["options"]["targets"]
    n = len(models)
    cells = [dict(c, model=m["name"], framework=m["framework"]) for m in models for c in m.get("cells", [])]
    totals = {r: sum(1 for c in cells if c["status"] == r) for r in RESULTS}
    per_target = {t: {"bundles": sum(1 for m in models if m["targets"][t]["bundle"]),
                      "verified": sum(1 for m in models if m["targets"][t]["verified"]),
                      "emulated_run": sum(1 for m in models if m["targets"][t].get("emulated_verified") is not None),
                      "emulated_passed": sum(1 for m in models if m["targets"][t].get("emulated_verified") is True)}
                  for t in targets}
    rows: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    meta: dict[tuple[str, str], tuple[str, str]] = {}
    for c in cells:
        rows[(c["target"], c["candidate"])][c["status"]] += 1
        meta[(c["target"], c["candidate"])] = (c["format"], c["precision"])
    candidates = [{"target": t, "candidate": cid, "format": meta[(t, cid)][0], "precision": meta[(t, cid)][1],
                   **{r: cnt[r] for r in RESULTS}, "ok_rate": _rate(cnt["ok"], sum(cnt.values())),
                   "ok_rate_supported": _rate(cnt["ok"], sum(cnt.values()) - cnt["unsupported"])}
                  for (t, cid), cnt in rows.items()]
    fmt: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for c in cells:
        fmt[(c["format"], c["precision"])][c["status"]] += 1
    formats = [{"format": f, "precision": p, **{r: cnt[r] for r in RESULTS},
                "ok_rate": _rate(cnt["ok"], sum(cnt.values())),
                "ok_rate_supported": _rate(cnt["ok"], sum(cnt.values()) - cnt["unsupported"])}
               for (f, p), cnt in sorted(fmt.items())]
    by_fw: dict[str, dict[str, int]] = defaultdict(lambda: {"models": 0, "verified_all": 0})
    for m in models:
        by_fw[m["framework"]]["models"] += 1
        by_fw[m["framework"]]["verified_all"] += all(m["targets"][t]["verified"] for t in targets)
    bad = [c for c in cells if c["status"] in ("failed", "dropped")]
    generic = [{"model": c["model"], "target": c["target"], "candidate": c["candidate"], "status": c["status"],
                "reason": c["reason"]} for c in bad if reason_kind(c["reason"])[0] == "generic"]
    failures = _groups(bad)
    unsupported = _groups([c for c in cells if c["status"] == "unsupported"])
    seq_rows = [{"model": m["name"], "target": t, "candidate": cid, **r}
                for m in models for t, cands in (m.get("seq_check") or {}).items() if isinstance(cands, dict)
                for cid, r in cands.items() if isinstance(r, dict)]
    seq_check = {"models": sum(1 for m in models if m.get("seq_check")), "candidates": len(seq_rows),
                 **{k: sum(1 for r in seq_rows if r["status"] == k) for k in ("ok", "refused", "mismatch", "error")},
                 "not_ok": [{k: r.get(k) for k in ("model", "target", "candidate", "status", "reason")}
                            for r in seq_rows if r["status"] != "ok"]}
    verified_all = sum(1 for m in models if all(m["targets"][t]["verified"] for t in targets))
    rpi4 = "rpi4" in targets
    goals = {
        "verified_all_targets": {"count": verified_all, "of": n, "share": _rate(verified_all, n),
                                 "goal": GOALS["verified_all_targets"]},
        "rpi4_int8": ({"count": (k := sum(1 for m in models if m["targets"]["rpi4"]["int8_ok"])), "of": n,
                       "share": _rate(k, n), "goal": GOALS["rpi4_int8"]} if rpi4 else None),
        "rpi4_tflite_int8": ({"count": (k := sum(1 for m in models if m["targets"]["rpi4"]["tflite_int8_ok"])),
                              "of": n, "share": _rate(k, n), "goal": GOALS["rpi4_tflite_int8"]} if rpi4 else None),
        "generic_failures": {"count": len(generic), "of": len(bad), "goal": 0},
    }
    for g in goals.values():
        if g is not None:
            g["met"] = g["count"] <= g["goal"] if "share" not in g else (g["share"] or 0) >= g["goal"]
    return {"models": n, "targets": targets, "cells": len(cells), "totals": totals, "per_target": per_target,
            "candidates": candidates, "formats": formats, "frameworks": dict(by_fw), "goals": goals,
            "seq_check": seq_check, "failures": failures, "unsupported": unsupported, "generic": generic,
            "seconds": sum(m["seconds"]["total"] for m in models)}


# -- text -----------------------------------------------------------------------------------------


WIDTH = 100
UNIT = re.compile(r"(\d) (%|s|min|cores?|models?)\b")


def wrap(text: str) -> str:
    """Fill to WIDTH columns, never between a number and its unit."""
    glued = UNIT.sub(lambda m: f"{m[1]}\0{m[2]}", " ".join(text.split()))
    return textwrap.fill(glued, WIDTH, break_long_words=False, break_on_hyphens=False).replace("\0", " ")


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f} %"


GOAL_TEXT = {
    "verified_all_targets": "models with a verified bundle for every target",
    "rpi4_int8": "rpi4 ships a TFLite or ONNX int8 candidate that passes parity",
    "rpi4_tflite_int8": "rpi4 ships TFLite int8",
    "generic_failures": "failed or dropped cells whose reason names no op or step",
}


def goal_rows(s: dict[str, Any]) -> list[str]:
    rows = ["| goal | target | measured | met? |", "| --- | --- | --- | --- |"]
    for key, g in s["goals"].items():
        if g is None:
            continue
        if "share" in g:
            measured, want = f"{pct(g['share'])} ({g['count']} of {g['of']})", f"≥ {pct(g['goal'])}"
        else:
            measured, want = f"{g['count']} (of {g['of']} failed or dropped)", "0"
        rows.append(f"| {GOAL_TEXT[key]} | {want} | {measured} | {'yes' if g['met'] else '**no**'} |")
    return rows


def goals_text(doc: dict[str, Any]) -> str:
    return "\n".join(goal_rows(doc["summary"]))


def cell_mark(info: dict[str, Any]) -> str:
    if info["verified"]:
        emu = " ⚙" if info.get("emulated_verified") else ""
        return f"✓ {info['shipped']}{emu}"
    return "✗ " + info["summary"]


def model_rows(doc: dict[str, Any]) -> list[str]:
    targets = doc["options"]["targets"]
    rows = ["| model | from | " + " | ".join(targets) + " | s |", "|" + " --- |" * (len(targets) + 3)]
    for m in doc["models"]:
        src = m["framework"] + (f" (opset {m['opset']}, {m['exporter']})" if m["framework"] == "onnx" else "")
        rows.append(f"| `{m['name']}` | {src} | " + " | ".join(cell_mark(m["targets"][t]) for t in targets)
                    + f" | {m['seconds']['total']:.0f} |")
    return rows


def candidate_rows(s: dict[str, Any]) -> list[str]:
    rows = ["| target | candidate | ok | dropped | failed | unsupported | ok-rate |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for c in s["candidates"]:
        rows.append(f"| {c['target']} | {c['candidate']} | {c['ok']} | {c['dropped']} | {c['failed']} | "
                    f"{c['unsupported']} | {pct(c['ok_rate'])} |")
    return rows


def format_rows(s: dict[str, Any]) -> list[str]:
    rows = ["| format | precision | ok | dropped | failed | unsupported | ok-rate | ok-rate where a route exists |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in s["formats"]:
        rows.append(f"| {c['format']} | {c['precision']} | {c['ok']} | {c['dropped']} | {c['failed']} | "
                    f"{c['unsupported']} | {pct(c['ok_rate'])} | {pct(c['ok_rate_supported'])} |")
    return rows


def failure_rows(s: dict[str, Any], limit: int | None = None, key: str = "failures") -> list[str]:
    if not s[key]:
        return ["None."]
    rows = ["| models | cells | status | reason (normalised) | models affected |", "| --- | --- | --- | --- | --- |"]
    for g in s[key][:limit]:
        reason = g["reason"].replace("|", "\\|")
        models = ", ".join(f"`{m}`" for m in g["models"][:8]) + (" …" if len(g["models"]) > 8 else "")
        rows.append(f"| {len(g['models'])} | {g['cells']} | {g['status']} | {reason} | {models} |")
    return rows


def seq_text(s: dict[str, Any]) -> str:
    q = s["seq_check"]
    return (f"Each candidate of the {q['models']} models with a `seq` axis, run from its bundle at twice the "
            f"length the build checked (the golden inputs followed by themselves) and compared with the source "
            f"model: {q['ok']} of {q['candidates']} matched, {q['refused']} refused the length with a FeedError "
            f"(compiled for one length), {q['mismatch']} computed something else, {q['error']} failed otherwise.")


def checkout_text(doc: dict[str, Any], subjects: bool = True) -> str:
    """Which edgepack the run built with: the commit, and packager commits that landed during it."""
    g = doc.get("git") or {}
    start = g.get("start", g)
    text = f"edgepack at {str(start.get('commit', '?'))[:7]}"
    if start.get("uncommitted"):
        text += f" with uncommitted changes to {', '.join(start['uncommitted'])}"
    landed = g.get("packager_commits_during_run") or []
    if landed:
        what = ("; ".join(f"{ln.split(' ', 2)[0]} ({ln.split(' ', 2)[-1]})" for ln in landed) if subjects
                else ", ".join(ln.split(" ", 1)[0] for ln in landed))
        text += (f", and {len(landed)} packager commit{'s' if len(landed) > 1 else ''} landed during the run "
                 f"(the models built after {'them' if len(landed) > 1 else 'it'} used the newer code): {what}")
    return text


def markdown(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    m = doc["machine"]
    t = s["totals"]
    lines = ["# edgepack model zoo: scoreboard", "",
             f"Run {doc['started']} ({doc['seconds'] / 60:.0f} min): {s['models']} models x "
             f"{len(s['targets'])} targets ({', '.join(s['targets'])}), {s['cells']} candidate cells: "
             f"{t['ok']} ok, {t['dropped']} dropped, {t['failed']} failed, {t['unsupported']} unsupported. "
             f"{m['cpu']}, {m['cores']} cores, {m['os']}, Python {m['python']}; "
             + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()) + ". " + checkout_text(doc) + ".", "",
             "## Goals", "", *goal_rows(s), "",
             "## Models", "",
             "✓ a bundle came out and `python -m runtime verify --all` passed in it on this host (⚙: also on the "
             "emulated aarch64), with the candidate the runtime loads first; ✗ what went wrong.", "",
             *model_rows(doc), "", "## Candidates", "", *candidate_rows(s), "",
             "All targets together (a cell per model, target and candidate):", "", *format_rows(s), "",
             "## Failures by reason", "",
             "Failed and dropped cells, grouped (parity drops by candidate and the checks they missed).", "",
             *failure_rows(s), "",
             "## Unsupported routes by reason", "",
             "Cells the build skipped as unsupported: some by design (TorchScript from TensorFlow or ONNX), "
             "others a converter refusing the model.", "", *failure_rows(s, key="unsupported"), "",
             "## Failure examples", "",
             *[f"- {g['status']} `{g['reason']}` ({len(g['models'])} models), e.g. `{g['models'][0]}`: "
               f"{g['example']}" for g in s["failures"]], ""]
    if s["generic"]:
        lines += ["## Failures without a specific reason", ""]
        lines += [f"- `{g['model']}` {g['target']} {g['candidate']}: {g['reason']!r}" for g in s["generic"]] + [""]
    q = s["seq_check"]
    if q["candidates"]:
        lines += ["## Dynamic sequence axes", "", seq_text(s), ""]
        lines += [f"- `{r['model']}` {r['target']} {r['candidate']}: {r['status']}: {r['reason']}"
                  for r in q["not_ok"]] + [""]
    emu = [(mm["name"], tt, mm["targets"][tt]["emulated"]) for mm in doc["models"] for tt in s["targets"]
           if mm["targets"][tt].get("emulated")]
    if emu:
        lines += ["## Emulated aarch64 verification", ""]
        lines += [f"- `{n}` {tt} ({e.get('cpu', '-')}): " + ("passed" if e.get("passed") else
                  f"**not passed**: {e.get('reason')}") + (f" in {e['seconds']:.0f} s" if "seconds" in e else "")
                  for n, tt, e in emu] + [""]
    return "\n".join(lines)
