"""The runtime stays tiny: stdlib + numpy at import time, never the packager."""
from __future__ import annotations

import ast
import subprocess
import sys

from .conftest import REPO

HEAVY = {"torch", "tensorflow", "onnxruntime", "onnx", "tflite_runtime", "ai_edge_litert", "onnxsim", "yaml"}


def test_runtime_never_imports_packager_nor_heavy_modules_at_top_level() -> None:
    problems = []
    for path in sorted((REPO / "runtime").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module.split(".")[0]]
            for n in names:
                if n == "packager" or (n in HEAVY and id(node) in top):
                    problems.append(f"{path.relative_to(REPO)}:{node.lineno} imports {n}")
    assert problems == []


def test_import_runtime_loads_no_backend() -> None:
    code = ("import sys, runtime, runtime.__main__; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m.startswith('packager')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
