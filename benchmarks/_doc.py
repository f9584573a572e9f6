"""Writes a benchmark's table into BENCHMARKS.md between <!-- NAME:begin --> and <!-- NAME:end -->."""
from __future__ import annotations

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
