"""Tiny trained runs shared by test_latent.py and test_probe.py, trained once per session
through the command line (10 steps, width-8 models, CPU). conftest.py turns them into
the ``dcgan``, ``cdcgan`` and ``mlp`` fixtures."""
from __future__ import annotations

from pathlib import Path

from helpers import cli

PRESETS = {"dcgan": "dcgan-mnist", "cdcgan": "cdcgan-mnist", "mlp": "gan-mnist"}
_RUNS: dict[str, Path] = {}


def tiny_run(kind: str, tmp_path_factory, tiny) -> Path:
    """The run folder of a tiny ``kind`` run (dcgan, cdcgan or mlp), trained on first use."""
    if kind not in _RUNS:
        run = tmp_path_factory.mktemp("latent-runs") / kind
        assert cli("train", PRESETS[kind], *tiny(10), "--out", run) == 0
        _RUNS[kind] = run
    return _RUNS[kind]
