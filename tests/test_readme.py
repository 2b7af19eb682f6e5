"""README.md's examples, run so that they cannot rot.

Every fenced block in the README has an HTML comment right before it saying how it is tested
(``<!-- test: KIND -->``; a block without one fails ``test_every_block_has_a_test_marker``):

``shell``          each command line runs in bash, in a scratch folder WORK holding copies of the
                   repository's ``examples/`` and ``manifests/`` (so ``dist/`` and ``edgepack
                   init``'s manifests never land in the checkout; the digits weights are trained
                   in the checkout first, as the end-to-end tests do). One bash process per
                   block, so a ``cd`` carries on to the next line. Each command must exit 0, or
                   with the code its own comment documents (``cmd   # exit 2: ...``).
``device-shell``   the same, starting in a folder DEVICE that stands in for the Raspberry Pi (where
                   ``scp`` copied to); where the block ends (after its ``cd``) is where the
                   ``device-python`` blocks run.
``python``         the block runs as ``python -`` in WORK (``device-python``: in the device's bundle
                   folder, so ``import runtime`` finds the bundle's own copy, as on the Pi).
``manifest``       written to ``WORK/manifests/``, loaded by ``packager.config.manifest.load_manifest``,
                   checked by ``edgepack validate`` and, through its ``yaml-language-server``
                   modeline, against the schema a later block's ``edgepack schema manifest`` wrote
                   (schemas are checked once every block ran).
``target``         written to ``WORK/targets/<name>.yaml``, loaded by ``packager.config.targets``, checked
                   by ``edgepack validate --target`` and its modeline's schema, and built for.
``json``           parsed.
``synopsis``       every ``--option`` on a line must appear in that command's ``--help``.
``bundle-tree``    every path listed exists in ``WORK/dist/`` after the walkthrough's build.
``none (why)``     not run; the reason is required.

``edgepack`` and ``python`` in the blocks are this interpreter (``sys.executable``; ``edgepack``
is ``python -m packager`` of this checkout), first on ``PATH``. Builds use the session's build
cache (``EDGEPACK_CACHE_DIR``, set by ``tests/conftest.py``). Substitutions, because a test runs
neither a fresh ``.venv`` nor a real Pi:

- ``.venv/bin/X`` runs ``X`` from ``PATH``; ``. SOMEWHERE/bin/activate`` and a line creating a
  venv (``python -m venv ...``) do nothing: this interpreter already has every package.
- ``scp FILE pi@raspberrypi:`` copies FILE into DEVICE.
- ``python -m pip install -r requirements.txt`` (on the device) only checks that the file pins
  numpy and onnxruntime: no network installs in tests.
- ``python -m runtime doctor`` (on the device) may exit 1 as well as 0: the stand-in is this
  machine, not an aarch64 Pi with the bundle's exact pins, and doctor says so.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

README = REPO / "README.md"
MARKER = re.compile(r"^<!--\s*test:\s*(?P<kind>[a-z-]+)\s*(?:\((?P<why>[^)]*)\))?\s*-->$")
FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)\s*$")
KINDS = ("shell", "device-shell", "python", "device-python", "manifest", "target", "json",
         "synopsis", "bundle-tree", "none")
MODELINE = re.compile(r"^#\s*yaml-language-server:\s*\$schema=(\S+)", re.MULTILINE)
TIMEOUT = 600


@dataclass(frozen=True)
class Block:
    line: int            # README line of the opening fence (1-based)
    lang: str
    text: str
    kind: str | None     # None: no marker
    why: str | None

    def where(self) -> str:
        return f"README.md line {self.line} ({self.kind or 'no marker'})"


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of ``text`` with the test marker on the last non-blank line before it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i].strip())
        if not m:
            i += 1
            continue
        fence = m["fence"]
        closing = re.compile(rf"^{re.escape(fence[0])}{{{len(fence)},}}$")
        end = i + 1
        while end < len(lines) and not closing.match(lines[end].strip()):
            end += 1
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = MARKER.match(lines[k].strip()) if k >= 0 else None
        blocks.append(Block(i + 1, m["lang"], "\n".join(lines[i + 1:end]),
                            marker["kind"] if marker else None,
                            ((marker["why"] or "").strip() or None) if marker else None))
        i = end + 1
    return blocks



def test_every_file_the_readme_names_exists() -> None:
    """The README cites tests and modules as evidence ("What is guaranteed", the layout): a moved
    file must not leave a dangling citation. A bare ``test_x.py`` counts when it is in the folder
    the text last named in full (``tests/packager/test_a.py``, ``test_b.py``)."""
    import re
    text = README.read_text(encoding="utf-8")
    roots = {"tests", "packager", "runtime", "scripts", "benchmarks", "examples", "docs", "manifests"}
    missing, checked, folder = [], 0, ""
    for m in re.finditer(r"`((?:[\w.-]+/)+)?([\w.-]+\.(?:py|sh|yaml|md))`", text):
        prefix, name = (m.group(1) or "").rstrip("/"), m.group(2)
        if prefix:
            if prefix.split("/")[0] not in roots:
                continue
            folder, path = prefix, REPO / prefix / name
        elif name.startswith("test_") and folder.startswith("tests"):
            path = REPO / folder / name
        else:
            continue
        checked += 1
        if not path.exists():
            missing.append(f"{path.relative_to(REPO)} (README line {text.count(chr(10), 0, m.start()) + 1})")
    assert checked > 20, "the pattern no longer finds the README's file citations"
    assert not missing, f"the README names files that do not exist: {missing}"

def test_every_block_has_a_test_marker() -> None:
    text = README.read_text(encoding="utf-8")
    blocks = readme_blocks(text)
    assert len(blocks) >= 10, "the README's blocks were not found"
    problems = [f"{b.where()}: no <!-- test: KIND --> comment right before it (kinds: {', '.join(KINDS)})"
                for b in blocks if b.kind is None]
    problems += [f"{b.where()}: unknown test kind {b.kind!r} (kinds: {', '.join(KINDS)})"
                 for b in blocks if b.kind is not None and b.kind not in KINDS]
    problems += [f"{b.where()}: 'none' needs a reason: <!-- test: none (why) -->"
                 for b in blocks if b.kind == "none" and not b.why]
    # a marker must stand right before a block (not orphaned above prose)
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if MARKER.match(line.strip()):
            nxt = next((lines[j] for j in range(n + 1, len(lines)) if lines[j].strip()), "")
            if not FENCE.match(nxt.strip()):
                problems.append(f"README.md line {n + 1}: test marker not followed by a fenced block")
    assert not problems, "\n".join(problems)
    run = {b.kind for b in blocks}
    assert {"shell", "device-shell", "device-python", "manifest", "target"} <= run


# -- shell blocks --------------------------------------------------------------------------------

def split_comment(line: str) -> tuple[str, str]:
    """``cmd  # comment`` -> (cmd, comment); a ``#`` inside quotes or a word is not a comment."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def commands(text: str) -> list[tuple[int, str, str]]:
    """(line offset in the block, command, comment) for every command line; '\\' continues."""
    out: list[tuple[int, str, str]] = []
    pending, start = "", 0
    for n, raw in enumerate(text.splitlines()):
        if not pending:
            start = n
        cmd, comment = split_comment(raw)
        if cmd.endswith("\\"):
            pending += cmd[:-1] + " "
            continue
        cmd = (pending + cmd).strip()
        pending = ""
        if cmd:
            out.append((start, cmd, comment))
    return out


