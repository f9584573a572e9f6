"""Mode coverage of the toy presets over several seeds (PacGAN protocol: 2,500 samples; a
sample is high quality within 3 std of its nearest mode; reverse KL of the modes' share of
high-quality samples against uniform).

    python benchmarks/modes.py                       # ring and grid presets, 10 seeds, 2 workers
    python benchmarks/modes.py --presets ring-gan --seeds 3 --steps 2000
    python benchmarks/modes.py --write               # also replace the table in BENCHMARKS.md
    python benchmarks/modes.py --presets ring-gan ring-wgan-gp:3   # PRESET:N runs N seeds

Each run trains one preset with ``train.seed=S`` on one CPU thread (runs go in parallel over
``--workers`` processes) and scores its final generator.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _doc import at_least, check_presets, cpu_name, parser, replace_block

PRESETS = ["ring-gan", "ring-unrolled", "ring-dragan", "ring-wgan-gp",
           "grid-gan", "grid-unrolled", "grid-wgan-gp"]
PUBLISHED = {  # ../shared/MISSION.md, "Published figures"
    "ring": [("GAN", "6.3 / 98.2 / 0.45", "PacGAN Table 1"),
             ("Unrolled GAN (5 steps)", "7.6 / 35.6 / -", "VEEGAN Table 1"),
             ("VEEGAN", "8 / 52.9 / -", "VEEGAN Table 1"),
             ("PacGAN4", "7.8 / 95.9 / 0.07", "PacGAN Table 1")],
    "grid": [("GAN", "17.3 / 94.8 / 0.70", "PacGAN Table 1"),
             ("Unrolled GAN (5 steps)", "23.6 / 16 / -", "VEEGAN Table 1"),
             ("VEEGAN", "24.6 / 40 / -", "VEEGAN Table 1"),
             ("PacGAN4", "24.8 / 93.6 / 0.04", "PacGAN Table 1")],
}


def run_one(preset: str, seed: int, steps: int | None) -> dict:
    import torch

    from ganforge.config import load_config
    from ganforge.data import load_data
    from ganforge.train.loop import train
    from ganforge.train.watch import evaluate

    torch.set_num_threads(1)
    overrides = [f"train.seed={seed}", "train.progress=false", "train.tensorboard=false",
                 "train.eval_every=0"]
    if steps is not None:
        overrides.append(f"train.steps={steps}")
    cfg = load_config(preset, overrides)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        cfg.train.sample_every = cfg.train.checkpoint_every = cfg.train.steps
        run = train(cfg, Path(tmp) / "run", log=lambda *a: None)
        from ganforge.train.checkpoint import load_generator
        g, _ = load_generator(run)
    seconds = time.time() - t0
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    return {"preset": preset, "seed": seed, "seconds": seconds, "device": device,
            "modes_total": len(load_data(cfg).centers), **evaluate(g, load_data(cfg), cfg, 2500)}


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


def table(results: list[dict], presets: list[str]) -> str:
    lines = ["| preset | modes | % high quality | reverse KL | s / run | seeds |",
             "| --- | --- | --- | --- | --- | --- |"]
    for p in presets:
        rs = [r for r in results if r["preset"] == p]
        if not rs:
            continue
        kls = [r["kl"] for r in rs if r["kl"] is not None]
        kl = _mean_std(kls) + ("" if len(kls) == len(rs) else f" ({len(rs) - len(kls)} runs had no HQ sample)")
        lines.append(f"| {p} | {_mean_std([r['modes'] for r in rs])} / {rs[0]['modes_total']} | "
                     f"{_mean_std([r['hq'] for r in rs])} | {kl} | "
                     f"{statistics.mean(r['seconds'] for r in rs):.0f} | {len(rs)} |")
    for family in ("ring", "grid"):
        if any(p.startswith(family) for p in presets):
            for name, figures, source in PUBLISHED[family]:
                m, hq, kl = figures.split(" / ")
                lines.append(f"| published {family}: {name} ({source}) | {m} | {hq} | {kl} | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--presets", nargs="+", default=PRESETS, metavar="PRESET[:SEEDS]")
    p.add_argument("--seeds", type=at_least(1), default=10)
    p.add_argument("--steps", type=at_least(1), help="override train.steps (default: the preset's)")
    p.add_argument("--workers", type=at_least(1), default=2)
    p.add_argument("--write", action="store_true", help="replace the table in BENCHMARKS.md")
    args = p.parse_args(argv)
    plan = []
    for item in args.presets:
        name, _, seeds = item.partition(":")
        try:
            plan.append((name, at_least(1)(seeds) if seeds else args.seeds))
        except argparse.ArgumentTypeError as e:
            p.error(f"--presets {item}: the seeds after ':' are wrong: {e}")
    check_presets(p, [name for name, _ in plan])
    args.presets = [name for name, _ in plan]
    jobs = [(name, s, args.steps) for name, n in plan for s in range(n)]
    t0 = time.time()
    with ProcessPoolExecutor(args.workers) as pool:
        results = []
        for r in pool.map(run_one, *zip(*jobs)):
            results.append(r)
            kl = "-" if r["kl"] is None else f"{r['kl']:.3f}"
            print(f"{r['preset']:<16} seed {r['seed']}: modes {r['modes']}/{r['modes_total']} "
                  f"hq {r['hq']:.1f}% kl {kl} ({r['seconds']:.0f}s)", flush=True)
    cmd = " ".join(["python benchmarks/modes.py", *(sys.argv[1:] if argv is None else argv)])
    where = results[0]["device"] if results else "CPU"
    header = (f"`{cmd}` on {cpu_name()} ({where}), {args.workers} worker processes of one "
              f"CPU thread each, {time.strftime('%Y-%m-%d')}, {(time.time() - t0) / 60:.0f} min in all. "
              "Mean ± std over seeds; 2,500 samples per run.")
    text = header + "\n\n" + table(results, args.presets)
    print("\n" + text)
    if args.write:
        replace_block("modes", text)


if __name__ == "__main__":
    main()
