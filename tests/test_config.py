"""Typed config: defaults, presets that list only differences, overrides, one-line errors."""
import dataclasses
from importlib import resources

import pytest
import yaml

from ganforge.config import (Config, build_config, load_config, load_run_config, parse_overrides,
                             preset_description, preset_dict, preset_names, to_yaml)
from ganforge.errors import ConfigError

# The seed experiments' presets; more may be added (every one is loaded below).
PRESETS = preset_names()


def test_defaults_load():
    cfg = build_config()
    assert cfg == Config()
    assert cfg.data.name == "mnist" and cfg.data.image_size == 28 and cfg.data.channels == 1
    assert cfg.model.arch == "dcgan" and cfg.model.z_dim == 100
    assert cfg.loss.discriminator == "cross-entropy" and cfg.loss.generator == "non-saturating"
    assert cfg.optim.lr_g == 2e-4 and cfg.optim.beta1 == 0.5
    assert cfg.train.d_steps == 1 and cfg.train.g_steps == 1 and cfg.data.download is False


def test_preset_names():
    names = preset_names()
    assert set(PRESETS) <= set(names) and names == sorted(names)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_and_is_described(name):
    cfg = load_config(name)
    assert isinstance(cfg, Config)
    assert cfg.description.strip()
    assert preset_description(name) == cfg.description.strip()
    assert "\n" not in preset_description(name)


def _flatten(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


# Defaults the shipped presets restate today (harmless, but not "only differences"): the
# architecture family everywhere, and a few values the descriptions quote. Any other restated
# default fails the test; remove lines here as the presets are trimmed.
RESTATED: set = set()  # (preset, key) pairs allowed to repeat a default; none today


@pytest.mark.parametrize("name", PRESETS)
def test_presets_list_only_differences(name):
    defaults = dict(_flatten(dataclasses.asdict(Config())))
    raw = preset_dict(name)
    for key, value in _flatten(raw):
        if key == "description":
            continue
        assert key in defaults, f"{name}: {key} is not a setting"
        if key in RESTATED or (name, key) in RESTATED:
            continue
        assert defaults[key] != value, f"{name}: {key}={value!r} repeats the default"
    assert len(raw) <= 7 and sum(1 for _ in _flatten(raw)) < 25  # a short list, not a full copy
    # and every listed difference is in effect
    cfg = dict(_flatten(dataclasses.asdict(load_config(name))))
    for key, value in _flatten(raw):
        assert cfg[key] == value


def test_preset_contents_that_matter():
    c = load_config("cdcgan-mnist")
    assert c.model.conditional and c.train.g_steps == 2 and c.model.z_dist == "uniform"
    c = load_config("gan-mnist")
    assert c.model.arch == "mlp"
    c = load_config("dcgan-64")
    assert (c.data.name, c.data.image_size, c.data.channels, c.model.g_width) == \
        ("image-folder", 64, 3, 128)


def test_overrides_apply():
    cfg = load_config("demo", ["train.steps=300", "loss.generator=minimax",
                               "model.g_hidden=[16, 32]", "data.limit=100", "optim.lr_d=1e-3",
                               "train.tensorboard=false", "description=hello world"])
    assert cfg.train.steps == 300 and isinstance(cfg.train.steps, int)
    assert cfg.loss.generator == "minimax"
    assert cfg.model.g_hidden == [16, 32]
    assert cfg.data.limit == 100
    assert cfg.optim.lr_d == pytest.approx(1e-3) and isinstance(cfg.optim.lr_d, float)
    assert cfg.train.tensorboard is False
    assert cfg.description == "hello world"
    # untouched values keep the preset's
    assert cfg.model.g_width == 32
    # later overrides win
    assert load_config("demo", ["train.steps=5", "train.steps=7"]).train.steps == 7


def test_parse_overrides_nests():
    assert parse_overrides(["a.b=1", "a.c=x", "d=true"]) == {"a": {"b": 1, "c": "x"}, "d": True}


def test_string_settings_keep_the_text_as_typed():
    """YAML would read these folder names as a bool, an int, a float, None and a mapping."""
    for text in ("true", "010", "1e3", "null", "a: b"):
        assert load_config("demo", [f"data.root={text}"]).data.root == text
    assert parse_overrides(["data.root='my data'"]) == {"data": {"root": "my data"}}
    assert parse_overrides(["data.limit=010"]) == {"data": {"limit": 10}}  # other types: YAML


def test_a_run_folder_is_read_as_it_was_written(tmp_path):
    """config.yaml is read with PyYAML's own rules, the ones older ganforge wrote it with: those
    left text such as 1e5 unquoted, which YAML 1.2 reads as a number."""
    cfg = load_config("demo", ["description=1e5", "data.root=2024-01-01"])
    old = yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)  # what older versions wrote
    assert "description: 1e5" in old
    (tmp_path / "config.yaml").write_text(old)
    assert load_run_config(tmp_path / "config.yaml") == cfg
    (tmp_path / "config.yaml").write_text(to_yaml(cfg))  # and what this one writes
    assert load_run_config(tmp_path / "config.yaml") == cfg