VENV_LINE = re.compile(r"^(python3?\s+-m\s+venv\b.*|\.\s+\S*bin/activate)$")
SCP = re.compile(r"^scp\s+(\S+)\s+\S+@\S+:(\S*)$")
PIP_REQUIREMENTS = re.compile(r"^python3?\s+-m\s+pip\s+install\s+-r\s+requirements\.txt$")
DOCTOR = re.compile(r"^python3?\s+-m\s+runtime\s+doctor\b")


def substitute(cmd: str, comment: str, device: bool) -> tuple[str, tuple[int, ...]]:
    """The command the test runs for a README command, and the exit codes it accepts."""
    m = re.match(r"exit (\d+)\b", comment)
    codes: tuple[int, ...] = (int(m[1]),) if m else (0,)
    if VENV_LINE.match(cmd):
        return ":", (0,)
    cmd = re.sub(r"(?<![\w/.])\.venv/bin/", "", cmd)
    scp = SCP.match(cmd)
    if scp:
        return f'cp {scp[1]} "$README_DEVICE"/{scp[2]}', codes
    if device and PIP_REQUIREMENTS.match(cmd):
        return "grep -Eq '^numpy[=<>~]' requirements.txt && grep -Eq '^onnxruntime[=<>~]' requirements.txt", codes
    if device and DOCTOR.match(cmd) and not m:
        codes = (0, 1)
    return cmd, codes


