"""The one training loop: Algorithm 1 of Goodfellow et al. (2014).

Each iteration makes ``train.d_steps`` (k) discriminator updates, then ``train.g_steps``
generator updates. G runs once per iteration and its output is reused, detached, for D's first
update; only extra D or G updates run G again. Everything else (losses, models, data) is looked
up by name from the config, so the loop has no per-variant branches.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import torch
from tqdm import tqdm

try:
    import fcntl
except ImportError:  # Windows: runs go unlocked
    fcntl = None

from ganforge.config import Config, to_yaml
from ganforge.data import load_data
from ganforge.errors import (NO_SPACE, CheckpointError, ConfigError, DataError,
                             GanforgeError, TrainingDiverged, no_space)
from ganforge.files import is_temporary, write_text
from ganforge.losses import (D_LOSSES, DISTANCE_ESTIMATES, G_LOSSES, PENALTIES,
                             discriminator_stats)
from ganforge.models import build_models, check_outputs, uses_info
from ganforge.sampling import sample_z
from ganforge.train import dist
from ganforge.train.checkpoint import (RUN_ENTRIES, DamagedCheckpoint, checkpoint_name,
                                       file_in_the_way, latest_checkpoint, list_checkpoints,
                                       load_checkpoint, save_checkpoint, step_of,
                                       version_change)
from ganforge.train.ema import EMA
from ganforge.train.graph import CapturedStep
from ganforge.train.unrolled import unrolled_fake_logits
from ganforge.train.watch import EVAL_KEYS, check_evaluation, evaluate, save_frame
from ganforge.viz import make_gif, plot_curves
from ganforge.viz.plots import read_metrics


def resolve_device(name: str | torch.device, what: str = "train.device") -> torch.device:
    """``name`` ("auto", "cpu", "cuda", "cuda:N", "mps" or a torch.device) as a device this
    machine has; ``what`` names the setting in the one-line error otherwise."""
    from ganforge.config import DEVICES

    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{what}='{name}' is not known; choose {DEVICES}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{what}='{name}' but no CUDA device is available; use cpu or auto")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"{what}='{name}' but this machine has {torch.cuda.device_count()} "
                          "CUDA device(s), numbered from 0")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{what}='{name}' but no MPS (Apple GPU) device is available; "
                          "use cpu or auto")
    return device


def make_optimizer(cfg, params, lr: float, device: torch.device = torch.device("cpu"),
                   capturable: bool = False) -> torch.optim.Optimizer:
    """Adam (DCGAN's lr 2e-4, beta1 0.5 by default) or RMSprop (WGAN with weight clipping).
    On CUDA, Adam runs its fused kernel (``capturable`` inside a CUDA graph); on the CPU the
    default (foreach) one, which keeps runs bitwise equal to those of earlier versions."""
    if cfg.optim.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr, betas=(cfg.optim.beta1, cfg.optim.beta2),
                            fused=True if device.type == "cuda" else None, capturable=capturable)


def use_cuda_graph(cfg, device: torch.device) -> bool:
    """Whether ``train.cuda_graph`` captures the training step: "auto" does wherever the step
    can be replayed as recorded, "enabled" must (a one-line error says why it cannot)."""
    t, why = cfg.train, None
    if device.type != "cuda":
        why = "a CUDA device (train.device)"
    elif t.d_steps != 1 or t.g_steps != 1:
        why = "train.d_steps=1 and train.g_steps=1 (extra updates draw new data inside the step)"
    elif cfg.loss.penalty != "none" or t.unroll_steps or cfg.loss.instance_noise:
        why = "loss.penalty=none, loss.instance_noise=0 and train.unroll_steps=0"
    elif cfg.optim.name != "adam" or cfg.optim.clip_d is not None:
        why = "optim.name=adam and no optim.clip_d"
    elif t.compile or dist.world_size() > 1:
        why = "train.compile=false and a single process"
    if t.cuda_graph == "enabled" and why is not None:
        raise ConfigError(f"train.cuda_graph=enabled needs {why}; set train.cuda_graph=auto "
                          "to fall back to eager steps")
    return t.cuda_graph != "disabled" and why is None


def fast_path(t, device: torch.device) -> tuple[torch.dtype | None, torch.memory_format]:
    """What ``train.precision`` and ``train.memory_format`` mean on ``device``: the autocast
    dtype (None: plain float32) and the memory format of G, D and image batches. "auto" turns
    both on for CUDA only, so CPU runs keep the plain float32 step and stay bitwise reproducible.
    On CUDA it also sets ``torch.backends.cudnn.benchmark`` (as pytorch/examples' DCGAN does):
    every step has the same shapes, so cuDNN times its convolution algorithms once per shape."""
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    precision = t.precision if t.precision != "auto" else ("bf16" if cuda else "fp32")
    fmt = t.memory_format if t.memory_format != "auto" else (
        "channels_last" if cuda else "contiguous")
    return (torch.bfloat16 if precision == "bf16" else None,
            torch.channels_last if fmt == "channels_last" else torch.contiguous_format)


def lr_factor(decay: str, step: int, total: int) -> float:
    """Learning-rate multiplier for 1-based ``step`` of ``total``: constant, linear to zero or
    cosine to zero. A pure function of the step, so resumed runs follow the same schedule."""
    progress = (step - 1) / total
    if decay == "linear":
        return 1.0 - progress
    if decay == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def noise_std(loss, step: int, total: int) -> float:
    """Instance noise (Sonderby et al. 2016): its std at 1-based ``step``, falling linearly
    from ``loss.instance_noise`` to 0 over ``loss.instance_noise_steps`` (0 = all ``total``)."""
    return loss.instance_noise * max(0.0, lr_factor("linear", step,
                                                    loss.instance_noise_steps or total))


def _prepare_new_run(run_dir: Path, overwrite: bool, write: bool = True) -> None:
    if run_dir.exists() and not run_dir.is_dir():  # never delete a file the user named
        raise ConfigError(f"run folder '{run_dir}' is a file, not a folder; choose another --out")
    if (blocker := file_in_the_way(run_dir)) is not None:
        raise ConfigError(f"run folder '{run_dir}' cannot be made: '{blocker}' is a file, not a "
                          "folder; choose another --out")
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise ConfigError(f"run folder '{run_dir}' already exists; pass --overwrite "
                              "(overwrite=True) to replace it, --resume (resume=True) to "
                              "continue it, or choose another --out")
        # --overwrite deletes the folder: only ever a ganforge run, never what else it holds
        here = Path.cwd().resolve()
        if run_dir.resolve() in (here, *here.parents):
            raise ConfigError(f"--out '{run_dir}' is the current folder or holds it; "
                              "--overwrite will not delete it, choose another --out")
        other = sorted(p.name for p in run_dir.iterdir()
                       if p.name not in RUN_ENTRIES and not is_temporary(p.name))
        is_run = (run_dir / "config.yaml").is_file()
        if other or not is_run:
            listed = f"{', '.join(other[:3])}{' ...' if len(other) > 3 else ''}"
            if is_run:
                raise ConfigError(f"run folder '{run_dir}' also holds files a run does not write "
                                  f"({listed}); --overwrite would delete them: move them out, or "
                                  "choose another --out")
            held = f"it holds {listed}" if other else "it has no config.yaml"
            raise ConfigError(f"'{run_dir}' is not a ganforge run folder ({held}); --overwrite "
                              "replaces run folders only, choose another --out")
        if write:
            shutil.rmtree(run_dir)
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)


def _truncate_run(run_dir: Path, last_step: int, keep_record: bool, keep_eval: bool,
                  keep_frame: bool) -> dict | None:
    """On resume, drop the metrics records and sample grids of steps after the checkpoint:
    the resumed run makes them again, or never reaches them if it now stops earlier. What the
    checkpoint step has only because the run ended there goes too: without ``keep_record`` its
    record (it closed a logging window early; the resumed run carries that window on), without
    ``keep_eval`` the evaluation in it, without ``keep_frame`` its grid. Returns the record
    kept for the checkpoint step, if any."""
    path = run_dir / "metrics.jsonl"
    records = [r for r in read_metrics(path)
               if r["step"] < last_step or (r["step"] == last_step and keep_record)]
    if records and records[-1]["step"] == last_step and not keep_eval:
        records[-1] = {k: v for k, v in records[-1].items() if k not in EVAL_KEYS}
    write_text(path, "".join(json.dumps(r) + "\n" for r in records))
    for frame in (run_dir / "samples").glob("step_*.png"):
        step = step_of(frame.stem)
        if step is not None and (step > last_step or (step == last_step and not keep_frame)):
            frame.unlink()
    return records[-1] if records and records[-1]["step"] == last_step else None


def _carried_window(state: dict[str, torch.Tensor], device: torch.device,
                    logged: dict[str, bool]) -> tuple[dict[str, torch.Tensor], int]:
    """The logging window a checkpoint carried: this rank's sums (the mean of the saved ranks'
    if the run had another number of processes) and how many steps they hold. Older
    checkpoints carry none. ``logged`` says which optional statistics this run logs; a window
    with others (a penalty or a mixture turned on or off on resume, another D loss) is dropped
    for a fresh one."""
    sums = {k[7:]: v.to(device) for k, v in state.items() if k.startswith("window.")}
    steps = int(sums.pop("steps", 0))
    if any((k in sums) != on for k, on in logged.items()):
        return {}, 0
    return {k: v[dist.rank()] if len(v) == dist.world_size() else v.mean()
            for k, v in sums.items()}, steps


class _RunLock:
    """An advisory lock (flock) on each run folder it holds, until the run ends: a second
    ``ganforge train`` into a folder being trained is refused, instead of both writing it (the
    second rewrites metrics.jsonl under the first). Where a folder cannot be locked (NFS locks
    only files opened for writing) or the platform has no fcntl, runs go on unlocked."""

    def __init__(self):
        self._fds: list[int] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()

    def hold(self, folder: Path) -> bool:
        """Lock ``folder``; False if another process holds it. True too where it cannot be
        locked, and for a folder this lock holds already."""
        if fcntl is None or not folder.is_dir():
            return True
        fd = os.open(folder, os.O_RDONLY)
        same = os.fstat(fd)
        if any(os.path.samestat(same, os.fstat(held)) for held in self._fds):
            os.close(fd)
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError:  # no locks here (NFS locks only files opened for writing)
            os.close(fd)
            return True
        self._fds.append(fd)
        return True


class _StopFlag:
    """Once ``armed`` (the run folder is about to change), the first Ctrl-C (SIGINT) or SIGTERM,
    which job schedulers send before they kill a job, asks the loop to stop at the end of the
    current step (then it checkpoints); a second one interrupts at once. Before that, while
    inputs are checked and nothing is written, either interrupts at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.stop = self.armed = False
        self._old: dict = {}

    def __enter__(self):
        try:
            self._old = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        except ValueError:  # not the main thread
            self._old = {}
        return self

    def _handle(self, signum, frame):
        if self.stop or not self.armed:
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)


