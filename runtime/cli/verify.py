"""``verify``: golden parity on this device, for the selected candidate or every one that loads
(``--all``), and the HTML report (``--report``) that ``verify`` and ``bench`` write."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..compare import format_parity_rows
from ..end_to_end import check_end_to_end, why_not_checked
from ..errors import NoCandidateError, RuntimeBundleError
from ..fileio import atomic_write, check_writable
from ..golden import load_golden
from ..model import Model, load
from ..select import SELECTED, Decision, no_candidate_error, order_candidates
from . import EXIT_FAIL, EXIT_OK
from .common import (
    device_info,
    emit_json,
    json_default,
    load_model,
    open_checked,
    refuse_inside_bundle,
    signature_doc,
    signature_line,
)


def check_report_path(args: argparse.Namespace) -> None:
    """Fail before the work when --report cannot be written (its folder is missing)."""
    path = getattr(args, "report", None)
    if path is None:
        return
    refuse_inside_bundle(path, "--report", args.bundle)
    parent = Path(path).resolve().parent
    if not parent.is_dir() or Path(path).is_dir():
        raise RuntimeBundleError("cannot write the report here", where=f"--report {path}",
                                 hint="give a file path in an existing folder, e.g. --report "
                                      "report.html")
    check_writable(path, where=f"--report {path}", instead=_report_instead(path))


def _report_instead(path: str) -> str:
    return f"or write it elsewhere: --report /a/writable/folder/{Path(path).name}"


def write_report(path: str, kind: str, doc: dict[str, Any]) -> None:
    """The HTML report of a verify / bench document, written atomically (temp file + rename;
    OutputError naming the file and the cause when the disk is full or read-only)."""
    from ..report.device import render_device_report

    data = render_device_report(kind, json.loads(json.dumps(doc, default=json_default))
                                ).encode("utf-8")
    atomic_write(path, lambda fh: fh.write(data), where=f"--report {path}",
                 instead=_report_instead(path))


def publish(args: argparse.Namespace, kind: str, doc: dict[str, Any]) -> bool:
    """Write ``--report`` and print ``--json`` for a verify / bench document; True when the
    command should print its text form instead."""
    if args.report:
        write_report(args.report, kind, doc)
        args.report_written = True
    if args.json:
        emit_json(doc)
        return False
    return True


def cmd_verify(args: argparse.Namespace) -> int:
    """Golden parity for the selected candidate, or every candidate that loads (--all)."""
    from ..verifier import describe_verifier  # verify only: not on the cold-start path of run
    check_report_path(args)
    bundle = open_checked(args)
    from ..attestations import check_attestations
    attestations = check_attestations(bundle, args.key)  # the BOM and provenance against the files
    golden = load_golden(bundle)
    batched = golden.batched
    results: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []

    def check(model: Model) -> None:
        report = model.verify(golden)
        e2e = check_end_to_end(model, golden)  # None: the bundle has no golden images (or no Pillow here)
        unchecked = why_not_checked(model)
        spec = model.candidate_spec
        results.append({"candidate": spec.id, "providers": model.providers,
                        "degraded": model.degraded, "passed": report.passed and (e2e is None or e2e.passed),
                        "outputs": [o.to_dict() for o in report.outputs],
                        "tolerance": {n: t.to_dict() for n, t in spec.tolerance.items()},
                        "end_to_end": e2e.to_dict() if e2e is not None else (
                            {"checked": False, "why": unchecked} if unchecked else None),
                        "_report": report, "_e2e": e2e, "_unchecked": unchecked})
        if args.explain and (not report.passed or spec.explain is not None):
            from ..explain import explain_here  # --explain only: not on verify's usual path
            results[-1]["explained"] = explain_here(bundle, spec, list(model.providers))

    if args.all:
        decs: list[Decision] = []
        for cand in order_candidates(bundle, args.prefer):
            try:
                model = load(bundle, candidate=cand.id, strict=args.strict, verify_hashes=False)
            except NoCandidateError as exc:  # recorded, and the next one is checked
                decs += exc.decisions
                continue
            with model:
                decs += model.decisions
                check(model)
        decisions = [d.to_dict() for d in decs]
        if not results:
            raise no_candidate_error(bundle, decs)
    else:
        with load_model(args, bundle) as model:
            decisions = model.explain()
            check(model)
    passed = all(r["passed"] for r in results)
    doc = {"ok": True, "passed": passed, "bundle": bundle.name,
           "target": bundle.target.get("name"), "batched": batched,
           "samples": bundle.golden.samples if bundle.golden else None,
           "signature_check": signature_doc(bundle),
           "attestations": attestations.to_dict(),
           "verifier": describe_verifier(bundle).to_dict(),
           "candidates": [{k: v for k, v in r.items() if not k.startswith("_")} for r in results],
           "mode": "all" if args.all else "selected",
           "decisions": decisions, "device": device_info()}
    if publish(args, "verify", doc):
        for line in describe_verifier(bundle).lines():
            print(line)
        if signature_line(bundle):
            print(signature_line(bundle))
        print(attestations.line())
        for r in results:
            note = " (DEGRADED)" if r["degraded"] else ""
            print(f"candidate {r['candidate']} on [{', '.join(r['providers'])}]{note}: "
                  f"{'PASS' if r['passed'] else 'FAIL'}")
            print(format_parity_rows(r["_report"].outputs, indent="  "))
            if r["_e2e"] is not None:
                print("\n".join("  " + line for line in r["_e2e"].lines(indent="    ")))
            elif r["_unchecked"]:
                print(f"  end to end from images: {r['_unchecked']}")
            if "explained" in r:
                from ..explain import format_explained
                print(format_explained(r["explained"]))
        skipped = [d for d in decisions if d["status"] != SELECTED] if args.all else []
        for d in skipped:
            print(f"candidate {d['candidate']}: not checked ({d['reason']})")
        print("verify: " + ("PASS" if passed else "FAIL"))
        if args.report:
            print(f"wrote {args.report}")
    return EXIT_OK if passed else EXIT_FAIL
