"""Render the README's Benchmarks section from benchmarks/results.json (what `make bench` wrote).

    python benchmarks/readme_table.py                     # print the section (table, figures)
    python benchmarks/readme_table.py --write README.md   # replace it between the bench markers
    python benchmarks/readme_table.py --check README.md   # exit 1 when the README differs

Every figure in the section, table and prose, is read from the results file; the words around
them are the template below. tests/test_benchmarks_readme.py checks that README.md holds what
this renders from the committed benchmarks/results.json.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
BEGIN = ("<!-- bench:begin: rendered by `python benchmarks/readme_table.py --write README.md` "
         "from benchmarks/results.json; edit benchmarks/readme_table.py, not this text -->")
END = "<!-- bench:end -->"
WIDTH = 100


class Results:
    """Lookups into a results document (KeyError when a part was not run)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.benches = {d["benchmark"]: d for d in doc.get("results", [])}

    def bench(self, name: str) -> dict[str, Any]:
        return self.benches[name]

    def row(self, key: str) -> dict[str, Any]:
        for d in self.benches.values():
            for r in d.get("rows", []):
                if r.get("key") == key:
                    return r
        raise KeyError(key)

    def extra(self, name: str) -> dict[str, Any]:
        for d in self.benches.values():
            if name in d.get("extras", {}):
                return d["extras"][name]
        raise KeyError(name)


def table(doc: dict[str, Any]) -> str:
    lines = ["| what | goal | baseline | ours | met? |", "| --- | --- | --- | --- | --- |"]
    for d in doc.get("results", []):
        for r in d.get("rows", []):
            met = "yes" if r["met"] else "**no**"
            lines.append(f"| {r['what']} | {r['goal']} | {r['baseline']} | {r['ours']} | {met} |")
    return "\n".join(lines)


def extra_lines(doc: dict[str, Any]) -> list[str]:
    """One line per extra measurement (its own summary text)."""
    return [f"{name}: {e['text']}" for d in doc.get("results", [])
            for name, e in d.get("extras", {}).items() if isinstance(e, dict) and "text" in e]


def quantile(xs: list[float], q: float) -> float:
    ys = sorted(xs)
    pos = q * (len(ys) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ys) - 1)
    return ys[lo] + (ys[hi] - ys[lo]) * (pos - lo)


def pct(x: float) -> str:
    return f"{100 * x:.0f} %"


UNIT = re.compile(r"(\d) (%|µs|ms|s|min|MiB|MB|ns|rounds?|runs?|pairs?|cores?|threads?)\b")


def wrap(text: str, indent: str = "") -> str:
    """Fill to WIDTH columns, never between a number and its unit."""
    glued = UNIT.sub(lambda m: f"{m[1]}\0{m[2]}", " ".join(text.split()))
    filled = textwrap.fill(glued, WIDTH, initial_indent=indent, subsequent_indent=" " * len(indent),
                           break_long_words=False, break_on_hyphens=False)
    return filled.replace("\0", " ")


def medians(n: int) -> str:
    return f"medians of {n}" if n != 1 else "one run each"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 'es' if word.endswith('s') else 's'}"


# -- the section: the words around the figures ------------------------------------------------------

INTRO = """`make bench` trains the digits example and runs `benchmarks/run_all.py --out
benchmarks/results.json`: every goal of issues 6, 14, 15 and 16 beside its baseline, both measured in the same
run, and every figure this section quotes. The results file keeps the raw per-run samples and how
each figure was measured; this section is rendered from it by `python benchmarks/readme_table.py
--write README.md`, and `tests/test_benchmarks_readme.py` checks that the two agree.
`python benchmarks/run_all.py --quick` is a smoke run with fewer repetitions, `--only
SCRIPT[:PART]` runs a part (`tests/test_benchmarks_smoke.py` runs one in `make test`), `--only
SCRIPT --merge --out benchmarks/results.json` re-runs one script and replaces only its results in
the file (the line under "Last run" says which were re-run, and when), and each script also runs
alone with `--json` (`benchmarks/overhead.py`, `cold_start.py`, `import_time.py`, `builds.py`,
`optimum_compare.py`, `mixed_int8.py`, `serve.py`, `fleet.py`). Bundles are built with the packager from
`benchmarks/manifests/` (a tiny Keras MLP, `keras.applications.MobileNetV2`, a lone Relu with a
big output, a small Hugging Face BERT classifier and four models whose plain int8 misses parity,
random weights, nothing downloaded) and `manifests/digits-cnn.yaml`."""


