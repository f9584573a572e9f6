"""Where a training step's time goes: ganforge's loop under torch.profiler, top operators.

    python benchmarks/profile_step.py dcgan-mnist --steps 20
    python benchmarks/profile_step.py dcgan-64 --device cuda --steps 200 --trace trace.json
    python benchmarks/profile_step.py dcgan-64 --device cuda --set train.cuda_graph=disabled

Trains the preset with the settings throughput.py times (no gradient penalty; dcgan-64 reads
the 64 px digit folder that script writes) under the profiler, for ``--warmup`` steps and then
for ``--warmup`` + ``--steps`` steps, and prints the operators and kernels whose time grew the
most between the two runs, divided by ``--steps``: self device time on CUDA, where the kernels a
CUDA graph replays are listed one by one, and self CPU time on the CPU. The difference cancels
what both runs share: start-up, the first eager steps before a graph is recorded, the final
sample grid and checkpoint; a first short run pays the process's one-off costs. ``--trace``
writes the longer run's Chrome trace (for Perfetto or chrome://tracing).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _doc import parser  # noqa: E402
from throughput import PRESETS, loop_config, make_folder  # noqa: E402

from ganforge.errors import GanforgeError  # noqa: E402
from ganforge.train.loop import train  # noqa: E402


def profile_train(preset: str, steps: int, device: str, overrides: list[str] = (),
                  folder: str | None = None, trace: str | None = None):
    """Profile a ``steps``-step training run; returns the profiler's per-operator averages."""
    cfg = loop_config(preset, folder, list(overrides), steps, steps, device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with tempfile.TemporaryDirectory() as tmp, profile(activities=activities) as prof:
        train(cfg, Path(tmp) / preset, log=lambda *a: None)
    if trace:
        prof.export_chrome_trace(trace)
    return prof.key_averages()


def per_step(short, long, steps: int, device: str) -> list[tuple[str, float, float]]:
    """(name, calls a step, microseconds a step) of every operator called more often, or for
    longer, in the ``long`` run's averages than in the ``short`` one's, ``steps`` steps apart;
    largest time first (a time that shrank by noise counts as 0)."""
    key = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    before = {e.key: (e.count, getattr(e, key)) for e in short}
    rows = []
    for e in long:
        calls, us = before.get(e.key, (0, 0.0))
        if e.count > calls or getattr(e, key) > us:
            rows.append((e.key, (e.count - calls) / steps, max(getattr(e, key) - us, 0.0) / steps))
    return sorted(rows, key=lambda r: -r[2])


def measure(preset: str, steps: int, warmup: int, device: str, overrides: list[str] = (),
            folder: str | None = None, trace: str | None = None) -> list[tuple[str, float, float]]:
    """``per_step`` rows from a ``warmup``-step run and a ``warmup + steps``-step one. A first
    short run pays the process's one-off costs (oneDNN primitive creation, the CUDA context,
    cuDNN autotuning) so that neither profiled run does."""
    for _ in range(2):
        short = profile_train(preset, warmup, device, overrides, folder)
    long = profile_train(preset, warmup + steps, device, overrides, folder, trace)
    return per_step(short, long, steps, device)


def top_table(rows: list[tuple[str, float, float]], steps: int, device: str,
              top: int = 25) -> str:
    """Markdown table of the ``top`` rows of ``per_step``, after the step's total."""
    total = sum(r[2] for r in rows)
    lines = [f"self {'device' if device == 'cuda' else 'CPU'} time: {total / 1e3:.3f} ms a step "
             f"(the difference of two runs, {steps} steps apart)", "",
             "| operator or kernel | calls a step | ms a step | share |",
             "| --- | --- | --- | --- |"]
    for name, calls, us in rows[:top]:
        name = name if len(name) <= 90 else name[:87] + "..."
        lines.append(f"| `{name}` | {calls:.1f} | {us / 1e3:.3f} | "
                     f"{100 * us / (total or 1.0):.1f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("preset", choices=PRESETS)
    p.add_argument("--steps", type=int, default=20, help="steps between the two runs (20)")
    p.add_argument("--warmup", type=int, default=5, help="steps of the shorter run (5)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. train.cuda_graph=disabled")
    p.add_argument("--top", type=int, default=25, help="rows to print (default 25)")
    p.add_argument("--trace", help="also write the longer run's Chrome trace to this JSON file")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 1 or args.top < 1:
        p.error("--steps, --warmup and --top must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        folder = str(make_folder(args.preset, Path(tmp) / "images")) \
            if args.preset == "dcgan-64" else None
        try:
            rows = measure(args.preset, args.steps, args.warmup, args.device, args.set, folder,
                           args.trace)
        except GanforgeError as e:  # a bad --set override or device: one line, exit 2
            p.error(str(e))
    print(f"{args.preset}, device {args.device}, torch {torch.__version__}"
          + (f", {torch.cuda.get_device_name()}" if args.device == "cuda" else "")
          + (f", overrides {' '.join(args.set)}" if args.set else "") + "\n")
    print(top_table(rows, args.steps, args.device, args.top))


if __name__ == "__main__":
    main()
