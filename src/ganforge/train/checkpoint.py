"""Checkpoints: safetensors for every tensor plus JSON for the rest, so that loading executes
nothing from the files. A checkpoint is a folder ``checkpoints/step_NNNNNN/`` written under a
temporary name and renamed into place, so a crash mid-write leaves the previous one intact.

    generator.safetensors      G's parameters and buffers
    generator_ema.safetensors  the moving average of G (runs with train.ema_decay > 0)
    discriminator.safetensors  D's parameters and buffers
    optim_g.safetensors, optim_d.safetensors   Adam moments and step counts
    state.safetensors          RNG states, the data sampler's permutation, the open logging
                               window's summed statistics and the training clock
    state.json                 step, optimiser hyper-parameters
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ganforge.errors import CheckpointError, whole
from ganforge.files import save_tensors

CKPT_DIR = "checkpoints"
EMA_FILE = "generator_ema.safetensors"
_STEP = re.compile(r"^step_(\d{6,})$")


# what a run folder holds (train writes all but eval.json, which `ganforge eval` adds)
RUN_FOLDERS = {"samples", CKPT_DIR, "tensorboard"}
RUN_ENTRIES = RUN_FOLDERS | {"config.yaml", "metrics.jsonl", "progress.gif", "curves.png",
                             "eval.json"}


def is_run_folder(path: Path) -> bool:
    """A folder ``ganforge train`` wrote: its config.yaml and a checkpoints/ folder."""
    return (path / "config.yaml").is_file() and (path / CKPT_DIR).is_dir()


def file_in_the_way(path: Path) -> Path | None:
    """The nearest existing parent of ``path`` that is a file, not a folder (None if none is):
    nothing can be written at ``path`` then."""
    return next((p for p in Path(path).parents if p.exists() and not p.is_dir()), None)


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}"


def step_of(name: str) -> int | None:
    """The step a ``step_NNNNNN`` name (a checkpoint folder, a sample grid's stem) stands for."""
    return int(m.group(1)) if (m := _STEP.match(name)) else None


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    root = Path(run_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    found = [(step, p) for p in root.iterdir() if (step := step_of(p.name)) is not None]
    return sorted(f for f in found if (f[1] / "state.json").is_file())


def latest_checkpoint(run_dir: Path) -> Path:
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"no checkpoint in '{run_dir}'; expected a ganforge run folder "
                              f"with {CKPT_DIR}/step_NNNNNN/ inside")
    return found[-1][1]


# ----------------------------------------------------------------------------- optimiser state

def _optim_to_files(opt: torch.optim.Optimizer) -> tuple[dict, list]:
    sd = opt.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{idx}.{key}"] = t.detach().cpu().contiguous()
    groups = [{k: v.item() if torch.is_tensor(v) else v for k, v in group.items()}
              for group in sd["param_groups"]]  # a CUDA-graph run keeps lr as a tensor
    return tensors, groups


def _optim_from_files(tensors: dict, groups: list) -> dict:
    state: dict = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": groups}


# ----------------------------------------------------------------------------- save / load

def save_checkpoint(run_dir: Path, step: int, g: nn.Module, d: nn.Module,
                    opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                    state: dict[str, torch.Tensor], g_ema: nn.Module | None = None) -> Path:
    root = Path(run_dir) / CKPT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = root / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_tensors(_cpu(g.state_dict()), tmp / "generator.safetensors")
        if g_ema is not None:
            save_tensors(_cpu(g_ema.state_dict()), tmp / EMA_FILE)
        save_tensors(_cpu(d.state_dict()), tmp / "discriminator.safetensors")
        groups = {}
        for name, opt in (("optim_g", opt_g), ("optim_d", opt_d)):
            tensors, groups[name] = _optim_to_files(opt)
            save_tensors(tensors, tmp / f"{name}.safetensors")
        save_tensors(_cpu(state), tmp / "state.safetensors")
        (tmp / "state.json").write_text(json.dumps(
            {"step": step, "param_groups": groups, "versions": versions()}, indent=1))
        for f in tmp.iterdir():  # make the bytes durable before the rename publishes them
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    except BaseException:  # a full disk, Ctrl-C: leave no half-written folder taking space
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():  # re-saving a step: move the old one aside, never delete it first
        old = root / f".{final.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    return final


def versions() -> dict[str, str]:
    """What wrote a checkpoint: a resume on other versions is not bitwise a straight run."""
    from ganforge import __version__

    return {"ganforge": __version__, "torch": torch.__version__,
            "python": platform.python_version()}


def version_change(path: Path) -> str:
    """'' when the checkpoint at ``path`` was written by this ganforge and torch (or does not
    say), else what changed, e.g. "torch 2.11.0 -> 2.14.1"."""
    try:
        then = json.loads((path / "state.json").read_text()).get("versions", {})
    except (OSError, ValueError):
        return ""
    now = versions()
    return ", ".join(f"{k} {then[k]} -> {now[k]}" for k in ("ganforge", "torch")
                     if k in then and then[k] != now[k])


def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


class DamagedCheckpoint(CheckpointError):
    """A file of a checkpoint that cannot be read (missing, cut off, corrupted)."""


def _read(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise DamagedCheckpoint(f"cannot read '{path}': {str(e).splitlines()[0]}") from None


def load_weights(module: nn.Module, path: Path, what: str) -> None:
    """Load a safetensors state dict, naming the first mismatch against the model."""
    tensors = _read(path)
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{what} in '{path.parent}' does not match the config: "
            f"{'missing ' + missing[0] if missing else 'unexpected ' + extra[0]} "
            f"({len(missing)} missing, {len(extra)} unexpected tensors); "
            "the checkpoint must come from a run with the same model settings")
    for k, v in expected.items():
        if v.shape != tensors[k].shape:
            raise CheckpointError(
                f"{what} in '{path.parent}' does not match the config: '{k}' has shape "
                f"{tuple(tensors[k].shape)} in the checkpoint but {tuple(v.shape)} in the model; "
                "the checkpoint must come from a run with the same model settings")
    broken = next((k for k, v in tensors.items()
                   if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if broken is not None:  # ganforge stops a diverging run before it writes such a checkpoint
        raise CheckpointError(f"{what} in '{path.parent}' holds NaN or infinite weights "
                              f"('{broken}'): the run had diverged by then; use an earlier "
                              "checkpoint (--step; for --resume, move the newer step_* folders "
                              "out of checkpoints/)")
    module.load_state_dict(tensors)


def load_checkpoint(path: Path, g: nn.Module, d: nn.Module, opt_g: torch.optim.Optimizer,
                    opt_d: torch.optim.Optimizer, g_ema: nn.Module | None = None
                    ) -> tuple[int, dict[str, torch.Tensor]]:
    """Restore models and optimisers in place; returns (step, state tensors). ``g_ema`` takes
    the checkpoint's moving average of G; from a checkpoint without one it takes G's weights,
    so the average starts at the resumed step. The optimisers keep the settings they were made
    with (the config's lr and betas) and take their state from the checkpoint."""
    try:
        meta = json.loads((path / "state.json").read_text())
        step, groups = int(meta["step"]), meta["param_groups"]
    except (OSError, ValueError, KeyError) as e:
        raise DamagedCheckpoint(f"cannot read '{path / 'state.json'}': {e}") from None
    load_weights(g, path / "generator.safetensors", "generator")
    load_weights(d, path / "discriminator.safetensors", "discriminator")
    if g_ema is not None and (path / EMA_FILE).is_file():
        load_weights(g_ema, path / EMA_FILE, "averaged generator")
    elif g_ema is not None:
        g_ema.load_state_dict(g.state_dict())
    for name, opt in (("optim_g", opt_g), ("optim_d", opt_d)):
        saved = groups[name]
        # Adam's groups have betas, RMSprop's alpha: another optimiser's state would load and
        # then fail at its first step
        if len(saved) != len(opt.param_groups) or any(
                ("betas" in group) != ("betas" in opt.defaults) or
                ("alpha" in group) != ("alpha" in opt.defaults) for group in saved):
            raise CheckpointError(f"optimiser state in '{path}' comes from another optimiser; "
                                  "resume with the run's optim.name")
        # the moments come from the checkpoint, the settings (lr, betas, fused, ...) from the
        # config, so an lr or beta override on resume applies; unchanged, they are the same
        settings = [{k: v for k, v in group.items() if k != "params"}
                    for group in opt.param_groups]
        sd = _optim_from_files(_read(path / f"{name}.safetensors"),
                               [{**old, **new} for old, new in zip(saved, settings)])
        try:
            opt.load_state_dict(sd)
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"optimiser state in '{path}' does not match the model: "
                                  f"{str(e).splitlines()[0]}") from None
    return step, _read(path / "state.safetensors")


def _load_model(run_dir: str | Path, step: int | None, which: str,
                device: str | torch.device, ema: bool | None = None):
    """(G or D in eval mode, config) from a run folder's newest checkpoint, or the given step.
    For G, ``ema`` chooses the moving average (True), the trained weights (False) or, with None,
    the average wherever the checkpoint has one."""
    from ganforge.config import load_run_config
    from ganforge.models import build_models
    from ganforge.train.loop import resolve_device

    step = None if step is None else whole("step", step)
    if ema is not None and not isinstance(ema, bool):  # ema="no" would ask for the average
        raise TypeError(f"ema={ema!r}: pass True (the moving average), False (the trained "
                        "weights) or None (the average where there is one)")
    device = resolve_device(device, what="device")
    run_dir = Path(run_dir).expanduser()  # as torchvision's datasets read their root
    if run_dir.exists() and not (run_dir / "config.yaml").is_file():  # inside a run?
        run = next((p for p in run_dir.parents if (p / "config.yaml").is_file()), None)
        if run is not None:
            raise CheckpointError(f"'{run_dir}' is inside the run folder '{run}'; pass that "
                                  "folder, with --step N (step=N) for one checkpoint")
    cfg = load_run_config(run_dir / "config.yaml")
    path = checkpoint_path(run_dir, step)
    with torch.random.fork_rng(devices=[]):  # the init the weights replace draws random numbers
        g, d = build_models(cfg)
    model = g if which == "generator" else d
    file = generator_file(path, ema) if which == "generator" else f"{which}.safetensors"
    load_weights(model, path / file, which)
    return model.to(device).eval(), cfg


def checkpoint_path(run_dir: str | Path, step: int | None = None) -> Path:
    """The checkpoint folder of ``step`` in a run folder, or its newest."""
    run_dir = Path(run_dir)
    if step is None:
        return latest_checkpoint(run_dir)
    path = run_dir / CKPT_DIR / checkpoint_name(step)
    if not (path / "state.json").is_file():
        steps = [s for s, _ in list_checkpoints(run_dir)]
        raise CheckpointError(f"no checkpoint for step {step} in '{run_dir}'; "
                              f"available steps: {', '.join(map(str, steps)) or 'none'}")
    return path


def generator_file(path: Path, ema: bool | None = None) -> str:
    """Which of a checkpoint's generators :func:`load_generator` reads with ``ema``: the moving
    average where there is one, unless ``ema=False``."""
    if ema is not False and (path / EMA_FILE).is_file():
        return EMA_FILE
    if ema:
        raise CheckpointError(f"'{path}' holds no averaged generator ({EMA_FILE}); the run "
                              "trained with train.ema_decay=0")
    return "generator.safetensors"


def load_generator(run_dir: str | Path, step: int | None = None,
                   device: str | torch.device = "cpu", ema: bool | None = None):
    """(G in eval mode, config) from a run folder's newest checkpoint, or the given step: the
    moving average of G where the run kept one (``train.ema_decay > 0``) unless ``ema=False``."""
    return _load_model(run_dir, step, "generator", device, ema)


def load_discriminator(run_dir: str | Path, step: int | None = None,
                       device: str | torch.device = "cpu"):
    """(D in eval mode, config) from a run folder's newest checkpoint, or the given step."""
    return _load_model(run_dir, step, "discriminator", device)
