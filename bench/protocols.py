"""The seed papers' protocols, one table per preset (``conf/experiment/<name>.yaml``), as data.

Each row: a setting, what the paper states (quoted or summarised, with its table), what the
preset does, a status and the reason for any difference. Status:

- ``as stated``: ours is what the paper states;
- ``reading``: the paper is ambiguous or incomplete and ours is one stated interpretation;
- ``assumed``: the paper states nothing, ours is a choice;
- ``differs``: ours deliberately differs, for the reason given.

``docs/protocols.md`` is rendered from this data (:func:`render_markdown`; a test checks the
file matches) and the leaderboards read it (:func:`protocol_table`). ``checks`` tie rows to the
composed Hydra config: tests/test_protocols.py composes each preset with the overrides given and
asserts the key has the value, so the table cannot drift from the presets.
"""

from __future__ import annotations

import copy

STATUSES = ("as stated", "reading", "assumed", "differs")

SEED000 = ("Alabi et al., \"An Explainable ResNet-101 Framework for Hand Fracture Classification in X-ray Images\" "
           "(seed 000)")
SEED002 = ("Akhlaq et al., \"Diving Deep into Bone Anomalies on the FracAtlas Dataset using Deep Learning and "
           "Explainable AI\" (seed 002)")

_DL = ["model=resnet50"]  # any of the 19 Keras-named backbones
_YOLO = ["model=yolov8m_cls"]


def _row(setting, paper, ours, status, reason="", checks=()):
    assert status in STATUSES, status
    return {"setting": setting, "paper": paper, "ours": ours, "status": status, "reason": reason,
            "checks": [{"overrides": list(o), "key": k, "value": v} for o, k, v in checks]}


_WEIGHTS_002 = _row(
    "pretrained weights", "not stated; \"existing state-of-the-art\" Keras models, YOLOv8 through Ultralytics "
    "(whose trainer starts from ImageNet -cls weights)",
    "ImageNet-1k: timm's default weights for each architecture (not Keras' files), Ultralytics' yolov8*-cls.pt; "
    "offline from local files (weights_map)", "assumed",
    "from-scratch training on ~1,000 images is not what either library's user does by default; "
    "model.pretrained=false gives the from-scratch variant (recorded as such). NASNetMobile has no published "
    "timm weights: give a file or run it from scratch",
    [(_DL, "model.pretrained", True), (_YOLO, "model.pretrained", True)])
_FINETUNE_002 = _row(
    "layers trained", "not stated", "all layers (no frozen backbone)", "assumed",
    "Ultralytics fine-tunes every layer by default; the same for the 19 others keeps one rule for all 24",
    [(_DL, "model.freeze_backbone", False), (_YOLO, "model.freeze_backbone", False)])
_OPT_DL = _row(
    "optimizer, 19 non-YOLO backbones", "not stated", "Adam, lr 1e-3, no weight decay, constant rate", "assumed",
    "Keras' Adam defaults (the paper used Keras models)",
    [(_DL, "optim.name", "adam"), (_DL, "optim.lr", 1.0e-3), (_DL, "optim.weight_decay", 0.0)])
_OPT_YOLO = _row(
    "optimizer, YOLOv8-cls", "AdamW, learning rate 0.000714 (Table IV)",
    "AdamW, lr 7.14e-4, weight decay 5e-4", "as stated",
    "0.000714 is Ultralytics' optimizer=auto choice (FIELD_NOTES); weight decay is Ultralytics' default 5e-4 "
    "(assumed; Ultralytics exempts batch-norm weights and biases, we decay all parameters)",
    [(_YOLO, "optim.name", "adamw"), (_YOLO, "optim.lr", 7.14e-4), (_YOLO, "optim.weight_decay", 5.0e-4)])
