"""``edgepack debug MANIFEST --target T --candidate ID``: where one int8 candidate's error comes from.

The build makes the table by itself when an ONNX int8 candidate misses parity; this command makes
it on demand, for a candidate that passed too (how close is it?), from the build cache when the
candidate was built before. Nothing is written to the output folder.
"""
from __future__ import annotations

import argparse
from typing import Any

from .errors import TargetError


def run_debug(manifest_path: str, target_name: str | None, candidate_id: str, *,
              cache_dir: str | None = None, quiet: bool = True) -> dict[str, Any]:
    """The candidate's parity and per-node table, as the build JSON records them."""
    import tempfile
    from pathlib import Path

    from .cache import BuildCache
    from .config.manifest import load_manifest
    from .config.targets import load_target
    from .pipeline import Builder
    from .progress import Progress
    manifest = load_manifest(manifest_path)
    names = [target_name] if target_name else list(manifest.targets)
    targets = [load_target(n, manifest.base_dir) for n in names]
    found = [(t, c) for t in targets for c in t.candidates if c.id == candidate_id]
    if not found:
        known = ", ".join(f"{t.name}: {c.id}" for t in targets for c in t.candidates)
        raise TargetError(f"no candidate {candidate_id!r} in {', '.join(names)}", where="--candidate",
                          hint=f"name one of the target's candidates ({known})")
    target, spec = found[0]
    with tempfile.TemporaryDirectory(prefix="edgepack-debug-") as out:
        builder = Builder(manifest, [target], Path(out), progress=Progress(quiet=quiet),
                          cache=BuildCache(Path(cache_dir) if cache_dir else None))
        art, table = builder.explain(spec, target)
    return {"manifest": str(manifest_path), "target": target.name, "candidate": spec.id,
            "parity": art.parity.to_dict(), "explained": table}


def format_debug(doc: dict[str, Any]) -> str:
    """The table for a terminal: one row per node, the worst first."""
    from runtime.compare import ParityReport
    parity = ParityReport.from_dict(doc["parity"])
    lines = [f"{doc['candidate']} ({doc['target']}): parity {'passed' if parity.passed else 'FAILED'}",
             parity.format_table()]
    table = doc["explained"]
    if "error" in table:
        return "\n".join([*lines, f"no per-node table: {table['error']}"])
    lines.append(f"\nthe {len(table['rows'])} of {table['nodes']} measured nodes that add the most error:")
    lines.append(f"  {'node':32} {'op':20} {'SNR dB':>7} {'added dB':>8} {'cosine':>9} {'max err':>10} "
                 f"{'range':>10}  int8")
    for r in table["rows"]:
        lines.append(f"  {r['node'][:32]:32} {r['op_type'][:20]:20} {r['snr_db']:7.1f} {r['added_db']:8.1f} "
                     f"{r['cosine']:9.5f} {r['max_abs_error']:10.3g} {r['range']:10.3g}  "
                     f"{'yes' if r['quantized'] else 'no'}"
                     + (f"  (seen at {r['seen_at']})" if r.get("seen_at") else ""))
    if table.get("hint"):
        lines.append(table["hint"])
    return "\n".join(lines)


def cmd_debug(args: argparse.Namespace) -> int:
    import json
    doc = run_debug(args.manifest, args.target, args.candidate, cache_dir=args.cache_dir,
                    quiet=args.json or args.quiet)
    print(json.dumps(doc, indent=2, sort_keys=True) if args.json else format_debug(doc))
    return 0
