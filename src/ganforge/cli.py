"""The ``ganforge`` command. Thin: parses arguments and calls the library.

Errors a user can fix print one line (``ganforge: error: ...``) and exit with code 2.
"""
from __future__ import annotations

import argparse
import io
import math
import os
import re
import sys
import tempfile
from pathlib import Path

from ganforge import __version__
from ganforge.errors import (BAD_PATH, NO_SPACE, GanforgeError, bad_path, no_space,
                             out_of_memory)
from ganforge.files import replacing, write_text

EXAMPLES = """examples:
  ganforge presets
  ganforge train demo
  ganforge train dcgan-mnist train.steps=2000 loss.generator=minimax --out runs/dcgan
  ganforge train --resume runs/dcgan train.steps=4000
  ganforge sample runs/dcgan --n 100 --out grid.png
  ganforge eval runs/dcgan --n 2500
  ganforge eval --samples samples.npy --reference mnist --metrics fid,pr
  ganforge interpolate runs/dcgan --spherical --out walk.png
  ganforge arithmetic runs/dcgan --attribute thickness --out thick.png
  ganforge probe runs/dcgan --labels 100,1000

environment:
  GANFORGE_PLUGINS  comma-separated modules or .py files to import first, which register
                    models, losses, penalties or datasets of your own (README, Plugins)
  GANFORGE_DISABLE_PLUGIN_AUTOLOAD=1
                    skip the plugins that installed packages declare
  GANFORGE_INCEPTION_WEIGHTS
                    a local InceptionV3 weights file for FID, KID and IS (README, Evaluation)
  GANFORGE_CACHE    where features of the real images are cached (default ~/.cache/ganforge)
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

    out = _out_file(args.out, (".png", ".npy"), "a grid, or raw samples")
    if args.n < 1:
        raise GanforgeError(f"--n {args.n} must be at least 1")
    g, cfg = load_generator(args.run_dir, step=args.step, device=_device(args),
                            ema=False if args.no_ema else None)
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
        buffer = io.BytesIO()  # np.save would add .npy to a name ending in .NPY
        np.save(buffer, images.numpy().astype(np.float32))
        with replacing(out) as tmp:  # a full disk leaves no cut-off file
            tmp.write_bytes(buffer.getvalue())
    elif is_toy(cfg.data.name):
        save_toy_samples(images.numpy(), load_data(cfg), out)
    else:
        save_grid(images, out, nrow=10 if cfg.model.conditional and args.label is None else None)
    print(f"wrote {len(images)} samples of shape {tuple(images.shape[1:])} to {out}")
    return 0


IMAGE_ROWS = (("extractor", "feature space", "{}"), ("fid", "FID", "{:.3f}"), ("kid", "KID", "{:.5f}"),
              ("is", "score (IS)", "{:.3f}"), ("digit_kl", "digit KL", "{:.4f}"),
              ("precision", "precision", "{:.3f}"),
              ("recall", "recall", "{:.3f}"), ("cond_acc", "conditional acc.", "{:.3f}"))
METRIC_CHOICES = ("fid", "kid", "is", "pr")
NO_EMA_HELP = "use G's trained weights, not their moving average (runs with train.ema_decay > 0)"


def _parse_metrics(text: str) -> tuple[str, ...]:
    chosen = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in chosen if m not in METRIC_CHOICES]
    if bad or not chosen:
        raise GanforgeError(f"--metrics '{text}' is not known; choose a comma-separated list "
                            f"from: {', '.join(METRIC_CHOICES)}")
    return chosen


def _extractor(args, channels: int) -> dict:
    """score_images keywords for --extractor: auto = the digit classifier for 1-channel images,
    InceptionV3 for 3-channel ones."""
    name = args.extractor if args.extractor != "auto" else (
        "classifier" if channels == 1 else "inception")
    return {"extractor": name, "inception_weights": args.inception_weights}


def _no_image_options(args, instead: str) -> None:
    """--metrics, --extractor and --inception-weights choose image metrics; refuse them where
    none are computed rather than ignore them."""
    given = [o for o, v in (("--metrics", args.metrics is not None),
                            ("--extractor", args.extractor != "auto"),
                            ("--inception-weights", args.inception_weights)) if v]
    if given:
        raise GanforgeError(f"{given[0]} chooses image metrics; {instead} without it")


def _score(args, fake, real, **kw) -> dict:
    """score_images with the command's --metrics and --extractor; names the extractor."""
    from ganforge.metrics.image import score_images

    chosen = _extractor(args, fake.shape[1])
    metrics = ",".join(METRIC_CHOICES) if args.metrics is None else args.metrics  # '' is none
    return {"extractor": chosen["extractor"],
            **score_images(fake, real, _parse_metrics(metrics), **chosen, device=_device(args),
                           **kw)}