_SCHED_YOLO = _row(
    "learning-rate schedule, YOLOv8-cls", "not stated (Ultralytics: 3 warm-up epochs, then linear decay to 1%)",
    "constant learning rate", "differs",
    "the harness trains every backbone with one Lightning loop without schedules; Ultralytics' warm-up and "
    "decay are not reproduced")
_BATCH_DL = _row("batch size, 19 non-YOLO backbones", "not stated", "32", "assumed", "Keras' fit() default",
                 [(_DL, "data.batch_size", 32)])
_BATCH_YOLO = _row("batch size, YOLOv8-cls", "not stated", "16", "assumed", "Ultralytics' default",
                   [(_YOLO, "data.batch_size", 16)])
_EPOCHS_DL = _row("epochs, 19 non-YOLO backbones", "not stated", "30", "assumed",
                  "the harness' preset value (seed 000 states 30 for the same kind of Keras model)",
                  [(_DL, "trainer.max_epochs", 30)])
_EARLY = _row("early stopping", "none stated", "none", "as stated",
              "the presets used to stop after 5 epochs without improvement, an addition neither paper states; "
              "Ultralytics' own patience (100) cannot fire within these epoch counts",
              [(_DL, "callbacks.early_stopping", None), (_YOLO, "callbacks.early_stopping", None)])
_NORM_002 = _row("input normalisation", "not stated", "each backbone's own: timm's pretrained mean/std; YOLO: [0, 1]",
                 "assumed", "what the pretrained weights expect")
_SEEDS_002 = _row("repeats, intervals", "one run per model, no confidence intervals or tests",
                  "seed=0 by default (sweep seed=0,1,2 for repeats); leaderboards add bootstrap CIs and paired tests",
                  "differs", "a single run cannot tell models apart; the split has its own seed, so seeds repeat on "
                  "the same test images")
_AUG_YOLO = _row("YOLOv8-cls training augmentation", "not stated (Ultralytics' trainer applies its defaults: "
                 "random resized crop, flips, HSV jitter, RandAugment, random erasing)",
                 "the preset's augmentation, the same as for the other backbones", "differs",
                 "our trainer does not run Ultralytics' data pipeline; its default augmentation is not reproduced")

