"""What the benchmark scripts share: writing a table into BENCHMARKS.md between
<!-- NAME:begin --> and <!-- NAME:end -->, and checking their arguments before anything runs."""
from __future__ import annotations

import argparse
import platform
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def replace_block(name: str, text: str, path: Path = DOC) -> None:
    """Replace the block called ``name`` with ``text`` (append it when the markers are absent)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    doc = path.read_text()
    block = f"{begin}\n{text}\n{end}"
    if begin in doc:
        doc = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, doc, flags=re.S)
    else:
        doc += "\n" + block + "\n"
    path.write_text(doc)


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's model name ("Intel(R) Xeon(R) Processor"), so a figure says which CPU
    it came from; the architecture alone ("x86_64") where the system does not tell."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parser(doc: str) -> argparse.ArgumentParser:
    """A script's parser; --help shows its whole docstring, examples as written."""
    return argparse.ArgumentParser(description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def at_least(minimum: int):
    """An argparse type: a whole number >= ``minimum`` (argparse reports anything else in one
    line with exit code 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
        return value
    return parse


def check_device(parser: argparse.ArgumentParser, device: str) -> None:
    """--device cuda where torch sees no GPU: one line, before any run starts."""
    if not device.startswith("cuda"):
        return
    import torch  # only here: throughput.py's own process stays without it

    if not torch.cuda.is_available():
        parser.error(f"--device {device}: torch sees no CUDA GPU here; use --device cpu")


def check_presets(parser: argparse.ArgumentParser, names: list[str],
                  overrides: list[str] = ()) -> None:
    """Unknown preset names (or YAML files), or overrides they do not take: one line, before
    any run starts."""
    from ganforge.config import load_config
    from ganforge.errors import GanforgeError

    for name in names:
        try:
            load_config(name, list(overrides))
        except GanforgeError as e:
            parser.error(str(e))