def _png_as_chw(path: Path) -> torch.Tensor:
    import numpy as np
    from PIL import Image

    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)


def _quiet(*args, **kwargs) -> None:
    """The log of ``log=None`` and of every rank but 0: it prints nothing."""


def train(cfg: Config, run_dir: str | Path, *, overwrite: bool = False, resume: bool = False,
          log=print) -> Path:
    """Train ``cfg`` into ``run_dir`` (or continue it from its newest checkpoint with
    ``resume=True``). Returns the run folder. Nothing is written until every input checks out,
    the config too, even if it was changed after ``load_config``. With ``resume=True`` ``cfg``
    replaces the run's config.yaml; ``load_run_config(RUN / "config.yaml", overrides)`` gives
    the run's own, as ``ganforge train --resume`` uses. torch's global random state and
    ``torch.backends.cudnn.benchmark`` are as they were when this returns. ``log`` gets each
    progress line; ``log=None`` trains quietly.

    Under ``torchrun`` each process trains on its share of ``train.batch_size`` (see dist.py);
    only rank 0 logs and writes the run folder."""
    from ganforge.config import as_dict, build_config

    if not isinstance(cfg, Config):
        raise ConfigError(f"train needs a Config, e.g. ganforge.load_config('demo'), not "
                          f"{type(cfg).__name__}")
    for name, flag in (("overwrite", overwrite), ("resume", resume)):
        if not isinstance(flag, bool):  # overwrite="no" would be true and delete the run
            raise TypeError(f"train's {name} is True or False, not {flag!r}")
    if overwrite and resume:
        raise ValueError("train takes overwrite=True (start again) or resume=True (continue), "
                         "not both")
    if log is None:
        log = _quiet
    elif not callable(log):
        raise TypeError(f"train's log is a function called with each line (print, or None for "
                        f"quiet), not {type(log).__name__}")
    cfg = build_config(as_dict(cfg), base_name="the config given to train")
    run_dir = Path(run_dir).expanduser()  # "~/runs/x" from Python, as the shell would
    device = dist.setup(resolve_device(cfg.train.device))
    cuda = [device.index or 0] if device.type == "cuda" else []
    autotune = torch.backends.cudnn.benchmark  # fast_path sets it on CUDA, for this run only
    try:
        # the loop seeds torch's global generator
        with torch.random.fork_rng(devices=cuda), _StopFlag() as flag, _RunLock() as lock:
            return _train(cfg, run_dir, device, overwrite, resume,
                          log if dist.is_main() else _quiet, flag, lock)
    except OSError as e:
        if e.errno not in NO_SPACE:
            raise
        raise GanforgeError(_no_space(run_dir, e)) from e
    finally:
        torch.backends.cudnn.benchmark = autotune
        dist.teardown()


