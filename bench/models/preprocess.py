"""What a backbone expects of its input, from the backbone's own configuration: the one place
that knows it (the data stage, the model and the explain figures all read it from here)."""

from __future__ import annotations

from bench.models.registry import ModelSpec


def input_normalisation(spec: ModelSpec) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel: timm's pretrained config of the architecture
    (``timm.data.resolve_data_config``, ImageNet's when it has none); Ultralytics' own constants
    for YOLO classifiers (they take [0, 1] inputs)."""
    if spec.family == "yolo":
        from ultralytics.data.augment import DEFAULT_MEAN, DEFAULT_STD

        return tuple(DEFAULT_MEAN), tuple(DEFAULT_STD)
    import timm
    from timm.data import resolve_data_config

    pretrained = timm.get_pretrained_cfg(spec.arch)  # None for builds timm has no entry for
    data_cfg = resolve_data_config(pretrained_cfg=pretrained.to_dict() if pretrained is not None else {})
    return tuple(float(v) for v in data_cfg["mean"]), tuple(float(v) for v in data_cfg["std"])
