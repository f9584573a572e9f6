"""Typed configuration: dataclass defaults, YAML presets that list only differences, and
dotted ``key=value`` overrides. Everything is validated before a run folder is touched.

OmegaConf does the merging and the type checks; this module turns its exceptions into one-line
messages that name the key and what is accepted, and checks registry names and ranges.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, List, Optional

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from ganforge.errors import ConfigError


@dataclass
class ToyConfig:
    """Low-dimensional mixtures (seed 002; PacGAN/VEEGAN protocol for ring and grid)."""
    means: List[float] = field(default_factory=lambda: [-3.0, 3.0])  # mixture-1d peaks
    stds: List[float] = field(default_factory=lambda: [0.5, 0.5])  # mixture-1d widths
    weights: List[float] = field(default_factory=lambda: [0.5, 0.5])  # mixture-1d weights
    modes: int = 8  # ring: number of Gaussians, at angles 2*pi*k/modes
    radius: float = 2.0  # ring radius
    std: Optional[float] = None  # ring / grid std (default 0.02 for ring, 0.05 for grid)
    fixed_size: Optional[int] = None  # a fixed training set of N points instead of fresh samples


@dataclass
class DataConfig:
    name: str = "mnist"  # a name registered in ganforge.data
    root: str = "data"  # where dataset files live (or go, with download=true)
    download: bool = False  # allow torchvision to download full datasets
    image_size: int = 28  # images are resized to image_size x image_size
    channels: int = 1  # 1 (grey) or 3 (RGB); data is converted when it differs
    limit: Optional[int] = None  # keep this many training images, a fixed random choice
    stacked_size: int = 128000  # stacked-mnist: images in its fixed, seeded set (PacGAN: 128k)
    toy: ToyConfig = field(default_factory=ToyConfig)


@dataclass
class ModelConfig:
    arch: str = "dcgan"  # "mlp" (seed 000) or "dcgan" (seed 003)
    z_dim: int = 100
    z_dist: str = "normal"  # "normal" N(0, 1) or "uniform" U(-1, 1)
    conditional: bool = False  # concatenate the one-hot label to z and every layer
    num_classes: int = 10
    g_width: int = 64  # DCGAN: channels of G's last hidden layer (doubled per layer up)
    d_width: int = 64  # DCGAN: channels of D's first layer
    g_hidden: List[int] = field(default_factory=lambda: [256, 512, 1024])  # MLP G
    d_hidden: List[int] = field(default_factory=lambda: [512, 256])  # MLP D
    minibatch_kernels: int = 0  # minibatch discrimination in D (Salimans et al. 2016); 0 = off
    minibatch_kernel_dim: int = 5
    g_components: int = 1  # MLP G: a mixture of K generators picked by z's first coordinate
    pack: int = 1  # PacGAN (Lin et al. 2018): D judges packs of this many samples; 1 = off

    @property
    def num_labels(self) -> int:
        """The labels G and D take: num_classes for a conditional model, else 0."""
        return self.num_classes if self.conditional else 0


@dataclass
class LossConfig:
    discriminator: str = "cross-entropy"
    generator: str = "non-saturating"  # or "minimax", "maximum-likelihood", ...
    penalty: str = "none"  # gradient penalty on D: "wgan-gp", "dragan", "r1"
    penalty_weight: float = 10.0
    info_weight: float = 1.0  # with model.g_components > 1: weight of Q's cross-entropy in G's loss
    instance_noise: float = 0.0  # std of Gaussian noise on every input D sees, at step 1; 0 = off
    instance_noise_steps: int = 0  # the std falls linearly to 0 by this step; 0 = train.steps


@dataclass
class OptimConfig:
    name: str = "adam"  # "adam" or "rmsprop" (WGAN with weight clipping)
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay: str = "none"  # learning-rate schedule over train.steps: "none", "linear", "cosine"
    clip_d: Optional[float] = None  # WGAN: clamp D's weights to [-clip_d, clip_d] after each step


@dataclass
class TrainConfig:
    steps: int = 1000  # iterations of Algorithm 1
    batch_size: int = 64
    d_steps: int = 1  # k: D updates per iteration
    g_steps: int = 1  # G updates per iteration
    unroll_steps: int = 0  # Unrolled GAN (Metz et al. 2016): G sees D advanced K steps ahead
    unroll_first_order: bool = False  # do not differentiate through the unrolled D updates
    ema_decay: float = 0.0  # average G's weights with this decay (e.g. 0.999); 0 = off
    ema_start: int = 0  # the average copies G until this step, then starts averaging
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda" or "cuda:N"
    precision: str = "auto"  # "fp32" or "bf16" autocast of G and D; auto: bf16 on CUDA only
    memory_format: str = "auto"  # "contiguous" or "channels_last"; auto: channels_last on CUDA
    compile: bool = False  # torch.compile G's and D's forward passes
    cuda_graph: str = "auto"  # capture the whole step as a CUDA graph: auto, enabled, disabled
    log_every: int = 10
    sample_every: int = 100
    checkpoint_every: int = 500
    eval_every: int = 0  # log evaluation metrics every N steps (0 = off)
    eval_samples: int = 2500
    progress: bool = True  # progress bar on the terminal
    tensorboard: bool = True


@dataclass
class Config:
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


Z_DISTS = ("normal", "uniform")
OPTIMIZERS = ("adam", "rmsprop")
DECAYS = ("none", "linear", "cosine")
PRECISIONS = ("auto", "fp32", "bf16")
MEMORY_FORMATS = ("auto", "contiguous", "channels_last")
CUDA_GRAPH = ("auto", "enabled", "disabled")
DEVICES = "auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps"
PRESET_PACKAGE = "ganforge.presets"
# settings whose choices are registered names, so that code outside ganforge can add some
REGISTERED = ("data.name", "model.arch", "loss.discriminator", "loss.generator", "loss.penalty")


# ----------------------------------------------------------------------------- presets

def preset_names() -> list[str]:
    files = resources.files(PRESET_PACKAGE).iterdir()
    return sorted(p.name[:-5] for p in files if p.name.endswith(".yaml"))


def _read_text(path: Path, where: str) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not valid YAML (not UTF-8 text)") from None


class _Loader(yaml.SafeLoader):
    """YAML 1.2 scalars. PyYAML follows YAML 1.1, which reads ``no`` and ``off`` as False,
    ``010`` as 8 (octal), ``1:30`` as 90 (base 60) and ``1e-3`` as text; here only true/false
    are booleans, integers are decimal (or 0x / 0o), and ``1e-3`` is a float."""


class _Dumper(yaml.SafeDumper):
    """Quotes text that YAML 1.2 or 1.1 would read as something else ('1e3', 'no', '010'), so
    config.yaml reads back unchanged here and in any other YAML reader."""


_BOOL, _INT, _FLOAT, _DATE = (f"tag:yaml.org,2002:{t}"
                              for t in ("bool", "int", "float", "timestamp"))
_Loader.yaml_implicit_resolvers = {  # YAML 1.1's dates go too: 2024-01-01 is text
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT, _DATE)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                               list("tTfF"))
    _cls.add_implicit_resolver(_INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                               list("-+0123456789"))
    _cls.add_implicit_resolver(_FLOAT, re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+.0123456789"))


def _yaml_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    """Decimal, or 0o / 0x as Python writes them (YAML 1.1 made a leading 0 octal)."""
    text = node.value
    return int(text, 0) if text.startswith(("0o", "0x")) else int(text, 10)


_Loader.add_constructor(_INT, _yaml_int)


def _load_yaml(text: str, loader=_Loader):
    return yaml.load(text, Loader=loader)


def _read_yaml(text: str, where: str, loader=_Loader) -> dict:
    try:
        data = _load_yaml(text, loader) or {}
    except (yaml.YAMLError, ValueError, TypeError) as e:  # ValueError: `!!int abc`
        raise ConfigError(f"{where}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
    return data


def preset_dict(name: str) -> dict:
    """The raw YAML of a preset name or a path to a .yaml file."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"config file '{name}' does not exist")
        return _read_yaml(_read_text(path, name), name)
    if name not in preset_names():
        raise ConfigError(
            f"unknown preset '{name}'; choose one of: {', '.join(preset_names())} "
            "(or give a path to a .yaml file)")
    text = resources.files(PRESET_PACKAGE).joinpath(f"{name}.yaml").read_text()
    return _read_yaml(text, f"preset {name}")