def _print_image_result(result: dict) -> None:
    print(f"{'samples':<22}{result['n']}")
    if "real" in result:  # which real set, found from data.root: say it
        print(f"{'real images':<22}{result['n_real']} of {result['real']}")
    for key, label, fmt in IMAGE_ROWS:
        if key in result:
            std = result.get(key + "_std")  # KID on sets no larger than a subset has none
            extra = "" if std is None else f" +- {std:.5f}"
            print(f"{label:<22}{fmt.format(result[key])}{extra}")
    if result.get("cond_acc_per_class"):
        per = " ".join("-" if v is None else f"{v:.2f}" for v in result["cond_acc_per_class"])
        print(f"{'  per class 0..9':<22}{per}")


def _print_stacked_result(result: dict) -> None:
    print(f"{'samples':<22}{result['n']}")
    print(f"{'modes covered':<22}{result['modes']} / 1000")
    print(f"{'KL (vs uniform)':<22}{result['kl']:.4f}")
    print(f"{'  of it, digit shares':<22}{result['digit_kl']:.4f} (sum over R, G, B of KL(digit "
          "shares || uniform over 10))")


def _load_samples(path: Path):
    import numpy as np

    if path.suffix.lower() != ".npy":
        raise GanforgeError(f"--samples '{path}' must be a .npy file of (N, C, H, W) floats")
    try:
        array = np.load(path, allow_pickle=False)
    except EOFError:
        raise GanforgeError(f"cannot read --samples '{path}': the file is empty") from None
    except (OSError, ValueError) as e:  # numpy takes a file that is no .npy for a pickle
        why = "not a NumPy .npy array file" if "pickled" in str(e) else str(e).splitlines()[0]
        raise GanforgeError(f"cannot read --samples '{path}': {why}") from None
    if (array.ndim != 4 or array.shape[1] not in (1, 3) or array.shape[0] < 4
            or min(array.shape[2:]) < 1):
        raise GanforgeError(f"--samples '{path}' has shape {array.shape}; expected (N, C, H, W) "
                            "with C = 1 or 3, N >= 4 and images of at least 1x1")
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
    from ganforge.metrics.image import reference_subset

    if args.run_dir is not None:
        raise GanforgeError("give either RUN_DIR or --samples FILE.npy, not both")
    for option, given in (("--step", args.step is not None), ("--no-ema", args.no_ema)):
        if given:
            raise GanforgeError(f"{option} chooses a run's checkpoint; --samples scores a file")
    samples = torch.from_numpy(np.ascontiguousarray(_load_samples(Path(args.samples)),
                                                    dtype=np.float32))
    samples = samples[: args.n] if args.n is not None else samples
    stacked = args.reference == "stacked-mnist"
    if stacked:  # each channel is labelled by the classifier; no real set is needed
        from ganforge.metrics.stacked import stacked_metrics

        _no_image_options(args, "--reference stacked-mnist counts modes of 1,000 and KL")
        if samples.shape[1] != 3:
            raise GanforgeError(f"--reference stacked-mnist needs 3-channel samples (one digit "
                                f"per channel); '{args.samples}' has {samples.shape[1]}")
        counted = stacked_metrics(samples)
        result = {"n": len(samples), "reference": args.reference,
                  "modes": counted["modes"], "kl": counted["kl"], "digit_kl": counted["digit_kl"]}
    else:
        data = load_data(load_config("demo", [f"data.name={args.reference}"]))
        real = reference_subset(data.images, len(samples))
        result = {"n": len(samples), "reference": args.reference, "n_real": len(real),
                  "real": data.source, **_score(args, samples, real, reference=args.reference)}
    out = Path(args.samples).with_suffix(".eval.json")
    if args.json:
        print(json.dumps(result))
    else:
        (_print_stacked_result if stacked else _print_image_result)(result)
    sys.stdout.flush()  # the figures are out before a full disk can stop the file
    write_text(out, json.dumps(result, indent=1) + "\n")
    if not args.json:
        print(f"wrote {out}")
    return 0