def test_explicit_yaml_tags_that_fail_are_one_line(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("train:\n  steps: !!int abc\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: not valid YAML \(invalid literal"):
        load_config(str(path))
    assert "'!!int abc' is not a whole number" in one_line_error("demo", ["train.steps=!!int abc"])
    path.write_text("data:\n  root: 2024-01-01\n")  # a date is text in YAML 1.2
    assert load_config(str(path)).data.root == "2024-01-01"


def test_numbers_and_booleans_are_read_as_yaml_1_2(tmp_path):
    """PyYAML reads YAML 1.1: 010 is 8 (octal), 1:30 is 90 (base 60), 1e-3 is text, no is
    False. ganforge reads them as YAML 1.2 does, in files and in overrides alike."""
    assert parse_overrides(["data.limit=010", "optim.lr_g=1e-3", "train.steps=1:30",
                            "train.progress=no", "train.seed=0x10"]) == {
        "data": {"limit": 10}, "optim": {"lr_g": 0.001},
        "train": {"steps": "1:30", "progress": "no", "seed": 16}}
    path = tmp_path / "mine.yaml"
    path.write_text("data:\n  limit: 010\noptim:\n  lr_g: 1e-3\ntrain:\n  progress: no\n")
    cfg = load_config(str(path))
    assert (cfg.data.limit, cfg.optim.lr_g, cfg.train.progress) == (10, 0.001, False)
    assert one_line_error("demo", ["train.steps=1:30"]) == (
        "bad value for 'train.steps' in overrides: '1:30' is not a whole number, e.g. 100")
    assert "'None' is not known" in one_line_error("demo", ["loss.penalty=None"])


def test_whole_numbers_written_as_floats_are_whole_numbers(tmp_path):
    """train.steps=3e4 is 30000 steps (YAML reads 3e4 as a float), in overrides, YAML files and
    lists of whole numbers alike; a fraction, inf or nan is still refused, and float settings
    keep their floats."""
    cfg = load_config("demo", ["train.steps=3e4", "data.limit=1e3", "train.seed=-1e2",
                               "model.g_hidden=[2.56e2,512.0]", "optim.lr_g=1e-3"])
    assert (cfg.train.steps, cfg.data.limit, cfg.train.seed, cfg.model.g_hidden) == (
        30000, 1000, -100, [256, 512])
    assert all(type(v) is int for v in (cfg.train.steps, cfg.data.limit, *cfg.model.g_hidden))
    assert cfg.optim.lr_g == 0.001 and load_config("demo", ["optim.lr_g=1"]).optim.lr_g == 1.0
    path = tmp_path / "mine.yaml"
    path.write_text("train:\n  steps: 2.5e3\ndata:\n  toy:\n    modes: 8.0\n")
    cfg = load_config(str(path))
    assert (cfg.train.steps, cfg.data.toy.modes) == (2500, 8) and type(cfg.train.steps) is int
    assert to_yaml(cfg).count("steps: 2500\n") == 1  # the run's config.yaml: an int
    assert one_line_error("demo", ["train.steps=1000.5"]) == (
        "bad value for 'train.steps' in overrides: '1000.5' is not a whole number, e.g. 100")
    assert one_line_error("demo", ["train.seed=1e25"]) == (  # past 2**53: not one whole number
        "bad value for 'train.seed' in overrides: '1e+25' is not a whole number, e.g. 100")
    for text in ("1e400", ".nan", "[1.5]"):
        key = "model.g_hidden" if text.startswith("[") else "train.steps"
        assert "is not a whole number" in one_line_error("demo", [f"{key}={text}"])


def one_line_error(preset, overrides=()):
    with pytest.raises(ConfigError) as info:
        load_config(preset, list(overrides))
    msg = str(info.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    return msg


def test_unknown_key():
    msg = one_line_error("demo", ["train.stepz=3"])
    assert "train.stepz" in msg
    assert "train.steps" in msg and "train.batch_size" in msg  # the valid keys


def test_unknown_top_level_key():
    msg = one_line_error("demo", ["trian.steps=3"])
    assert "trian" in msg and "train" in msg and "model" in msg


def test_wrong_type():
    msg = one_line_error("demo", ["train.steps=abc"])
    assert msg == "bad value for 'train.steps' in overrides: 'abc' is not a whole number, e.g. 100"
    assert one_line_error("demo", ["optim.lr_g=fast"]) == (
        "bad value for 'optim.lr_g' in overrides: 'fast' is not a number, e.g. 2e-4")
    assert one_line_error("demo", ["train.progress=maybe"]) == (
        "bad value for 'train.progress' in overrides: 'maybe' is not true or false")
    msg = one_line_error("demo", ["model.g_hidden=abc"])  # the accepted form, not OmegaConf's
    assert msg.endswith("'model.g_hidden' in overrides: expected a list in brackets, "
                        "e.g. model.g_hidden=[256,512,1024]"), msg
    assert "[-3.0,3.0]" in one_line_error("ring-gan", ["data.toy.means=3"])


def test_section_given_a_scalar_names_the_section():
    msg = one_line_error("demo", ["train=3"])
    assert "'train'" in msg


@pytest.mark.parametrize("override,key,choices", [
    ("loss.generator=foo", "loss.generator", ["minimax", "non-saturating", "maximum-likelihood"]),
    ("loss.discriminator=foo", "loss.discriminator", ["cross-entropy"]),
    ("data.name=foo", "data.name", ["mnist", "fashion-mnist", "cifar10", "image-folder"]),
    ("model.arch=foo", "model.arch", ["dcgan", "mlp"]),
    ("model.z_dist=foo", "model.z_dist", ["normal", "uniform"]),
    ("data.image_size=40", "data.image_size", ["28", "32", "64"]),
    ("data.channels=2", "data.channels", ["1", "3"]),
])
def test_unknown_names_list_the_choices(override, key, choices):
    msg = one_line_error("demo", [override])
    assert key in msg and override.split("=")[1] in msg
    for c in choices:
        assert c in msg


def test_mlp_accepts_any_image_size():
    assert load_config("gan-mnist", ["data.image_size=40"]).data.image_size == 40


@pytest.mark.parametrize("override,key", [
    ("train.steps=0", "train.steps"), ("train.batch_size=-1", "train.batch_size"),
    ("data.limit=0", "data.limit"), ("optim.lr_g=0", "optim.lr_g"),
    ("optim.beta1=1.0", "optim.beta1"), ("train.device=tpu", "train.device"),
    ("train.device=cuda:x", "train.device"), ("model.g_hidden=[256,0]", "model.g_hidden"),
    ("model.d_hidden=[-1]", "model.d_hidden"), ("optim.lr_d=.inf", "optim.lr_d"),
    ("loss.penalty_weight=-1", "loss.penalty_weight"), ("loss.instance_noise=.nan", "instance"),
    ("optim.clip_d=.inf", "optim.clip_d"),
])
def test_ranges(override, key):
    assert key in one_line_error("demo", [override])


@pytest.mark.parametrize("preset,override,words", [
    ("demo", "loss.info_weight=-0.5", ["loss.info_weight=-0.5", "finite and >= 0"]),
    ("demo", "loss.info_weight=.inf", ["loss.info_weight=inf", "finite and >= 0"]),
    ("demo", "loss.info_weight=.nan", ["loss.info_weight=nan", "finite and >= 0"]),
    # on an arch that takes minibatch discrimination, so only the range check can refuse it
    ("gan-mnist", "model.minibatch_kernels=-1", ["model.minibatch_kernels=-1", ">= 0"]),
    ("ring-gan", "model.minibatch_kernels=-3", ["model.minibatch_kernels=-3", ">= 0"]),
    ("demo", "train.eval_samples=0", ["train.eval_samples=0", ">= 1"]),
    ("ring-gan", "train.eval_samples=-5", ["train.eval_samples=-5", ">= 1"]),
])
def test_ranges_of_info_weight_minibatch_kernels_and_eval_samples(preset, override, words):
    msg = one_line_error(preset, [override])
    for w in words:
        assert w in msg, (w, msg)


def test_unknown_preset():
    msg = one_line_error("nosuch")
    assert "nosuch" in msg
    for name in preset_names():
        assert name in msg


def test_malformed_override():
    assert "key=value" in one_line_error("demo", ["train.steps"])


def test_yaml_file_preset(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("description: mine\ntrain:\n  steps: 7\n")
    cfg = load_config(str(path), ["train.seed=3"])
    assert cfg.train.steps == 7 and cfg.train.seed == 3 and cfg.description == "mine"
    path.write_text("train:\n  stepz: 7\n")
    with pytest.raises(ConfigError, match="train.stepz"):
        load_config(str(path))
    path.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="YAML") as info:
        load_config(str(path))
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "missing.yaml"))


