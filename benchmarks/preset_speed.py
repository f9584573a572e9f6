"""Training speed of each MNIST preset on this machine: steps per second over a short run.

    python benchmarks/preset_speed.py [--steps 200] [--presets demo gan-mnist ...]

Runs each preset through the library with its own settings, changing only what a timing run
needs (the steps; a log record every 10 steps, one sample grid and checkpoint at the end; no
evaluation, progress bar or TensorBoard), times it from the logged clock after the first
logging window, and prints a Markdown table for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from _doc import at_least, check_device, check_presets, cpu_name, parser

from ganforge.config import load_config
from ganforge.train.loop import train

DEFAULT = ["demo", "gan-mnist", "dcgan-mnist", "cdcgan-mnist"]
LOG_EVERY = 10


def measure(preset: str, steps: int, device: str) -> dict:
    overrides = [f"train.steps={steps}", "train.progress=false", "train.tensorboard=false",
                 f"train.sample_every={steps}", f"train.checkpoint_every={steps}",
                 f"train.log_every={LOG_EVERY}", "train.eval_every=0", f"train.device={device}"]
    cfg = load_config(preset, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        run = train(cfg, Path(tmp) / preset, log=lambda *a: None)
        records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    # skip the first logging window (warm-up), time the rest from the logged clock
    first, last = records[0], records[-1]
    rate = (last["step"] - first["step"]) / (last["time"] - first["time"])
    return {"preset": preset, "batch": cfg.train.batch_size, "steps_per_s": rate,
            "images_per_s": rate * cfg.train.batch_size * cfg.train.d_steps}


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--steps", type=at_least(2 * LOG_EVERY), default=200,
                   help=f"steps per preset (200; at least {2 * LOG_EVERY}: the first "
                        f"{LOG_EVERY}-step logging window is not timed)")
    p.add_argument("--presets", nargs="+", default=DEFAULT)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    check_device(p, args.device)
    check_presets(p, args.presets, [f"train.device={args.device}"])
    print(f"# {cpu_name()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, device {args.device}, {time.strftime('%Y-%m-%d')}")
    print("| preset | batch | steps/s | real images/s |\n| --- | --- | --- | --- |")
    for name in args.presets:
        r = measure(name, args.steps, args.device)
        print(f"| {r['preset']} | {r['batch']} | {r['steps_per_s']:.1f} | {r['images_per_s']:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