def methods(r: Results) -> list[Callable[[], str]]:
    def overhead() -> str:
        rows = r.bench("overhead")["rows"]
        if not rows:
            raise KeyError("overhead rows")
        small = sorted({x["rounds"] for x in rows if x["raw_us"] < 1000})
        big = sorted({x["rounds"] for x in rows if x["raw_us"] >= 1000})
        return ("**Overheads**: raw, `Model.run` and `Model.run(validate=False)` alternate in "
                "blocks of about 10 ms in one process, the order changing every round ("
                + " and ".join(f"{'/'.join(map(str, xs))} rounds {w}" for xs, w in
                               ((small, "for µs-scale models"), (big, "for MobileNetV2")) if xs)
                + "); the figure is the median over rounds of the per-call difference; a raw "
                  "session gets the same thread count as the bundle's candidate.")

    def subprocesses() -> str:
        c, i = r.row("cold_start"), r.row("import")
        return (f"**Cold start** and **import**: fresh subprocesses, baseline and ours "
                f"alternating, medians of {c['runs']} and {i['runs']} pairs.")

    def builds() -> str:
        b, m = r.row("rebuild"), r.row("multi")
        return (f"**Builds**: `edgepack build` subprocesses timed from outside; rebuild: "
                f"{b['runs']} cold builds (empty cache), each followed by a rebuild with nothing "
                f"changed; 3 targets: {plural(m['rounds'], 'round')} of one build against three. A build "
                "whose report is not ok (a target or candidate that is not \"ok\") fails the run.")

    def memory() -> str:
        m = r.row("memory")
        runs = [*m["builds"], *m["steps"][m["biggest_step"]]]
        intervals = [x["mean_interval_ms"] for x in runs]
        how = ("PSS (`/proc/PID/smaps_rollup`: a page shared by several processes is split "
               "between them, so a forked child's copy-on-write pages and the libraries workers "
               "share count once; a process's PSS is read again when the set of processes "
               f"changed, when its RSS moved by more than {m['pss_slack_mib']:g} MiB, or every "
               f"{m['pss_max_age_ms']:g} ms, since reading it walks the page tables), with the summed RSS beside it "
               "(shared pages counted "
               "once per process)" if m["measure"] == "PSS" else "RSS (no smaps_rollup here)")
        lo, hi = f"{min(intervals):.1f}", f"{max(intervals):.1f}"
        return (f"**Peak memory**: a sampler thread lists `/proc` every {m['interval_ms']:g} ms "
                f"(achieved: one sample every {lo if lo == hi else f'{lo} to {hi}'} ms on "
                "average per run) and sums the memory of the measured process and all its "
                f"descendants, worker processes included: {how}. The figure is the peak of that "
                f"sum, median of {plural(m['runs'], 'run')}, the baseline measured the same way "
                "(PSS also drops when unrelated processes map the same libraries: a quiet "
                "machine is best). Cross-checks kept in the results: each process's `VmHWM` at "
                "its last sample and the largest single process's `ru_maxrss`"
                + (" (no peak was missed)." if m["missed_peak"] is False else
                   " (**a peak was missed**: a process grew after its last sample)."
                   if m["missed_peak"] else
                   " (whether a peak was missed could not be checked: the benchmark process was "
                   "as big as the largest measured process).")
                )

    def optimum() -> str:
        o = r.bench("optimum")
        opt, m = o["optimum"], o["model"]
        cfg = m["config"]
        model = (f"a small BERT classifier (`BertForSequenceClassification` from a config: vocab "
                 f"{cfg['vocab_size']}, hidden {cfg['hidden_size']}, {cfg['num_hidden_layers']} "
                 f"layers, {cfg['num_attention_heads']} heads, intermediate {cfg['intermediate_size']}; "
                 "seeded random weights) saved with `save_pretrained`")
        if not opt["available"]:
            return (f"**Against Optimum** (`benchmarks/optimum_compare.py`): {model}; not measured "
                    f"in this run: Optimum {opt['stage']} failed ({opt['reason']}).")
        v, env = opt["versions"], opt["env"]
        g = o["extras"]["optimum_graphs"]["graphs"]
        return (f"**Against Optimum** (`benchmarks/optimum_compare.py`): {model}. Optimum (optimum-onnx "
                f"{v['optimum-onnx']}, optimum {v['optimum']}, transformers {v['transformers']}) exports "
                f"that folder (`main_export`, task text-classification, opset {g['optimum:fp32']['opset']}) "
                f"and quantizes it to dynamic int8 with `ORTQuantizer` and `{opt['quantization']}`. "
                "Optimum pins transformers below edgepack's, so it runs from a virtual environment of "
                "its own whose `.pth` file reuses edgepack's torch, onnxruntime, onnx and numpy "
                f"(pinned by a constraints file: pip installs only Optimum, its transformers and "
                f"their small dependencies, {env['size_mb']:.0f} MB, once). edgepack builds "
                "`benchmarks/manifests/bert-cls.yaml` (the same model, transformers "
                f"{m['transformers']}) for ONNX fp32 and ONNX int8 dynamic. The four artifacts run in "
                "one process on the same onnxruntime (CPU provider, 1 thread, batch 1, sequence "
                f"{m['seq']}, the same arrays) in {o['rounds']} interleaved rounds of {o['calls']} "
                "calls each, edgepack and Optimum side by side, the order flipping every round; the "
                f"figures are the median and 90th percentile of the {o['rounds'] * o['calls']} calls, "
                "and each artifact's max abs error against the PyTorch model on "
                f"{m['parity_samples']} padded sequences is beside them. Diagnostic variants the "
                "benchmark makes from the same model (below) are timed in the same rounds.")

    def mixed() -> str:
        x = r.bench("mixed_int8")
        return ("**Mixed precision** (`benchmarks/mixed_int8.py`): four PyTorch models whose plain int8 misses "
                "parity (`benchmarks/mixed_models.py`) built for `benchmarks/targets/bench-int8-mixed.yaml`: the "
                "same onnxruntime QDQ int8 candidate plainly and with `fallback: mixed`, beside fp32, with "
                "`--allow-parity-failure` so the plain one can be timed too; " + x["method"].split("); ", 1)[1] + ".")

    def serve() -> str:
        o, b = r.row("serve_overhead"), r.row("serve_batching")
        return ("**Serving** (`benchmarks/serve.py`): a real `python -m runtime serve` process per setting and "
                "clients in the benchmark's process over persistent HTTP/1.1 connections, binary tensors. "
                f"Overhead: one client, {o['rounds']} rounds of {o['calls']} requests against as many "
                "`Model.run` calls in the benchmark's process, alternating; the figure is the median over rounds "
                f"of the difference. Batching: 16 client threads posting single samples for {b['seconds']:.0f} s "
                "against a server without and one with dynamic batching (`--max-batch 16 --max-delay-ms 5`, 2 "
                "batch threads); every answer is checked against `Model.run` on its sample. Its in-process "
                "ceiling: `Model.run` per sample for 16 threads running single samples at once against 2 "
                "threads running batches of 16, no HTTP, median of 5 alternating rounds. "
                "Swap: 16 client threads posting the digits bundle's golden images for "
                f"{r.row('serve_swap')['seconds'] / 60:.0f} min; half-way the rpi4 bundle (another candidate) is "
                "uploaded through the repository `load` endpoint; every answer is checked bit for bit against "
                "`Model.run` of the version that gave it.")

    def fleet() -> str:
        return ("**Fleets** (`benchmarks/fleet.py`): a real registry (Debian's docker-registry, TLS and basic auth) "
                "on localhost per part, edgepack and the runtime as subprocesses. Pull: MobileNetV2 v1 and v2 "
                "(other weights) pushed, v2 pulled by a device holding v1. Cache: the digits example built cold "
                "with `--cache-to`, then with `--cache-from` and another empty local cache, both timed. Tamper: "
                "each blob of the digits rpi4 bundle altered in the registry's storage in turn, then pulled.")

    return [overhead, subprocesses, builds, memory, optimum, mixed, serve, fleet]


