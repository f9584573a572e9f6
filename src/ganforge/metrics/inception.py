"""InceptionV3 features for natural (3-channel) images, through torch-fidelity.

The network is torch-fidelity's port of the TensorFlow InceptionV3 that FID was defined with
(the weights file ``weights-inception-2015-12-05-6726825d.pth``), the same one torchmetrics
uses. ``pip install 'ganforge[inception]'`` installs it. The weights come from, in order:

1. the ``weights`` argument (``ganforge eval --inception-weights FILE``),
2. the ``GANFORGE_INCEPTION_WEIGHTS`` environment variable,
3. torch-fidelity's own download into the torch hub cache (needs the internet once).

When none works the caller gets one line saying which file to supply, never a traceback.
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import torch
from torch import Tensor

from ganforge.errors import GanforgeError

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
FEATURE_DIM = 2048


def weights_path(weights: str | os.PathLike | None = None) -> Path | None:
    """The local weights file to use, or None to let torch-fidelity fetch (or reuse) its own."""
    chosen = weights or os.environ.get("GANFORGE_INCEPTION_WEIGHTS") or None
    if chosen is None:
        return None
    path = Path(chosen)
    if not path.is_file():
        raise GanforgeError(f"InceptionV3 weights file '{path}' does not exist; give the path of "
                            f"{WEIGHTS_FILE} (--inception-weights or GANFORGE_INCEPTION_WEIGHTS)")
    return path


def load_inception(weights: str | os.PathLike | None = None):
    """torch-fidelity's FeatureExtractorInceptionV3 giving (2048 pool features, unbiased logits)."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        raise GanforgeError("InceptionV3 features need torch-fidelity, which is not installed; "
                            "pip install 'ganforge[inception]'") from None
    path = weights_path(weights)
    try:
        return FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                           feature_extractor_weights_path=str(path) if path
                                           else None)
    except Exception as e:  # offline download, truncated or foreign file
        where = f"'{path}'" if path else "the internet (offline?)"
        raise GanforgeError(f"cannot load InceptionV3 weights from {where}: "
                            f"{(str(e).splitlines() or [type(e).__name__])[0][:120]}; give a local "
                            f"{WEIGHTS_FILE} with GANFORGE_INCEPTION_WEIGHTS=FILE (ganforge eval "
                            "also takes --inception-weights FILE)") from None


def extractor_id(weights: str | os.PathLike | None = None) -> str:
    """Names the extractor in cache keys: the weights file's hash, or the published default."""
    path = weights_path(weights)
    if path is None:
        return "inception-v3-default"
    stat = path.stat()
    return _file_hash(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:
    """Hashed once per file version (92 MB): training asks at every train.eval_every."""
    return f"inception-v3-{hashlib.sha256(Path(path).read_bytes()).hexdigest()[:10]}"


def to_uint8_rgb(images) -> Tensor:
    """(N, C, H, W) floats in [-1, 1] (or uint8) -> uint8 RGB; grey images are repeated."""
    x = torch.as_tensor(images)
    if x.dtype != torch.uint8:
        x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


@torch.no_grad()
def inception_features(images, weights=None, batch: int = 64,
                       model=None) -> tuple[Tensor, Tensor]:
    """(pool features (N, 2048), logits (N, 1008)) in float64; torch-fidelity resizes to 299."""
    model = model or load_inception(weights)
    x = to_uint8_rgb(images)
    device = next(model.parameters()).device
    feats, logits = [], []
    for i in range(0, len(x), batch):
        f, lg = model(x[i: i + batch].to(device))
        feats.append(f.double().cpu())
        logits.append(lg.double().cpu())
    return torch.cat(feats), torch.cat(logits)
