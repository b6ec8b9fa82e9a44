"""Published numbers from the two seed papers (``../shared/seeds/``), as data.

They are shown beside our runs, marked "reported elsewhere", and never ranked with them or used
as the best row: the protocols differ (other splits, other preprocessing, single runs, no CIs).
Values are fractions (the papers' percentages divided by 100), transcribed from the tables.

Each value sits in the column with the same definition as ours: ``level`` says whether it was
measured per image or per study (all of these are per image, so on MURA's study-level tasks they
go in the image-level ``test_*`` columns, never ``test_study_*``); seed 002 Table IX's "A" is a
macro average equal to its macro recall in all 24 rows, i.e. balanced accuracy, so it is in
``balanced_accuracy`` and plain ``accuracy`` is empty. Rows are shown only beside tasks over the
real dataset (the leaderboard leaves them off generated fixtures, ``data.generated``).
"""

from __future__ import annotations

import pandas as pd

SEED002 = ("Akhlaq, Ali, Imran, Daudpota, Kastrati: \"Diving Deep into Bone Anomalies on the FracAtlas "
           "Dataset using Deep Learning and Explainable AI\" (seed 002)")
SEED000 = ("Alabi, Yusuff, Abdulsalam, Akuji, Ajiboye: \"An Explainable ResNet-101 Framework for Hand "
           "Fracture Classification in X-ray Images\" (seed 000)")

P002_BINARY = ("seed 002: FracAtlas binary, non-fractured downsampled to 716/716, resized to 244 px, "
               "70/30 train/test split (no validation set stated), Keras ImageNet models + YOLOv8-cls, "
               "single run, no CI")
P002_REGION = ("seed 002: FracAtlas 5-way region, 300 images per class (hip and shoulder augmented up), "
               "224 px (YOLO 640 px), split as the binary module, macro averages, single run, no CI")
P000_TABLE8 = ("seed 000: MURA XR_HAND image-level, 4,322 images selected by the authors, own 72/18/10 "
               "split, ResNet-101 ImageNet, 224 px, single run, no CI")
P000_TABLE9 = ("as cited by seed 000 Table 9: MURA hand, protocol of the cited study (not reproduced), "
               "accuracy only")

# seed 002 Table V: A, P, R, F1 (binary, fractured = positive)
_TABLE_V = """
Xception 0.60 0.58 0.67 0.61
VGG16 0.75 0.75 0.77 0.75
VGG19 0.73 0.69 0.81 0.74
ResNet50 0.75 0.73 0.78 0.75
ResNet50V2 0.48 0.23 0.02 0.04
ResNet101 0.73 0.71 0.79 0.74
ResNet101V2 0.56 0.55 0.70 0.61
ResNet152V2 0.55 0.59 0.30 0.39
InceptionV3 0.51 0.52 0.25 0.33
InceptionResNetV2 0.50 0.51 1.00 0.67
MobileNetV2 0.66 0.63 0.81 0.70
DenseNet121 0.64 0.61 0.78 0.68
DenseNet169 0.63 0.60 0.69 0.64
DenseNet201 0.67 0.62 0.83 0.71
NASNetMobile 0.59 0.59 0.72 0.64
NASNetLarge 0.57 0.58 0.47 0.51
EfficientNetB7 0.71 0.71 0.66 0.68
EfficientNetV2B3 0.68 0.63 0.87 0.72
EfficientNetV2L 0.72 0.71 0.77 0.73
YOLOv8n 0.80 0.74 0.85 0.79
YOLOv8s 0.82 0.79 0.84 0.81
YOLOv8m 0.83 0.87 0.81 0.83
YOLOv8l 0.81 0.88 0.78 0.82
YOLOv8x 0.76 0.79 0.74 0.76
"""

# seed 002 Table IX: A, P, R, F1 (macro over the five regions)
_TABLE_IX = """
Xception 0.77 0.77 0.77 0.77
VGG16 0.94 0.94 0.94 0.94
VGG19 0.93 0.93 0.93 0.93
ResNet50 0.95 0.95 0.95 0.95
ResNet50V2 0.39 0.39 0.39 0.28
ResNet101 0.95 0.95 0.95 0.95
ResNet101V2 0.36 0.52 0.36 0.24
ResNet152V2 0.20 0.24 0.20 0.07
InceptionV3 0.71 0.71 0.71 0.71
InceptionResNetV2 0.20 0.04 0.20 0.07
MobileNetV2 0.84 0.84 0.84 0.84
DenseNet121 0.80 0.80 0.80 0.79
DenseNet169 0.79 0.80 0.79 0.79
DenseNet201 0.81 0.81 0.81 0.81
NASNetMobile 0.66 0.66 0.66 0.66
NASNetLarge 0.77 0.77 0.77 0.77
EfficientNetB7 0.95 0.95 0.95 0.95
EfficientNetV2B3 0.94 0.94 0.94 0.94
EfficientNetV2L 0.95 0.95 0.95 0.95
YOLOv8n 0.91 0.91 0.91 0.91
YOLOv8s 0.96 0.96 0.96 0.96
YOLOv8m 0.95 0.95 0.95 0.95
YOLOv8l 0.95 0.95 0.95 0.95
YOLOv8x 0.95 0.95 0.95 0.95
"""