def last_run(r: Results) -> str:
    doc = r.doc
    m = doc["machine"]
    pk = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    if doc.get("quick"):
        how = "`python benchmarks/run_all.py --quick`: a smoke run, fewer repetitions"
    else:
        how = "`make bench`"
    if doc.get("only"):
        how += ", only " + ", ".join(f"`{x}`" for x in doc["only"])
    when = doc.get("started", "")[:10]
    note = doc.get("note", "").strip().rstrip(".")
    took = doc["seconds"]
    took_txt = f"{took / 60:.0f} min" if took >= 120 else f"{took:.0f} s"
    text = (f"Last run ({how}; {when}, {took_txt} in all): {m['cpu']}, "
            f"{m['cores']} cores, {m['arch']}, {m['os']}, Python {m['python']}; {pk}."
            + (f" {note[:1].upper()}{note[1:]}." if note else ""))
    for u in doc.get("updated", []):
        secs = u["seconds"]
        took_u = f"{secs / 60:.0f} min" if secs >= 120 else f"{secs:.0f} s"
        unote = u.get("note", "").strip().rstrip(".")
        text += (f" Re-run since: {', '.join(f'`{x}`' for x in u['scripts'])} on "
                 f"{u['started'][:10]} (`{u['command']}`, {took_u}"
                 + (f"; {unote}" if unote else "") + ").")
    return text


