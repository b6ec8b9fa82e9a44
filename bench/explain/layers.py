"""Which layers get a CAM: ``Classifier.cam_layers()`` (stages / blocks in execution order), or a
user subset of those names (``explain.layers=[...]``), kept in execution order."""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from bench.errors import BenchError

__all__ = ["resolve_layers", "inner_module"]


def inner_module(model: nn.Module) -> nn.Module:
    """The plain ``nn.Module`` to hook. An Ultralytics ``YOLO`` wrapper is not one to give
    pytorch-grad-cam (its ``.eval()``/``.train()`` start a training run, upstream issue #507)."""
    cls = type(model)
    if cls.__name__ == "YOLO" and cls.__module__.startswith("ultralytics") and hasattr(model, "model"):
        return model.model
    return model


def resolve_layers(model: nn.Module, names: Sequence[str] | None = None) -> list[tuple[str, nn.Module]]:
    """``[(name, module), ...]`` in execution order: all of ``model.cam_layers()`` or ``names``.

    A model without ``cam_layers()`` takes ``names`` as ``get_submodule`` paths, in the order given.
    """
    if hasattr(model, "cam_layers"):
        available = list(model.cam_layers())
        if not available:
            raise BenchError(f"{type(model).__name__}.cam_layers() is empty: no layers to explain")
        if names is None:
            return available
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        by_name = dict(available)
        # Accept names with or without the Classifier's "backbone." prefix.
        short = {n.split(".", 1)[1]: n for n, _ in available if n.startswith("backbone.")}
        chosen = []
        for n in names:
            full = n if n in by_name else short.get(n)
            if full is None:
                raise BenchError(f"explain.layers: unknown layer {n!r}; valid names: {', '.join(by_name)}")
            chosen.append(full)
        if len(set(chosen)) != len(chosen):
            raise BenchError(f"explain.layers: a layer is listed twice in {list(names)}")
        order = {n: i for i, (n, _) in enumerate(available)}
        return [(n, by_name[n]) for n in sorted(chosen, key=order.__getitem__)]
    if not names:
        raise BenchError(f"{type(model).__name__} has no cam_layers(): pass the layer names to explain")
    out = []
    for n in names:
        try:
            out.append((n, model.get_submodule(n)))
        except AttributeError:
            raise BenchError(f"layer {n!r} is not a submodule of {type(model).__name__}") from None
    return out