# ----------------------------------------------------------------------------- merging

def _fields_of(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _section_class(full_key: str):
    """The dataclass that owns the parent of a dotted key, for listing valid keys."""
    cls = Config
    for part in full_key.split(".")[:-1]:
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        sub = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig,
               "optim": OptimConfig, "train": TrainConfig, "toy": ToyConfig}.get(part)
        if part not in types or sub is None:
            return cls
        cls = sub
    return cls


def _explain(e: OmegaConfBaseException, source: str) -> ConfigError:
    key = getattr(e, "full_key", None) or getattr(e, "key", None) or "?"
    if isinstance(e, ConfigKeyError) or "not in" in str(e):
        cls = _section_class(str(key))
        prefix = str(key).rsplit(".", 1)[0] + "." if "." in str(key) else ""
        valid = ", ".join(prefix + f for f in _fields_of(cls))
        return ConfigError(f"unknown key '{key}' in {source}; valid keys: {valid}")
    first = str(e).splitlines()[0]
    if "is not a ListConfig" in first:  # OmegaConf names its node types; say what is wanted
        f = {f.name: f for f in dataclasses.fields(_section_class(str(key)))}.get(
            str(key).rsplit(".", 1)[-1])
        example = f.default_factory() if f and f.default_factory is not dataclasses.MISSING \
            else None
        first = "expected a list in brackets" + (
            f", e.g. {key}=[{','.join(str(v) for v in example)}]" if example else "")
    if m := re.match(r"Value '(.*)' (?:of type '\w+' could not be converted to (Integer|Float)"
                     r"|is not a valid bool)", first):
        wanted = {"Integer": "a whole number, e.g. 100", "Float": "a number, e.g. 2e-4",
                  None: "true or false"}[m[2]]
        first = f"'{m[1]}' is not {wanted}"
    return ConfigError(f"bad value for '{key}' in {source}: {first}")