def test_a_yaml_file_must_quote_a_name_that_yaml_reads_as_something_else(tmp_path):
    path = tmp_path / "mine.yaml"
    for text, shown in (("true", "bool True"), ("010", "int 10"), ("1.10", "float 1.1")):
        path.write_text(f"data:\n  root: {text}\n")
        with pytest.raises(ConfigError) as info:
            load_config(str(path))
        assert str(info.value) == (f"bad value for 'data.root' in {path}: YAML reads it as the "
                                   f"{shown}, not as text; put it in quotes")
        path.write_text(f"data:\n  root: '{text}'\n")
        assert load_config(str(path)).data.root == text
    path.write_text("data:\n  root: no\n")  # YAML 1.1's False; text in YAML 1.2
    assert load_config(str(path)).data.root == "no"
    # a config.yaml that train wrote quotes such names itself, so it loads back the same, here
    # and in a YAML 1.1 reader such as yaml.safe_load
    for text in ("no", "010", "1e3", "1:30", "true"):
        cfg = load_config("demo", [f"data.root={text}"])
        (tmp_path / "config.yaml").write_text(to_yaml(cfg))
        assert load_run_config(tmp_path / "config.yaml").data.root == text
        assert yaml.safe_load(to_yaml(cfg))["data"]["root"] == text


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config("cdcgan-mnist", ["train.steps=42", "model.g_hidden=[3]"])
    (tmp_path / "config.yaml").write_text(to_yaml(cfg))
    assert yaml.safe_load(to_yaml(cfg))["train"]["steps"] == 42
    assert load_run_config(tmp_path / "config.yaml") == cfg
    again = load_run_config(tmp_path / "config.yaml", ["train.steps=50"])
    assert again.train.steps == 50 and again.model.conditional
    with pytest.raises(ConfigError, match="run folder"):
        load_run_config(tmp_path / "nope" / "config.yaml")


