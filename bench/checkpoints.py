"""Checkpoints and weights are data, never code: every ``torch.load`` of the harness goes through here.

- ``load_checkpoint``: a Lightning checkpoint or a state dict, ``torch.load(weights_only=True)``;
  a file that needs pickled objects is refused with one line (the pickle is never run).
- ``load_ultralytics``: an Ultralytics ``.pt`` file (``{"model"/"ema": <nn.Module>, ...}``), still
  with ``weights_only=True``, plus an explicit allowlist (``torch.serialization.safe_globals``,
  scoped to this one load) of the module classes the file names: ``torch.nn`` and Ultralytics
  layer/model classes, Ultralytics' ``IterableSimpleNamespace`` and a few plain data types.

Why not Ultralytics' own ``torch_safe_load(safe_only=True)``: it registers its allowlist for the
whole process (``add_safe_globals``), so every later weights-only load would accept those classes
too, and an allowlisted class can be *called* by a pickle (REDUCE), which for Ultralytics' model
classes means parsing a model YAML. Here an allowlisted class can only be created empty and filled
with its saved attributes (what pickling a module does), never called with arguments.
"""

from __future__ import annotations

import enum
import importlib
import os
import pathlib
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from bench.errors import BenchError
from bench.errors import first_line as _first_line

# Modules whose nn.Module subclasses may appear in an Ultralytics checkpoint (classification,
# detection): only these are ever imported while building the allowlist.
_MODULE_PREFIXES = ("torch.nn.modules.", "ultralytics.nn.modules.", "ultralytics.nn.tasks")
_REFUSE_HINT = "only plain tensors and state dicts are loaded: save model.state_dict() (or use .safetensors) and load that"


def _unpickling_reason(err: BaseException) -> str:
    """The part of torch's weights-only message that names the refused global (not its preamble)."""
    text = str(err)
    found = re.search(r"(Unsupported global: GLOBAL \S+|unsupported GLOBAL \S+|Trying to call reduce for [^\n]*?(?=\.?\s*$)"
                      r"|Can only [^\n]*?(?=\.?\s*$))", text, re.M)
    if found:
        return found.group(1).rstrip(".")[:300]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[-1] if lines else type(err).__name__)[:300]


def _describe_read_error(path: Path, err: BaseException, what: str) -> str:
    if isinstance(err, pickle.UnpicklingError):
        return f"refused to load {path}: it needs pickled code or objects ({_unpickling_reason(err)}); {_REFUSE_HINT}"
    return (f"could not read {what} file {path}: truncated or corrupt ({type(err).__name__}: {_first_line(err)}); "
            "copy or write it again")


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line ``BenchError``s: refused (needs
    pickled objects), or unreadable (torn, truncated, not a torch file)."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise BenchError(f"{path}: file not found") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as err:
        raise BenchError(_describe_read_error(path, err, what)) from None


def is_readable_checkpoint(path: str | os.PathLike) -> tuple[bool, str]:
    """(True, "") when ``path`` loads as data; else (False, the one-line reason)."""
    try:
        load_checkpoint(path)
    except BenchError as err:
        return False, str(err)
    return True, ""


# ---------------------------------------------------------------------------------------------
# Ultralytics .pt files


def _create_only(cls: type) -> type:
    """A stand-in for ``cls`` in the unpickler: creating it gives an empty ``cls`` instance
    (``cls.__new__``, as NEWOBJ does); calling it with arguments never runs ``cls.__init__``."""

    def __new__(_stand_in, *args, **kwargs):  # noqa: N807
        return cls.__new__(cls)

    return type(f"CreateOnly{cls.__name__}", (), {"__new__": __new__, "__module__": __name__, "real_class": cls})


def _restricted_getattr(obj: Any, name: str) -> Any:
    # Ultralytics checkpoints pickle e.g. ``Detect.forward`` and enum members through getattr.
    if isinstance(obj, type) and obj.__module__ == __name__ and isinstance(obj.__dict__.get("real_class"), type):
        obj = obj.__dict__["real_class"]  # a create-only stand-in: look the attribute up on its class
    if isinstance(obj, type) and issubclass(obj, enum.Enum) and name in obj.__members__:
        return obj[name]
    if isinstance(obj, type) and issubclass(obj, nn.Module) and name in ("forward", "forward_fuse"):
        return getattr(obj, name)
    if isinstance(obj, nn.Module) and name in ("forward", "forward_fuse"):
        return getattr(type(obj), name).__get__(obj)
    raise pickle.UnpicklingError(f"getattr({type(obj).__name__}, {name!r}) is not allowed in a weights file")


def _data_globals() -> dict[str, Any]:
    """Plain-data globals of official Ultralytics checkpoints (training args, paths, numpy scalars)."""
    import numpy as np

    out: dict[str, Any] = {"builtins.getattr": _restricted_getattr}
    try:
        from ultralytics.utils import IterableSimpleNamespace

        for name in ("ultralytics.utils.IterableSimpleNamespace", "ultralytics.yolo.utils.IterableSimpleNamespace"):
            out[name] = IterableSimpleNamespace
    except ImportError:
        pass
    scalar = np.float64(0).__reduce__()[0]
    out.update({"numpy.core.multiarray.scalar": scalar, "numpy._core.multiarray.scalar": scalar, "numpy.dtype": np.dtype})
    for cls in ("PosixPath", "WindowsPath"):
        for mod in ("pathlib", "pathlib._local"):
            out[f"{mod}.{cls}"] = pathlib.PosixPath if os.name != "nt" else pathlib.WindowsPath
    return out


def _module_class(full_name: str) -> type | None:
    module, _, attr = full_name.rpartition(".")
    if not (module + ".").startswith(_MODULE_PREFIXES) and module not in _MODULE_PREFIXES:
        return None
    try:
        obj = getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return None
    return obj if isinstance(obj, type) and issubclass(obj, nn.Module) else None


def ultralytics_allowlist(path: str | os.PathLike) -> tuple[list[tuple[Any, str]], list[str]]:
    """``(safe_globals entries, names refused)`` for the globals that ``path`` references."""
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # not a zip checkpoint: torch.load reports the format error
        needed = []
    data = _data_globals()
    entries: list[tuple[Any, str]] = []
    refused: list[str] = []
    for name in needed:
        if name in data:
            entries.append((data[name], name))
            continue
        cls = _module_class(name)
        if cls is None:
            refused.append(name)
            continue
        # The stand-in answers to the checkpoint's name; the real class is registered under a name
        # no pickle can spell (a newline), so BUILD accepts its instances but nothing can call it.
        entries.append((_create_only(cls), name))
        entries.append((cls, f"bench\nreal {name}"))
    return entries, refused


def load_ultralytics(path: str | os.PathLike, what: str = "weights") -> Any:
    """An Ultralytics ``.pt`` (or any weights file) loaded as data: ``weights_only=True`` with the
    allowlist above. Files that name other globals are refused with one line."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: file not found")
    entries, refused = ultralytics_allowlist(path)
    if refused:
        shown = ", ".join(refused[:3]) + (f" and {len(refused) - 3} more" if len(refused) > 3 else "")
        raise BenchError(f"refused to load {path}: it needs objects that are not model layers or plain data ({shown}); {_REFUSE_HINT}")
    try:
        with torch.serialization.safe_globals(entries):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as err:
        raise BenchError(_describe_read_error(path, err, what)) from None
