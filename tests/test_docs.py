"""The commands and config keys the documents show exist: a renamed option or key fails here
instead of leaving README.md, BENCHMARKS.md or `ganforge --help` pointing at nothing."""
import argparse
import dataclasses
import importlib
import re
import shlex
import sys
from pathlib import Path

import pytest

from ganforge.cli import EXAMPLES, build_parser
from ganforge.config import Config, load_config, preset_names

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
DOCS = ["README.md", "BENCHMARKS.md"]
SECTIONS = r"(?:data|model|loss|optim|train)"


def _example_lines(text: str) -> list[str]:
    """Whole `ganforge ...` command lines of the fenced code blocks (a trailing \\ continues a
    line; `# ...` comments dropped)."""
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("ganforge "):
                lines.append(line)
    return lines


def _mentions(text: str) -> list[str]:
    """Inline `ganforge COMMAND ...` mentions in prose, which may leave out required arguments."""
    return re.findall(r"`(ganforge [^`]+)`", text)


def _config_keys(cls=Config, prefix: str = "") -> set[str]:
    keys = set()
    for f in dataclasses.fields(cls):
        keys.add(prefix + f.name)
        if f.default_factory is not dataclasses.MISSING \
                and dataclasses.is_dataclass(default := f.default_factory()):
            keys |= _config_keys(type(default), f"{prefix}{f.name}.")
    return keys


def _subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return parser, action.choices


def _check_mention(line: str, choices) -> None:
    argv = shlex.split(line)[1:]
    if not argv or argv[0].startswith("-"):
        return  # `ganforge --version`, `ganforge --help`
    assert argv[0] in choices, f"{line!r}: no command {argv[0]!r}"
    options = choices[argv[0]]._option_string_actions
    for token in argv[1:]:
        flag = token.strip("[]").split("=")[0]
        if flag.startswith("--"):
            assert flag in options, f"{line!r}: {argv[0]} has no option {flag}"


def _documents():
    return {name: (ROOT / name).read_text() for name in DOCS} | {"ganforge --help": EXAMPLES}


def test_the_documents_show_commands():  # the scans below would pass on nothing
    docs = _documents()
    assert len(_example_lines(docs["README.md"])) >= 30
    assert len(_mentions(docs["README.md"])) >= 10
    assert len(_example_lines("```\nganforge train demo \\\n  --out x  # c\n```")) == 1


@pytest.mark.parametrize("name", [*DOCS, "ganforge --help"])
def test_every_example_command_parses(name):
    parser, choices = _subcommands()
    text = _documents()[name]
    lines = _example_lines(text) if name != "ganforge --help" else \
        [line.strip() for line in text.splitlines() if line.strip().startswith("ganforge ")]
    for line in lines:
        argv = shlex.split(line)[1:]
        if argv == ["--version"]:
            continue
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{name}: {line!r} is not a valid command line")
        if args.command == "train" and not args.resume and args.args[0] in preset_names():
            # the overrides are real keys with values the preset accepts
            load_config(args.args[0], args.args[1:])
    for line in _mentions(text) if name != "ganforge --help" else []:
        _check_mention(line, choices)


def test_a_wrong_option_or_command_is_caught():
    _, choices = _subcommands()
    _check_mention("ganforge sample RUN --n 4", choices)
    with pytest.raises(AssertionError, match="no option --count"):
        _check_mention("ganforge sample RUN --count 4", choices)
    with pytest.raises(AssertionError, match="no command"):
        _check_mention("ganforge smaple RUN", choices)


@pytest.mark.parametrize("name", DOCS)
def test_every_config_key_named_exists(name):
    keys = _config_keys()
    assert {"train.steps", "data.toy.weights", "model.pack"} <= keys
    named = set(re.findall(rf"(?<![\w./-])({SECTIONS}\.[a-z_][a-z_0-9.]*[a-z_0-9])",
                           _documents()[name]))
    assert named, name
    assert not named - keys, f"{name} names config keys that do not exist: {named - keys}"


def _script_lines(text: str) -> list[str]:
    """`python benchmarks/NAME.py ...` lines of code blocks and inline spans (which may break
    across lines in the source), environment variables in front dropped."""
    spans = re.findall(r"`((?:[A-Z_]+=\S+ )*python benchmarks/[^`]+)`", text, re.S)
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    lines = [line.split(" #")[0] for block in blocks for line in block.splitlines()]
    found = [" ".join(line.split()) for line in [*spans, *lines] if "python benchmarks/" in line]
    return [line[line.index("benchmarks/"):] for line in found]


class _Parsed(Exception):
    pass


@pytest.mark.parametrize("name", DOCS + ["the scripts' own docstrings"])
def test_every_benchmark_command_parses(name, monkeypatch):
    """Each documented benchmark command line is accepted by that script's parser (stopped
    right after parsing: nothing runs)."""
    if name in DOCS:
        lines = _script_lines((ROOT / name).read_text())
    else:  # usage synopses ("[--steps N]") are not command lines
        lines = [line.strip() for path in sorted((ROOT / "benchmarks").glob("[a-z]*.py"))
                 for line in (importlib.import_module(path.stem).__doc__ or "").splitlines()
                 if line.strip().startswith("python benchmarks/") and "[" not in line]
        lines = [" ".join(line.split(" #")[0].split())[len("python "):] for line in lines]
    assert len(lines) >= 5, name
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(parser, args=None, namespace=None):
        parse(parser, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    for line in lines:
        script, *argv = shlex.split(line)
        module = importlib.import_module(Path(script).stem)
        try:
            module.main(argv)
        except _Parsed:
            continue
        except SystemExit:
            pytest.fail(f"{name}: {line!r} is not a valid command line")
        pytest.fail(f"{name}: {script} ran without parsing its arguments")
