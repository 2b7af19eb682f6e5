"""Where a build writes: the output folder checked before the slow work, one bundle per target
written whole (or the stale one of a failed target removed)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runtime.attestations import BOM_FILE, PROVENANCE_FILE
from runtime.bundle import Bundle

from ..bundle.attest import MEASURED_SUFFIX, bom, provenance
from ..bundle.signing import SigningKeys, cryptography_pin
from ..bundle.texts import PILLOW_REQUIREMENT, bundle_readme, requirements_txt
from ..bundle.writer import BundleWriter
from ..config.manifest import Manifest
from ..config.targets import Target
from ..errors import BuildError, OutputError, disk_error
from ..inputs.data import SampleSet
from .document import bundled_processing
from .policy import Chosen

if TYPE_CHECKING:
    from ..diagnose.probe import Probe


def check_out_dir(out_dir: Path) -> None:
    """Fail before the slow work when the output folder cannot be written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BuildError(f"output path {out_dir} exists and is not a folder", where="--out",
                         hint="pass a folder (it is created if missing)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out_dir).close()
    except OSError as exc:
        raise disk_error(exc, "writing", out_dir, cls=OutputError, where="--out",
                         option="--out") from None


def remove_stale(out_dir: Path, bundle_name: str) -> str:
    """A failed target must not leave an older bundle at its path that still verifies."""
    removed = []
    for path in (out_dir / bundle_name, out_dir / f"{bundle_name}.tar.gz", out_dir / f"{bundle_name}{MEASURED_SUFFIX}"):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            removed.append(path.name)
        elif path.exists():
            path.unlink()
            removed.append(path.name)
    return f"; removed the previous bundle ({', '.join(removed)}) built from other inputs" if removed else ""


def write_bundle(out_dir: Path, manifest: Manifest, target: Target, chosen: Chosen, document: Bundle,
                 golden: SampleSet, reference: dict[str, np.ndarray], keys: SigningKeys,
                 probes: dict[str, Probe] | None = None) -> tuple[Path, Path]:
    """The target's bundle folder and archive: models, golden data, requirements, README, bundle.json."""
    bundle_name = f"{manifest.name}-{target.name}"
    payload = sum({cr.file: len(art.data) for _, art, cr in chosen if cr.file}.values())
    writer = BundleWriter(out_dir, bundle_name, expected_bytes=payload)
    try:
        written: set[str] = set()
        for _spec, art, cr in chosen:
            if cr.file and cr.file not in written:
                writer.write_bytes(cr.file, art.data)
                written.add(cr.file)
        for probe in (probes or {}).values():  # verify --explain's probe and references (explain_bytes)
            if probe.model is not None:  # a TFLite candidate's probe is its own file
                writer.write_bytes(probe.record.probe, probe.model)
            writer.write_npz(probe.record.references, probe.references)
        raw, labels = golden.raw, bundled_processing(manifest, document.signature)[1]
        writer.write_npz("golden/inputs.npz", golden.arrays)
        writer.write_npz("golden/outputs.npz", reference)
        for rel, (_, data) in zip(document.golden.raw if document.golden else (), raw, strict=True):
            writer.write_bytes(rel, data)  # golden images: the end-to-end check on the device
        for rel, source in labels.items():
            writer.write_bytes(rel, source.read_bytes())
        extra = [cryptography_pin()] if keys.bundle is not None or keys.model is not None else []
        if manifest.processing.inputs:  # images are decoded on the device
            extra.append(PILLOW_REQUIREMENT)
        writer.write_text("requirements.txt", requirements_txt(target, {spec.backend for spec, _, _ in chosen}, extra))
        writer.write_text("README.md", bundle_readme(manifest, target, bundle_name, [c.id for _, _, c in chosen]))
        requirements = (writer.root / "requirements.txt").read_text(encoding="utf-8")

        def attest(files: dict[str, dict[str, Any]]) -> dict[str, bytes]:
            return {BOM_FILE: bom(document, files, requirements),
                    PROVENANCE_FILE: provenance(document, manifest, files, keys.bundle)}
        return writer.finish(document, keys=keys, attest=attest)
    except BaseException:
        writer.discard()
        raise