def _cmd_eval(args) -> int:
    import json

    from ganforge.data import load_data
    from ganforge.train.checkpoint import (EMA_FILE, checkpoint_path, generator_file,
                                           load_generator, step_of)
    from ganforge.train.watch import evaluate

    if args.n is not None and args.n < (4 if args.samples else 1):
        raise GanforgeError(f"--n {args.n} must be at least {4 if args.samples else 1}")
    if args.samples:
        return _cmd_eval_samples(args)
    if args.run_dir is None:
        raise GanforgeError("eval needs a run folder (ganforge eval RUN_DIR) or "
                            "--samples FILE.npy --reference mnist")
    ema = False if args.no_ema else None
    g, cfg = load_generator(args.run_dir, step=args.step, device=_device(args), ema=ema)
    path = checkpoint_path(args.run_dir, args.step)  # the one load_generator read
    scored = {"step": step_of(path.name), "ema": generator_file(path, ema) == EMA_FILE}
    stacked = cfg.data.name == "stacked-mnist"  # modes of 1,000 and KL on 26,000 samples
    n = args.n or (26000 if stacked else 2500)
    data = None if stacked else load_data(cfg)  # stacked metrics need no real images
    if stacked or data.kind == "toy":
        _no_image_options(args, "this run gets modes covered, % high quality (toy runs) and KL")
        result = {**scored, "n": n, **evaluate(g, data, cfg, n)}
    else:
        from ganforge.train.watch import image_sets

        if n < 4:
            raise GanforgeError(f"--n {n} must be at least 4 for image metrics")
        if len(data.images) < 4:
            raise GanforgeError(f"the run's data has {len(data.images)} images; image metrics "
                                "need at least 4 real ones")
        fake, real, labels, reference = image_sets(g, data, cfg, n)  # what the loop scores
        result = {**scored, "n": n, "n_real": len(real), "real": data.source,  # data.root's
                  **_score(args, fake, real, labels=labels, reference=reference)}
    if args.json:
        print(json.dumps(result))
    elif stacked:
        _print_stacked_result(result)
    elif data.kind != "toy":
        _print_image_result(result)
    else:
        kl = "n/a (no high-quality sample)" if result["kl"] is None else f"{result['kl']:.4f}"
        print(f"{'samples':<22}{n}")
        print(f"{'modes covered':<22}{result['modes']} / {len(data.centers)}")
        print(f"{'high quality (%)':<22}{result['hq']:.1f}")
        print(f"{'reverse KL':<22}{kl}")
    sys.stdout.flush()  # the figures are out before a full disk can stop the file
    out = Path(args.run_dir) / "eval.json"
    write_text(out, json.dumps(result, indent=1) + "\n")
    if not args.json:
        print(f"wrote {out}")
    return 0


def _cmd_classifier(args) -> int:
    from ganforge.metrics.classifier import train_classifier

    out = _out_file(args.out, (".safetensors",), "the classifier's weights")
    if args.epochs < 1:
        raise GanforgeError(f"--epochs {args.epochs} must be at least 1")
    result = train_classifier(seed=args.seed, epochs=args.epochs, out=out)
    print(f"held-out accuracy {result['held_out_acc']:.4f} on {result['n_held_out']} digits "
          f"(train {result['train_acc']:.4f}, {result['seconds']:.0f} s); wrote {out}")
    return 0


