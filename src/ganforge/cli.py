"""The ``ganforge`` command. Thin: parses arguments and calls the library.

Errors a user can fix print one line (``ganforge: error: ...``) and exit with code 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ganforge.errors import GanforgeError

EXAMPLES = """examples:
  ganforge presets
  ganforge train demo
  ganforge train dcgan-mnist train.steps=2000 loss.generator=minimax --out runs/dcgan
  ganforge train --resume runs/dcgan train.steps=4000
  ganforge sample runs/dcgan --n 100 --out grid.png
  ganforge eval runs/dcgan --n 2500
  ganforge eval --samples samples.npy --reference mnist --metrics fid,pr
"""


def _cmd_presets(args) -> int:
    from ganforge.config import preset_description, preset_names

    names = preset_names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {preset_description(name)}")
    return 0


def _cmd_train(args) -> int:
    from ganforge.config import load_config, load_run_config
    from ganforge.train.loop import train

    if args.resume:
        preset_given = [a for a in args.args if "=" not in a]
        if preset_given:
            raise GanforgeError(f"with --resume give only key=value overrides, not "
                                f"'{preset_given[0]}'; the run folder's config.yaml is used")
        if args.out or args.overwrite:
            raise GanforgeError("--resume continues the run in place; drop --out/--overwrite")
        run_dir = Path(args.resume)
        if not run_dir.is_dir():
            raise GanforgeError(f"--resume '{run_dir}' is not a folder; give a ganforge run folder")
        cfg = load_run_config(run_dir / "config.yaml", args.args)
        train(cfg, run_dir, resume=True)
        return 0
    if not args.args or "=" in args.args[0]:
        raise GanforgeError("train needs a preset name or a .yaml file first (see `ganforge "
                            "presets`), or --resume RUN_DIR")
    preset, overrides = args.args[0], args.args[1:]
    cfg = load_config(preset, overrides)
    out = Path(args.out) if args.out else Path("runs") / Path(preset).stem
    train(cfg, out, overwrite=args.overwrite)
    return 0


def _cmd_sample(args) -> int:
    import numpy as np

    from ganforge.data import is_toy, load_data
    from ganforge.sampling import fixed_inputs, generate
    from ganforge.train.checkpoint import load_generator
    from ganforge.train.watch import save_toy_samples
    from ganforge.viz import save_grid

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npy"):
        raise GanforgeError(f"--out '{out}' must end in .png (a grid) or .npy (raw samples)")
    if args.n < 1:
        raise GanforgeError(f"--n {args.n} must be at least 1")
    g, cfg = load_generator(args.run_dir, step=args.step)
    if is_toy(cfg.data.name) and args.label is not None:
        raise GanforgeError("--label needs a conditional model; toy runs have no labels")
    if args.label is not None:
        if not cfg.model.conditional:
            raise GanforgeError("--label needs a conditional model; this run is unconditional")
        if not 0 <= args.label < cfg.model.num_classes:
            raise GanforgeError(f"--label {args.label} is out of range; "
                                f"choose 0..{cfg.model.num_classes - 1}")
    z, y = fixed_inputs(cfg, args.n, seed=args.seed, label=args.label)
    images = generate(g, z, y)  # (N, C, H, W) in [-1, 1], or (N, dim) points for toy data
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".npy":
        np.save(out, images.numpy().astype(np.float32))
    elif is_toy(cfg.data.name):
        save_toy_samples(images.numpy(), load_data(cfg), out)
    else:
        save_grid(images, out, nrow=10 if cfg.model.conditional and args.label is None else None)
    print(f"wrote {len(images)} samples of shape {tuple(images.shape[1:])} to {out}")
    return 0


IMAGE_ROWS = (("fid", "classifier FID", "{:.3f}"), ("kid", "KID", "{:.5f}"),
              ("is", "classifier score", "{:.3f}"), ("precision", "precision", "{:.3f}"),
              ("recall", "recall", "{:.3f}"), ("cond_acc", "conditional acc.", "{:.3f}"))
METRIC_CHOICES = ("fid", "kid", "is", "pr")


def _parse_metrics(text: str) -> tuple[str, ...]:
    chosen = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in chosen if m not in METRIC_CHOICES]
    if bad or not chosen:
        raise GanforgeError(f"--metrics '{text}' is not known; choose a comma-separated list "
                            f"from: {', '.join(METRIC_CHOICES)}")
    return chosen


def _print_image_result(result: dict) -> None:
    print(f"{'samples':<22}{result['n']}")
    for key, label, fmt in IMAGE_ROWS:
        if key in result:
            extra = f" +- {result[key + '_std']:.5f}" if key + "_std" in result else ""
            print(f"{label:<22}{fmt.format(result[key])}{extra}")
    if result.get("cond_acc_per_class"):
        per = " ".join("-" if v is None else f"{v:.2f}" for v in result["cond_acc_per_class"])
        print(f"{'  per class 0..9':<22}{per}")


def _load_samples(path: Path):
    import numpy as np

    if path.suffix.lower() != ".npy":
        raise GanforgeError(f"--samples '{path}' must be a .npy file of (N, C, H, W) floats")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise GanforgeError(f"cannot read --samples '{path}': {str(e).splitlines()[0]}") from None
    if array.ndim != 4 or array.shape[1] not in (1, 3) or array.shape[0] < 4:
        raise GanforgeError(f"--samples '{path}' has shape {array.shape}; expected (N, C, H, W) "
                            "with C = 1 or 3 and N >= 4")
    if not np.issubdtype(array.dtype, np.floating):
        raise GanforgeError(f"--samples '{path}' holds {array.dtype}; expected floats in [-1, 1]")
    if not np.isfinite(array).all():
        raise GanforgeError(f"--samples '{path}' contains NaN or infinite values")
    lo, hi = float(array.min()), float(array.max())
    if lo < -1.001 or hi > 1.001:
        raise GanforgeError(f"--samples '{path}' has values in [{lo:.3g}, {hi:.3g}]; expected "
                            "[-1, 1] (what `ganforge sample --out FILE.npy` writes)")
    return array


def _cmd_eval_samples(args) -> int:
    import json

    import numpy as np
    import torch

    from ganforge.config import load_config
    from ganforge.data import load_data
    from ganforge.metrics.image import reference_subset, score_images

    if args.run_dir is not None or args.step is not None:
        raise GanforgeError("give either RUN_DIR or --samples FILE.npy, not both")
    samples = torch.from_numpy(np.ascontiguousarray(_load_samples(Path(args.samples)),
                                                    dtype=np.float32))
    samples = samples[: args.n] if args.n is not None else samples
    cfg = load_config("demo", [f"data.name={args.reference}"])
    real = reference_subset(load_data(cfg).images, len(samples))
    result = {"n": len(samples), "reference": args.reference,
              **score_images(samples, real, _parse_metrics(args.metrics),
                             reference=args.reference)}
    out = Path(args.samples).with_suffix(".eval.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    if args.json:
        print(json.dumps(result))
    else:
        _print_image_result(result)
        print(f"wrote {out}")
    return 0


def _cmd_eval(args) -> int:
    import json

    from ganforge.data import load_data
    from ganforge.train.checkpoint import load_generator
    from ganforge.train.watch import evaluate

    if args.n is not None and args.n < (4 if args.samples else 1):
        raise GanforgeError(f"--n {args.n} must be at least {4 if args.samples else 1}")
    if args.samples:
        return _cmd_eval_samples(args)
    if args.run_dir is None:
        raise GanforgeError("eval needs a run folder (ganforge eval RUN_DIR) or "
                            "--samples FILE.npy --reference mnist")
    n = args.n or 2500
    g, cfg = load_generator(args.run_dir, step=args.step)
    data = load_data(cfg)
    if data.kind == "toy":
        result = {"n": n, **evaluate(g, data, cfg, n)}
    else:
        from ganforge.metrics.image import reference_subset, score_images
        from ganforge.sampling import fixed_inputs, generate

        if data.images.shape[1] != 1:
            raise GanforgeError(f"this run has {data.images.shape[1]}-channel images "
                                f"({cfg.data.name}); their metrics need InceptionV3, which is "
                                "not available offline; ganforge eval scores toy and 1-channel "
                                "(MNIST-like) runs")
        if n < 4:
            raise GanforgeError(f"--n {n} must be at least 4 for image metrics")
        z, y = fixed_inputs(cfg, n, seed=cfg.train.seed + 999)  # the noise the loop scores
        real = reference_subset(data.images, n)
        result = {"n": n, **score_images(generate(g, z, y), real, _parse_metrics(args.metrics),
                                         labels=y, reference=f"{cfg.data.name}-train")}
    (Path(args.run_dir) / "eval.json").write_text(json.dumps(result, indent=1) + "\n")
    if args.json:
        print(json.dumps(result))
        return 0
    if data.kind != "toy":
        _print_image_result(result)
        return 0
    kl = "n/a (no high-quality sample)" if result["kl"] is None else f"{result['kl']:.4f}"
    print(f"{'samples':<22}{n}")
    print(f"{'modes covered':<22}{result['modes']} / {len(data.centers)}")
    print(f"{'high quality (%)':<22}{result['hq']:.1f}")
    print(f"{'reverse KL':<22}{kl}")
    return 0


def _cmd_classifier(args) -> int:
    from ganforge.metrics.classifier import train_classifier

    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise GanforgeError(f"--out '{out}' must end in .safetensors")
    if args.epochs < 1:
        raise GanforgeError(f"--epochs {args.epochs} must be at least 1")
    result = train_classifier(seed=args.seed, epochs=args.epochs, out=out)
    print(f"held-out accuracy {result['held_out_acc']:.4f} on {result['n_held_out']} digits "
          f"(train {result['train_acc']:.4f}, {result['seconds']:.0f} s); wrote {out}")
    return 0


def _cmd_theory(args) -> int:
    from ganforge.theory import write_theory

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = write_theory(out)
    a, b = n["optimal_d"], n["value_vs_js"]
    print(f"(a) trained D vs D* = p_data/(p_data + p_g): max |error| {a['max_abs_error']:.4f} "
          f"(tolerance {a['tolerance']}) over x in [{a['region'][0]:.2f}, {a['region'][1]:.2f}]")
    print(f"(b) V(D*, G) vs 2 JS - 2 log 2: max |difference| {b['max_abs_diff']:.2e} "
          f"(tolerance {b['tolerance']:g}); V at p_g = p_data: {b['value_at_p_data']:.6f}")
    print("(c) J(G) against D(G(z)) for " + ", ".join(n["generator_losses"]["D=0.5"]))
    print(f"wrote optimal_d.png, value_vs_js.png, generator_losses.png and theory.json to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganforge", description="Train, evaluate and explain GANs.",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("presets", help="list the presets with a one-line description")

    t = sub.add_parser("train", help="train a preset or a YAML config",
                       description="ganforge train PRESET|FILE.yaml [key=value ...]")
    t.add_argument("args", nargs="*", metavar="PRESET|key=value",
                   help="a preset name or .yaml file, then dotted overrides such as train.steps=300")
    t.add_argument("--out", help="run folder (default: runs/PRESET)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its newest checkpoint")

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run_dir")
    s.add_argument("--n", type=int, default=100, help="number of samples (default 100)")
    s.add_argument("--label", type=int, help="class to draw (conditional models)")
    s.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    s.add_argument("--step", type=int, help="checkpoint step (default: the newest)")
    s.add_argument("--out", required=True, help="FILE.png for a grid, FILE.npy for raw samples")
    e = sub.add_parser("eval", help="score a run or a .npy file of samples",
                       description="Toy runs: modes, %% high quality, KL. 1-channel image runs "
                       "and --samples: classifier FID, KID, score, precision/recall (and "
                       "conditional accuracy). Writes eval.json.")
    e.add_argument("run_dir", nargs="?", help="a ganforge run folder")
    e.add_argument("--samples", metavar="FILE.npy", help="score (N, C, H, W) floats in [-1, 1]")
    e.add_argument("--reference", default="mnist", choices=["mnist"],
                   help="the real data --samples is compared with (default mnist)")
    e.add_argument("--metrics", default=",".join(METRIC_CHOICES),
                   help="image metrics to compute, comma-separated (default fid,kid,is,pr)")
    e.add_argument("--n", type=int, help="number of samples (default 2500; --samples: all)")
    e.add_argument("--step", type=int, help="checkpoint step (default: the newest)")
    e.add_argument("--json", action="store_true", help="print the result as JSON")

    c = sub.add_parser("classifier", help="retrain the MNIST classifier the image metrics use")
    c.add_argument("--out", required=True, help="FILE.safetensors for the weights")
    c.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    c.add_argument("--epochs", type=int, default=15, help="epochs (default 15)")

    th = sub.add_parser("theory", help="the theory lab: optimal D, V(D*, G) vs JS, G losses")
    th.add_argument("--out", required=True, help="folder for the figures")
    return p


COMMANDS = {"presets": _cmd_presets, "train": _cmd_train, "sample": _cmd_sample,
            "eval": _cmd_eval, "classifier": _cmd_classifier, "theory": _cmd_theory}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may also come after options (`train demo --out x train.steps=9`)
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command != "train" or any(a.startswith("-") for a in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.args += extra
    try:
        return COMMANDS[args.command](args)
    except GanforgeError as e:
        print(f"ganforge: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
