"""The human-facing text files of a bundle: requirements.txt and README.md."""
from __future__ import annotations

import textwrap

from ..config.manifest import Manifest
from ..config.targets import Target

PILLOW_REQUIREMENT = "pillow>=9.1"  # decodes images for pre-processing (Image.Resampling is 9.1's)


def requirements_txt(target: Target, backends: set[str], extra: list[str] | None = None) -> str:
    """The target's pinned device requirements for the backends in the bundle, one per line."""
    head = f"# Device requirements for target {target.name} ({target.arch}, Python {target.python}).\n" \
           "# Install on the device with: python -m pip install -r requirements.txt\n"
    notes = "".join(f"# {line}\n" for line in textwrap.wrap(target.notes, 96))
    return head + notes + "".join(f"{r}\n" for r in target.requirements_for(backends) + (extra or []))


def bundle_readme(manifest: Manifest, target: Target, bundle_name: str, candidates: list[str]) -> str:
    """How to run and verify this bundle on the device."""
    inputs = "\n".join(f"- `{s.name}`: {s.dtype} {list(s.shape or [])}" + (f" ({s.layout})" if s.layout else "")
                       for s in manifest.inputs)
    outputs = "\n".join(f"- `{o.name}`" for o in manifest.outputs)
    image = ("python -m runtime run --input ../photo.jpg   # an image in (pre-processed as built), top labels out\n"
             if manifest.processing.inputs else "")
    return f"""# {bundle_name}

{manifest.description or manifest.name} packaged by edgepack for **{target.name}**
({target.description or target.arch}; {target.arch}, Python {target.python}).

Candidates, in order of preference: {', '.join(f'`{c}`' for c in candidates)}.

## On the device

```
python -m pip install -r requirements.txt
python -m runtime verify          # golden parity on this device; exit 0 = same results as the build
python -m runtime info            # which candidate and provider are used here, and why
python -m runtime run --input ../x.npy --output ../y.npz   # inputs/outputs live outside this folder
{image}python -m runtime bench           # load time, first inference, p50/p90/p99, throughput
```

Run these from inside this folder (or pass the folder or its .tar.gz as the last argument).
Every command takes `--json`. The runtime refuses to load if any file here was modified or added,
so write outputs and reports (`verify --report ../verify.html`) outside this folder.

The runtime in this folder checks itself, but code that was edited before it runs can lie. For a
check that runs none of this folder's code, install the runtime separately
(`edgepack runtime-wheel` on the build host) and run, from outside this folder:
`edgepack-runtime verify --key edgepack-signing.pub path/to/{bundle_name}` (`--key` when the
bundle is signed).

## Signature

Inputs:
{inputs}

Outputs:
{outputs}

## From Python

```python
import runtime
model = runtime.load(".")
outputs = model.run({{"{manifest.inputs[0].name}": x}})
print(model.explain())
```
"""