def _cmd_theory(args) -> int:
    from ganforge.theory import write_theory
    from ganforge.train.checkpoint import file_in_the_way

    if not args.out.strip():
        raise GanforgeError("--out '' names no folder; give the folder for the figures")
    out = Path(args.out)
    blocker = out if out.exists() and not out.is_dir() else file_in_the_way(out)
    if blocker is not None:
        raise GanforgeError(f"--out '{out}' must be a folder, but '{blocker}' is a file")
    out.mkdir(parents=True, exist_ok=True)
    n = write_theory(out)
    a, b = n["optimal_d"], n["value_vs_js"]
    print(f"(a) trained D vs D* = p_data/(p_data + p_g): max |error| {a['max_abs_error']:.4f} "
          f"(tolerance {a['tolerance']}) over x in [{a['region'][0]:.2f}, {a['region'][1]:.2f}]")
    print(f"(b) V(D*, G) vs 2 JS - 2 log 2: max |difference| {b['max_abs_diff']:.2e} "
          f"(tolerance {b['tolerance']:g}); V at p_g = p_data: {b['value_at_p_data']:.6f}")
    print("(c) J(G) against D(G(z)) for " + ", ".join(n["generator_losses"]["D=0.5"]))
    e = n["distance_estimates"]
    print("(d) each D loss's statistic at its best D vs its distance: max |difference| "
          + ", ".join(f"{loss} {v:.1e}" for loss, v in e["max_abs_diff"].items())
          + f" (tolerance {e['tolerance']:g})")
    print(f"wrote optimal_d.png, value_vs_js.png, generator_losses.png, distance_estimates.png "
          f"and theory.json to {out}")
    return 0


def _out_file(arg: str, suffixes: tuple[str, ...], what: str) -> Path:
    """The --out of a command that writes one file: a name with one of ``suffixes``, a place a
    file can go, and never one of the files a run wrote (only train and eval write those)."""
    from ganforge.train.checkpoint import RUN_ENTRIES, RUN_FOLDERS, file_in_the_way, is_run_folder

    out, ends = Path(arg), " or ".join(suffixes)
    if out.suffix.lower() not in suffixes:
        named = f"needs a name before {out.name}" if out.name.lower() in suffixes else \
            f"must end in {ends}"
        raise GanforgeError(f"--out '{out}' {named} ({what})")
    if out.is_dir():
        raise GanforgeError(f"--out '{out}' is a folder; give a file name ending in {ends}")
    if (blocker := file_in_the_way(out)) is not None:
        raise GanforgeError(f"--out '{out}' cannot be written: '{blocker}' is a file, not a folder")
    where = out.resolve()
    run = next((p for p in where.parents if is_run_folder(p)), None)
    if run is not None and (part := where.relative_to(run).parts[0]) in RUN_ENTRIES:
        if part in RUN_FOLDERS or (run / part).is_dir():  # the run's to manage
            raise GanforgeError(f"--out '{out}' is inside '{part}' of the run folder '{run}', "
                                "which train rewrites and deletes from; write elsewhere")
        if out.exists():
            raise GanforgeError(f"--out '{out}' would replace a file of the run folder '{run}'; "
                                "choose a new name")
    # where the file would go takes a new file: found now, not after minutes of work
    folder = next(p for p in where.parents if p.is_dir())
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise GanforgeError(f"--out '{out}' cannot be written: no new file can be made in "
                            f"'{folder}' ({e.strerror.lower()})") from None
    return out


