"""Splits: stratification, groups never straddle, determinism, split files, leakage check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.data.splits import check_leakage, make_split, read_split, split_hash, write_split
from bench.errors import BenchError


def _table(n=600, pos=0.2, group_every=0, seed=0, official=False):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < pos).astype(int)
    ids = [f"IMG{i:07d}.jpg" for i in range(n)]
    groups = list(ids)
    if group_every:
        # groups of 1..4 rows with a shared label, like duplicate sets / patients
        g, i = 0, 0
        while i < n:
            k = int(rng.integers(1, 5))
            for j in range(i, min(n, i + k)):
                groups[j] = f"G{g}"
                labels[j] = labels[i]
            g, i = g + 1, i + k
    t = pd.DataFrame({"image_id": ids, "label": labels, "group": groups})
    if official:
        t["official_split"] = np.where(rng.random(n) < 0.2, "valid", "train")
    return t


@pytest.mark.parametrize("ratios", [[0.72, 0.18, 0.10], [0.7, 0.3]])
def test_ratio_split_is_stratified_and_sized(ratios):
    t = _table()
    t["split"] = make_split(t, ratios=ratios, val_fraction=0.1, seed=4)
    n, pos = len(t), t["label"].mean()
    want = {"train": ratios[0], "val": ratios[1], "test": ratios[2]} if len(ratios) == 3 else \
        {"train": ratios[0] * 0.9, "val": ratios[0] * 0.1, "test": ratios[1]}
    for s, frac in want.items():
        part = t[t["split"] == s]
        assert abs(len(part) / n - frac) < 0.01, (s, len(part))
        assert abs(part["label"].mean() - pos) < 0.02, (s, part["label"].mean(), pos)


def test_groups_never_straddle_and_seed_is_deterministic():
    t = _table(group_every=1)
    assert t["group"].nunique() < len(t) * 0.5
    a = t.assign(split=make_split(t, seed=7))
    b = t.assign(split=make_split(t, seed=7))
    c = t.assign(split=make_split(t, seed=8))
    assert (a.groupby("group")["split"].nunique() == 1).all()
    assert check_leakage(a) == {"ok": True, "groups_across_splits": []}
    assert split_hash(a) == split_hash(b)
    assert split_hash(a) != split_hash(c)
    # hash ignores row order and other columns
    assert split_hash(a.sample(frac=1, random_state=0).assign(extra=1)) == split_hash(a)
    # stratification still close with groups
    for s in ("train", "val", "test"):
        assert abs(a.loc[a["split"] == s, "label"].mean() - a["label"].mean()) < 0.05


def test_kfold_folds_partition_the_data():
    t = _table(n=300, group_every=1)
    tests = []
    for fold in range(5):
        s = make_split(t, method="kfold", n_folds=5, fold=fold, val_fraction=0.1, seed=1)
        part = t.assign(split=s)
        assert check_leakage(part)["ok"]
        tests.append(set(part.loc[part["split"] == "test", "image_id"]))
        assert (s == "val").sum() > 0
    assert set().union(*tests) == set(t["image_id"])
    assert sum(len(x) for x in tests) == len(t)  # disjoint


def test_official_split_uses_valid_as_test_and_val_by_patient():
    t = _table(n=400, group_every=1, official=True)
    # official splits come per patient in MURA: make it consistent per group
    t["official_split"] = t.groupby("group")["official_split"].transform("first")
    s = make_split(t, method="official", val_fraction=0.15, seed=0)
    assert ((s == "test") == (t["official_split"] == "valid")).all()
    part = t.assign(split=s)
    assert check_leakage(part)["ok"]
    train_like = part[part["official_split"] == "train"]
    assert abs((train_like["split"] == "val").mean() - 0.15) < 0.03
    with pytest.raises(BenchError, match="official needs a dataset with an official split"):
        make_split(t.drop(columns="official_split"), method="official")


def test_bad_split_settings_are_one_line_errors():
    t = _table(n=50)
    for kw, msg in [({"ratios": [0.5, 0.6]}, "summing to 1"), ({"ratios": [1.0]}, "give 2"),
                    ({"method": "kfold", "fold": 5}, "0 <= fold < n_folds"), ({"method": "bogus"}, "use ratio, kfold"),
                    ({"ratios": [0.7, 0.3], "val_fraction": 0}, "val_fraction")]:
        with pytest.raises(BenchError, match=msg):
            make_split(t, **kw)


def test_split_file_round_trip_and_errors(tmp_path):
    t = _table(n=100, group_every=1)
    t["split"] = make_split(t, seed=3)
    path = write_split(t, tmp_path / "runs" / "split.csv")
    text = path.read_text()
    assert text.splitlines()[0] == "image_id,split,group"
    back = read_split(path, t.drop(columns="split"))
    assert (back["split"] == t["split"]).all() and split_hash(back) == split_hash(t)

    extra = tmp_path / "extra.csv"
    extra.write_text(text + "IMG9999999.jpg,train,IMG9999999.jpg\n")
    with pytest.raises(BenchError, match=r"extra.csv: image IMG9999999.jpg is not in the dataset"):
        read_split(extra, t)
    lines = text.splitlines()
    short = tmp_path / "short.csv"
    short.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    missing_id = lines[1].split(",")[0]
    with pytest.raises(BenchError, match=f"short.csv: image {missing_id} of the dataset has no split"):
        read_split(short, t)
    bad = tmp_path / "bad.csv"
    bad.write_text(lines[0] + "\n" + lines[1].replace(",train,", ",training,").replace(",val,", ",training,").replace(",test,", ",training,") + "\n")
    with pytest.raises(BenchError, match="use train, val or test"):
        read_split(bad, t)
    with pytest.raises(BenchError, match="split file not found"):
        read_split(tmp_path / "nope.csv", t)


def test_leakage_check_finds_group_and_patient_across_splits():
    t = pd.DataFrame({"image_id": list("abcd"), "label": [0, 0, 1, 1], "group": ["g1", "g1", "g2", "g3"],
                      "patient_id": ["p1", "p2", "p2", "p3"], "split": ["train", "test", "train", "val"]})
    res = check_leakage(t)
    assert res == {"ok": False, "groups_across_splits": ["g1"], "patients_across_splits": ["p2"]}
