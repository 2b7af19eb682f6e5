"""Resolve user entry points ('path/to/file.py:function' or 'package.module:function')."""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config.fields import did_you_mean
from ..errors import EdgepackError


def resolve_entry(entry: str, base_dir: Path, error: type[EdgepackError], where: str) -> Callable[..., Any]:
    """Import the module of ``entry`` and return its callable, raising ``error`` with a hint."""
    module_ref, _, func_name = entry.rpartition(":")
    if module_ref.endswith(".py") or "/" in module_ref:
        path = (base_dir / module_ref).resolve()
        if not path.is_file():
            raise error(f"entry point file {module_ref!r} not found (looked at {path})", where=where,
                        hint="paths in a manifest are relative to the manifest's folder")
        # named by content, not location: the name ends up inside TorchScript artifacts, and the
        # same model file must give the same bytes wherever the project is checked out
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        module_name = f"_edgepack_entry_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{digest}"
        module = sys.modules.get(module_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.path.insert(0, str(path.parent))  # let the file import its siblings
            try:
                spec.loader.exec_module(module)
            except Exception as exc:  # user code: any failure is reported, not propagated raw
                raise error(f"importing {module_ref} failed: {type(exc).__name__}: {exc}",
                            where=where, hint="run the file with python to see the full error") from exc
            finally:
                sys.path.remove(str(path.parent))
            sys.modules[module_name] = module
    else:
        sys.path.insert(0, str(base_dir))
        try:
            module = importlib.import_module(module_ref)
        except ImportError as exc:
            raise error(f"cannot import module {module_ref!r}: {exc}", where=where,
                        hint="use 'path/to/file.py:function' for a file, or install the package") from exc
        except Exception as exc:
            raise error(f"importing {module_ref} failed: {type(exc).__name__}: {exc}", where=where) from exc
        finally:
            sys.path.remove(str(base_dir))
    func = getattr(module, func_name, None)
    if not callable(func):
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise error(f"{module_ref} has no function {func_name!r}{did_you_mean(func_name, names)}", where=where,
                    hint=f"functions defined there: {', '.join(names[:10]) or 'none'}")
    return func


def call_entry(entry: str, base_dir: Path, error: type[EdgepackError], where: str, **kwargs: Any) -> Any:
    """Resolve and call an entry point; an exception inside it becomes ``error``."""
    func = resolve_entry(entry, base_dir, error, where)
    try:
        return func(**kwargs)
    except EdgepackError:
        raise
    except FileNotFoundError as exc:  # typically the trained weights: say so, and how paths resolve
        raise error(f"{entry} raised FileNotFoundError: {exc}", where=where,
                    hint="a file the function reads is missing (trained weights?): create it, or fix "
                         "the path; relative paths inside the function are taken from the current "
                         "directory, not the manifest's (use Path(__file__).parent)") from exc
    except Exception as exc:
        raise error(f"{entry} raised {type(exc).__name__}: {exc}", where=where,
                    hint="fix the function (run it by hand to see the full traceback, or use --debug)") from exc