def _cmd_interpolate(args) -> int:
    from ganforge.data import is_toy
    from ganforge.latent import interpolation_inputs, save_interpolation
    from ganforge.sampling import generate
    from ganforge.train.checkpoint import load_generator

    out = _out_file(args.out, (".png", ".gif"), "a grid with one path a row, or an animation")
    if args.steps < 2:
        raise GanforgeError(f"--steps {args.steps} must be at least 2 (the two end points)")
    if args.rows < 1:
        raise GanforgeError(f"--rows {args.rows} must be at least 1")
    g, cfg = load_generator(args.run_dir, step=args.step, device=_device(args),
                            ema=False if args.no_ema else None)
    if is_toy(cfg.data.name):
        raise GanforgeError(f"interpolate needs an image run; '{cfg.data.name}' is a toy mixture")
    z, y = interpolation_inputs(cfg, args.rows, args.steps, args.spherical, args.seed)
    save_interpolation(generate(g, z, y), args.steps, out)
    norms = z[: args.rows * args.steps].norm(dim=1).view(args.rows, args.steps)
    print(f"{'spherical' if args.spherical else 'straight'} paths: mean |z| {norms[:, 0].mean():.2f}"
          f" at the start, {norms[:, -1].mean():.2f} at the end, {norms.min(1).values.mean():.2f} "
          "at each path's lowest")
    labels = (f"; rows {args.rows + 1}-{2 * args.rows} walk the label from digit r to r + 1 at "
              "a fixed z" if cfg.model.conditional else "")
    print(f"wrote {args.rows} rows of {args.steps} steps from z0 to z1{labels} to {out}")
    return 0


def _cmd_arithmetic(args) -> int:
    import json

    from ganforge.latent import ATTRIBUTES, arithmetic, arithmetic_report, save_arithmetic
    from ganforge.train.checkpoint import load_generator

    out = _out_file(args.out, (".png",), "a grid, one edit a row")
    if args.attribute not in ATTRIBUTES:
        raise GanforgeError(f"--attribute '{args.attribute}' is not known; choose one of: "
                            f"{', '.join(ATTRIBUTES)}")
    if args.digits is not None and args.attribute != "digit":
        raise GanforgeError(f"--digits goes with --attribute digit, not {args.attribute}")
    try:
        digits = tuple(int(v) for v in (args.digits or "7,9").split(","))
    except ValueError:
        digits = ()
    if len(digits) != 2:
        raise GanforgeError(f"--digits '{args.digits}' must be two digits A,B (from A to B)")
    if not math.isfinite(args.scale):
        raise GanforgeError(f"--scale {args.scale} must be a finite number")
    g, cfg = load_generator(args.run_dir, step=args.step, device=_device(args),
                            ema=False if args.no_ema else None)
    figures, tensors = arithmetic(g, cfg, args.attribute, pool=args.pool, edit=args.edit,
                                  quantile=args.quantile, digits=digits, scale=args.scale,
                                  seed=args.seed, orthogonal=args.orthogonal)
    figures["picture_rows"] = save_arithmetic(tensors, out)
    if args.json:
        print(json.dumps(figures))
        return 0
    print(arithmetic_report(figures))
    print(f"wrote {out} (rows: {', '.join(figures['picture_rows'])})")
    return 0


def _cmd_probe(args) -> int:
    import json

    from ganforge.probe import load_discriminator_checked, parse_labels, run_probe

    labels = parse_labels(args.labels)
    d, cfg = load_discriminator_checked(args.run_dir, args.step, "probe")
    largest = cfg.data.image_size // 2  # D's first layer halves the image
    if not 1 <= args.grid <= largest:
        raise GanforgeError(f"--grid {args.grid} must be between 1 and {largest} (D's largest "
                            f"feature map is {largest}x{largest})")
    result = run_probe(d, cfg, labels, draws=args.draws, seed=args.seed, grid=args.grid)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"held-out accuracy (%) on {result['test']} digits; logistic regression on "
          f"standardised features; mean +- std over {result['draws']} label draws")
    print(f"{'features':<14}{'dim':>6}" + "".join(f"{f'{n} labels':>18}" for n in labels))
    for name, row in result["rows"].items():
        cells = "".join(f"{100 * row['mean'][n]:>11.1f} +- {100 * row['std'][n]:<3.1f}"
                        for n in labels)
        print(f"{name:<14}{row['dim']:>6}{cells}")
    return 0