PROTOCOLS: dict[str, dict] = {
    "seed002_binary": {
        "title": "Seed 002, binary stage: FracAtlas fractured / non-fractured, 24 backbones",
        "paper": SEED002,
        "command": "bench-train -m experiment=seed002_binary paths.data_dir=/data",
        "rows": [
            _row("dataset", "FracAtlas, 4,083 images (717 fractured)", "FracAtlas, labels from the image folders",
                 "as stated", "the one folder / CSV disagreement (IMG0003298, fractured) is a CSV error its authors "
                 "confirmed", [((), "data.dataset", "fracatlas"), ((), "data.task", "binary"),
                               ((), "data.label_source", "folder")]),
            _row("class balance", "non-fractured down-sampled to the number of fractured instances (716), before "
                 "the split", "717 per class (data.limit_per_class=717, a seed-independent choice), before the split",
                 "differs", "seed 002 counted fractured images with the CSV (716); the folder labels give 717, the "
                 "difference being IMG0003298", [((), "data.limit_per_class", 717), ((), "data.balance.policy", "none")]),
            _row("split", "70 / 30 train / test", "70 / 30, stratified, duplicate images kept on one side; 10% of "
                 "the 70 is validation: train 904 (452 / 452), val 100 (50 / 50), test 430 (215 / 215)", "differs",
                 "choosing a checkpoint needs a validation set and seed 002 states none; byte-identical images on both "
                 "sides would leak test images into training",
                 [((), "data.split.ratios", [0.7, 0.3]), ((), "data.split.val_fraction", 0.1)]),
            _row("image size, 19 non-YOLO backbones", "\"we resized the images to 244x244\"", "244 px", "as stated",
                 "244 may be a typo for 224 (the paper calls it \"most commonly used\", which 224 is, and the region "
                 "stage uses 224), but nothing confirms it; the stated value costs nothing. image_size=224 gives the "
                 "other reading", [(_DL, "image_size", 244)]),
            _row("image size, YOLOv8-cls", "640 (Table IV)", "640 px", "as stated",
                 "FracAtlas images are at most 512 px on a side, so every image is upsampled (bilinear, squashed to a "
                 "640 x 640 square, as every backbone's input here; Ultralytics' own classify transforms keep the aspect "
                 "ratio, resizing the short side to 640 and cropping)", [(_YOLO, "image_size", 640)]),
            _WEIGHTS_002, _FINETUNE_002,
            _row("head, 19 non-YOLO backbones", "\"a final layer with one node was added for binary classification\"",
                 "global average pooling -> Dense(1), sigmoid; loss BCE-with-logits (model.head.binary_output="
                 "one_logit)", "as stated",
                 "pooling is not stated: Keras' pooling='avg' is assumed; no dropout or hidden layer is stated",
                 [(_DL, "model.head", {"pool": "avg", "dropout": 0.0, "dense_units": 0, "binary_output": "one_logit"})]),
            _row("head, YOLOv8-cls", "Ultralytics' YOLOv8-cls (its classification head)",
                 "Ultralytics' Classify: 1x1 conv to 1280 -> average pool -> linear(2), softmax, dropout 0", "as stated",
                 "", [(_YOLO, "model.head", {"pool": "avg", "dropout": 0.0, "dense_units": 0,
                                             "binary_output": "two_logits"})]),
            _OPT_DL, _OPT_YOLO, _SCHED_YOLO, _BATCH_DL, _BATCH_YOLO, _EPOCHS_DL,
            _row("epochs, YOLOv8-cls", "not stated; \"callback epoch\" 53 (Table IV)", "100", "assumed",
                 "Ultralytics' default; the best epoch 53 lies within it", [(_YOLO, "trainer.max_epochs", 100)]),
            _row("checkpoint", "not stated; YOLO \"callback epoch\" 53 (read as Ultralytics' best epoch)",
                 "best validation epoch: ROC-AUC for the 19, top-1 accuracy for YOLO", "reading",
                 "Ultralytics' best.pt maximises its classification fitness, the mean of top-1 and top-5 accuracy; "
                 "top-5 is always 1 with two classes",
                 [(_DL, "monitor.metric", "val/auroc"), (_YOLO, "monitor.metric", "val/accuracy")]),
            _EARLY,
            _row("augmentation", "none stated for this stage", "none", "as stated", "", [((), "data.augment", "none")]),
            _AUG_YOLO, _NORM_002, _SEEDS_002,
            _row("metrics", "accuracy, precision, recall, F1 (Table V), fractured = positive",
                 "all four plus ROC-AUC, specificity, balanced accuracy and more; the paper's rows sit in the same "
                 "columns (accuracy, precision, recall, f1)", "as stated"),
        ],
    },
    "seed002_region": {
        "title": "Seed 002, region stage: FracAtlas hand / leg / hip / shoulder / mixed, 24 backbones",
        "paper": SEED002,
        "command": "bench-train -m experiment=seed002_region paths.data_dir=/data",
        "rows": [
            _row("classes", "five regions: hand, hip, leg, shoulder, mixed", "mixed when dataset.csv's mixed == 1, "
                 "otherwise the one region flag set", "as stated", "", [((), "data.task", "region")]),
            _row("images per class", "300 per class; hip and shoulder (\"179 and 101\") augmented up to 300, before "
                 "the split", "at most 300 real images per class: hand 300, leg 300, mixed 300, hip 179, shoulder 101 "
                 "(1,180), chosen independently of the seed", "differs",
                 "augmented copies made before the split reach the test set (copies of training images); we augment "
                 "the training split only", [((), "data.limit_per_class", 300)]),
            _row("split", "70 / 30 (as the binary stage)", "70 / 30 stratified, duplicate-grouped, 10% of the 70 as "
                 "validation. hand / leg / hip / shoulder / mixed: train 189 / 189 / 113 / 64 / 189 (744), val 21 / 21 / "
                 "12 / 7 / 21 (82), test 90 / 90 / 54 / 30 / 90 (354)", "differs",
                 "validation for checkpoint choice (none stated); counts as this code gives them on FracAtlas with "
                 "split_seed 0 (also in every run's data_report.json)",
                 [((), "data.split.ratios", [0.7, 0.3]), ((), "data.split.val_fraction", 0.1)]),
            _row("balancing", "the small classes (hip, shoulder) augmented up to the others' count",
                 "train split oversampled to its largest class: 189 per class (945 rows), the added copies being hip "
                 "76 and shoulder 125; hand, leg and mixed unchanged", "reading",
                 "the paper balances to 300 before splitting; after a 70/30 split (and the validation carve-out) the "
                 "counterpart is the largest train class", [((), "data.balance.policy", "oversample"),
                                                            ((), "data.balance.class_weight", False)]),
            _row("augmentation", "rotation range 40, width / height shift 0.2, shear and zoom 0.2, horizontal flip, "
                 "\"applied to the training images randomly\" to augment hip and shoulder",
                 "those transforms (data.augment=seed002) on the added copies only (data.balance.augment_rows=copies), "
                 "a fresh random draw per copy and epoch", "reading",
                 "\"these two classes needed augmentation\": the augmented images are the new hip / shoulder ones. "
                 "Keras' shear_range is in degrees, so the shear is +-0.2 deg",
                 [((), "data.augment", "seed002"), ((), "data.balance.augment_rows", "copies")]),
            _row("image size, 19 non-YOLO backbones", "224 x 224", "224 px", "as stated", "", [(_DL, "image_size", 224)]),
            _row("image size, YOLOv8-cls", "640 x 640 (text and Table IV)", "640 px", "as stated",
                 "FracAtlas images are at most 512 px: every image is upsampled (squashed to the square, as in the binary stage)", [(_YOLO, "image_size", 640)]),
            _WEIGHTS_002, _FINETUNE_002,
            _row("head, 19 non-YOLO backbones", "not restated (\"the same type of experiments\" as the binary stage)",
                 "global average pooling -> Dense(5), softmax", "reading", "the binary stage's one-node layer, widened "
                 "to the five classes", [(_DL, "model.head", {"pool": "avg", "dropout": 0.0, "dense_units": 0,
                                                              "binary_output": "two_logits"})]),
            _row("head, YOLOv8-cls", "Ultralytics' YOLOv8-cls", "Ultralytics' Classify -> linear(5), softmax", "as stated",
                 "", [(_YOLO, "model.head", {"pool": "avg", "dropout": 0.0, "dense_units": 0,
                                             "binary_output": "two_logits"})]),
            _OPT_DL, _OPT_YOLO, _SCHED_YOLO, _BATCH_DL, _BATCH_YOLO, _EPOCHS_DL,
            _row("epochs, YOLOv8-cls", "not stated; \"callback epoch\" 143 (Table IV)", "150", "assumed",
                 "a best epoch of 143 means training ran past Ultralytics' default 100 epochs; 150 is the smallest "
                 "round count above it", [(_YOLO, "trainer.max_epochs", 150)]),
            _row("checkpoint", "not stated; YOLO \"callback epoch\" 143", "best validation epoch: macro ROC-AUC for the "
                 "19, top-1 accuracy for YOLO", "reading", "as in the binary stage",
                 [(_DL, "monitor.metric", "val/auroc"), (_YOLO, "monitor.metric", "val/accuracy")]),
            _EARLY, _AUG_YOLO, _NORM_002, _SEEDS_002,
            _row("metrics", "A, P, R, F1 as macro averages over the five classes (Table IX); A equals R in all 24 "
                 "rows, i.e. macro recall = balanced accuracy", "macro precision / recall / F1 and balanced accuracy; "
                 "the paper's A sits in the balanced_accuracy column, not in plain accuracy", "as stated"),
        ],
    },
    "seed000": {
        "title": "Seed 000: MURA hand, ResNet-101, Table 8's three variants (raw, balanced, balanced + tuned)",
        "paper": SEED000,
        "command": "bench-train -m experiment=seed000 paths.data_dir=/data",
        "rows": [
            _row("dataset", "MURA hand, 4,322 images (3,117 normal / 1,205 fractured) selected by the authors",
                 "MURA v1.1 XR_HAND, all train + valid images, abnormal = positive", "differs",
                 "the selection is not published; MURA's label is abnormal, not only fractured",
                 [((), "data.dataset", "mura")]),
            _row("split", "72 / 18 / 10 train / validation / test", "72 / 18 / 10, grouped by patient", "as stated",
                 "grouping keeps one patient's images on one side", [((), "data.split.ratios", [0.72, 0.18, 0.10])]),
            _row("image size, normalisation", "224 x 224, ImageNet mean and standard deviation", "224 px, ImageNet "
                 "mean / std (timm's resnet101 config)", "as stated", "", [((), "image_size", 224)]),
            _row("backbone", "ResNet-101 \"utilized as a feature extractor\"", "timm resnet101 with ImageNet weights, "
                 "frozen: only the head trains, batch-norm statistics kept (model.freeze_backbone=true)", "reading",
                 "\"feature extractor\" is Keras' frozen base (trainable=False); the reported training accuracy "
                 "stays at about 70-74% over 30 epochs (Figs. 5 and 9), far below what a fine-tuned ResNet-101 reaches "
                 "on a few thousand images; and the search tuned head settings only. model.freeze_backbone=false "
                 "gives the fine-tuning reading",
                 [((), "model.name", "resnet101"), ((), "model.pretrained", True), ((), "model.freeze_backbone", True)]),
            _row("head", "global average pooling -> Dropout (0.30) -> Dense (512 units) -> softmax (2) (Table 3)",
                 "the same, ReLU on the dense layer", "as stated", "the dense layer's activation is not stated (ReLU "
                 "assumed); Table 3 is the architecture of all three variants",
                 [((), "model.head", {"pool": "avg", "dropout": 0.3, "dense_units": 512, "binary_output": "two_logits"}),
                  (["variant=raw"], "model.head.dense_units", 512), (["variant=raw"], "model.head.dropout", 0.3)]),
            _row("loss", "categorical cross-entropy", "cross-entropy over the two logits", "as stated"),
            _row("optimizer", "Adam; learning rate 5.52e-4 after the search (Tables 4 and 7)", "Adam: raw and balanced "
                 "1e-3, tuned 5.52e-4; no weight decay", "assumed", "the untuned learning rate is not published: "
                 "Keras' Adam default 1e-3",
                 [((), "optim.name", "adam"), (["variant=raw"], "optim.lr", 1.0e-3),
                  (["variant=balanced"], "optim.lr", 1.0e-3), (["variant=tuned"], "optim.lr", 5.52e-4)]),
            _row("batch size, epochs", "32, 30 epochs", "32, 30 epochs", "as stated",
                 "", [((), "data.batch_size", 32), ((), "trainer.max_epochs", 30)]),
            _row("early stopping, checkpoint", "none stated; \"monitored using the validation set\"",
                 "no early stopping; the best validation ROC-AUC epoch is tested", "reading",
                 "the presets used to stop after 5 epochs without improvement (not stated)",
                 [((), "callbacks.early_stopping", None), ((), "monitor.metric", "val/auroc")]),
            _row("balancing (balanced, tuned)", "the fractured class increased with augmented images until balanced "
                 "(1,205 -> 3,117), training set only, plus class weighting",
                 "train split oversampled to the majority count; class weights computed from the rows trained on",
                 "reading", "the two combine ambiguously: weights computed after exact balancing are 1 (they change "
                 "nothing here and act only if balancing is partial); weights from the counts before oversampling, "
                 "applied to balanced rows, count the imbalance twice (a 2,244 / 868 split gives the minority 2.59x "
                 "the loss). We take the first",
                 [(["variant=balanced"], "data.balance.policy", "oversample"),
                  (["variant=balanced"], "data.balance.class_weight", True),
                  (["variant=tuned"], "data.balance.policy", "oversample"),
                  (["variant=raw"], "data.balance.policy", "none")]),
            _row("augmentation (balanced, tuned)", "\"primarily applied to fractured images\": rotation +-15 deg, "
                 "horizontal flip, brightness and contrast +-20%, minor zoom and translation",
                 "those transforms (zoom 0.9-1.1, shift 0.1 assumed) on the added fractured copies only; the original "
                 "images unchanged", "reading", "the augmented images are the new fractured samples",
                 [(["variant=balanced"], "data.augment", "seed000"),
                  (["variant=balanced"], "data.balance.augment_rows", "copies"),
                  (["variant=raw"], "data.augment", "none")]),
            _row("hyper-parameter search (tuned)", "Bayesian optimisation, 10 trials, over dropout, dense units and "
                 "learning rate; best 0.30 / 512 / 5.52e-4", "the best values as published (variant=tuned); "
                 "hparams_search=seed000_optuna reruns a 10-trial TPE search on validation", "as stated"),
            _row("repeats, intervals", "one fixed split, no cross-validation or significance tests (stated)",
                 "seeds and bootstrap CIs on leaderboards", "differs", "as for seed 002"),
            _row("metrics", "accuracy, recall, specificity, ROC-AUC per image (Table 8; test set of 601 images)",
                 "the same per image (metrics.test) and per study (metrics.test_study); the paper's rows sit in the "
                 "image-level columns", "as stated"),
        ],
    },
}