def reading(r: Results, cores: int) -> list[Callable[[], str]]:
    def ov(model: str, backend: str) -> dict[str, Any]:
        return r.row(f"overhead:{model}:{backend}")

    def onnx() -> str:
        t, d, m = ov("tiny MLP", "onnxruntime"), ov("digits CNN", "onnxruntime"), \
            ov("MobileNetV2", "onnxruntime")
        return (f"**Per-call overhead, ONNX.** `Model.run` (validated) against a raw "
                f"`InferenceSession.run`: {t['extra_us']:+.2f} µs on the tiny MLP, "
                f"{d['extra_pct']:+.2f} % on the digits CNN, {m['extra_pct']:+.2f} % on "
                "MobileNetV2. It calls onnxruntime's C++ session directly. The Python wrapper "
                "it skips re-checks the feed names (the runtime already checked them against "
                "precomputed expectations) and, after an execution-provider failure, silently "
                "retries on other providers (the runtime reports the failure instead).")

    def tflite() -> str:
        t, d = ov("tiny MLP", "tflite"), ov("digits CNN", "tflite")
        check = t["extra_us"] - t["novalidate_extra_us"]
        return (f"**Per-call overhead, TFLite.** The runtime calls the interpreter's C++ wrapper "
                "directly too, which skips the refcount safety check; the backend never holds "
                "`tensor()` views. What is left is the fixed cost of a checked call in Python: "
                f"{t['extra_us']:+.2f} µs on the tiny MLP ({'within' if t['met'] else 'outside'} "
                f"the 2 µs goal), {d['extra_us']:+.2f} µs on the digits int8 model. On the tiny "
                f"MLP the feed check is {check:.2f} µs of it (with `validate=False` the "
                f"overhead is {t['novalidate_extra_us']:+.2f} µs); the rest is the interpreter "
                "lock and the output dict.")

    def digits_int8() -> str:
        d = ov("digits CNN", "tflite")
        call = r.extra("python_call")["ns"]
        budget = d["raw_us"] * 20  # 2 % in ns
        verdict = (f"less than an empty Python function call here ({call:.0f} ns): no Python "
                   "API that checks its feeds can meet it" if budget < call else
                   f"the time of {budget / call:.0f} empty Python function calls here "
                   f"({call:.0f} ns each)")
        threads = "one thread" if d["threads"] == 1 else plural(d["threads"], "thread")
        return (f"The digits int8 model runs in {d['raw_us']:.2f} µs with {threads}, so its 2 % goal means "
                f"{budget:.0f} ns, "
                f"{verdict}. With `validate=False` its "
                f"overhead is {d['novalidate_extra_us']:+.2f} µs "
                f"({d['novalidate_extra_pct']:+.0f} %).")

    def threads() -> str:
        x = r.extra("threads")
        one, four = x["one"], x["rpi4"]
        return ("The digits TFLite figure is timed with one thread "
                "(`benchmarks/targets/bench-int8-tflite.yaml`). With the rpi4 target's "
                f"{four['threads']} threads on this host's {x['cores']} cores, the raw "
                f"interpreter took {four['raw']['median_us']:.1f} µs a call (rounds from "
                f"{four['raw']['p10_us']:.1f} to {four['raw']['p90_us']:.1f} µs, 10th to 90th "
                f"percentile) and `Model.run` {four['ours']['median_us']:.1f} µs "
                f"({four['ours']['p10_us']:.1f} to {four['ours']['p90_us']:.1f}); with one "
                f"thread {one['raw']['median_us']:.2f} µs ({one['raw']['p10_us']:.2f} to "
                f"{one['raw']['p90_us']:.2f}) and {one['ours']['median_us']:.2f} µs.")

    def mobilenet() -> str:
        parts = []
        for backend, label in (("onnxruntime", "ONNX"), ("tflite", "TFLite")):
            m = ov("MobileNetV2", backend)
            s = m["samples_us"]
            diffs = [o - w for o, w in zip(s["ours"], s["raw"], strict=True)]
            parts.append(f"{label} {m['extra_pct']:+.2f} % (per-round differences from "
                         f"{quantile(diffs, 0.1):+.0f} to {quantile(diffs, 0.9):+.0f} µs, 10th "
                         "to 90th percentile)")
        return "On MobileNetV2: " + "; ".join(parts) + "."

    def cold() -> str:
        c = r.row("cold_start")
        return (f"**Cold start** is {c['ratio']:.2f}× the minimal script in this run "
                f"({c['ours_ms']:.0f} ms against {c['raw_ms']:.0f} ms; pair by pair from "
                f"{c['pair_ratio_p10']:.2f}× to {c['pair_ratio_p90']:.2f}×, 10th to 90th "
                "percentile): `import runtime` does not load OpenSSL (`runtime.digest` uses "
                "CPython's own SHA-256 for small files); tarfile, tempfile, subprocess, ctypes "
                "and `runtime.tuning.bench` load only where they are needed.")

    def imp() -> str:
        i = r.row("import")
        return (f"**`import runtime`**: {i['extra_ms']:+.1f} ms over `import numpy` "
                f"({i['runtime_ms']:.1f} ms against {i['numpy_ms']:.1f} ms).")

    def rebuild() -> str:
        b = r.row("rebuild")
        c, w = b["cold_s"], b["warm_s"]
        misses = (f"misses: {', '.join(b['misses'])}" if b["misses"] else "no cache misses")
        return (f"**Rebuild** with nothing changed is {pct(b['ratio'])} of cold ({medians(b['runs'])}: "
                f"{w['median']:.2f} s against {c['median']:.1f} s; the fastest of "
                f"each: {w['min']:.2f} s against {c['min']:.1f} s, {pct(b['ratio_of_mins'])}; "
                f"{misses}). The build does not import torch or call the data entry points when "
                "nothing they read has changed (traced inputs, see "
                "[What a build does](#what-a-build-does)).")

    def multi() -> str:
        m = r.row("multi")
        once = sorted(k for k, v in m["steps_one_build"].items()
                      if v == 1 and m["steps_separate"].get(k, 0) > 1)
        return ("**N targets**: one build for 3 targets ran "
                + ", ".join(f"{k} {m['steps_one_build'][k]}× (3 separate builds: "
                            f"{m['steps_separate'][k]}×)" for k in once)
                + f", in {m['ratio']:.2f}× the time of 3 separate builds "
                  f"({medians(m['rounds'])}).")

    def parallel() -> str:
        p = r.extra("parallel")
        conv = ", ".join(p["parallel"].get("conversions", []))
        return ("**Parallel conversions.** `-j N` also sends TFLite and TorchScript conversions "
                "to worker processes, while the main process exports ONNX; the bytes are the "
                "same as a serial build's. By default they are sent only for models of "
                f"{p['default_min_mb']:.0f} MB or more on {p['default_min_cores']} or more "
                "cores: a worker must import the framework and load the model again. On this "
                f"host ({cores} cores) a MobileNetV2 rpi4 build (`--no-cache`) took "
                f"{p['j2_s']['median']:.1f} s with `-j 2` ({conv} in a worker) against "
                f"{p['serial_s']['median']:.1f} s with `-j 1`, {p['ratio']:.2f}× "
                f"({medians(p['rounds'])})" + _not_ok(p.get("candidates", {})) + ".")

    def _not_ok(statuses: dict[str, str]) -> str:
        """The candidates of the timed build that random weights left without a passing int8."""
        odd = [f"{cid} {st}" for cid, st in sorted(statuses.items()) if st != "ok"]
        return ("; random weights: " + ", ".join(odd) + " (converted and checked all the same)") if odd else ""

    def memory() -> str:
        m = r.row("memory")
        largest = max(b["largest_process"] for b in m["builds"])
        procs = max(b["processes"] for b in m["builds"])
        workers = max((b["parallel"].get("workers", 0) for b in m["builds"]), default=0)
        rss = f"; summed RSS: {m['ratio_rss']:.2f}×" if m["measure"] == "PSS" else ""
        return (f"**Peak memory** of a build is {m['ratio']:.2f}× the {m['biggest_step']} step "
                f"alone ({m['build_mib']:.0f} MiB against {m['step_mib'][m['biggest_step']]:.0f} "
                f"MiB of summed {m['measure']}{rss}; the RSS of the build's largest single "
                f"process, `ru_maxrss`: {largest:.0f} MiB; {plural(procs, 'process')} in its "
                "tree, "
                + (f"{workers} of them build workers" if workers else "no build worker: with the "
                   "default `-j` this build sends nothing to workers on this host")
                + f"), {'inside' if m['met'] else 'outside'} the 1.3× goal.")

    def run_into() -> str:
        x = r.extra("run_into")
        ms = x["median_ms"]
        faster = x["run_into_minus_run_ms"] < -0.05 * ms["run"]
        return (f"**`Model.run_into`** on a Relu with a {x['output_mib']:.0f} MiB output: "
                f"{ms['run_into']:.2f} ms a call against {ms['run']:.2f} ms for `Model.run` "
                f"(raw `InferenceSession.run`: {ms['raw']:.2f} ms; median difference "
                f"{x['run_into_minus_run_ms']:+.2f} ms over {x['rounds']} rounds): "
                + ("faster here; " if faster else "not faster on this CPU; ")
                + "what it saves is an output allocated per call.")

    def optimum() -> str:
        o = r.bench("optimum")
        if not o["optimum"]["available"]:
            return (f"**Against Optimum**: not measured in this run: Optimum {o['optimum']['stage']} "
                    f"failed ({o['optimum']['reason']}).")
        parts = []
        for prec, label in (("fp32", "fp32"), ("int8", "dynamic int8")):
            x = r.row(f"optimum:{prec}")
            ours, base = x["edgepack"], x["optimum"]
            parts.append(f"{label} {ours['median_ms']:.3f} ms against {base['median_ms']:.3f} ms "
                         f"({x['ratio']:.2f}×; round by round from {x['round_ratio_p10']:.2f}× to "
                         f"{x['round_ratio_p90']:.2f}×, 10th to 90th percentile; max abs error "
                         f"{x['parity_edgepack']['max_abs']:.1e} against Optimum's "
                         f"{x['parity_optimum']['max_abs']:.1e})")
        ep = o["edgepack"]
        choice = ep.get("exporter_choice") or ""
        table = choice.split("median): ", 1)[1].split("; kept", 1)[0] if "median): " in choice else ""
        g = o["extras"]["optimum_graphs"]
        gr, diff = g["graphs"], g["fp32_ops_differ"]
        groups = []
        for label, members in OP_GROUPS:
            ops = [f"{op} {a} against {b}" for op, (a, b) in diff.items()
                   if (op in members if members else all(op not in m for _, m in OP_GROUPS if m))]
            if ops:
                groups.append(f"{label}: {', '.join(ops)}")
        v = o["extras"]["optimum_variants"]["variants"]
        fixes = ("Variants made by the benchmark from the same model and timed in the same rounds, "
                 "as a ratio to Optimum's median of the same precision: "
                 + "; ".join(f"{x['what']} {x['vs_optimum']:.2f}×"
                             + (f" (int8 {v[k.replace(':fp32', ':int8')]['vs_optimum']:.2f}×)"
                                if k.replace(":fp32", ":int8") in v else "")
                             for k, x in v.items() if x["precision"] == "fp32")
                 + " (each within parity: max abs error "
                 + f"{max(x['parity']['max_abs'] for x in v.values() if x['precision'] == 'fp32'):.1e} "
                 "in fp32).")
        fp32_notes = [n for cid, c in ep.get("candidates", {}).items() if "fp32" in cid
                      for n in c.get("notes", []) if "shape annotations" in n]
        return ("**Against Optimum** (same BERT, same onnxruntime): " + "; ".join(parts) + ". edgepack "
                f"kept `{ep['exporter']}`" + (f" (its build timed {table})" if table else "")
                + (f"; for its fp32 artifact it {fp32_notes[0]}" if fp32_notes else "") + ". After "
                "onnxruntime's graph optimizations edgepack's fp32 graph has "
                f"{gr['edgepack:fp32']['nodes_optimized']} nodes against Optimum's "
                f"{gr['optimum:fp32']['nodes_optimized']} (opset {gr['edgepack:fp32']['opset']} against "
                f"{gr['optimum:fp32']['opset']}); op counts that differ, edgepack against Optimum, "
                + "; ".join(groups) + ". " + fixes)

    def mixed() -> str:
        rows = r.bench("mixed_int8")["rows"]
        if not rows:
            raise KeyError("mixed_int8 rows")
        parts = []
        for x in rows:
            ms = x["median_ms"]
            parts.append(f"{x['title']}: {len(x['kept_float'])} of {x['float_nodes']} nodes float "
                         f"({', '.join(x['kept_float'])}), {ms['int8-mixed']:.3f} ms against fp32 {ms['fp32']:.3f} ms "
                         f"and plain int8 {ms['int8-plain']:.3f} ms")
        faster = [x["title"] for x in rows if x["median_ms"]["int8-mixed"] < x["median_ms"]["fp32"]]
        return ("**int8 that misses parity, repaired**: " + "; ".join(parts) + ". Faster than fp32 here: "
                + (", ".join(faster) or "none") + "; on models this small the quantize/dequantize steps can "
                "cost what int8 arithmetic saves. What the search buys is an int8 candidate that passes "
                "parity at all, for the price of its few float nodes over plain int8.")

    def serving() -> str:
        o, b, m = r.row("serve_overhead"), r.row("serve_batching"), r.row("serve_batching_mlp")
        client = sorted(o["http_client_ms"])[len(o["http_client_ms"]) // 2]

        def batched(row: dict[str, Any]) -> str:
            p, q, c = row["runs"]["unbatched"], row["runs"]["batched"], row["ceiling"]
            return (f"{p['per_second']:.1f} answers/s unbatched against {q['per_second']:.1f}/s with `--max-batch "
                    f"16` ({row['ratio']:.2f}×; p99 {p['p99_ms']:.0f} against {q['p99_ms']:.0f} ms; "
                    f"{p['wrong'] + q['wrong']} wrong answers, {p['errors'] + q['errors']} failed requests), "
                    f"in-process {c['single_ms_per_sample']:.2f} ms per sample one by one against "
                    f"{c['batched_ms_per_sample']:.2f} ms in batches ({c['ratio']:.2f}×)")

        met = "meets" if b["met"] else "misses"
        c = b["ceiling"]["ratio"]
        why = (f"and no server could meet it here: with no HTTP at all, batches of 16 images give {c:.2f}× the "
               "throughput of single images run side by side (a 224×224 convolution already gives the CPU's "
               "matrix kernels all the rows they can use, and a batch's activations outgrow the cache)"
               if c < 1.5 else f"against an in-process ceiling of {c:.2f}×")
        return (f"**Serving**: {o['overhead_ms']:.3f} ms per request over `Model.run` for the digits CNN (round by "
                f"round {o['overhead_p10']:.3f} to {o['overhead_p90']:.3f} ms, 10th to 90th percentile) with a "
                f"client that reuses its encoded request; Python's own `http.client` takes {client:.3f} ms per "
                f"round trip to the same server, most of it in the client. Dynamic batching with 16 clients, "
                f"MobileNetV2: {batched(b)}. It {met} its 1.5× goal on this 2-core host, "
                f"{why}. Where a batch does save work, the weight-bound MLP: "
                f"{batched(m)}; the server's share of each request is what keeps it below the in-process "
                "figure. " + swapping())

    def swapping() -> str:
        w = r.row("serve_swap")
        c, v, lat = w["counts"], w["by_version"], w["p50_p99_ms"]
        return (f"Updating under load: {c['answers']} answers in {w['seconds'] / 60:.0f} min, {v.get('1', 0)} from "
                f"v1 ({w['candidates']['1']}) and {v.get('2', 0)} from v2 ({w['candidates']['2']}), {c['lost']} "
                f"lost and {c['wrong']} wrong; v2 was verified in {w['swap_seconds']:.1f} s while v1 served "
                f"(p99 {lat['during'][1]:.0f} ms meanwhile, {lat['before'][1]:.0f} ms before), and no request sent "
                f"after the swap was answered by v1.")

    return [onnx, tflite, digits_int8, threads, mobilenet, cold, imp, rebuild, multi, parallel,
            memory, run_into, optimum, mixed, serving]


# op types of the edgepack/Optimum graph comparison, by what they say about the graph (the last
# group: everything else)
OP_GROUPS: tuple[tuple[str, set[str]], ...] = (
    ("fused by onnxruntime", {"BiasGelu", "FusedMatMul", "FusedGemm", "SkipLayerNormalization", "Attention",
                              "EmbedLayerNormalization", "FastGelu", "Gelu"}),
    ("matrix products", {"Gemm", "MatMul"}),
    ("shapes and masks", {"Range", "GreaterOrEqual", "And", "IsNaN", "Where", "Reshape", "Shape", "Gather",
                          "Concat", "Unsqueeze", "Slice", "Flatten", "Expand", "Equal", "Cast"}),
    ("other", set()))

SUB = {"digits_int8", "threads", "mobilenet"}  # sub-bullets of the TFLite bullet


def _render(parts: list[Callable[[], str]], strict: bool) -> list[tuple[str, str]]:
    out = []
    for fn in parts:
        try:
            out.append((fn.__name__, fn()))
        except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError):
            if strict:
                raise
    return out