def _stopped(run_dir: Path, what: str, fix: str, resume: str = "") -> str:
    """The one line for a run that cannot go on: ``what`` happened, what of ``run_dir`` is safe,
    and how to go on after ``fix`` (with ``resume`` overrides), or train again without a
    checkpoint."""
    found = list_checkpoints(run_dir)
    if not found:
        return f"{what} before '{run_dir}' had a checkpoint; {fix} and train again with --overwrite"
    return (f"{what}; '{run_dir}' is intact up to its checkpoint {found[-1][1].name}: {fix}, "
            f"then go on with `ganforge train --resume {run_dir}{resume}`")


def _no_space(run_dir: Path, e: OSError) -> str:
    """A disk that filled up mid-run (a resume from the run's last step only redraws the
    pictures)."""
    return _stopped(run_dir, no_space(e), "free some space")


def _check_finite(run_dir: Path, cfg: Config, step: int, named: dict[str, torch.Tensor]) -> None:
    """Stop a run whose losses or weights stopped being finite numbers (too high a learning rate,
    an unbounded loss): it can never recover, and no checkpoint of it is written. The check runs
    where the loop reads numbers anyway (a record, a checkpoint) and gives the same answer on
    every rank, whose weights and averaged statistics are the same."""
    bad = [k for k, v in named.items()  # v: numbers, or flags that are True where finite
           if not bool((v if v.dtype == torch.bool else torch.isfinite(v)).all())]
    if bad:
        o = cfg.optim
        raise TrainingDiverged(_stopped(
            run_dir, f"training diverged at step {step}: {', '.join(bad)} "
            f"{'is' if len(bad) == 1 else 'are'} no longer finite", "lower the learning rates",
            f" optim.lr_g={o.lr_g / 4:g} optim.lr_d={o.lr_d / 4:g}"))


