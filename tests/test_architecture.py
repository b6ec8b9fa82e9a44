"""The seams of docs/architecture.md, read from the code's own imports (every import statement,
function-local ones included): the stages meet only through run folders and bench.pipeline."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bench"
STAGES = ("training", "explain", "leaderboard")
# Units of the package graph: bench's subpackages and top-level modules, less the entry points
# (cli: may import any stage) and generated test data (testing: reads the data stage's constants,
# and dataset modules call it for their fixtures).
NOT_STAGES = ("cli", "testing")


def _module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_of(p): p for p in PACKAGE.rglob("*.py")}


def _unit(module: str) -> str:
    """``bench.training.run`` -> ``training``; ``bench.record`` -> ``record``."""
    return module.split(".")[1] if "." in module else module


def _resolve(name: str) -> str | None:
    """The bench module an imported name lives in (``bench.record.write_record`` -> ``bench.record``)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in MODULES else None


def _edges(path: Path) -> list[tuple[str, bool]]:
    """(module imported, whether the import statement stands inside a function) for one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    local_nodes = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name in _imports_of(node, path):
                target = _resolve(name)
                if target is not None:
                    out.append((target, id(node) in local_nodes))
    return out


def _imports_of(node: ast.AST, path: Path) -> set[str]:
    module = _module_of(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return {target} | {f"{target}.{a.name}" for a in node.names}


def _package_graph(*, skip: tuple[str, ...] = ()) -> dict[str, dict[str, list[str]]]:
    """unit -> unit -> ["module -> module (local)", ...], every import statement counted."""
    graph: dict[str, dict[str, list[str]]] = {}
    for module, path in MODULES.items():
        a = _unit(module)
        for target, local in _edges(path):
            b = _unit(target)
            if a != b and a not in skip and b not in skip:
                graph.setdefault(a, {}).setdefault(b, []).append(f"{module} -> {target}{' (local)' if local else ''}")
    return graph


def _reaches(graph: dict[str, dict[str, list[str]]], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph.get(todo.pop(), {}):
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


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


def test_no_import_cycle_between_stage_packages():
    """data, models, training, evaluation, explain, leaderboard, detection, predict, sweep and the
    top-level modules import each other one way only (function-local imports included)."""
    graph = _package_graph(skip=NOT_STAGES)
    cycles = [f"{a} <-> {b}: {graph[a][b][0]} / {_path(graph, b, a)}"
              for a in sorted(graph) for b in sorted(graph[a]) if a < b and _reaches(graph, b, a)]
    assert cycles == []


def _path(graph, start: str, goal: str) -> str:
    """One import chain from ``start`` back to ``goal`` (for the failure message)."""
    todo, came = [start], {start: None}
    while todo:
        node = todo.pop(0)
        for nxt, why in graph.get(node, {}).items():
            if nxt not in came:
                came[nxt] = (node, why[0])
                todo.append(nxt)
    chain, node = [], goal
    while came.get(node):
        node, why = came[node]
        chain.append(why)
    return "; ".join(reversed(chain))


def test_no_function_local_import_hides_a_cycle():
    """A function-local import is for start-up time or an optional dependency: the module it
    imports never leads back to the importing package (cli and testing included here)."""
    graph = _package_graph()
    hidden = [f"{module} -> {target}" for module, path in sorted(MODULES.items()) for target, local in _edges(path)
              if local and _unit(target) != _unit(module) and _reaches(graph, _unit(target), _unit(module))]
    assert hidden == []


def test_training_does_not_dispatch_to_detection():
    """The pipeline picks the trainer by task kind (bench.tasks); the trainers never import each other."""
    graph = _package_graph()
    assert "detection" not in graph.get("training", {})
    assert "training" not in graph.get("evaluation", {}) and "leaderboard" not in graph.get("evaluation", {})