def protocol_names() -> list[str]:
    return list(PROTOCOLS)


def protocol_table(name: str, with_checks: bool = False) -> list[dict]:
    """Rows of preset ``name``: setting, paper, ours, status, reason (and checks if asked)."""
    if name not in PROTOCOLS:
        from bench.errors import BenchError

        raise BenchError(f"no protocol table for {name!r}: known presets are {', '.join(PROTOCOLS)}")
    rows = copy.deepcopy(PROTOCOLS[name]["rows"])
    if not with_checks:
        for r in rows:
            r.pop("checks", None)
    return rows


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown() -> str:
    out = ["# Protocols of the seed presets", "",
           "<!-- Generated from bench/protocols.py by `python -m bench.protocols > docs/protocols.md`; "
           "tests/test_protocols.py checks that this file matches. Do not edit by hand. -->", "",
           "One table per preset in `conf/experiment/`: what the paper states, what the preset does, and why they "
           "differ. Status: **as stated** (ours = the paper), **reading** (the paper is ambiguous; ours is one stated "
           "interpretation), **assumed** (the paper states nothing; ours is a choice), **differs** (deliberately "
           "different, for the reason given). Every row with a config key is checked against the composed preset "
           "by tests/test_protocols.py.", "",
           "FracAtlas (Abedeen et al., Scientific Data 10, 521, 2023) is CC BY 4.0; its counts appear below.", ""]
    for name, p in PROTOCOLS.items():
        out += [f"## `{name}`: {p['title']}", "", f"Paper: {p['paper']}. Run: `{p['command']}`.", "",
                "| setting | paper | ours | status | why |", "| --- | --- | --- | --- | --- |"]
        for r in p["rows"]:
            out.append("| " + " | ".join(_cell(r[k]) for k in ("setting", "paper", "ours", "status", "reason")) + " |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(render_markdown(), end="")