def test_preset_files_ship_with_the_package():
    files = {p.name for p in resources.files("ganforge.presets").iterdir()}
    assert {f"{n}.yaml" for n in PRESETS} <= files


def test_non_utf8_empty_and_misnamed_config_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    for call in (lambda: load_config(str(bad)), lambda: load_run_config(bad)):
        with pytest.raises(ConfigError, match="not valid YAML \\(not UTF-8 text\\)"):
            call()
    empty = tmp_path / "config.yaml"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_run_config(empty)
    empty.write_text("bogus_section: {a: 1}\n")  # named as the file, not as a preset
    with pytest.raises(ConfigError, match=f"unknown key 'bogus_section' in {empty}"):
        load_run_config(empty)
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        load_run_config(tmp_path / "dir.yaml")


def test_python_callers_get_clear_type_errors():
    from ganforge.train.loop import train

    with pytest.raises(ConfigError, match="preset must be a preset name or a path"):
        load_config(5)
    for overrides in ("train.steps=3", [3], 3):
        with pytest.raises(ConfigError, match="overrides must be a list of 'key=value' strings"):
            load_config("demo", overrides)
    # any iterable of strings counts, a generator included (it is read once)
    assert load_config("demo", (o for o in ["train.steps=3"])).train.steps == 3
    assert load_config("demo", ("train.steps=4",)).train.steps == 4
    with pytest.raises(ConfigError, match="train needs a Config"):
        train({"train": {}}, "unused")


def test_train_checks_its_flags_and_log_before_writing(tmp_path, capsys, monkeypatch):
    from ganforge.train.checkpoint import load_generator
    from ganforge.train.loop import train

    cfg = load_config("demo", ["train.steps=2", "train.progress=false", "train.tensorboard=false",
                               "train.sample_every=2", "train.checkpoint_every=2"])
    run = tmp_path / "run"
    with pytest.raises(TypeError, match="train's overwrite is True or False, not 'no'"):
        train(cfg, run, overwrite="no")
    with pytest.raises(TypeError, match="train's resume is True or False, not 1"):
        train(cfg, run, resume=1)
    with pytest.raises(ValueError, match="overwrite=True .* or resume=True .*, not both"):
        train(cfg, run, overwrite=True, resume=True)
    with pytest.raises(TypeError, match="train's log is a function .* not str"):
        train(cfg, run, log="quiet")
    cfg.train.setps = 5  # a typo set by hand: named, not dropped
    with pytest.raises(ConfigError, match="unknown key 'train.setps' in the config given to train"):
        train(cfg, run)
    del cfg.train.setps
    assert not run.exists()
    monkeypatch.setenv("HOME", str(tmp_path))  # "~/run" is the home folder's, not "./~/run"
    assert train(cfg, "~/run", log=None) == run and (run / "checkpoints").is_dir()
    assert capsys.readouterr().out == ""  # log=None: quiet
    assert load_generator("~/run")[1] == load_generator(run)[1]


