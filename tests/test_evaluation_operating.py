"""Operating point: chosen on validation only (test labels cannot move it), each rule does what
its name says (checked against scikit-learn's ROC), CIs bracket the test value, bad config fails
with one line naming the key."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_curve

from bench.errors import BenchError
from bench.evaluation.operating import choose_threshold, operating_point, validate_config

CLASSES = ["non_fractured", "fractured"]


def _split(rng, n, prevalence=0.2, signal=1.2):
    labels = (rng.random(n) < prevalence).astype(int)
    logit = rng.normal(size=n) + signal * labels - 1.0
    p1 = 1 / (1 + np.exp(-logit))
    return np.column_stack([1 - p1, p1]), labels


@pytest.mark.parametrize("rule", ["youden", "target_sensitivity"])
def test_threshold_ignores_test_labels(rule):
    rng = np.random.default_rng(0)
    val_p, val_y = _split(rng, 300)
    test_p, test_y = _split(rng, 200)
    cfg = {"rule": rule, "target_sensitivity": 0.9}
    entry, at_test = operating_point(cfg, val_p, val_y, test_p, test_y, 1, CLASSES)
    shuffled = rng.permutation(test_y)
    assert not np.array_equal(shuffled, test_y)
    entry2, at_test2 = operating_point(cfg, val_p, val_y, test_p, shuffled, 1, CLASSES)
    assert entry["threshold"] == entry2["threshold"] == at_test["threshold"] == at_test2["threshold"]
    assert entry["validation"] == entry2["validation"]
    assert at_test["recall"] != at_test2["recall"]  # test metrics do see the labels
    # ... while the validation labels do move it
    entry3, _ = operating_point(cfg, val_p, rng.permutation(val_y), test_p, test_y, 1, CLASSES)
    assert entry3["threshold"] != entry["threshold"]


def test_youden_maximises_j_on_the_sklearn_roc():
    rng = np.random.default_rng(3)
    p, y = _split(rng, 400)
    thr = choose_threshold(p[:, 1], y == 1, "youden")
    fpr, tpr, thresholds = roc_curve(y, p[:, 1])
    j = tpr - fpr
    assert thr == pytest.approx(thresholds[np.argmax(j)], abs=1e-6)
    called = p[:, 1] >= thr
    assert called[y == 1].mean() - called[y == 0].mean() == pytest.approx(j.max(), abs=1e-6)


def test_target_sensitivity_is_the_most_specific_threshold_reaching_it():
    rng = np.random.default_rng(4)
    p, y = _split(rng, 400)
    thr = choose_threshold(p[:, 1], y == 1, "target_sensitivity", target_sensitivity=0.9)
    score = p[:, 1]
    sens = lambda t: (score[y == 1] >= t).mean()  # noqa: E731
    spec = lambda t: (score[y == 0] < t).mean()  # noqa: E731
    assert sens(thr) >= 0.9
    reaching = [t for t in np.unique(score) if sens(t) >= 0.9]
    assert spec(thr) == pytest.approx(max(spec(t) for t in reaching), abs=1e-6)


def test_fixed_rule_and_test_metrics_with_cis():
    rng = np.random.default_rng(5)
    val_p, val_y = _split(rng, 200)
    test_p, test_y = _split(rng, 300)
    entry, at = operating_point({"rule": "fixed", "threshold": 0.3}, val_p, val_y, test_p, test_y, 1, CLASSES)
    assert entry["threshold"] == at["threshold"] == 0.3
    called = test_p[:, 1] >= 0.3
    assert at["recall"] == pytest.approx(called[test_y == 1].mean())
    assert at["specificity"] == pytest.approx((~called)[test_y == 0].mean())
    for key, value in (("sensitivity", at["recall"]), ("specificity", at["specificity"])):
        ci = at["ci"][key]
        assert ci["low"] <= value <= ci["high"] and ci["high"] - ci["low"] > 0.01, (key, ci)


def test_multiclass_keeps_the_argmax():
    rng = np.random.default_rng(6)
    p = rng.dirichlet([1, 1, 1], size=50)
    entry, at = operating_point({"rule": "youden"}, p, rng.integers(0, 3, 50), p, rng.integers(0, 3, 50), None, list("abc"))
    assert entry == {"rule": "argmax", "threshold": None, "level": "image"} and at is None


def test_one_class_validation_gives_no_threshold():
    rng = np.random.default_rng(7)
    val_p, _ = _split(rng, 40)
    test_p, test_y = _split(rng, 40)
    entry, at = operating_point({"rule": "youden"}, val_p, np.zeros(40, int), test_p, test_y, 1, CLASSES)
    assert entry["threshold"] is None and "one class" in entry["note"] and at is None


@pytest.mark.parametrize("cfg, key", [
    ({"rule": "best"}, "operating_point.rule"),
    ({"rule": "fixed", "threshold": None}, "operating_point.threshold"),
    ({"rule": "fixed", "threshold": 1.5}, "operating_point.threshold"),
    ({"rule": "target_sensitivity", "target_sensitivity": 0}, "operating_point.target_sensitivity"),
])
def test_bad_config_is_one_line_naming_the_key(cfg, key):
    with pytest.raises(BenchError, match=key) as exc:
        validate_config(cfg)
    assert "\n" not in str(exc.value)
    validate_config({"rule": "youden", "target_sensitivity": 0.9, "threshold": None})


def _preds(rng, split, n, study=False):
    p, y = _split(rng, n, prevalence=0.4, signal=2.0)
    df = pd.DataFrame({"image_id": [f"{split}{i}" for i in range(n)], "split": split, "label": y,
                       "prob_normal": p[:, 0], "prob_abnormal": p[:, 1]})
    if study:  # two images per study, same label
        df["label"] = np.repeat(y[::2], 2)[:n]
        df["study_id"] = [f"{split}s{i // 2}" for i in range(n)]
        df["patient_id"] = df["study_id"]
    return df


def test_mura_gets_a_study_level_operating_point_too(tmp_path):
    from types import SimpleNamespace

    from bench.evaluation.results import evaluate_extras

    rng = np.random.default_rng(8)
    preds = pd.concat([_preds(rng, "val", 120, study=True), _preds(rng, "test", 100, study=True)], ignore_index=True)
    dm = SimpleNamespace(classes=["normal", "abnormal"], positive_index=1, study_level=True, dataset="mura",
                         table=pd.DataFrame({"image_id": preds["image_id"], "study_id": preds["study_id"]}), root=None)
    out = evaluate_extras({"rule": "youden"}, preds, {"test": {"ece": 0.1}}, dm, tmp_path)
    op = out["operating_point"]
    assert op["level"] == "image" and op["study"]["level"] == "study"
    assert op["study"]["validation"]["n"] == 60  # 120 validation images in 60 studies
    assert out["metrics"]["test_study_operating"]["n"] == 50
    assert out["metrics"]["test_study_operating"]["threshold"] == op["study"]["threshold"]
    assert out["subgroups"] == {}  # MURA has no FracAtlas attributes
    assert (tmp_path / "plots" / "reliability.png").stat().st_size > 1000