METRIC_COLUMNS = ["accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1", "auroc"]
COLUMNS = ["dataset", "kind", "model", "level", *METRIC_COLUMNS, "protocol", "source", "citation", "note"]


def _apr_f1(text: str, dataset: str, kind: str, protocol: str, table: str, a_column: str) -> list[dict]:
    rows = []
    for line in text.strip().splitlines():
        name, a, p, r, f1 = line.split()
        rows.append({"dataset": dataset, "kind": kind, "model": name, "level": "image", a_column: float(a),
                     "precision": float(p), "recall": float(r), "f1": float(f1), "protocol": protocol,
                     "source": f"reported elsewhere: seed 002 {table}", "citation": f"{SEED002}, {table}"})
    return rows


def literature_table() -> pd.DataFrame:
    """All published rows, one per (paper table, model/setting)."""
    rows = _apr_f1(_TABLE_V, "fracatlas", "binary", P002_BINARY, "Table V", "accuracy")
    # Table IX: "All these metrics are macro averages" and A == R in every row: balanced accuracy
    rows += _apr_f1(_TABLE_IX, "fracatlas", "multiclass", P002_REGION, "Table IX", "balanced_accuracy")
    for setting, acc, rec, spec, auc, note in (
        ("raw", 0.74, 0.341, 0.956, 0.263, "AUC below 0.5 as published"),
        ("balanced", 0.765, 0.473, 0.878, 0.767, ""),
        ("balanced + tuned", 0.797, 0.425, 0.940, 0.7512, "Bayesian search, 10 trials"),
    ):
        rows.append({"dataset": "mura", "kind": "binary", "model": f"ResNet-101 ({setting})", "level": "image", "accuracy": acc,
                     "recall": rec, "specificity": spec, "auroc": auc, "protocol": P000_TABLE8,
                     "source": "reported elsewhere: seed 000 Table 8", "citation": f"{SEED000}, Table 8",
                     "note": note})
    for ref, acc, cite in (
        ("[22]", 0.7536, "Kandel, Castelli, Popovič (2020), J. Imaging 6(11):127, doi:10.3390/jimaging6110127"),
        ("[23]", 0.7459, "Kandel, Castelli, Popovič (2021), J. Imaging 7(6):100, doi:10.3390/jimaging7060100"),
    ):
        # image-level: seed 000 sets them beside its own image-level accuracy
        rows.append({"dataset": "mura", "kind": "binary", "model": f"Multiple CNNs {ref}", "level": "image", "accuracy": acc,
                     "protocol": P000_TABLE9, "source": "reported elsewhere: seed 000 Table 9",
                     "citation": f"{cite}; as cited in {SEED000}, Table 9", "note": ""})
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["note"] = df["note"].fillna("")
    return df


def literature_for(dataset: str, kind: str, generated: bool = False) -> pd.DataFrame:
    """Published rows for a task of ``dataset`` and ``kind`` ('binary' or 'multiclass'); none for a
    task over generated data (a fixture is not the paper's dataset)."""
    lit = literature_table()
    if generated:
        return lit.iloc[0:0].reset_index(drop=True)
    k = "binary" if kind == "binary" else "multiclass"
    return lit[(lit["dataset"] == dataset) & (lit["kind"] == k)].reset_index(drop=True)


def literature_metric_columns(lit: pd.DataFrame, metrics=METRIC_COLUMNS) -> pd.DataFrame:
    """The leaderboard's ``<split>_<metric>_mean`` columns of published rows: image-level values
    in ``test_*``, study-level ones in ``test_study_*`` (whatever the task's primary split)."""
    out = pd.DataFrame(index=lit.index)
    for m in metrics:
        if m not in lit.columns:
            continue
        values = pd.to_numeric(lit[m], errors="coerce")
        for level, split in (("image", "test"), ("study", "test_study")):
            col = values.where(lit["level"] == level)
            if col.notna().any():
                out[f"{split}_{m}_mean"] = col
    return out