def test_none_overrides_are_no_overrides():
    assert load_config("demo", None) == load_config("demo")


def test_train_checks_a_config_changed_after_load_config(tiny, tmp_path):
    """train() validates again: a field set by hand is checked like an override, before the
    run folder is made, and a string that OmegaConf can read as the field's type is converted."""
    from ganforge.train.loop import train

    cfg = load_config("demo", tiny(2))
    for key, value, words in [("steps", 0, "train.steps=0 is out of range"),
                              ("batch_size", "lots", "train.batch_size"),
                              ("device", "gpu", "train.device='gpu' is not known"),
                              ("seed", 2 ** 63, r"train.seed=\d+ is out of range; choose a "),
                              ("seed", -2 ** 63 - 1, "train.seed=-9223372036854775809 is out")]:
        bad = load_config("demo", tiny(2))
        setattr(bad.train, key, value)
        with pytest.raises(ConfigError, match=words):
            train(bad, tmp_path / "run", log=lambda *a: None)
        assert not (tmp_path / "run").exists()
    bad = load_config("demo", tiny(2))
    bad.model.g_hidden = [0]
    bad.model.arch = "mlp"
    with pytest.raises(ConfigError, match="model.g_hidden"):
        train(bad, tmp_path / "run", log=lambda *a: None)
    cfg.train.batch_size = "8"
    run = train(cfg, tmp_path / "run", log=lambda *a: None)
    assert "batch_size: 8\n" in (run / "config.yaml").read_text()


def test_train_leaves_the_global_rng_and_the_plot_backend_alone(tiny, tmp_path, monkeypatch):
    import matplotlib
    import torch

    from ganforge.train.loop import train

    used = []
    monkeypatch.setattr(matplotlib, "use", lambda *a, **k: used.append(a))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run = train(load_config("demo", tiny(2)), tmp_path / "run", log=lambda *a: None)
    assert torch.equal(torch.rand(3), expected) and used == []
    assert (run / "curves.png").stat().st_size > 0
    torch.manual_seed(123)
    train(load_config("demo", tiny(4)), run, resume=True, log=lambda *a: None)
    assert torch.equal(torch.rand(3), expected)


def test_load_generator_checks_step_and_device(tiny, tmp_path):
    from ganforge.train.checkpoint import load_generator
    from ganforge.train.loop import train

    run = train(load_config("demo", tiny(2)), tmp_path / "run", log=lambda *a: None)
    for step in ("2", 2.0):
        with pytest.raises(ValueError, match=f"step={step!r}: it must be a whole number"):
            load_generator(run, step=step)
    with pytest.raises(ConfigError, match="device='gpu' is not known; choose auto, cpu, cuda"):
        load_generator(run, device="gpu")
    import torch

    state = torch.get_rng_state()
    assert load_generator(str(run), step=2, device="auto")[1].train.steps == 2
    assert torch.equal(torch.get_rng_state(), state)  # the init it replaces drew in a fork


def test_resolve_device_names_what_this_machine_lacks(monkeypatch):
    import torch

    from ganforge.train.loop import resolve_device

    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    for name, words in [("tpu", "'tpu' is not known; choose auto, cpu, cuda, cuda:N"),
                        ("cuda:x", "is not known"), ("meta", "is not known")]:
        with pytest.raises(ConfigError, match=words):
            resolve_device(name, what="device")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no MPS"):
        resolve_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="train.device='cuda:1' but no CUDA device"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="has 1 CUDA device"):
        resolve_device("cuda:1")
    assert resolve_device("cuda:0") == torch.device("cuda:0")


def test_a_cuda_device_without_its_number_after_the_colon_is_refused_at_load():
    with pytest.raises(ConfigError, match=r"train.device='cuda:' is not known"):
        load_config("demo", ["train.device=cuda:"])


def test_a_seed_of_2_to_the_63_is_out_of_range():
    load_config("demo", [f"train.seed={2 ** 63 - 1}"])
    with pytest.raises(ConfigError, match=r"train.seed=9223372036854775808 is out of range"):
        load_config("demo", [f"train.seed={2 ** 63}"])
