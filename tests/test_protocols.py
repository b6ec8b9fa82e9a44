"""The protocol tables (bench/protocols.py) against the composed presets, and docs/protocols.md."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from bench.models import ZOO
from bench.protocols import PROTOCOLS, STATUSES, protocol_table, render_markdown

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


@functools.lru_cache(maxsize=None)
def _resolved(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides), return_hydra_config=True)
    sweep = OmegaConf.to_container(cfg.hydra.sweeper.params)
    with open_dict(cfg):
        del cfg["hydra"]  # job-time interpolations (hydra.job.num) cannot resolve here
    out = OmegaConf.to_container(cfg, resolve=True)
    out["_sweep"] = sweep
    return out


def _get(container: dict, dotted: str):
    node = container
    for part in dotted.split("."):
        node = node[part]
    return node


CHECKS: dict[tuple, list] = {}
for _name in PROTOCOLS:
    for _row in protocol_table(_name, with_checks=True):
        for _c in _row["checks"]:
            CHECKS.setdefault((_name, *_c["overrides"]), []).append((_row["setting"], _c["key"], _c["value"]))


@pytest.mark.parametrize("overrides", list(CHECKS), ids=[" ".join(k) for k in CHECKS])
def test_protocol_table_rows_match_the_composed_preset(overrides):
    name, *extra = overrides
    cfg = _resolved(f"experiment={name}", *extra)
    for setting, key, value in CHECKS[overrides]:
        got = _get(cfg, key)
        if isinstance(value, float):
            assert got == pytest.approx(value), (setting, key)
        else:
            assert got == value, (setting, key)


def test_every_row_has_paper_ours_status_and_a_reason_when_not_as_stated():
    for name in PROTOCOLS:
        rows = protocol_table(name)
        assert rows and all(set(r) == {"setting", "paper", "ours", "status", "reason"} for r in rows)
        for r in rows:
            assert r["status"] in STATUSES
            if r["status"] != "as stated":
                assert r["reason"], (name, r["setting"])
    # the table handed out is a copy: editing it cannot change the data
    protocol_table("seed000")[0]["ours"] = "x"
    assert protocol_table("seed000")[0]["ours"] != "x"


def test_docs_page_is_rendered_from_the_data():
    assert (REPO / "docs" / "protocols.md").read_text() == render_markdown()


@pytest.mark.slow  # 48 compositions: ~30 s each preset on 2 shared cores
@pytest.mark.parametrize("name,size", [("seed002_binary", 244), ("seed002_region", 224)])
def test_seed002_every_backbone_of_the_sweep_gets_its_family_settings(name, size):
    models = _resolved(f"experiment={name}")["_sweep"]["model"].split(",")
    assert len(models) == 24
    for m in models:
        c = _resolved(f"experiment={name}", f"model={m}")
        assert c["model"]["pretrained"] is True and c["callbacks"]["early_stopping"] is None
        if ZOO[m].family == "yolo":
            assert (c["image_size"], c["optim"]["name"], c["data"]["batch_size"]) == (640, "adamw", 16), m
            assert c["optim"]["lr"] == pytest.approx(7.14e-4)
            assert c["model"]["head"] == {"pool": "avg", "dropout": 0.0, "dense_units": 0, "binary_output": "two_logits"}
            assert c["trainer"]["max_epochs"] == (100 if name == "seed002_binary" else 150)
        else:
            assert (c["image_size"], c["optim"]["name"], c["data"]["batch_size"]) == (size, "adam", 32), m
            assert c["optim"]["lr"] == pytest.approx(1e-3) and c["trainer"]["max_epochs"] == 30
            one = "one_logit" if name == "seed002_binary" else "two_logits"
            assert c["model"]["head"] == {"pool": "avg", "dropout": 0.0, "dense_units": 0, "binary_output": one}


def test_weights_map_fills_model_weights_and_stays_out_of_the_run_id(lite0_weights):
    from bench.training.run import config_hash

    a = _resolved("experiment=seed002_binary", "model=efficientnet_lite0",
                  f"weights_map={{efficientnet_lite0: {lite0_weights}, resnet50: /elsewhere/r50.pth}}")
    assert a["model"]["weights"] == str(lite0_weights)
    b = _resolved("experiment=seed002_binary", "model=resnet18")
    assert b["model"]["weights"] is None
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        one = compose(config_name="train", overrides=["model=efficientnet_lite0", f"model.weights={lite0_weights}"])
        two = compose(config_name="train", overrides=["model=efficientnet_lite0",
                                                      f"weights_map={{efficientnet_lite0: {lite0_weights}, x: /y}}"])
    assert config_hash(one) == config_hash(two)
