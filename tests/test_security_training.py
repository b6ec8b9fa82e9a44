"""Issue 9, training side: checkpoints are data, paths stay in their folders, exact and robust
resume, validation before anything is written, nothing in $HOME, Hydra's errors exit 2, and the
dataset's fingerprint in the run id. Lock tests: test_run_lock.py."""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.checkpoints import load_checkpoint, load_ultralytics
from bench.errors import BenchError
from bench.paths import confined, slug
from bench.training.callbacks import LastCheckpoint, ThroughputMeter
from bench.training.resume import apply_retention, resume_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from training_helpers import BENCH_TRAIN, TINY, child_env, compose, paths, run_id_of, tree  # noqa: E402


@pytest.fixture
def restore_env():
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


class OpenOnUnpickle:
    """A checkpoint payload: unpickling it creates ``marker`` (any code could run instead)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ------------------------------------------------------------------------------- path confinement


@pytest.mark.parametrize("value,expected", [
    ("../../escaped", "escaped"), ("fracatlas_binary", "fracatlas_binary"), ("a/b\\c", "a-b-c"),
    (".hidden", "hidden"), ("-rf", "rf"), ("x..y", "x-y"), ("ok.v2", "ok.v2"), ("ünï cödé", "n-c-d"),
])
def test_slug_makes_one_safe_path_component(value, expected):
    assert slug(value) == expected


@pytest.mark.parametrize("value", ["..", "/", "", "///...", "ü"])
def test_slug_of_nothing_usable_is_an_error_naming_the_key(value):
    with pytest.raises(BenchError, match="data.name="):
        slug(value, "data.name")


def test_confined_refuses_parent_absolute_and_symlinked_escapes(tmp_path):
    base = tmp_path / "runs"
    base.mkdir()
    assert confined(base, "run1", "checkpoints") == (base / "run1" / "checkpoints").resolve()
    for parts in (("..", "x"), ("/etc",), ("a", "..", "..", "b")):
        with pytest.raises(BenchError, match="outside its folder"):
            confined(base, *parts)
    (base / "link").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(BenchError, match="outside its folder"):
        confined(base, "link", "x")


# ----------------------------------------------------------------------------- checkpoints are data


def test_crafted_checkpoint_payload_is_live_under_pickle_and_refused_here(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "best.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 0, "extra": OpenOnUnpickle(marker)}, path)
    torch.load(path, weights_only=False)  # what the harness did before: the payload runs
    assert marker.exists()
    marker.unlink()
    with pytest.raises(BenchError) as err:
        load_checkpoint(path)
    assert "refused to load" in str(err.value) and "GLOBAL io.open" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(BenchError, match="refused to load"):
        load_ultralytics(path)
    assert not marker.exists()


def _ultralytics_pt(path: Path, nc: int = 3, extra: dict | None = None) -> nn.Module:
    """A checkpoint written the way Ultralytics' trainer writes one: whole model objects (half
    precision EMA), its args namespace, train args and metrics."""
    from ultralytics.nn.tasks import ClassificationModel
    from ultralytics.utils import DEFAULT_CFG_DICT, IterableSimpleNamespace

    torch.manual_seed(3)
    model = ClassificationModel(cfg="yolov8n-cls.yaml", nc=nc, verbose=False)
    model.args = IterableSimpleNamespace(**DEFAULT_CFG_DICT)
    model.names = {i: f"class{i}" for i in range(nc)}
    torch.save({"epoch": 4, "best_fitness": 0.5, "model": None, "ema": copy.deepcopy(model).half(), "updates": 40,
                "optimizer": None, "train_args": dict(DEFAULT_CFG_DICT), "train_metrics": {"metrics/accuracy_top1": 0.5},
                "date": "2026-12-01T00:00:00", "version": "8.4.0", **(extra or {})}, path)
    return model.half().float()


def test_ultralytics_format_checkpoint_loads_as_data(tmp_path):
    ref = _ultralytics_pt(tmp_path / "yolov8n-cls.pt")
    ckpt = load_ultralytics(tmp_path / "yolov8n-cls.pt")
    ema = ckpt["ema"]
    assert type(ema).__name__ == "ClassificationModel" and ema.names == {0: "class0", 1: "class1", 2: "class2"}
    assert ckpt["train_args"]["imgsz"] == ref.args.imgsz
    got, want = ema.float().state_dict(), ref.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    # ... and the zoo builds a pretrained YOLOv8-cls from it (bench.models.yolo reads it the same way)
    from bench.models import create_model

    model = create_model("yolov8n_cls", 3, pretrained=True, weights=str(tmp_path / "yolov8n-cls.pt"))
    backbone = model.backbone.state_dict()
    assert all(torch.equal(backbone[k], want[k]) for k in backbone)


def test_ultralytics_file_with_a_payload_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "marker"
    _ultralytics_pt(tmp_path / "evil.pt", extra={"callbacks": OpenOnUnpickle(marker)})
    with pytest.raises(BenchError, match=r"refused to load .*evil.pt.*io.open"):
        load_ultralytics(tmp_path / "evil.pt")
    with pytest.raises(BenchError, match="refused to load"):
        from bench.models import create_model

        create_model("yolov8n_cls", 3, pretrained=True, weights=str(tmp_path / "evil.pt"))
    assert not marker.exists()


class CallsTheConstructor:
    def __reduce__(self):
        from ultralytics.nn.tasks import ClassificationModel

        return (ClassificationModel, ("yolov8n-cls.yaml",))  # REDUCE: ClassificationModel("...yaml")


def test_an_allowlisted_class_is_never_called_by_the_pickle(tmp_path):
    torch.save({"model": CallsTheConstructor()}, tmp_path / "calls.pt")
    built = torch.load(tmp_path / "calls.pt", weights_only=False)["model"]  # plain pickle: __init__ ran
    assert "model" in built.__dict__["_modules"]
    obj = load_ultralytics(tmp_path / "calls.pt")["model"]
    assert type(obj).__name__ == "ClassificationModel" and obj.__dict__ == {}  # created empty, never called


def test_torn_checkpoint_is_a_one_line_error(tmp_path):
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.randn(1000)}}, good)
    torn = tmp_path / "torn.ckpt"
    torn.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(BenchError, match=r"could not read checkpoint file .*torn.ckpt: truncated or corrupt") as err:
        load_checkpoint(torn)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------ resume


class ScriptedModule(L.LightningModule):
    """Validation score per epoch given by the test: epoch 1 does not improve on epoch 0."""

    def __init__(self, scores):
        super().__init__()
        self.layer = nn.Linear(4, 2)
        self.scores = scores
        self.epochs_started: list[int] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self):
        self.log("val/score", float(self.scores[self.current_epoch]))

    def on_train_epoch_start(self):
        self.epochs_started.append(self.current_epoch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(ckpt_dir: Path, max_epochs: int, resume: str | None = None):
    from lightning.pytorch.callbacks import ModelCheckpoint

    data = torch.utils.data.TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,)))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    module = ScriptedModule([0.9, 0.5, 0.4, 0.3])
    meter = ThroughputMeter(warmup_batches=0)
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/score", mode="max", save_top_k=1,
                           save_last=False, enable_version_counter=False)
    trainer = L.Trainer(accelerator="cpu", max_epochs=max_epochs, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[meter, best, LastCheckpoint(ckpt_dir)])
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader, ckpt_path=resume, weights_only=True)
    return module, meter


def test_last_ckpt_is_the_last_epoch_after_a_non_improving_one_and_resumes_after_it(tmp_path):
    ckpt = tmp_path / "checkpoints"
    _, meter = _fit(ckpt, max_epochs=2)
    assert load_checkpoint(ckpt / "best.ckpt")["epoch"] == 0  # epoch 1 (0.5) did not beat epoch 0 (0.9)
    last = load_checkpoint(ckpt / "last.ckpt")
    assert last["epoch"] == 1  # Lightning's save_last would still hold epoch 0 here (FIELD_NOTES)
    assert not list(ckpt.glob(".*tmp"))  # written atomically: no temp file left
    module, resumed_meter = _fit(ckpt, max_epochs=3, resume=str(ckpt / "last.ckpt"))
    assert module.epochs_started == [2]  # exactly the epoch after the last finished one
    # Cost figures cover the whole run: 3 epochs x 16 images, wall time of the first attempt included.
    assert resumed_meter.all_images == 3 * 16 and meter.all_images == 2 * 16
    assert resumed_meter.prior_fit_s > 0 and resumed_meter.prior_total_s >= resumed_meter.prior_fit_s


def test_torn_last_ckpt_is_moved_aside_with_one_warning(tmp_path, caplog):
    ckpt = tmp_path / "run" / "checkpoints"
    _fit(ckpt, max_epochs=1)
    last = ckpt / "last.ckpt"
    assert resume_checkpoint(tmp_path / "run") == str(last)
    last.write_bytes(last.read_bytes()[:1000])  # a node died mid-copy
    with caplog.at_level(logging.WARNING, logger="bench.training.resume"):
        assert resume_checkpoint(tmp_path / "run") is None  # restart from scratch
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0] and "from scratch" in warnings[0]
    aside = list(ckpt.glob("last.ckpt.corrupt-*"))
    assert len(aside) == 1 and not last.exists() and aside[0].stat().st_size == 1000
    assert resume_checkpoint(tmp_path / "run") is None  # and no loop: the next call sees no last.ckpt


def test_retention_keep_best_deletes_last_only_when_best_is_there(tmp_path):
    ckpt = tmp_path / "run" / "checkpoints"
    _fit(ckpt, max_epochs=2)
    (ckpt / "last.ckpt.corrupt-20260101T000000Z").write_bytes(b"x")
    assert apply_retention(tmp_path / "run", "keep_all", "checkpoints/best.ckpt") == []
    assert apply_retention(tmp_path / "run", "keep_best", "checkpoints/missing.ckpt") == []  # never the only one
    assert sorted(apply_retention(tmp_path / "run", "keep_best", "checkpoints/best.ckpt")) == [
        "last.ckpt", "last.ckpt.corrupt-20260101T000000Z"]
    assert tree(ckpt) == ["best.ckpt"]


# -------------------------------------------------------------------- validate before writing


@pytest.mark.parametrize("override,needle", [
    ("data.batch_size=-4", "data.batch_size=-4"),
    ("callbacks.early_stopping.monitor=test/auroc", "callbacks.early_stopping.monitor='test/auroc'"),
    ("callbacks.model_checkpoint.monitor=test/auroc", "callbacks.model_checkpoint.monitor='test/auroc'"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0"),
    ("data.num_workers=-1", "data.num_workers=-1"),
    ("data.split.ratios=[0.5,0.3,0.3]", "data.split.ratios=[0.5, 0.3, 0.3]"),
    ("data.limit_per_class=-3", "data.limit_per_class=-3"),
    ("optim.lr=0", "optim.lr=0"),
    ("retention=keep_none", "retention='keep_none'"),
    ("run_lock.stale_after_s=5", "stale_after_s=5"),
])
def test_bad_values_fail_before_any_folder_or_cache_entry(tmp_path, restore_env, override, needle):
    from bench.training.run import run

    base = [o for o in TINY if not o.startswith("callbacks=")] + ["callbacks=default", "~callbacks.progress_bar"]
    cfg = compose([*base, *paths(tmp_path, tmp_path / "cache"), override])
    with pytest.raises(BenchError) as err:
        run(cfg)
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert tree(tmp_path) == []  # no run folder, no cache entry (not even the generated fixture)


def test_cli_bad_batch_size_exits_2_with_nothing_written_and_no_wandb_run(tmp_path):
    proc = subprocess.run([*BENCH_TRAIN, *TINY, "logger=wandb", "data.batch_size=-4", *paths(tmp_path, tmp_path / "cache")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env=child_env())
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.splitlines()[0] == "error: data.batch_size=-4: give a positive integer (images per batch)"
    assert [p for p in tree(tmp_path) if not p.startswith("logs")] == []  # Hydra's job log only


def test_a_start_that_fails_in_training_leaves_no_run_folder(tmp_path, restore_env):
    from bench.training.run import run

    # Inception v3 needs >= 75 px: at 32 px its first forward fails (after the folder was locked).
    cfg = compose([*TINY, "model=inception_v3", *paths(tmp_path, tmp_path / "cache")])
    with pytest.raises(Exception, match="(?i)size"):
        run(cfg)
    assert tree(tmp_path / "runs") == []


# ---------------------------------------------------------------------------- Hydra's own errors


@pytest.mark.parametrize("override,first,detail", [
    ("data=nonexistent", "error: In 'train': Could not find 'data/nonexistent'", "Available options in 'data':"),
    ("foo=1", "error: Could not override 'foo'.", "Key 'foo' is not in struct"),
    ("data.batch_size=[", "error: no viable alternative at input '['", "override_grammar"),
    ("hydra/launcher=nope", "error: In 'hydra/config': Could not find 'hydra/launcher/nope'", "slurm_gpu"),
])
def test_hydra_errors_exit_2_with_the_one_line_form_first(tmp_path, override, first, detail):
    proc = subprocess.run([*BENCH_TRAIN, override, f"paths.root_dir={tmp_path}"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=child_env())
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == first and detail in proc.stderr
    if override == "data=nonexistent":  # Hydra's list of valid choices follows
        assert "\ttiny_fracatlas" in lines and "\tfracatlas_binary" in lines


# ----------------------------------- one real run: $HOME, ../ in data.name, the dataset's identity


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One tiny bench-train run with HOME set to an empty folder, W&B on (offline) and
    data.name='../../escaped', on a generated FracAtlas copy."""
    from bench.testing import fixtures

    base = tmp_path_factory.mktemp("secure") / "work"
    home = base / "home"
    home.mkdir(parents=True)
    data_a = base / "data_a"
    fixtures.make_fracatlas(data_a, n=200, seed=0, bad_files=True)
    args = [*TINY, "logger=wandb", "data.name='../../escaped'", f"data.root={data_a}", *paths(base, base / "cache")]
    env = child_env(HOME=str(home))
    for key in [k for k in env if k.startswith("XDG_") or k in ("MPLCONFIGDIR", "YOLO_CONFIG_DIR", "TORCH_HOME",
                                                                 "BENCH_STATE_DIR") or k.startswith("WANDB_") and k != "WANDB_MODE"]:
        env.pop(key)  # every library picks its default folder (derived from HOME) unless bench.env moves it
    env["BENCH_STATE_DIR"] = str(base / "state")  # bench.env's import-time folder, inside this test's tree
    proc = subprocess.run([*BENCH_TRAIN, *args], cwd=base, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return {"base": base, "home": home, "data_a": data_a, "args": args, "env": env, "proc": proc}


@pytest.mark.slow
def test_run_id_is_slugged_and_nothing_lands_outside_the_configured_folders(finished):
    base = finished["base"]
    runs = list((base / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("escaped__resnet18__s0__")
    record = json.loads((runs[0] / "record.json").read_text())
    assert record["task"]["name"] == "../../escaped"  # the value is kept as data, not as a path
    assert (runs[0] / "wandb").is_dir() and (runs[0] / "checkpoints" / "best.ckpt").is_file()
    # Top level of the work folder: only the configured folders (and the test's own data / home).
    assert sorted(p.name for p in base.iterdir()) == ["cache", "data_a", "home", "logs", "runs", "state"]
    assert not list(base.parent.glob("escaped*")) and not list(base.parent.parent.glob("escaped*"))


@pytest.mark.slow
def test_home_is_untouched_by_a_run_with_wandb(finished):
    assert tree(finished["home"]) == []
    # W&B's core-debug log went to the cache folder instead of ~/.cache/wandb/logs.
    assert list((finished["base"] / "cache" / "env").rglob("core-debug*.log"))


@pytest.mark.slow
def test_crafted_best_ckpt_in_a_copied_run_is_refused_by_load_run_and_bench_explain(finished, tmp_path):
    from bench.runs import load_run

    src = next((finished["base"] / "runs").iterdir())
    copied = tmp_path / src.name
    shutil.copytree(src, copied)
    model, _, record = load_run(copied)  # the genuine run loads
    assert record["run_id"] == src.name
    marker = tmp_path / "marker"
    state = load_checkpoint(copied / "checkpoints" / "best.ckpt")
    state["payload"] = OpenOnUnpickle(marker)
    torch.save(state, copied / "checkpoints" / "best.ckpt")
    with pytest.raises(BenchError, match=r"refused to load .*best.ckpt"):
        load_run(copied)
    proc = subprocess.run([sys.executable, "-m", "bench.cli.explain", str(copied)], capture_output=True, text=True,
                          timeout=600, env=child_env())
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "refused to load" in errors[0] and "Traceback" not in proc.stderr
    assert not marker.exists()


@pytest.mark.slow
def test_other_dataset_copies_are_other_runs_and_an_identical_copy_is_the_same(finished, restore_env):
    base, data_a = finished["base"], finished["data_a"]
    run_dir = next((base / "runs").iterdir())
    used = set(json.loads((run_dir / "record.json").read_text())["split"]["counts"])  # sanity: a split exists
    assert used == {"train", "val", "test"}
    data_c = base.parent / "data_c"  # identical bytes, elsewhere
    shutil.copytree(data_a, data_c)
    data_b = base.parent / "data_b"  # one image the run read re-written (another encoder / an edit)
    shutil.copytree(data_a, data_b)
    first_used = sorted((run_dir / "split.csv").read_text().splitlines()[1:])[0].split(",")[0]
    image = next(data_b.rglob(first_used))
    image.write_bytes(image.read_bytes() + b"\0")

    def run_id(root: Path) -> str:
        args = [a for a in finished["args"] if not a.startswith("data.root=")] + [f"data.root={root}"]
        return run_id_of(compose(args))

    assert run_id(data_a) == run_dir.name
    assert run_id(data_c) == run_dir.name
    assert run_id(data_b) != run_dir.name
    record = json.loads((run_dir / "record.json").read_text())
    assert record["data"]["fingerprint"] and len(record["data"]["fingerprint"]) == 64

    # The identical copy, through the CLI: skipped (nothing trained), and retention=keep_best then
    # leaves what explain / predict / leaderboards read.
    args = [a for a in finished["args"] if not a.startswith("data.root=")] + [f"data.root={data_c}", "retention=keep_best"]
    proc = subprocess.run([*BENCH_TRAIN, *args], cwd=base, capture_output=True, text=True, timeout=600, env=finished["env"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "is complete: skipped" in proc.stdout + proc.stderr
    assert tree(run_dir / "checkpoints") == ["best.ckpt"]
    assert (run_dir / "record.json").is_file() and (run_dir / "predictions.csv").is_file()
    assert len(list((base / "runs").iterdir())) == 1
