"""Balancing, augmentation presets, FractureDataModule end to end, and the data CLIs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from bench.data import FractureDataModule
from bench.testing import fixtures
from bench.data.balance import balance_indices
from bench.data.transforms import eval_transform, train_transform
from bench.errors import BenchError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------- balancing
def test_balance_policies_counts():
    labels = np.array([0] * 70 + [1] * 20 + [2] * 10)
    idx, w = balance_indices(labels, 3, "none")
    assert len(idx) == 100 and w is None
    idx, w = balance_indices(labels, 3, "oversample", seed=1)
    assert np.bincount(labels[idx]).tolist() == [70, 70, 70] and w is None
    # every minority row appears (whole copies first), at most one extra copy apart
    reps = np.bincount(idx[labels[idx] == 2], minlength=100)[90:]
    assert reps.min() == 7 and reps.max() == 7
    reps1 = np.bincount(idx[labels[idx] == 1], minlength=100)[70:90]
    assert set(reps1.tolist()) <= {3, 4} and reps1.sum() == 70
    idx, _ = balance_indices(labels, 3, "downsample", seed=1)
    assert np.bincount(labels[idx]).tolist() == [10, 10, 10] and len(set(idx.tolist())) == 30
    idx, _ = balance_indices(labels, 3, "per_class", per_class=30, seed=1)
    assert np.bincount(labels[idx]).tolist() == [30, 30, 30]
    assert len(set(idx[labels[idx] == 0].tolist())) == 30  # downsampled: no repeats
    idx, w = balance_indices(labels, 3, "class_weight")
    assert len(idx) == 100
    torch.testing.assert_close(w, torch.tensor([100 / (3 * 70), 100 / (3 * 20), 100 / (3 * 10)]))
    _, w = balance_indices(labels, 3, "oversample", class_weight=True)
    # weights come from the rows trained on: after exact oversampling every class weighs 1
    torch.testing.assert_close(w, torch.ones(3))
    a, _ = balance_indices(labels, 3, "downsample", seed=5)
    b, _ = balance_indices(labels, 3, "downsample", seed=5)
    assert a.tolist() == b.tolist()
    with pytest.raises(BenchError, match="per_class needs a positive count"):
        balance_indices(labels, 3, "per_class")
    with pytest.raises(BenchError, match="policy='smote'"):
        balance_indices(labels, 3, "smote")


# ----------------------------------------------------------------------------- transforms
def test_eval_transform_is_exact_normalisation():
    x = torch.tensor([[[0, 51], [204, 255]]], dtype=torch.uint8)
    y = eval_transform(MEAN, STD)(x)
    assert y.shape == (3, 2, 2) and y.dtype == torch.float32
    for c in range(3):
        torch.testing.assert_close(y[c], (x[0].float() / 255 - MEAN[c]) / STD[c])


@pytest.mark.parametrize("preset", ["seed000", "seed002"])
def test_train_presets_change_images_randomly(preset):
    torch.manual_seed(0)
    x = torch.zeros(1, 64, 64, dtype=torch.uint8)
    x[0, 10:30, 5:20] = 200  # off-centre block: flips/rotations/shifts move it
    tf = train_transform(preset, MEAN, STD)
    outs = [tf(x) for _ in range(6)]
    assert all(o.shape == (3, 64, 64) and o.dtype == torch.float32 for o in outs)
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    assert not torch.equal(train_transform("none", MEAN, STD)(x), outs[0]) or not torch.equal(outs[0], outs[1])
    with pytest.raises(BenchError, match="data.augment='bogus'"):
        train_transform("bogus", MEAN, STD)


# ----------------------------------------------------------------------------- datamodule
@pytest.fixture(scope="module")
def fa_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dm") / "fracatlas"
    info = fixtures.make_fracatlas(root, n=80, seed=0, bad_files=True)
    return root, info


def _dm(root, cache, **kw):
    base = dict(dataset="fracatlas", root=str(root), task="binary", image_size=32, batch_size=8,
                cache_dir=str(cache), seed=0)
    base.update(kw)
    return FractureDataModule(**base)


def test_datamodule_batches_shapes_dtypes_normalisation(fa_root, tmp_path):
    root, info = fa_root
    dm = _dm(root, tmp_path / "cache")
    dm.setup("fit")
    assert dm.classes == ["non_fractured", "fractured"] and dm.num_classes == 2 and dm.positive_index == 1
    assert dm.study_level is False and dm.class_weights is None
    t = dm.table
    assert {"image_id", "path", "label", "split", "group", "boxes", "region"} <= set(t.columns)
    assert len(t) == info["n_images"] == 81 and set(t["split"]) == {"train", "val", "test"}
    for split, loader in (("train", dm.train_dataloader()), ("val", dm.val_dataloader()), ("test", dm.test_dataloader())):
        x, y, rows = next(iter(loader))
        assert x.shape == (min(8, (t["split"] == split).sum()), 3, 32, 32) and x.dtype == torch.float32
        assert y.dtype == torch.long and rows.dtype == torch.long
        assert (t["split"].to_numpy()[rows.numpy()] == split).all()
        assert (t["label"].to_numpy()[rows.numpy()] == y.numpy()).all()
    # eval images are exactly the cached uint8 pixels, normalised
    x, y, rows = next(iter(dm.test_dataloader()))
    raw = torch.from_numpy(dm._images[rows.numpy()]).float() / 255
    for c in range(3):
        torch.testing.assert_close(x[:, c], (raw - MEAN[c]) / STD[c])
    # the whole val split, once each, in order
    seen = torch.cat([b[2] for b in dm.val_dataloader()]).tolist()
    assert seen == np.flatnonzero(t["split"].to_numpy() == "val").tolist()
    # report
    r = dm.report
    json.dumps(r)
    assert r["truncated"] == info["truncated"] and r["label_conflicts"][0]["image_id"] == info["conflict"]
    assert r["duplicate_groups"] == info["duplicates"] and r["leakage"]["ok"]
    assert sum(r["per_split"][s]["total"] for s in ("train", "val", "test")) == 81
    dup_splits = t.loc[t["image_id"].isin(info["duplicates"][0]), "split"]
    assert dup_splits.nunique() == 1  # the duplicate group sits on one side
    # setup is idempotent (Lightning calls it per stage)
    before = dm.split_hash
    table_id = id(dm.table)
    dm.setup("test")
    assert dm.split_hash == before and id(dm.table) == table_id


def test_datamodule_same_seed_same_split_and_split_file(fa_root, tmp_path):
    root, _ = fa_root
    a = _dm(root, tmp_path / "cache", seed=3)
    a.setup()
    b = _dm(root, tmp_path / "cache", seed=3)
    b.setup()
    assert a.split_hash == b.split_hash and b.report["cache"]["decoded_now"] == 0
    c = _dm(root, tmp_path / "cache", seed=4, split_seed=3)
    c.setup()
    assert c.split_hash == a.split_hash  # split seed fixed, training seed differs
    path = a.write_split(tmp_path / "split.csv")
    d = _dm(root, tmp_path / "cache", seed=99, split_file=str(path))
    d.setup()
    assert d.split_hash == a.split_hash
    assert (d.table.set_index("image_id")["split"] == a.table.set_index("image_id")["split"]).all()


def test_datamodule_balance_and_skip(fa_root, tmp_path):
    root, info = fa_root
    dm = _dm(root, tmp_path / "cache", balance={"policy": "downsample"}, truncated="skip", augment="seed002")
    dm.setup()
    assert info["truncated"][0] not in set(dm.table["image_id"]) and dm.report["skipped"] == info["truncated"]
    train_labels = dm.table["label"].to_numpy()[dm.train_rows]
    counts = np.bincount(train_labels)
    assert counts[0] == counts[1] == min(np.bincount(dm.table.loc[dm.table["split"] == "train", "label"]))
    assert len(dm.train_dataloader().dataset) == counts.sum()
    # val/test are never balanced
    assert dm.report["per_split"]["val"]["total"] == (dm.table["split"] == "val").sum()
    assert dm.report["balance"]["train_per_class"] == {"non_fractured": int(counts[0]), "fractured": int(counts[1])}


def test_datamodule_limit_per_class_and_region(fa_root, tmp_path):
    root, _ = fa_root
    dm = _dm(root, tmp_path / "cache", task="region", limit_per_class=10, balance={"policy": "per_class", "per_class": 12})
    dm.setup()
    assert dm.positive_index is None and dm.num_classes == 5
    assert sorted(dm.table["label"].value_counts().tolist()) == [10] * 5
    assert np.bincount(dm.table["label"].to_numpy()[dm.train_rows]).tolist() == [12] * 5
    again = _dm(root, tmp_path / "cache", task="region", limit_per_class=10, seed=7)
    again.setup()
    assert set(again.table["image_id"]) == set(dm.table["image_id"])  # limit independent of seed


def test_datamodule_mura_generated_and_hydra(tmp_path):
    cfg = OmegaConf.load("conf/data/tiny_mura.yaml")
    c = OmegaConf.create({"paths": {"data_dir": str(tmp_path / "d"), "cache_dir": str(tmp_path / "c")},
                          "seed": 0, "split_seed": 0, "data": cfg})
    dm = instantiate(c.data, image_size=24, balance={"policy": "oversample", "class_weight": True})
    assert not (tmp_path / "c" / "tiny_mura").exists()
    dm.setup("fit")
    assert (tmp_path / "c" / "tiny_mura" / "MURA-v1.1" / "train_image_paths.csv").is_file()
    assert dm.study_level and dm.classes == ["normal", "abnormal"]
    t = dm.table
    assert {"study_id", "patient_id"} <= set(t.columns)
    assert ((t["split"] == "test") == (t["official_split"] == "valid")).all()
    assert (t.groupby("patient_id")["split"].nunique() == 1).all()
    assert dm.class_weights is not None and dm.class_weights.shape == (2,)
    x, y, rows = next(iter(dm.train_dataloader()))
    assert x.shape[1:] == (3, 24, 24)
    assert len(dm.report["label_conflicts"]) == 1


def test_datamodule_errors_are_one_line(tmp_path, fa_root):
    root, _ = fa_root
    with pytest.raises(BenchError, match="data.task='abnormal' is not a fracatlas task"):
        _dm(root, tmp_path, task="abnormal")
    with pytest.raises(BenchError, match="does not exist"):
        _dm(tmp_path / "none", tmp_path / "c").setup()
    with pytest.raises(BenchError, match="inside the dataset root"):
        _dm(root, root / "cache").setup()
    assert not (root / "cache").exists()


# ----------------------------------------------------------------------------- CLIs
def test_cli_data_and_check(tmp_path, capsys):
    from bench.cli import check, data

    assert data.main(["fracatlas", "--out", str(tmp_path / "fa"), "--n", "30", "--seed", "1"]) == 0
    assert (tmp_path / "fa" / "dataset.csv").is_file()
    rc = check.main(["fracatlas", "--root", str(tmp_path / "fa"), "--split-ratios", "0.7,0.3",
                     "--json", str(tmp_path / "r.json"), "--image-size", "32", "--cache-dir", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert rc == 0 and "label conflicts (folder vs csv): 1" in out and "duplicate groups: 1 (2 files)" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n_images"] == 31 and report["leakage"]["ok"]
    assert report["split"]["ratios"] == [0.7, 0.3]
    rc = check.main(["mura", "--root", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert data.main(["mura", "--out", str(tmp_path / "m"), "--n", "12", "--no-bad-files"]) == 0
    assert check.main(["mura", "--root", str(tmp_path / "m"), "--image-size", "16", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "studies:" in capsys.readouterr().out


def test_augmented_batches_are_a_function_of_seed_and_epoch_only(fa_root, tmp_path):
    """What makes a resumed run equal an uninterrupted one: the shuffle and every sample's random
    augmentation come from (seed, epoch), not from whatever the global RNG went through before."""
    def first_batch(epoch: int, global_seed: int):
        dm = _dm(fa_root[0], tmp_path / "cache", augment="seed002", seed=3)
        dm.setup("fit")
        loader = dm.dataloader("train")
        loader.sampler.set_epoch(epoch)
        torch.manual_seed(global_seed)  # a different history of the global RNG
        x, y, rows = next(iter(loader))
        return x, rows

    a, rows_a = first_batch(epoch=2, global_seed=1)
    b, rows_b = first_batch(epoch=2, global_seed=999)
    assert torch.equal(rows_a, rows_b) and torch.equal(a, b)
    c, rows_c = first_batch(epoch=3, global_seed=1)
    assert not torch.equal(rows_a, rows_c)  # another epoch, another order
    # the same image in two epochs gets two different augmentations
    common = sorted(set(rows_a.tolist()) & set(rows_c.tolist()))
    if common:
        r = common[0]
        ia, ic = rows_a.tolist().index(r), rows_c.tolist().index(r)
        assert not torch.equal(a[ia], c[ic])


def test_seeded_augmentation_leaves_the_global_rng_alone(fa_root, tmp_path):
    dm = _dm(fa_root[0], tmp_path / "cache", augment="seed000", seed=0)
    dm.setup("fit")
    ds = dm.dataset_for("train")
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    ds[(0, 123)], ds[(1, 456)]
    assert torch.equal(torch.rand(3), expected)  # dropout etc. still see their own stream
