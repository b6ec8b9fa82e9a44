"""The run spec: what a training config means, resolved once, before anything is built.

The backbone's zoo entry, the input size (the size policy applied), the input normalisation (from
the backbone's own pretrained config) and the protocol fields recorded for leaderboards are worked
out here from the config; the data, the model, the record and the later stages take them from
the spec (or from the record it wrote) instead of looking them up again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.utils import instantiate as _hydra_instantiate
from omegaconf import DictConfig, OmegaConf

from bench.errors import BenchError, first_line
from bench.models.preprocess import input_normalisation
from bench.models.registry import ModelSpec, spec_for


@dataclass(frozen=True)
class RunSpec:
    model: ModelSpec
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    protocol: dict[str, Any] = field(default_factory=dict)

    def data_kwargs(self) -> dict[str, Any]:
        """What the datamodule takes from the spec (``conf/data`` leaves these to the code)."""
        return {"image_size": self.input_size, "mean": list(self.mean), "std": list(self.std)}


def model_spec(model_cfg: DictConfig) -> ModelSpec:
    """The zoo entry the config names, with the config's overrides (as ``create_model`` gets them)."""
    return spec_for(model_cfg.name, arch=model_cfg.get("arch"), family=model_cfg.get("family"),
                    native_size=model_cfg.get("native_size"))


def resolve_spec(cfg: DictConfig) -> RunSpec:
    """The spec of a training config (``conf/train.yaml`` and its groups)."""
    model = model_spec(cfg.model)
    size = model.native_size if cfg.size_policy == "native" else int(cfg.image_size)
    mean, std = input_normalisation(model)
    return RunSpec(model=model, input_size=int(size), mean=mean, std=std, protocol=_protocol(cfg, int(size)))


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _protocol(cfg: DictConfig, input_size: int) -> dict[str, Any]:
    """The training protocol as leaderboards group runs by it (``record["protocol"]``)."""
    return {"experiment": cfg.get("experiment_name") or "default", "image_size": input_size,
            "size_policy": cfg.size_policy, "balance": _plain(cfg.data.get("balance")) or None,
            "augment": cfg.data.get("augment"), "epochs": int(cfg.trainer.max_epochs),
            "batch_size": int(cfg.data.batch_size), "optimizer": cfg.optim.name, "lr": float(cfg.optim.lr),
            "weight_decay": float(cfg.optim.weight_decay), "monitor": cfg.monitor.metric,
            "precision": str(cfg.trainer.precision), "pretrained": bool(cfg.model.get("pretrained", False))}


def instantiate(node: DictConfig, what: str, **kwargs):
    """Hydra instantiate with a one-line error naming the config group and the bad key."""
    try:
        return _hydra_instantiate(node, **kwargs)
    except BenchError:
        raise
    except Exception as exc:  # Hydra wraps the constructor's TypeError/ValueError
        cause = exc
        while cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, BenchError):
            raise cause from None
        raise BenchError(f"{what} config ({node.get('_target_', '?')}): {first_line(cause)}") from None
