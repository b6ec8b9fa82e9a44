"""Every console script of pyproject.toml answers --help in full: each option (and positional)
has help text, the description is whole (not a docstring cut at its first line), and nothing is
written in reStructuredText backticks. bench-train is Hydra's own --help: it must exit 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
HYDRA = {"bench-train"}
# Sub-commands get their own --help pages.
SUBCOMMANDS = {"bench-fetch": [["fracatlas"], ["mura"]]}


def _help(script: str, *args: str) -> subprocess.CompletedProcess:
    module, func = SCRIPTS[script].split(":")
    code = f"import sys; sys.argv[0] = {script!r}; from {module} import {func}; sys.exit({func}())"
    env = {**os.environ, "COLUMNS": "100", "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-c", code, *args, "--help"], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env=env)


def entries_without_help(text: str) -> list[str]:
    """Argument entries of an argparse help page with no help text (same line or the next, deeper one)."""
    lines = text.splitlines()
    missing, in_section = [], False
    for i, line in enumerate(lines):
        if line and not line.startswith(" ") and line.endswith(":"):
            in_section = line != "usage:"
            continue
        if not in_section or not line.startswith("  ") or line.startswith("   "):
            continue
        entry = line.strip()
        if re.search(r"\S\s{2,}\S", entry):
            continue  # help on the same line
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if not (nxt.startswith("   ") and nxt.strip()):
            missing.append(entry)
    return missing


def description(text: str) -> str:
    """The paragraph between the usage block and the first section."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    rest = [p for p in paragraphs[1:] if not re.match(r"^(positional arguments|options|optional arguments):", p)]
    return " ".join(rest[0].split()) if rest and not paragraphs[1].startswith(("positional", "options")) else ""


def test_the_checker_finds_an_option_without_help():
    page = ("usage: x [-h] [--a A] [--b B]\n\nDoes x.\n\noptions:\n  -h, --help  show this help message and exit\n"
            "  --a A\n  --b B       the b\n  --long-option-name LONG_OPTION_NAME\n                        wrapped help\n")
    assert entries_without_help(page) == ["--a A"]
    assert description(page) == "Does x."


@pytest.mark.parametrize("script", sorted(set(SCRIPTS) - HYDRA))
def test_help_is_complete(script):
    pages = [[]] + SUBCOMMANDS.get(script, [])
    for sub in pages:
        proc = _help(script, *sub)
        name = " ".join([script, *sub])
        assert proc.returncode == 0, f"{name} --help: {proc.stderr[-2000:]}"
        text = proc.stdout
        assert text.startswith("usage: "), f"{name} --help printed no usage"
        assert "`" not in text, f"{name} --help has backticks"
        assert entries_without_help(text) == [], f"{name} --help: options without help"
        if not sub:
            desc = description(text)
            assert len(desc) >= 40 and desc.endswith((".", ")")), f"{name} --help description cut: {desc!r}"


@pytest.mark.parametrize("script", sorted(HYDRA & set(SCRIPTS)))
def test_hydra_help_exits_0(script):
    proc = _help(script)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Powered by Hydra" in proc.stdout or "== Config ==" in proc.stdout, proc.stdout[:500]