def section(doc: dict[str, Any], strict: bool | None = None) -> str:
    """The text between the markers. ``strict`` (default: when the run was not an --only
    subset): a figure that cannot be rendered raises instead of leaving its sentence out."""
    if strict is None:
        strict = not doc.get("only")
    r = Results(doc)
    cores = doc["machine"]["cores"]
    out = [wrap(INTRO), "", "How it is measured:", ""]
    out += [wrap(text, "- ") for _, text in _render(methods(r), strict)]
    out += ["", wrap(last_run(r)), "", table(doc), "", "Honest reading (figures of that run):", ""]
    for name, text in _render(reading(r, cores), strict):
        out.append(wrap(text, "  - " if name in SUB else "- "))
    return "\n".join(out)


def block(doc: dict[str, Any]) -> str:
    return f"{BEGIN}\n\n{section(doc)}\n\n{END}"


def replace(readme: str, doc: dict[str, Any]) -> str:
    """``readme`` with its bench block rendered from ``doc`` (ValueError without the markers)."""
    start = readme.find("<!-- bench:begin")
    end = readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {BEGIN[:16]}... {END} markers")
    return readme[:start] + block(doc) + readme[end + len(END):]


def current(readme: str) -> str:
    """The bench block as it stands in ``readme`` (markers included)."""
    start = readme.find("<!-- bench:begin")
    end = readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {BEGIN[:16]}... {END} markers")
    return readme[start:end + len(END)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--results", type=Path, default=RESULTS, help="default: benchmarks/results.json")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write", type=Path, metavar="README", help="replace the section in this file")
    g.add_argument("--check", type=Path, metavar="README",
                   help="exit 1 when this file's section differs from the rendered one")
    args = p.parse_args()
    doc = json.loads(args.results.read_text(encoding="utf-8"))
    if args.write:
        text = args.write.read_text(encoding="utf-8")
        args.write.write_text(replace(text, doc), encoding="utf-8")
        print(f"{args.write}: Benchmarks section rendered from {args.results}")
        return 0
    if args.check:
        if current(args.check.read_text(encoding="utf-8")) != block(doc):
            print(f"{args.check}: the Benchmarks section differs from {args.results}; run "
                  f"python benchmarks/readme_table.py --write {args.check}", file=sys.stderr)
            return 1
        return 0
    print(section(doc))
    print()
    print("Extra measurements:")
    for line in extra_lines(doc):
        print(f"- {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