def _after_existing_events(folder: Path) -> None:
    """TensorBoard reads a folder's event files in name order, and a name starts with the second
    it was made in, then a per-process count (which sorts 10 before 9). Waiting for the second
    after the newest file's makes this writer's file, and its purge of the steps after a
    resume, come last. It only waits for a resume within a second (a notebook, the tests)."""
    stamps = [int(m[1]) for f in folder.glob("events.out.tfevents.*")
              if (m := re.match(r"events\.out\.tfevents\.(\d+)\.", f.name))]
    while stamps and time.time() < max(stamps) + 1:
        time.sleep(0.05)


def _draw_pictures(run_dir: Path) -> None:
    """progress.gif from the sample grids and curves.png from metrics.jsonl."""
    make_gif(sorted((run_dir / "samples").glob("step_*.png")), run_dir / "progress.gif")
    plot_curves(read_metrics(run_dir / "metrics.jsonl"), run_dir / "curves.png")


@contextlib.contextmanager
def _quiet_full_disk_in_threads():
    """TensorBoard writes from a thread of its own, which prints a traceback when the disk is
    full; the loop meets the same error at its next write and reports it in one line."""
    old = threading.excepthook

    def hook(args):
        if not (isinstance(args.exc_value, OSError) and args.exc_value.errno in NO_SPACE):
            old(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = old


def _resume_changes(cfg: Config, run_dir: Path) -> tuple[list[str], bool]:
    """What a resume changes of the run's config.yaml, as "key old -> new", and whether the file
    alone passes the checks (a value edited by hand may not, and an override mends it). It
    refuses another data.name (ring for grid, fashion-mnist for mnist would fit the checkpoint's
    shapes and be taken without a word) and another train.seed (it would only change the fixed
    noise of the sample grids and evaluations mid-run: the checkpoint holds the random state)."""
    from ganforge.config import as_dict, flat, load_run_config, run_settings

    path = run_dir / "config.yaml"
    if not path.is_file():  # latest_checkpoint says what is missing
        return [], True
    try:  # the file's values as the config reads them (2e-4 is a number), else as written
        was, valid = flat(as_dict(load_run_config(path))), True
    except ConfigError:
        was, valid = run_settings(path), False
    now = flat(as_dict(cfg))
    changed = [k for k in now if k in was and was[k] != now[k] and k != "description"]
    if "data.name" in changed:
        raise ConfigError(f"data.name={cfg.data.name} is not this run's data ({was['data.name']}); "
                          "a resume continues a run on its own data: train other data into a "
                          "new --out")
    if "train.seed" in changed:
        raise ConfigError(f"train.seed={cfg.train.seed} is not this run's seed "
                          f"({was['train.seed']}); it fixes the noise of the run's sample grids "
                          "and evaluations, so a resume keeps it: train another seed into a new "
                          "--out")

    def text(v):  # as YAML spells it, and an override is typed
        return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)

    return [f"{k} {text(was[k])} -> {text(now[k])}" for k in changed], valid