def _field_type(key: str) -> str | None:
    """The annotation of the dotted ``key``'s field as written ("int", "Optional[int]", ...)."""
    types = {f.name: f.type for f in dataclasses.fields(_section_class(key))}
    return types.get(key.rsplit(".", 1)[-1])


def _takes_text(key: str) -> bool:
    """Whether the dotted ``key`` is a string setting (a name or a path)."""
    return _field_type(key) in ("str", str)


def _whole_numbers(layer: dict, prefix: str = "") -> dict:
    """``layer`` with a whole number that YAML reads as a float (``train.steps=3e4``, 30000.0)
    made an int where the setting takes whole numbers; 2.5 stays, for OmegaConf to refuse."""
    def whole(v):  # exactly: a float past 2**53 stands for many whole numbers
        return int(v) if isinstance(v, float) and v.is_integer() and abs(v) <= 2 ** 53 else v

    out = {}
    for k, v in layer.items():
        key = f"{prefix}{k}"
        kind = _field_type(key)
        if isinstance(v, dict):
            v = _whole_numbers(v, key + ".")
        elif kind in ("int", "Optional[int]"):
            v = whole(v)
        elif kind == "List[int]" and isinstance(v, list):
            v = [whole(x) for x in v]
        out[k] = v
    return out


def parse_overrides(overrides: list[str]) -> dict:
    """``["train.steps=300", "loss.generator=minimax"]`` -> nested dict. Values are parsed as
    YAML (1.2), except that a string setting keeps the text as typed where YAML reads something
    else: ``data.root=true`` is the folder "true", ``data.root=010`` the folder "010" (not 10)."""
    out: dict = {}
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"override '{item}' is not of the form key=value "
                              "(e.g. train.steps=300)")
        key, _, value = item.partition("=")
        try:
            parsed = _load_yaml(value) if value != "" else ""
        except (yaml.YAMLError, ValueError, TypeError):
            parsed = value
        if not isinstance(parsed, str) and _takes_text(key.strip()):
            parsed = value
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}' conflicts with an earlier override")
        node[parts[-1]] = parsed
    return out


