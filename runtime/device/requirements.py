"""Installed package versions and requirements.txt checks, without importing any package.

``installed_version`` asks importlib.metadata; ``version_matches`` approximates PEP 440
comparisons; ``check_requirements`` checks each requirements.txt line (with simple environment
markers) against what is installed and gives the ``pip install`` that fixes a missing or
mismatched pin.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# --------------------------------------------------------------------------- versions

def installed_version(dist: str) -> str | None:
    """A distribution's installed version via importlib.metadata (no import), or None."""
    for name in dict.fromkeys((dist, dist.replace("-", "_"), dist.replace("_", "-"))):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        except Exception:  # a broken dist-info must not stop the report
            return None
    return None


def normalize_name(name: str) -> str:
    """A pip distribution name folded for comparison (PEP 503: runs of -_. become -, lower)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def version_key(version: str) -> tuple[tuple[int, ...], int, str]:
    """Approximate PEP 440 ordering: release numbers, pre-releases before the release."""
    public = version.split("+", 1)[0].strip().lower()
    m = re.match(r"v?(\d+(?:\.\d+)*)(.*)", public)
    if not m:
        return (), 0, public
    release = tuple(int(x) for x in m.group(1).split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    rest = m.group(2).lstrip(".-_")
    rank = -1 if rest.startswith(("a", "b", "c", "rc", "pre", "preview", "dev")) else \
        (1 if rest else 0)  # .postN / other suffixes after the release
    return release, rank, rest


def _release(version: str) -> tuple[int, ...]:
    """The release numbers as written (trailing zeros kept, for prefix matches)."""
    m = re.match(r"v?(\d+(?:\.\d+)*)", version.split("+", 1)[0].strip().lower())
    return tuple(int(x) for x in m.group(1).split(".")) if m else ()


def version_matches(installed: str, op: str, wanted: str) -> bool:
    """Whether ``installed`` satisfies ``op wanted`` (==, !=, >=, <=, >, <, ~=, ===, ==X.*)."""
    if op == "===":
        return installed == wanted
    if op in ("==", "!=") and wanted.endswith(".*"):
        prefix = _release(wanted[:-2])
        release = _release(installed) + (0,) * len(prefix)
        hit = release[:len(prefix)] == prefix
        return hit if op == "==" else not hit
    if op in ("==", "!=") and "+" not in wanted:
        installed = installed.split("+", 1)[0]  # ==2.13.0 matches 2.13.0+cpu (PEP 440)
    have, want = version_key(installed), version_key(wanted)
    if op == "==":
        return have == want
    if op == "!=":
        return have != want
    if op == ">=":
        return have >= want
    if op == "<=":
        return have <= want
    if op == ">":
        return have > want
    if op == "<":
        return have < want
    if op == "~=":
        prefix = _release(wanted)[:-1] or _release(wanted)
        mine = _release(installed) + (0,) * len(prefix)
        return have >= want and mine[:len(prefix)] == prefix
    return False


_SPEC_RE = re.compile(r"(===|==|!=|~=|>=|<=|>|<)\s*([^\s,;]+)")
_MARKER_RE = re.compile(r"""^\s*(\w+)\s*(==|!=|<=|>=|<|>|in|not in)\s*["']([^"']*)["']\s*$""")


def _marker_env(machine: str) -> dict[str, str]:
    return {"platform_machine": machine, "python_version": f"{sys.version_info[0]}.{sys.version_info[1]}",
            "python_full_version": platform.python_version(), "sys_platform": sys.platform,
            "platform_system": platform.system(), "os_name": os.name,
            "implementation_name": sys.implementation.name}


def _marker_applies(marker: str, machine: str) -> bool | None:
    """Simple environment markers (clauses joined by and/or, no parentheses); None if unsure."""
    env = _marker_env(machine)
    if "(" in marker:
        return None
    result: bool | None = None
    for group in re.split(r"\s+or\s+", marker):
        value = True
        for clause in re.split(r"\s+and\s+", group):
            m = _MARKER_RE.match(clause)
            if not m or m.group(1) not in env:
                return None
            have, op, want = env[m.group(1)], m.group(2), m.group(3)
            if m.group(1).startswith("python"):
                ok = version_matches(have, op, want) if op not in ("in", "not in") else \
                    (have in want) == (op == "in")
            elif op in ("in", "not in"):
                ok = (have in want) == (op == "in")
            elif op in ("==", "!="):
                ok = (have == want) == (op == "==")
            else:
                return None
            value = value and ok
        result = bool(result) or value
    return result


@dataclass
class Requirement:
    """One requirements.txt line checked against this environment."""

    line: str
    name: str
    specs: list[tuple[str, str]]
    installed: str | None
    ok: bool
    fix: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["specs"] = ["".join(s) for s in self.specs]
        return doc


def check_requirements(text: str, *, machine: str | None = None,
                       version_of: Callable[[str], str | None] = installed_version
                       ) -> list[Requirement]:
    """Every requirement line (comments and pip options skipped) against installed versions,
    with the ``pip install`` that fixes a missing or mismatched pin."""
    machine = machine or platform.machine()
    out: list[Requirement] = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#") or line.startswith("-"):
            continue
        body, _, marker = line.partition(";")
        if marker.strip():
            applies = _marker_applies(marker.strip(), machine)
            if applies is False:
                continue
        m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)", body.strip())
        if not m:
            out.append(Requirement(line, body.strip(), [], None, False,
                                   note="cannot parse this line"))
            continue
        name, rest = m.group(1), m.group(3).strip()
        specs = [] if rest.startswith("@") else _SPEC_RE.findall(rest)
        have = version_of(name)
        target = body.strip() if specs and not rest.startswith("@") else name
        fix_cmd = "pip install " + shlex.quote(re.sub(r"\s+", "", target) if specs else name)
        if have is None:
            out.append(Requirement(line, name, specs, None, False, fix=fix_cmd,
                                   note="not installed"))
            continue
        bad = [op + v for op, v in specs if not version_matches(have, op, v)]
        if bad:
            out.append(Requirement(line, name, specs, have, False, fix=fix_cmd,
                                   note=f"installed {have} does not satisfy {', '.join(bad)}"))
        else:
            out.append(Requirement(line, name, specs, have, True))
    return out