def shell_script(block: Block, device: bool) -> str:
    parts = [('__check() { case " $2 " in *" $3 "*) ;; *) echo "README.md line $1: exit $3, expected $2" >&2;'
              ' exit 1;; esac; }')]
    for offset, cmd, comment in commands(block.text):
        run, codes = substitute(cmd, comment, device)
        line = block.line + 1 + offset
        parts.append(f"echo {shlex.quote(f'+ [README.md line {line}] {cmd}')} >&2")
        parts.append(run)
        parts.append(f'__check {line} "{" ".join(map(str, codes))}" $?')
    parts.append('pwd > "$README_STATE/cwd"')
    return "\n".join(parts) + "\n"


# -- the environment the blocks run in -----------------------------------------------------------

@dataclass
class Scene:
    work: Path       # stands in for the repository root
    device: Path     # stands in for the Pi's home folder
    state: Path
    env: dict[str, str]
    device_cwd: Path | None = None
    later: list[Callable[[], None]] = field(default_factory=list)  # run once every block ran

    def run(self, args: list[str], cwd: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=TIMEOUT,
                              input=input, stdin=subprocess.DEVNULL if input is None else None, check=False)


def make_scene(tmp: Path) -> Scene:
    work, device, state, bindir = tmp / "work", tmp / "device", tmp / "state", tmp / "bin"
    for d in (device, state, bindir):
        d.mkdir(parents=True)
    # Train into the checkout first, as tests/conftest.py's build_example does (skipped when the
    # weights exist), so the README's train.py line finds them in the copy: training takes up to a
    # minute on a small machine and the other end-to-end tests reuse the weights.
    subprocess.run([sys.executable, "examples/digits/train.py"], cwd=REPO, check=True, timeout=TIMEOUT,
                   capture_output=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "examples", work / "examples", ignore=ignore)
    shutil.copytree(REPO / "manifests", work / "manifests", ignore=ignore)
    py = shlex.quote(sys.executable)
    wrappers = {"python": f'exec {py} "$@"', "python3": f'exec {py} "$@"',
                "edgepack": f'PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}} '
                            f'exec {py} -m packager "$@"'}
    sys.path.insert(0, str(REPO / "scripts"))
    from side_env import python_path  # OpenSSF's model_signing, from its own environment
    sys.path.pop(0)
    signer = python_path("model-signing")
    wrappers["model_signing"] = (f'exec {shlex.quote(str(signer))} -m model_signing "$@"' if signer else
                                 'echo "model_signing: make test creates it: python scripts/side_env.py model-signing"'
                                 ' >&2; exit 127')
    for name, body in wrappers.items():
        (bindir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bindir / name).chmod(0o755)
    env = dict(os.environ)
    assert env.get("EDGEPACK_CACHE_DIR"), "tests/conftest.py sets the session's build cache"
    env["PATH"] = os.pathsep.join([str(bindir), str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(README_DEVICE=str(device), README_STATE=str(state), NO_COLOR="1")
    env.pop("PYTHONPATH", None)  # the device must find the bundle's own runtime, nothing else
    return Scene(work, device, state, env)


def fail(block: Block, proc: subprocess.CompletedProcess[str], what: str = "") -> None:
    pytest.fail(f"{block.where()}: {what or f'exit {proc.returncode}'}\n--- block ---\n{block.text}\n"
                f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}",
                pytrace=False)


def run_shell(scene: Scene, block: Block) -> None:
    device = block.kind == "device-shell"
    script = scene.state / f"block-{block.line}.sh"
    script.write_text(shell_script(block, device))
    proc = scene.run(["bash", str(script)], scene.device if device else scene.work)
    if proc.returncode != 0:
        fail(block, proc)
    assert "Traceback" not in proc.stderr, f"{block.where()}: a traceback\n{proc.stderr[-4000:]}"
    if device:
        scene.device_cwd = Path((scene.state / "cwd").read_text().strip())


def run_python(scene: Scene, block: Block) -> None:
    if block.kind == "device-python":
        assert scene.device_cwd is not None, f"{block.where()}: no device-shell block ran before it"
        cwd = scene.device_cwd
    else:
        cwd = scene.work
    proc = scene.run([sys.executable, "-"], cwd, input=block.text)
    if proc.returncode != 0:
        fail(block, proc)


# -- YAML, JSON, synopsis, bundle tree -----------------------------------------------------------

def check_schema(block: Block, path: Path) -> None:
    m = MODELINE.search(block.text)
    if not m:
        return
    schema_file = (path.parent / m[1]).resolve()
    assert schema_file.is_file(), f"{block.where()}: the modeline's schema {m[1]} is not where it says"
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(yaml.safe_load(block.text), json.loads(schema_file.read_text()))


def check_manifest(scene: Scene, block: Block) -> None:
    from packager.config.manifest import load_manifest
    path = scene.work / "manifests" / f"readme-line{block.line}.yaml"
    path.write_text(block.text + "\n")
    load_manifest(path)
    proc = scene.run(["edgepack", "validate", str(path)], scene.work)
    if proc.returncode != 0:
        fail(block, proc, "edgepack validate refuses it")
    scene.later.append(lambda: check_schema(block, path))  # the schema block comes later in the README


def check_target(scene: Scene, block: Block) -> None:
    from packager.config.targets import load_target
    name = yaml.safe_load(block.text)["name"]
    path = scene.work / "targets" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(block.text + "\n")
    target = load_target(str(path))
    assert target.name == name
    rel = str(path.relative_to(scene.work))
    proc = scene.run(["edgepack", "validate", "manifests/digits-cnn.yaml", "--target", rel], scene.work)
    if proc.returncode != 0:
        fail(block, proc, "edgepack validate --target refuses it")
    scene.later.append(lambda: check_schema(block, path))  # the schema block comes later in the README
    out = scene.state / f"target-{block.line}"
    proc = scene.run(["edgepack", "build", "manifests/digits-cnn.yaml", "--target", rel, "--out", str(out), "-q"],
                     scene.work)
    if proc.returncode != 0:
        fail(block, proc, "building the digits example for it fails")
    assert (out / f"digits-cnn-{name}" / "bundle.json").is_file()


def check_json(scene: Scene, block: Block) -> None:
    try:
        json.loads(block.text)
    except ValueError as exc:
        pytest.fail(f"{block.where()}: not JSON: {exc}", pytrace=False)


def check_synopsis(scene: Scene, block: Block) -> None:
    helps: dict[tuple[str, ...], str] = {}
    for offset, cmd, _ in commands(block.text):
        words = cmd.split()
        if words[:3] == ["python", "-m", "runtime"]:
            prog, rest = words[:4], words[4:]
        elif words[0] == "edgepack":
            prog, rest = words[:2], words[2:]
        else:
            pytest.fail(f"README.md line {block.line + 1 + offset}: not an edgepack or runtime command: {cmd}")
        key = tuple(prog)
        if key not in helps:
            proc = scene.run([*prog, "--help"], scene.work)
            assert proc.returncode == 0, \
                f"README.md line {block.line + 1 + offset}: {' '.join(prog)} --help\n{proc.stderr}"
            helps[key] = proc.stdout
        flags = [t.split("=")[0] for t in re.split(r"[\s\[\]|]+", " ".join(rest)) if re.match(r"^--?[A-Za-z]", t)]
        missing = [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", helps[key])]
        assert not missing, f"README.md line {block.line + 1 + offset}: {missing} not in `{' '.join(prog)} --help`"


def check_bundle_tree(scene: Scene, block: Block) -> None:
    root, parent, missing = scene.work / "dist", scene.work / "dist", []
    for raw in block.text.splitlines():
        entry, _ = split_comment(raw)
        if not entry.strip():
            continue
        name = entry.strip().split()[0]
        path = (parent if raw.startswith((" ", "\t")) else root) / name.rstrip("/")
        if not raw.startswith((" ", "\t")):
            parent = path
        if not (path.is_dir() if name.endswith("/") else path.is_file()):
            missing.append(str(path.relative_to(root)))
    assert not missing, f"{block.where()}: not in the walkthrough's dist/: {missing}"


RUNNERS = {"shell": run_shell, "device-shell": run_shell, "python": run_python,
           "device-python": run_python, "manifest": check_manifest, "target": check_target,
           "json": check_json, "synopsis": check_synopsis, "bundle-tree": check_bundle_tree}


@pytest.mark.slow
def test_readme_examples_run(tmp_path: Path) -> None:
    """Every block, in README order, in one scratch folder (later blocks use what earlier built)."""
    blocks = [b for b in readme_blocks(README.read_text(encoding="utf-8")) if b.kind != "none"]
    assert all(b.kind in RUNNERS for b in blocks), "see test_every_block_has_a_test_marker"
    scene = make_scene(tmp_path)
    for block in blocks:
        RUNNERS[block.kind](scene, block)  # type: ignore[index]
    for check in scene.later:
        check()