def _train(cfg: Config, run_dir: Path, device: torch.device, overwrite: bool, resume: bool,
           log, flag: _StopFlag, lock: _RunLock) -> Path:
    t = cfg.train
    main = dist.is_main()
    # a resume, or --overwrite: not while another process trains the folder (every rank
    # stops), checked first, as a run just started has no checkpoint to resume yet
    if dist.any_rank(main and not lock.hold(run_dir)):
        raise GanforgeError(f"'{run_dir}' is being trained by another process; wait for it to "
                            "end (or stop it), then run this again")

    # --- everything that can fail on bad input happens before the run folder is touched
    changes, valid = _resume_changes(cfg, run_dir) if resume else ([], True)
    data = load_data(cfg)
    k = cfg.model.num_classes
    # a new run of a conditional model learns every label it offers: data without labels, or
    # with fewer classes, leaves rows of its sample grid to labels it never saw (a run from
    # before this check still resumes)
    if cfg.model.conditional and data.num_classes == 1 and not resume:
        folders = "put each class's images in a subfolder of data.root, or "
        raise DataError(f"model.conditional=true needs class labels, and the {cfg.data.name} "
                        f"data has none; {folders if cfg.data.name == 'image-folder' else ''}"
                        "set model.conditional=false")
    if cfg.model.conditional and (data.num_classes > k or data.num_classes < k and not resume):
        raise DataError(f"the data has {data.num_classes} classes but model.num_classes={k}; "
                        f"set model.num_classes={data.num_classes}")
    per_rank = dist.check_batch(t.batch_size, cfg.model.pack)
    check_evaluation(data, cfg)
    torch.manual_seed(t.seed)
    g, d = build_models(cfg)
    amp_dtype, fmt = fast_path(t, device)
    graphed = use_cuda_graph(cfg, device)
    g, d = g.to(device, memory_format=fmt), d.to(device, memory_format=fmt)
    check_outputs(g, d, cfg, data, device, per_rank)
    opt_g = make_optimizer(cfg, g.parameters(), cfg.optim.lr_g, device, capturable=graphed)
    opt_d = make_optimizer(cfg, d.parameters(), cfg.optim.lr_d, device, capturable=graphed)
    # forward passes run under autocast and, optionally, compiled; every loss, penalty and
    # optimiser step sees float32, so the fast path never changes what a loss computes
    g_fwd, d_fwd = (torch.compile(g), torch.compile(d)) if t.compile else (g, d)
    batches = data.batches(t.batch_size, device, t.seed)
    noise = torch.Generator(device=device).manual_seed(t.seed + 1)
    d_loss_fn, g_loss_fn = D_LOSSES.get(cfg.loss.discriminator), G_LOSSES.get(cfg.loss.generator)
    penalty = None if cfg.loss.penalty == "none" else PENALTIES.get(cfg.loss.penalty)
    clip = cfg.optim.clip_d
    info = uses_info(cfg)
    ema = EMA(g, t.ema_decay, t.ema_start) if t.ema_decay else None
    g_ema = ema.model if ema is not None else None
    g_eval = g_ema if g_ema is not None else g  # what samples and evaluation see

    start, window, window_steps, seconds = 0, {}, 0, 0.0
    if resume:
        newest = latest_checkpoint(run_dir)
        try:
            start, state = load_checkpoint(newest, g, d, opt_g, opt_d, g_ema)
        except DamagedCheckpoint as e:
            older = list_checkpoints(run_dir)[:-1]
            if not older:
                raise
            raise DamagedCheckpoint(f"{e}; to resume from the checkpoint before it, "
                                    f"{older[-1][1].name}, move {newest.name} out of "
                                    "checkpoints/") from None
        if t.steps < start:
            raise CheckpointError(f"the run is already at step {start}; pass train.steps=N with "
                                  f"N > {start} to continue it")
        if t.steps == start:  # trained to the end: only the pictures can be missing
            unused = [c for c in changes if not c.startswith("train.steps ")]
            if not valid:  # the overrides mend a value edited by hand: keep them
                if main:
                    write_text(run_dir / "config.yaml", to_yaml(cfg))
                log(f"config.yaml mended: {', '.join(changes)}")
            elif unused:
                raise ConfigError(f"the run is already at step {start}, its train.steps: with "
                                  f"nothing to train, {', '.join(unused)} would not be used "
                                  f"(pass train.steps=N with N > {start} to train further)")
            if main:
                _draw_pictures(run_dir)
            log(f"the run is already at step {start}, its train.steps: nothing to train; "
                f"progress.gif and curves.png redrawn. Pass train.steps=N with N > {start} to "
                "train further")
            return run_dir
        batches.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("data.")})
        # the optional statistics iteration() logs, against those of the carried window
        window, window_steps = _carried_window(state, device, {
            "penalty": penalty is not None, "info": info,
            **{name: loss == cfg.loss.discriminator
               for loss, (name, *_) in DISTANCE_ESTIMATES.items()}})
        # training time before this resume (a checkpoint without it: the last record's)
        seconds = float(state["clock.seconds"]) if "clock.seconds" in state else max(
            [r["time"] for r in read_metrics(run_dir / "metrics.jsonl") if r["step"] <= start],
            default=0.0)
        noise.set_state(state["rng.noise"])
        torch.set_rng_state(state["rng.torch"])
    else:
        _prepare_new_run(run_dir, overwrite, write=False)  # checks only
    if graphed and cfg.optim.decay != "none":  # the graph reads lr from a tensor it can change
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = torch.tensor(float(group["lr"]), device=device)
    dist.barrier()  # every rank has checked its inputs before rank 0 writes
    # from the first write on, Ctrl-C lets the run reach a step and its checkpoint: a resume
    # cut short while it rewrites config.yaml and metrics.jsonl would leave them for other
    # settings than the checkpoint's
    flag.armed = True
    kept = None  # what the run keeps of the checkpoint step's metrics record
    if main:
        if resume:
            kept = _truncate_run(run_dir, start, keep_record=not window_steps,
                                 keep_eval=bool(t.eval_every) and start % t.eval_every == 0,
                                 keep_frame=start % t.sample_every == 0)
        else:
            _prepare_new_run(run_dir, overwrite)
            lock.hold(run_dir)  # the folder it made (or the empty one it found, held already)
        write_text(run_dir / "config.yaml", to_yaml(cfg))
        (run_dir / "samples").mkdir(exist_ok=True)
    log(f"data: {data.source}")
    log(f"run folder: {run_dir} (device {device}, steps {start} -> {t.steps})")
    if changes:
        log(f"changed on resume from step {start}: {', '.join(changes)}")
    if resume and (change := version_change(newest)):
        log(f"note: {newest.name} was written by other versions ({change}); the arithmetic can "
            "differ, so the resumed run may not match a straight run bit for bit")
    if dist.world_size() > 1:
        log(f"processes: {dist.world_size()}, {per_rank} of the batch of {t.batch_size} each")
    for line in dist.ignored_launcher_settings():
        log(line)

    writer = None

    def to_tensorboard(step: int, record: dict | None, frame: Path | None) -> None:
        for k, v in (record or {}).items():
            if k not in ("step", "time") and v is not None:
                writer.add_scalar(k, v, step)
        if frame is not None:
            writer.add_image("samples", _png_as_chw(frame), step)

    if t.tensorboard and main:
        from torch.utils.tensorboard import SummaryWriter
        _after_existing_events(run_dir / "tensorboard")
        writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start or None)
        if start:  # purged from the checkpoint step on: put back what the run kept of it
            frame = run_dir / "samples" / f"{checkpoint_name(start)}.png"
            to_tensorboard(start, kept, frame if frame.is_file() else None)
    metrics_file = open(run_dir / "metrics.jsonl", "a") if main else None

    def z_like(n: int) -> torch.Tensor:  # every rank draws the global batch, keeps its slice
        return dist.shard(sample_z(n * dist.world_size(), cfg.model.z_dim, cfg.model.z_dist,
                                   noise, device))

    def next_batch() -> tuple[torch.Tensor, torch.Tensor | None]:
        real, y = (dist.shard(v) for v in batches.next())  # (B, C, H, W) in [-1, 1], (B,)
        if real.dim() == 4 and fmt == torch.channels_last:
            real = real.contiguous(memory_format=fmt)
        return real, (y if cfg.model.conditional else None)

    def amp():  # a captured graph replays the casts, so autocast must not cache them
        return (torch.autocast(device.type, dtype=amp_dtype, cache_enabled=not graphed)
                if amp_dtype is not None else contextlib.nullcontext())

    def checkpoint(step: int, window: dict[str, torch.Tensor], steps: int) -> None:
        state = {"rng.noise": noise.get_state(), "rng.torch": torch.get_rng_state(),
                 **{f"data.{k}": v for k, v in batches.state_dict().items()},
                 **{f"window.{k}": v.clone() for k, v in window.items()},  # unshared
                 "window.steps": torch.tensor(steps),
                 "clock.seconds": torch.tensor(time.time() - t0, dtype=torch.float64)}
        save_checkpoint(run_dir, step, g, d, opt_g, opt_d, state, g_ema)

    sigma = 0.0  # instance noise of this step (noise_std)

    def blur(x: torch.Tensor) -> torch.Tensor:  # what D sees of x: x plus instance noise
        if not sigma:
            return x
        shape = (len(x) * dist.world_size(), *x.shape[1:])  # drawn for the global batch, as z
        return x + sigma * dist.shard(torch.randn(shape, generator=noise, device=x.device,
                                                  dtype=x.dtype))

    def iteration(real: torch.Tensor, y: torch.Tensor | None, z: torch.Tensor
                  ) -> dict[str, torch.Tensor]:
        """One iteration of Algorithm 1 from its first batch and noise; the statistics come
        back as device tensors. Extra D or G updates (d_steps, g_steps > 1) draw their own."""
        with amp():
            fake = g_fwd(z, y).float()  # G runs once; D sees it detached
        real_g, y_g = blur(real), y  # the G phase uses this first batch and its labels

        # --- discriminator: k updates ascending V(D, G)
        for i in range(t.d_steps):
            if i > 0:
                real, y = next_batch()
                with torch.no_grad(), amp():
                    fake_d = g_fwd(z_like(len(real)), y).float()
            else:
                fake_d = fake.detach()
            real, fake_d = blur(real), blur(fake_d)
            with amp():
                real_logits, fake_logits = d_fwd(real, y).float(), d_fwd(fake_d, y).float()
            d_loss = d_loss_fn(real_logits, fake_logits)
            if penalty is not None:
                with amp():
                    gp = penalty(d, real, fake_d, y, noise).float()
                d_loss = d_loss + cfg.loss.penalty_weight * gp
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            dist.average_grads(d)
            opt_d.step()
            if clip is not None:  # WGAN: keep the critic (roughly) Lipschitz
                with torch.no_grad():
                    for p in d.parameters():
                        p.clamp_(-clip, clip)

        # --- generator: D is frozen while G trains
        d.requires_grad_(False)
        for j in range(t.g_steps):
            if j > 0:
                z = z_like(len(real_g))
                with amp():
                    fake = g_fwd(z, y_g).float()
            fake_g = blur(fake)
            if getattr(g_loss_fn, "uses_features", False):  # feature matching
                with torch.no_grad(), amp():
                    real_feat = d.features(real_g, y_g)[-2].float()
                with amp():
                    fake_feat = d.features(fake_g, y_g)[-2].float()
                g_loss = g_loss_fn(fake_feat, real_feat)
            elif t.unroll_steps:  # G plays against D advanced K steps ahead (in float32:
                # the unroll replays D's loss and Adam update, which stay as written)
                g_loss = g_loss_fn(unrolled_fake_logits(
                    d, opt_d, d_loss_fn, real_g, fake_g, y_g, t.unroll_steps,
                    first_order=t.unroll_first_order, clip=clip))
            else:
                with amp():
                    logits = d_fwd(fake_g, y_g).float()
                g_loss = g_loss_fn(logits)
            loss = g_loss
            if info:  # mixture of generators: Q must tell the components apart
                info_loss = g.info_loss(z, fake)
                loss = g_loss + cfg.loss.info_weight * info_loss
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            dist.average_grads(g)
            opt_g.step()
        d.requires_grad_(True)
        dist.average_buffers(g, d)  # batch-norm running statistics

        # --- statistics: summed on the device, read back only when logging
        stats = {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(),
                 **discriminator_stats(real_logits, fake_logits, cfg.loss.discriminator)}
        if penalty is not None:
            stats["penalty"] = gp.detach()
        if info:
            stats["info"] = info_loss.detach()
        return stats

    run_step = CapturedStep(iteration) if graphed else iteration

    # statistics summed over the logging window, on the device; a resume carries on the window
    # its checkpoint held, so metrics.jsonl comes out as if the run had not stopped
    sums, count = window, window_steps
    step, stop, t0 = start, False, time.time() - seconds  # the clock runs on over resumes
    bar = tqdm(total=t.steps, initial=start, disable=not (t.progress and main), dynamic_ncols=True,
               desc="train", unit="step", file=sys.stderr,
               mininterval=0.1 if sys.stderr.isatty() else 30.0)  # keep CI logs short
    # an error closes the bar before its message is printed
    with bar, _quiet_full_disk_in_threads():
        for step in range(start + 1, t.steps + 1):
            if cfg.optim.decay != "none":
                f = lr_factor(cfg.optim.decay, step, t.steps)
                for opt, lr in ((opt_g, cfg.optim.lr_g), (opt_d, cfg.optim.lr_d)):
                    for group in opt.param_groups:
                        if torch.is_tensor(group["lr"]):  # read by the captured graph
                            group["lr"].fill_(lr * f)
                        else:
                            group["lr"] = lr * f
            sigma = noise_std(cfg.loss, step, t.steps)
            real, y = next_batch()
            stats = run_step(real, y, z_like(len(real)))
            if ema is not None:
                ema.update(g, step)
            sums = {k: sums[k] + v if k in sums else v.clone() for k, v in stats.items()}
            count += 1
            bar.update(1)
            stop = dist.any_rank(flag.stop)  # a stop request on any rank stops them all here
            last = step == t.steps or stop
            evaluate_now = t.eval_every and (step % t.eval_every == 0 or last)
            on_schedule = step % t.log_every == 0 or (t.eval_every and step % t.eval_every == 0)
            log_now = on_schedule or last
            save_now = step % t.checkpoint_every == 0 or last
            # what a checkpoint carries on: nothing after a scheduled record; otherwise every
            # rank's window so far (a record now only closes it early, for the stop)
            carried = ({}, 0)
            if save_now and not on_schedule:  # every rank joins the gather
                carried = (dist.gather_stats(sums), count)
            if log_now:  # every rank joins the average
                means = dist.average_stats({k: v / count for k, v in sums.items()})
                sums, count = {}, 0
                _check_finite(run_dir, cfg, step, means)
            if save_now:  # what the checkpoint would hold: weights, buffers, the open window
                _check_finite(run_dir, cfg, step, {**carried[0], **{  # a flag per tensor
                    f"{n}'s weights": torch.stack([torch.isfinite(w).all() for w in
                                                   m.state_dict().values() if w.is_floating_point()])
                    for n, m in (("G", g), ("D", d), ("G's average", g_ema)) if m is not None}})
            if log_now and main:
                record = {"step": step, **{k: round(v.item(), 6) for k, v in means.items()},
                          "time": round(time.time() - t0, 3)}
                if evaluate_now:
                    record.update(evaluate(g_eval, data, cfg))
                metrics_file.write(json.dumps(record) + "\n")
                metrics_file.flush()
                if writer is not None:
                    to_tensorboard(step, record, None)
                watch = ({"d_acc": f"{record['d_acc']:.2f}"} if "d_acc" in record
                         else {"w_estimate": f"{record['w_estimate']:.3f}"})
                bar.set_postfix(d_loss=f"{record['d_loss']:.3f}", g_loss=f"{record['g_loss']:.3f}",
                                **watch, refresh=False)
            if main and (step % t.sample_every == 0 or last):
                frame = run_dir / "samples" / f"{checkpoint_name(step)}.png"
                save_frame(g_eval, d, data, cfg, frame, step)
                if writer is not None:
                    to_tensorboard(step, None, frame)
            if main and save_now:
                checkpoint(step, *carried)
            if stop:
                break
        bar.close()  # before the pictures, which take a moment
        if main:  # the flag still holds: a first Ctrl-C now does not cut the pictures short
            metrics_file.close()
            if writer is not None:
                writer.close()
            _draw_pictures(run_dir)
    dist.barrier()  # the other ranks wait for rank 0's pictures
    if stop and step < t.steps:
        log(f"interrupted: checkpoint saved at step {step}; continue with "
            f"`ganforge train --resume {run_dir}`")
    else:
        log(f"done: {t.steps} steps in {time.time() - t0:.1f}s; samples, progress.gif, "
            f"curves.png and checkpoints are in {run_dir}")
    return run_dir
