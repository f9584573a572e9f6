"""Writing files so that a full disk, a crash or Ctrl-C never leaves one cut off: the bytes go
to a temporary name beside the file, and one rename puts them in its place."""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:  # the command line imports this module and must start without torch
    import torch


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """``with replacing(path) as tmp: write(tmp)``: on success ``tmp`` replaces ``path`` in one
    rename, so ``path`` is the old file (or none) or the whole new one, never half of it.
    ``tmp`` keeps the suffix, for writers that pick the format from it (PIL, np.save)."""
    path = Path(path)
    tag = f".tmp{os.getpid()}{path.suffix}"
    tmp = path.with_name(f".{path.stem[:254 - len(tag)]}{tag}")  # a name has 255 bytes at most
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:  # name the file the user asked for, not the temporary one
        if e.errno is None or (e.filename is not None and os.fspath(e.filename) != os.fspath(tmp)):
            raise
        raise OSError(e.errno, e.strerror, str(path)) from None
    finally:
        with contextlib.suppress(OSError):  # never hide the error that brought us here
            tmp.unlink()


def is_temporary(name: str) -> bool:
    """Whether ``name`` is one of :func:`replacing`'s temporary names (a kill -9 can leave one)."""
    return re.fullmatch(r"\..+\.tmp\d+(\.\w+)?", name) is not None


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path,
                 metadata: dict[str, str] | None = None) -> None:
    """A safetensors file, written through Python's own file object so that a full disk is an
    OSError with its errno (safetensors' save_file reports it as a SafetensorError of text),
    naming the file."""
    from safetensors.torch import save

    try:
        Path(path).write_bytes(save(tensors, metadata))
    except OSError as e:
        if e.filename is not None:
            raise
        raise OSError(e.errno, e.strerror, str(path)) from None
