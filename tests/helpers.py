"""Helpers shared by the end-to-end tests (imported as `helpers`; pytest puts tests/ on the path)."""
import torch
from safetensors.torch import load_file

from ganforge.cli import main


def cli(*argv) -> int:
    return main([str(a) for a in argv])


def ckpt(run, step, name="generator"):
    """A checkpoint file's tensors; of "state" all but the training clock, which is wall time."""
    tensors = load_file(run / "checkpoints" / f"step_{step:06d}" / f"{name}.safetensors")
    return {k: v for k, v in tensors.items() if k != "clock.seconds"}


def assert_bitwise_equal(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


def differs(a: dict, b: dict) -> bool:
    return a.keys() != b.keys() or any(not torch.equal(a[k], b[k]) for k in a)


def without_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def one_error_line(capsys) -> str:
    """The one line a bad input leaves on stderr (checked: a single ganforge error, no traceback)."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ganforge: error: ") and "Traceback" not in err
    return lines[0]
