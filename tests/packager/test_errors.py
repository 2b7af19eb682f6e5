"""The exception trees drawn in packager/errors.py and runtime/errors.py name every error class
the package defines, each under the class it derives from.

Both the drawings and the classes are read from the source (``ast``), so nothing is imported: a
class defined in any module of the package counts, not only those in errors.py.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ..conftest import REPO

# a drawing line: tree glyphs, then the class name (a description may follow)
_DRAWN = re.compile(r"^(?P<indent>[ |+\-│├└─]*)(?P<name>[A-Z]\w*Error)\b")


def drawn_tree(module: Path) -> dict[str, str | None]:
    """Class name -> its parent in the module docstring's drawing (None for the root).

    The drawing is the first indented block of the docstring; a line's depth is the column its
    name starts at, and its parent the nearest line above it that starts further left."""
    doc = ast.get_docstring(ast.parse(module.read_text(encoding="utf-8")), clean=False) or ""
    lines = doc.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("    ") and line.strip()), len(lines))
    tree: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in lines[start:]:
        if not line.strip():
            break
        m = _DRAWN.match(line)
        if m is None:
            continue  # a description's continuation line
        column, name = len(m.group("indent")), m.group("name")
        while stack and stack[-1][0] >= column:
            stack.pop()
        tree[name] = stack[-1][1] if stack else None
        stack.append((column, name))
    return tree


def defined_subclasses(package: Path, base: str) -> dict[str, str]:
    """Every class defined in ``package`` that derives from ``base`` -> the base it names."""
    bases: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                names = [b.attr if isinstance(b, ast.Attribute) else b.id
                         for b in node.bases if isinstance(b, (ast.Name, ast.Attribute))]
                bases.setdefault(node.name, names)
    found: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for name, parents in bases.items():
            parent = next((p for p in parents if p == base or p in found), None)
            if parent is not None and name not in found:
                found[name] = parent
                changed = True
    return found


@pytest.mark.parametrize("package, base", [("packager", "EdgepackError"), ("runtime", "RuntimeBundleError")])
def test_the_docstring_draws_every_error_under_its_parent(package: str, base: str) -> None:
    drawn = drawn_tree(REPO / package / "errors.py")
    assert base in drawn, f"{package}/errors.py: the drawing has no {base}"
    defined = defined_subclasses(REPO / package, base)
    assert defined, f"no subclass of {base} found in {package}/"
    missing = sorted(set(defined) - set(drawn))
    assert not missing, f"{package}/errors.py's docstring does not draw {missing}"
    misplaced = {n: f"drawn under {drawn[n]}, derives from {p}" for n, p in defined.items() if drawn[n] != p}
    assert not misplaced, f"{package}/errors.py's drawing: {misplaced}"
    stale = sorted(set(drawn) - set(defined) - {base} - {n for n, p in drawn.items() if p is None})
    assert not stale, f"{package}/errors.py draws classes that do not exist (any more): {stale}"


def test_the_drawing_parser_reads_both_styles(tmp_path: Path) -> None:
    module = tmp_path / "errors.py"
    module.write_text('"""Title.\n\n    RootError        the root\n    +-- AError\n    |   +-- BError   text\n'
                      '    |                continued NotAnError\n    └── CError\n        ├── DError\n\n'
                      'After the drawing: EError is not drawn.\n"""\n', encoding="utf-8")
    assert drawn_tree(module) == {"RootError": None, "AError": "RootError", "BError": "AError",
                                  "CError": "RootError", "DError": "CError"}
