"""The code's shape: no import cycle among edgepack's modules, no module over 400 lines, and a
build scheduler (``Builder``) small enough to stay a scheduler (what a step does lives in steps).

Imports are read from the source (not executed): module-level and function-level ones alike (a
function-level import hides a cycle, it does not remove it), but not those under
``if TYPE_CHECKING:`` (never executed).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("packager", "runtime")
MAX_LINES = 400
# files allowed over MAX_LINES, each with its reason (none today)
OVERSIZED: set[str] = set()
MAX_BUILDER_LINES = 250


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (a ``from pkg import sub`` of a submodule counts as sub)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in known and m != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := walk(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle() -> None:
    mods = modules()
    graph = {name: imports(name, path, set(mods)) for name, path in mods.items()}
    # a package's __init__ re-exporting its modules is not a cycle with them: they import it only
    # as their parent, so edges from a submodule to its own package are left out
    graph = {name: {m for m in deps if not name.startswith(m + ".")} for name, deps in graph.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_checker_sees_a_cycle_and_lazy_imports() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    mods = modules()
    # a function-level import counts; a TYPE_CHECKING one does not
    assert "packager.onnx_utils" in imports("packager.pipeline.builder", mods["packager.pipeline.builder"], set(mods))
    assert "packager.results" not in imports("packager.steps.base", mods["packager.steps.base"], set(mods))


def test_no_module_is_over_400_lines() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in modules().values()}
    over = {path: n for path, n in sizes.items() if n > MAX_LINES and path not in OVERSIZED}
    assert not over, f"split these modules (one job each, <= {MAX_LINES} lines): {over}"


def test_the_builder_stays_a_scheduler() -> None:
    path = ROOT / "packager" / "pipeline" / "builder.py"
    [builder] = [n for n in ast.parse(path.read_text(encoding="utf-8")).body
                 if isinstance(n, ast.ClassDef) and n.name == "Builder"]
    assert builder.end_lineno is not None
    size = builder.end_lineno - builder.lineno + 1
    assert size < MAX_BUILDER_LINES, (f"Builder is {size} lines: move what is not scheduling into its own module "
                                      "(packager/pipeline/*.py or a step)")