def _check_text(layer: dict, source: str) -> None:
    """A string setting (a name or a path) given a YAML bool or number: OmegaConf would make
    'True' of ``root: true`` and '10' of ``root: 010``, so ask for quotes instead."""
    for full, value in flat(layer).items():
        if isinstance(value, (bool, int, float)) and _takes_text(full):
            raise ConfigError(f"bad value for '{full}' in {source}: YAML reads it as the "
                              f"{type(value).__name__} {value!r}, not as text; put it in "
                              "quotes")


def build_config(base: dict | None = None, *layers: tuple[dict, str],
                 base_name: str = "preset") -> Config:
    """Merge dict layers (each with a name for error messages) onto the defaults and validate."""
    cfg = OmegaConf.structured(Config)
    for layer, source in ([(base, base_name)] if base is not None else []) + list(layers):
        for section in ("data", "model", "loss", "optim", "train"):
            # OmegaConf's error for a section given a scalar carries no key; name it here
            if section in layer and not isinstance(layer[section], dict):
                raise ConfigError(f"bad value for '{section}' in {source}: expected a mapping "
                                  f"of {section}.* settings, not {layer[section]!r}")
        _check_text(layer, source)
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.create(_whole_numbers(layer)))
        except OmegaConfBaseException as e:
            raise _explain(e, source) from None
    obj: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    validate(obj)
    return obj


def load_config(preset: str, overrides: list[str] = ()) -> Config:
    """Defaults <- preset (a name or a YAML path) <- command-line overrides."""
    if not isinstance(preset, (str, Path)):
        raise ConfigError(f"preset must be a preset name or a path to a .yaml file, not "
                          f"{type(preset).__name__}")
    preset = str(preset)
    return build_config(preset_dict(preset), (parse_overrides(_listed(overrides)), "overrides"),
                        base_name=preset if preset.endswith((".yaml", ".yml")) else
                        f"preset {preset}")


