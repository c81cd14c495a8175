"""Every command line shown in README.md and docs/*.md still parses.

``mtlkit`` commands go through the CLI's own parser (and, for ``train`` and ``compare``, through
the config built from their flags, so a renamed ``--set`` key fails here); ``benchmarks/*.py``
commands through the script's parser, stopped right after parsing. Nothing is trained or run.
Lines with placeholders (``<run>``, ``[--flag]``, ``...``, ``RUN_DIR``, an unset ``$VAR``) are
left out; shell variables set in the same code block (``M="a,b"``) are substituted.
"""

from __future__ import annotations

import argparse
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

from mtlkit.cli.flags import run_config
from mtlkit.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SUBCOMMANDS = {"train", "evaluate", "predict", "compare", "group", "tune", "demo"}
SCRIPT = re.compile(r"^benchmarks/\w+/\w+\.py$")
ORIGINAL_PARSE = argparse.ArgumentParser.parse_args
ORIGINAL_PARSE_KNOWN = argparse.ArgumentParser.parse_known_args
PLACEHOLDER = re.compile(r"<\w|^\[|\.\.\.|\$|^[A-Z][A-Z_]+$|^/$")


def _shell_lines(block: str) -> list[str]:
    """The block's command lines: continuations joined, prompts, comments and variables resolved."""
    variables: dict[str, str] = {}
    lines, pending = [], ""
    for raw in block.splitlines():
        line = f"{pending} {raw.strip()}".strip()
        if line.endswith("\\"):
            pending = line.removesuffix("\\")
            continue
        pending = ""
        command = line.removeprefix("$ ").split(" #")[0].strip()
        assignment = re.fullmatch(r'(\w+)="([^"]*)"', command)
        if assignment:
            variables[assignment.group(1)] = assignment.group(2)
            continue
        for name, value in variables.items():
            command = command.replace(f'"${name}"', shlex.quote(value))
        lines.append(command)
    return lines


def _commands() -> list[tuple[str, list[str]]]:
    """(``page:line``, argv from ``mtlkit``'s subcommand or the script path on) per command."""
    found = []
    for page in PAGES:
        text = page.read_text()
        candidates = []
        for block in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
            if block.group(1) in ("", "bash", "console", "sh"):
                line = text[: block.start()].count("\n") + 2
                candidates += [(line, command) for command in _shell_lines(block.group(2))]
        prose = re.sub(
            r"^```.*?^```", lambda b: "\n" * b.group().count("\n"), text, flags=re.S | re.M
        )
        for inline in re.finditer(r"`([^`\n]*(?:\n[^`\n]*)?)`", prose):
            if re.search(r"mtlkit (?:\w+) -|benchmarks/\w+/\w+\.py -", inline.group(1)):
                line = prose[: inline.start()].count("\n") + 1
                candidates.append((line, inline.group(1).replace("\n", " ")))
        for line, command in candidates:
            try:
                tokens = shlex.split(command.split(" | ")[0].split(" > ")[0])
            except ValueError:
                continue
            starts = [i for i, t in enumerate(tokens) if t.endswith("mtlkit") or SCRIPT.match(t)]
            if not starts:
                continue
            argv = tokens[starts[-1] :]
            if argv[0].endswith("mtlkit"):
                argv = argv[1:]
                if not argv or argv[0] not in SUBCOMMANDS:
                    continue
            if len(argv) < 2 or any(PLACEHOLDER.search(token) for token in argv[1:]):
                continue
            found.append((f"{page.relative_to(ROOT)}:{line}", argv))
    return found


COMMANDS = _commands()


def _refuse_known_args(self, args=None, namespace=None):
    """``parse_args`` calls ``parse_known_args``; a script calling it directly would run."""
    if sys._getframe(1).f_code.co_name != "parse_args":
        raise AssertionError("the script parses with parse_known_args: cannot stop it")
    return ORIGINAL_PARSE_KNOWN(self, args, namespace)


class _Parsed(Exception):
    """Raised by the patched parser instead of running the script."""


def test_the_pages_show_commands():
    scripts = {argv[0] for _, argv in COMMANDS if SCRIPT.match(argv[0])}
    subcommands = {argv[0] for _, argv in COMMANDS if argv[0] in SUBCOMMANDS}
    assert len(scripts) >= 10 and subcommands >= {"train", "predict", "evaluate", "compare", "tune"}


@pytest.mark.parametrize(
    "argv",
    [argv for _, argv in COMMANDS if argv[0] in SUBCOMMANDS],
    ids=[where for where, argv in COMMANDS if argv[0] in SUBCOMMANDS],
)
def test_mtlkit_command_parses(argv, monkeypatch):
    monkeypatch.chdir(ROOT)
    args = build_parser().parse_args(argv)
    config = getattr(args, "config", None) or ""
    tracked = not config or config.startswith("examples/")  # not a run's or the reader's file
    if argv[0] in ("train", "compare") and not getattr(args, "resume", None) and tracked:
        run_config(args)  # an unknown --set key or a bad value raises ConfigError


@pytest.mark.parametrize(
    "argv",
    [argv for _, argv in COMMANDS if SCRIPT.match(argv[0])],
    ids=[where for where, argv in COMMANDS if SCRIPT.match(argv[0])],
)
def test_benchmark_command_parses(argv, monkeypatch):
    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(ORIGINAL_PARSE(self, args, namespace))

    script = ROOT / argv[0]
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", _refuse_known_args)
    monkeypatch.setattr(sys, "argv", [str(script), *argv[1:]])
    monkeypatch.syspath_prepend(str(script.parent))
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    with pytest.raises(_Parsed):
        runpy.run_path(str(script), run_name="__main__")