def _cmd_filters(args) -> int:
    import torch

    from ganforge.data import load_data
    from ganforge.data.base import to_unit_range
    from ganforge.probe import (check_layer, conv_layers, first_layer_filters, layer_maps,
                                load_discriminator_checked, receptive_boxes, save_filters_figure,
                                top_activations)

    out = _out_file(args.out, (".png",), "a picture")
    if args.channels < 1 or args.top < 1 or args.images < 1:
        raise GanforgeError(f"--channels {args.channels}, --top {args.top} and --images "
                            f"{args.images} must be at least 1")
    d, cfg = load_discriminator_checked(args.run_dir, args.step, "filters")
    layer = conv_layers(d) if args.layer is None else args.layer
    check_layer(d, layer)
    data = load_data(cfg)
    idx = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(args.seed))
    idx = idx[: args.images]
    images = to_unit_range(data.images[idx])
    labels = data.labels[idx] if cfg.model.conditional else None
    width = layer_maps(d, images[:1], None if labels is None else labels[:1])[layer - 1].shape[1]
    if args.channels > width or args.top > len(images):
        raise GanforgeError(f"--channels {args.channels} must be at most {width} (layer {layer}'s "
                            f"channels) and --top {args.top} at most {len(images)} (the images "
                            "searched)")
    filters = first_layer_filters(d, cfg.data.channels)
    chosen, top, pos = top_activations(d, images, labels, layer, args.channels, args.top)
    boxes = receptive_boxes(d, layer, pos.reshape(-1, 2), images.shape[-1])
    save_filters_figure(filters, images[top.flatten()], boxes, out, layer, args.top,
                        chosen.tolist())
    print(f"layer 1: {len(filters)} filters of {tuple(filters.shape[1:])}; layer {layer}: the "
          f"{args.top} of {len(images)} real images that excite channels "
          f"{', '.join(map(str, chosen.tolist()))} most (one channel a row)")
    print(f"wrote {out}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse whose usage mistakes are one line (exit code 2), like every other input error;
    the subcommands' parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"ganforge: error: {message} (see {self.prog} --help)\n")


def _whole(text: str) -> int:
    """An option's text as an int; anything else is argparse's one-line usage error."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None


def _seed(text: str) -> int:
    """--seed: a whole number torch's generators take, with room for the offsets added to it."""
    value = _whole(text)
    if not -2 ** 63 <= value < 2 ** 63:
        raise argparse.ArgumentTypeError(f"{value} is out of range; choose -2**63 .. 2**63 - 1")
    return value


def _step(text: str) -> int:
    """--step: a checkpoint's step, a whole number >= 0."""
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is no checkpoint's step; steps are >= 0")
    return value


STEP_HELP = "checkpoint step (default: the newest)"
DEVICE_HELP = "where G runs: cpu (the default), auto, cuda, cuda:N or mps"


def _device(args):
    from ganforge.train.loop import resolve_device

    return resolve_device(args.device, what="--device")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ganforge", description="Train, evaluate and explain GANs.",
                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"ganforge {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("presets", help="list the presets with a one-line description",
                   description="List the presets (one experiment of the seeds each) with a "
                   "one-line description; `ganforge train PRESET` trains one.")

    t = sub.add_parser("train", help="train a preset or a YAML config",
                       description="ganforge train PRESET|FILE.yaml [key=value ...]")
    t.add_argument("args", nargs="*", metavar="PRESET|key=value",
                   help="a preset name or .yaml file, then dotted overrides such as train.steps=300")
    t.add_argument("--out", help="run folder (default: runs/PRESET, or runs/NAME for a file "
                   "NAME.yaml)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its newest checkpoint")

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run_dir")
    s.add_argument("--n", type=int, default=100, help="number of samples (default 100)")
    s.add_argument("--label", type=int, help="class to draw (conditional models)")
    s.add_argument("--seed", type=_seed, default=0, help="noise seed (default 0)")
    s.add_argument("--step", type=_step, help=STEP_HELP)
    s.add_argument("--no-ema", action="store_true", help=NO_EMA_HELP)
    s.add_argument("--out", required=True, help="FILE.png for a grid, FILE.npy for raw samples")
    s.add_argument("--device", default="cpu", help=DEVICE_HELP)
    e = sub.add_parser("eval", help="score a run or a .npy file of samples",
                       description="Toy runs: modes, % high quality, KL. Image runs and "
                       "--samples: FID, KID, score, precision/recall (and conditional accuracy) in "
                       "the MNIST classifier's or InceptionV3's feature space. Writes eval.json.")
    e.add_argument("run_dir", nargs="?", help="a ganforge run folder")
    e.add_argument("--samples", metavar="FILE.npy", help="score (N, C, H, W) floats in [-1, 1]")
    e.add_argument("--reference", default="mnist", choices=["mnist", "stacked-mnist"],
                   help="the real data --samples is compared with (default mnist); "
                   "stacked-mnist counts modes of 1,000 and KL instead")
    e.add_argument("--metrics",
                   help="image metrics to compute, comma-separated (default fid,kid,is,pr)")
    e.add_argument("--extractor", default="auto", choices=["auto", "classifier", "inception"],
                   help="feature space of the image metrics (default auto: the MNIST classifier "
                   "for 1-channel images, InceptionV3 for 3-channel ones)")
    e.add_argument("--inception-weights", metavar="FILE",
                   help="local InceptionV3 weights (weights-inception-2015-12-05-6726825d.pth); "
                   "default $GANFORGE_INCEPTION_WEIGHTS, else torch-fidelity's download")
    e.add_argument("--n", type=int, help="number of samples (default 2500, stacked MNIST 26000; "
                   "--samples: all)")
    e.add_argument("--step", type=_step, help=STEP_HELP)
    e.add_argument("--no-ema", action="store_true", help=NO_EMA_HELP)
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.add_argument("--device", default="cpu", help=DEVICE_HELP + " (and InceptionV3)")

    c = sub.add_parser("classifier", help="retrain the MNIST classifier the image metrics use")
    c.add_argument("--out", required=True, help="FILE.safetensors for the weights")
    c.add_argument("--seed", type=_seed, default=0, help="seed (default 0)")
    c.add_argument("--epochs", type=int, default=15, help="epochs (default 15)")

    th = sub.add_parser("theory", help="the theory lab: optimal D, V(D*, G) vs JS, G losses")
    th.add_argument("--out", required=True, help="folder for the figures")

    ip = sub.add_parser("interpolate", help="images along paths between random z (and labels)")
    ip.add_argument("run_dir")
    ip.add_argument("--steps", type=int, default=10, help="images a path, ends included (10)")
    ip.add_argument("--rows", type=int, default=8, help="number of paths (default 8)")
    ip.add_argument("--spherical", action="store_true",
                    help="slerp the direction and walk the norm linearly (default: straight)")
    ip.add_argument("--seed", type=_seed, default=0, help="noise seed (default 0)")
    ip.add_argument("--step", type=_step, help=STEP_HELP)
    ip.add_argument("--no-ema", action="store_true", help=NO_EMA_HELP)
    ip.add_argument("--out", required=True, help="FILE.png (one path a row) or FILE.gif")
    ip.add_argument("--device", default="cpu", help=DEVICE_HELP)

    ar = sub.add_parser("arithmetic", help="add an attribute vector (thick - thin, ...) to z")
    ar.add_argument("run_dir")
    ar.add_argument("--attribute", required=True, help="thickness, slant or digit")
    ar.add_argument("--digits", help="for --attribute digit: A,B turns A into B (7,9)")
    ar.add_argument("--pool", type=int, default=5000, help="z drawn to form the vector (5000)")
    ar.add_argument("--edit", type=int, default=500, help="fresh z the vector is added to (500)")
    ar.add_argument("--quantile", type=float, default=0.2,
                    help="top and bottom share of each class that form the groups (0.2)")
    ar.add_argument("--scale", type=float, default=1.0, help="multiply the vector (1.0)")
    ar.add_argument("--orthogonal", action="store_true",
                    help="remove the vector's part along the class means (keeps the digit)")
    ar.add_argument("--seed", type=_seed, default=0, help="noise seed (default 0)")
    ar.add_argument("--step", type=_step, help=STEP_HELP)
    ar.add_argument("--no-ema", action="store_true", help=NO_EMA_HELP)
    ar.add_argument("--json", action="store_true", help="print the figures as JSON")
    ar.add_argument("--out", required=True, help="FILE.png: rows z - v, z, z + v")
    ar.add_argument("--device", default="cpu", help=DEVICE_HELP)

    pr = sub.add_parser("probe", help="D's features as a linear digit classifier (DCGAN 5.1)")
    pr.add_argument("run_dir")
    pr.add_argument("--labels", default="100,1000",
                    help="labelled training digits, comma-separated (default 100,1000)")
    pr.add_argument("--draws", type=int, default=5, help="random label draws (default 5)")
    pr.add_argument("--grid", type=int, default=4, help="max-pool every layer to GxG (4)")
    pr.add_argument("--seed", type=_seed, default=0, help="seed of the first draw (default 0)")
    pr.add_argument("--step", type=_step, help=STEP_HELP)
    pr.add_argument("--json", action="store_true", help="print the result as JSON")

    fi = sub.add_parser("filters", help="D's first-layer filters and top activations")
    fi.add_argument("run_dir")
    fi.add_argument("--layer", type=int, help="conv layer for the activations (default: last)")
    fi.add_argument("--channels", type=int, default=8, help="channels shown (default 8)")
    fi.add_argument("--top", type=int, default=8, help="images per channel (default 8)")
    fi.add_argument("--images", type=int, default=2000, help="real images searched (2000)")
    fi.add_argument("--seed", type=_seed, default=0, help="seed of the image draw (default 0)")
    fi.add_argument("--step", type=_step, help=STEP_HELP)
    fi.add_argument("--out", required=True, help="FILE.png")
    return p


