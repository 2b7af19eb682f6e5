"""A wheel of the on-device runtime alone, for devices that install packages with pip.

Every bundle carries ``runtime/`` (``cd bundle && python -m runtime verify``), so a device needs
nothing else. Where a team would rather install the runtime once (a base image, several bundles,
``import runtime`` from its own service code), this writes ``edgepack_runtime-<ver>-py3-none-any.whl``:
the same ``runtime`` package, numpy its only requirement, the backends as extras
(``[onnxruntime]``, ``[tflite]``), and an ``edgepack-runtime`` command. Written by hand (a wheel
is a zip with three metadata files) so the packager needs no build backend, and byte-for-byte
reproducible: sorted entries, fixed times.
"""
from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path
from typing import IO

from runtime import __version__ as RUNTIME_VERSION
from runtime.fileio import atomic_write

from .writer import RUNTIME_DIR

DIST = "edgepack_runtime"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

METADATA = """\
Metadata-Version: 2.1
Name: edgepack-runtime
Version: {version}
Summary: edgepack's on-device runtime: load a bundle, pick what works here, run it, verify parity
License: Apache-2.0
Requires-Python: >=3.9
Requires-Dist: numpy>=1.22
Provides-Extra: onnxruntime
Requires-Dist: onnxruntime; extra == "onnxruntime"
Provides-Extra: tflite
Requires-Dist: ai-edge-litert; extra == "tflite"
Provides-Extra: image
Requires-Dist: pillow>=9.1; extra == "image"
Provides-Extra: serve-grpc
Requires-Dist: grpcio>=1.60; extra == "serve-grpc"
Requires-Dist: protobuf>=4.21; extra == "serve-grpc"

Installs only the `runtime` package that every edgepack bundle carries. Backends are extras
(`edgepack-runtime[onnxruntime]`, `edgepack-runtime[tflite]`; `[image]` decodes images for bundles
that pre-process them, `[serve-grpc]` adds gRPC to `serve`) or installed from a bundle's
requirements.txt. Use: `edgepack-runtime verify BUNDLE` or `python -m runtime verify BUNDLE`.
"""

WHEEL = """\
Wheel-Version: 1.0
Generator: edgepack
Root-Is-Purelib: true
Tag: py3-none-any
"""

ENTRY_POINTS = """\
[console_scripts]
edgepack-runtime = runtime.__main__:main
"""


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def runtime_files() -> dict[str, bytes]:
    """``runtime/...`` paths inside the wheel -> contents (sources only, no caches)."""
    return {f"runtime/{p.relative_to(RUNTIME_DIR).as_posix()}": p.read_bytes()
            for p in sorted(RUNTIME_DIR.rglob("*")) if p.is_file() and p.suffix in (".py", ".md", ".typed")
            and "__pycache__" not in p.parts}


def build_runtime_wheel(out_dir: Path) -> Path:
    """Write the wheel into ``out_dir`` (created if missing) and return its path."""
    info = f"{DIST}-{RUNTIME_VERSION}.dist-info"
    files = runtime_files()
    files[f"{info}/METADATA"] = METADATA.format(version=RUNTIME_VERSION).encode()
    files[f"{info}/WHEEL"] = WHEEL.encode()
    files[f"{info}/entry_points.txt"] = ENTRY_POINTS.encode()
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{DIST}-{RUNTIME_VERSION}-py3-none-any.whl"

    def write(fh: IO[bytes]) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():  # dist-info last, as pip expects RECORD at the end
                entry = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                entry.external_attr = 0o644 << 16
                entry.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(entry, data)

    return atomic_write(wheel, write, where="--out")
