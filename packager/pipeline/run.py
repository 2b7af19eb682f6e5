"""``build()``: load a manifest and its targets, check the output folder, run the Builder, write the reports."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..bundle.signing import load_signing_keys
from ..bundle.writer import remove_stale_temps
from ..cache import BuildCache
from ..config.manifest import Manifest, load_manifest
from ..config.targets import Target, load_target
from ..errors import TargetError
from ..progress import Progress
from ..results import BuildResult
from .builder import Builder
from .output import check_out_dir
from .reports import write_reports


def build(manifest_path: str | Path, out_dir: str | Path, *, targets: list[str] | None = None,
          allow_parity_failure: bool = False, progress: Progress | None = None,
          sign: str | Path | Sequence[str | Path] | None = None, cache: BuildCache | None = None, jobs: int | None = 1,
          on_loaded: Callable[[Manifest, list[Target]], None] | None = None,
          reload_inputs: bool = False) -> BuildResult:
    """Build every target of a manifest (or only ``targets``) into ``out_dir``; with ``sign`` (an
    ed25519 private key PEM) every bundle.json is signed. ``reload_inputs``: call the model and
    data entry points even when nothing they read has changed (see ``input_trace``)."""
    # fail before the slow work
    keys = load_signing_keys([sign] if isinstance(sign, (str, Path)) else list(sign or []))
    manifest = load_manifest(manifest_path)
    from ..init import check_placeholders
    check_placeholders(manifest)  # a fresh `edgepack init` manifest: say what to fill in, first
    names = targets or list(manifest.targets)
    loaded = []
    for i, name in enumerate(names):
        try:
            loaded.append(load_target(name, manifest.base_dir))
        except TargetError as exc:
            if targets is None and exc.where == name:  # name the manifest field, not just the name
                exc.where = f"{manifest.file}: targets[{i}]"
            raise
    check_out_dir(Path(out_dir))
    stale = remove_stale_temps(Path(out_dir))
    if on_loaded:
        on_loaded(manifest, loaded)
    result = Builder(manifest, loaded, Path(out_dir), allow_parity_failure=allow_parity_failure,
                     progress=progress, keys=keys, cache=cache, jobs=jobs,
                     reload_inputs=reload_inputs).run()
    if stale:
        result.warnings.append(f"removed temp folders of interrupted builds: {', '.join(stale)}")
    write_reports(result, Path(out_dir))
    return result
