"""The seams of docs/architecture.md, read from the code's own imports (every import statement,
function-local ones included): the stages meet only through run folders and bench.pipeline."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bench"
STAGES = ("training", "explain", "leaderboard")


def _imports(path: Path) -> set[str]:
    """Every bench module a file imports, wherever the import statement stands."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)  # `from bench import runs`
    return {name for name in found if name == "bench" or name.startswith("bench.")}


def _stage_imports(stage: str) -> dict[str, set[str]]:
    return {str(p.relative_to(PACKAGE.parent)): _imports(p) for p in sorted((PACKAGE / stage).rglob("*.py"))}


def _hits(stage: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{path} imports {name}" for path, names in _stage_imports(stage).items() for name in sorted(names)
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


@pytest.mark.parametrize("stage", STAGES)
def test_stages_never_import_each_other_nor_the_pipeline(stage):
    others = tuple(f"bench.{s}" for s in STAGES if s != stage) + ("bench.pipeline",)
    assert _hits(stage, others) == []


def test_the_sweep_summary_reports_and_renders_nothing():
    assert _hits("sweep", ("bench.leaderboard", "bench.explain", "bench.training", "bench.pipeline")) == []
    import bench.sweep.summary as summary

    assert not hasattr(summary, "last_summary") and not hasattr(summary, "_last_run"), \
        "results pass through files (sweep_summary.json, the job's run note), not module globals"


def test_finished_runs_are_rebuilt_without_the_training_code():
    assert not any(n.startswith("bench.training") for n in _imports(PACKAGE / "runs.py"))
    assert not any(n.startswith(("bench.training", "bench.explain", "bench.leaderboard")) for n in _imports(PACKAGE / "spec.py"))


def test_pipeline_is_the_only_module_that_joins_the_stages():
    joiners = []
    for path in sorted(PACKAGE.rglob("*.py")):
        names = _imports(path)
        stages = {s for s in STAGES if any(n == f"bench.{s}" or n.startswith(f"bench.{s}.") for n in names)}
        own = path.relative_to(PACKAGE).parts[0]
        if len(stages - {own}) >= 2 and own != "cli":
            joiners.append(str(path.relative_to(PACKAGE.parent)))
    assert joiners == ["bench/pipeline.py"]