COMMANDS = {"presets": _cmd_presets, "train": _cmd_train, "sample": _cmd_sample,
            "eval": _cmd_eval, "classifier": _cmd_classifier, "theory": _cmd_theory,
            "interpolate": _cmd_interpolate, "arithmetic": _cmd_arithmetic,
            "probe": _cmd_probe, "filters": _cmd_filters}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may also come after options (`train demo --out x train.steps=9`)
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command != "train" or any(a.startswith("-") for a in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.args += extra
    try:
        from ganforge.plugins import load_plugins

        load_plugins()  # names registered outside ganforge (GANFORGE_PLUGINS, entry points)
        return COMMANDS[args.command](args)
    except GanforgeError as e:
        print(f"ganforge: error: {e}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:  # torch's OutOfMemoryError is a RuntimeError
        if not out_of_memory(e):
            raise
        first = (str(e).splitlines() or [type(e).__name__])[0]
        m = re.search(r"[Tt]ried to allocate ([\d.]+) ?(\w+)", first)
        size = "" if m is None else f" (it asked for {float(m[1]) / 1e9:.1f} GB)" \
            if m[2] == "bytes" else f" (it asked for {m[1]} {m[2]})"
        print(f"ganforge: error: not enough memory for this request{size}; ask for less, e.g. "
              "a smaller --n, --pool, --rows or train.batch_size", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `ganforge presets | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a command the signal stopped
    except OSError as e:
        if e.errno in NO_SPACE:
            print(f"ganforge: error: {no_space(e)}; free some space and run the command again",
                  file=sys.stderr)
        elif e.errno in BAD_PATH and e.filename is not None:  # e.g. --out on a read-only disk
            print(f"ganforge: error: {bad_path(e)}", file=sys.stderr)
        else:
            raise
        return 2
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