def load_run_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """The resolved config a run folder holds (``RUN/config.yaml``), with optional overrides."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a file; is this a ganforge run folder?")
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; is this a ganforge run folder?")
    from ganforge.plugins import plugin_hint

    text = _read_text(path, str(path))
    if not text.strip():
        raise ConfigError(f"{path} is empty; a run's config.yaml holds its whole config")
    overrides = _listed(overrides)
    # read by the rules it was written with, PyYAML's YAML 1.1: older run folders hold text
    # such as 1e5 unquoted, which YAML 1.2 would read as a number
    try:
        return build_config(_read_yaml(text, str(path), yaml.SafeLoader),
                            (parse_overrides(overrides), "overrides"), base_name=str(path))
    except ConfigError as e:  # a value edited by hand, unless an override set it
        key = re.match(r"[\w.]+(?==)", str(e))
        if str(path) in str(e) or key is None or any(
                o.split("=", 1)[0].strip() == key[0] for o in overrides):
            raise
        # the run was trained where the name was known: registered outside ganforge
        name = re.match(r"[\w.]+='([^']*)' is not known", str(e))
        plugin = "" if key[0] not in REGISTERED or name is None else \
            f"; {plugin_hint(text, key[0], name[1])}"
        raise ConfigError(f"{path}: {e}{plugin}") from None


def run_settings(path: str | Path) -> dict[str, Any]:
    """``RUN/config.yaml`` as written, one level of dotted keys (``{"train.steps": 3000}``),
    not validated: a resume compares it with the config it goes on with, whose overrides may
    mend a value edited by hand."""
    path = Path(path)
    return flat(_read_yaml(_read_text(path, str(path)), str(path), yaml.SafeLoader))


def flat(tree: dict, prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys: ``{"data": {"toy": {"std": 1}}}`` -> ``{"data.toy.std": 1}``."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _listed(overrides) -> list[str]:
    """The overrides as a list, read once (a generator passed in is used up by reading it)."""
    bad = ConfigError("overrides must be a list of 'key=value' strings, e.g. ['train.steps=300']")
    if overrides is None:
        return []
    if isinstance(overrides, (str, bytes)):
        raise bad
    try:
        items = list(overrides)
    except TypeError:
        raise bad from None
    if not all(isinstance(o, str) for o in items):
        raise bad
    return items


def to_yaml(cfg: Config) -> str:
    """A run's config.yaml: the config, after a comment for each of its names that code outside
    ganforge registered (:func:`ganforge.plugins.origins`)."""
    from ganforge.plugins import origins

    return origins(cfg) + yaml.dump(dataclasses.asdict(cfg), Dumper=_Dumper, sort_keys=False)


def registries() -> dict:
    """The registry behind each setting of ``REGISTERED``."""
    from ganforge.data import DATASETS
    from ganforge.losses import D_LOSSES, G_LOSSES, PENALTIES
    from ganforge.models import MODELS

    return dict(zip(REGISTERED, (DATASETS, MODELS, D_LOSSES, G_LOSSES, PENALTIES)))


def setting(cfg: Config, key: str):
    """The value of the dotted ``key`` ("model.arch") in ``cfg``."""
    section, name = key.split(".", 1)
    return getattr(getattr(cfg, section), name)


# ----------------------------------------------------------------------------- validation

def _choice(key: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{key}='{value}' is not known; choose one of: {', '.join(choices)}")


def _positive(key: str, value, minimum=1) -> None:
    if value is None or value < minimum:
        raise ConfigError(f"{key}={value} is out of range; it must be >= {minimum}")


def validate(cfg: Config) -> None:
    """Registry names and ranges. Raises ConfigError with a one-line message."""
    from ganforge.models import MODELS, family
    from ganforge.plugins import call

    for key, registry in registries().items():  # loss.penalty's reserved "none" first
        _choice(key, setting(cfg, key), [*registry.reserved, *registry.names()])
    _choice("model.z_dist", cfg.model.z_dist, Z_DISTS)
    _choice("optim.name", cfg.optim.name, OPTIMIZERS)
    _choice("optim.decay", cfg.optim.decay, DECAYS)
    _choice("train.precision", cfg.train.precision, PRECISIONS)
    _choice("train.memory_format", cfg.train.memory_format, MEMORY_FORMATS)
    _choice("train.cuda_graph", cfg.train.cuda_graph, CUDA_GRAPH)
    if cfg.optim.clip_d is not None and not 0 < cfg.optim.clip_d < math.inf:
        raise ConfigError(f"optim.clip_d={cfg.optim.clip_d} must be finite and > 0 (or null for no "
                          "clipping)")
    if cfg.train.unroll_steps < 0:
        raise ConfigError(f"train.unroll_steps={cfg.train.unroll_steps} must be >= 0")
    if cfg.train.unroll_steps and cfg.optim.name != "adam":
        raise ConfigError("train.unroll_steps needs optim.name=adam (the unroll replays D's "
                          "Adam update)")
    if cfg.train.unroll_steps and cfg.loss.generator == "feature-matching":
        raise ConfigError("loss.generator=feature-matching cannot be combined with "
                          "train.unroll_steps; choose one")
    if cfg.train.unroll_steps and cfg.loss.penalty != "none":
        raise ConfigError("loss.penalty cannot be combined with train.unroll_steps (the unroll "
                          "replays the plain D loss); choose one")
    if not 0 <= cfg.train.ema_decay < 1:
        raise ConfigError(f"train.ema_decay={cfg.train.ema_decay} is out of range; it must be in "
                          "[0, 1) (0 = off, 0.999 is usual)")
    if cfg.train.ema_start < 0:
        raise ConfigError(f"train.ema_start={cfg.train.ema_start} must be >= 0")
    if cfg.train.eval_every < 0:
        raise ConfigError(f"train.eval_every={cfg.train.eval_every} must be >= 0 (0 = off)")
    if not 0 <= cfg.loss.info_weight < math.inf:
        raise ConfigError(f"loss.info_weight={cfg.loss.info_weight} must be finite and >= 0 "
                          "(0 = no classifier term for model.g_components)")
    if not 0 <= cfg.loss.instance_noise < math.inf:
        raise ConfigError(f"loss.instance_noise={cfg.loss.instance_noise} must be finite and "
                          ">= 0 (0 = off)")
    if cfg.loss.instance_noise_steps < 0:
        raise ConfigError(f"loss.instance_noise_steps={cfg.loss.instance_noise_steps} must be "
                          ">= 0 (0 = anneal over train.steps)")
    if cfg.model.minibatch_kernels < 0:
        raise ConfigError(f"model.minibatch_kernels={cfg.model.minibatch_kernels} must be >= 0")
    if cfg.data.channels not in (1, 3):
        raise ConfigError(f"data.channels={cfg.data.channels} is not supported; use 1 or 3")
    if cfg.data.limit is not None:
        _positive("data.limit", cfg.data.limit)
    if cfg.data.name == "stacked-mnist" and cfg.data.channels != 3:
        raise ConfigError(f"data.name=stacked-mnist needs data.channels=3 (one digit per "
                          f"channel), not {cfg.data.channels}")
    for key in ("data.image_size", "data.stacked_size", "model.z_dim", "model.num_classes",
                "model.g_width", "model.d_width", "train.steps", "train.batch_size",
                "train.d_steps", "train.g_steps", "train.log_every", "train.sample_every",
                "train.checkpoint_every", "train.eval_samples", "model.minibatch_kernel_dim",
                "model.pack", "model.g_components"):
        _positive(key, setting(cfg, key))
    if not -2 ** 63 <= cfg.train.seed < 2 ** 63:  # torch's generators, with room for offsets
        raise ConfigError(f"train.seed={cfg.train.seed} is out of range; choose a whole number "
                          "from -2**63 to 2**63 - 1")
    if cfg.model.pack > 1 and cfg.model.conditional:
        raise ConfigError(f"model.pack={cfg.model.pack} needs an unconditional model; "
                          "set model.conditional=false or model.pack=1")
    if cfg.train.batch_size % cfg.model.pack:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} must be a multiple of "
                          f"model.pack={cfg.model.pack} (D judges packs of that many samples)")
    for key in ("model.g_hidden", "model.d_hidden"):
        sizes = setting(cfg, key)
        if any(n < 1 for n in sizes):
            raise ConfigError(f"{key}={sizes} is out of range; every layer needs >= 1 unit")
    for key, low in (("optim.lr_g", 0), ("optim.lr_d", 0), ("loss.penalty_weight", None)):
        value = setting(cfg, key)
        if not math.isfinite(value) or (value <= low if low is not None else value < 0):
            raise ConfigError(f"{key}={value} is out of range; it must be a finite number "
                              f"{'> 0' if low is not None else '>= 0'}")
    for key in ("optim.beta1", "optim.beta2"):
        value = setting(cfg, key)
        if not 0 <= value < 1:
            raise ConfigError(f"{key}={value} is out of range; it must be in [0, 1)")
    dev = cfg.train.device
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", dev):
        raise ConfigError(f"train.device='{dev}' is not known; choose {DEVICES}")
    from ganforge.data import is_toy
    from ganforge.data.toy import check_toy

    if is_toy(cfg.data.name):
        check_toy(cfg)
    call(f"model.arch={cfg.model.arch}: check(cfg)", family(cfg).check, cfg,
         source=MODELS.module(cfg.model.arch))


def preset_description(name: str) -> str:
    return str(preset_dict(name).get("description", "")).strip()


def as_dict(cfg: Config) -> dict[str, Any]:
    """The config as nested dicts, with any attribute set by hand that is no setting (a typo
    such as ``cfg.train.setps = 5``) kept, so that build_config names it instead of dropping it."""
    def plain(value):
        if dataclasses.is_dataclass(value):
            return {k: plain(v) for k, v in vars(value).items()}
        return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value
    return plain(cfg)
