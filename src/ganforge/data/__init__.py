"""Datasets, registered by name (``data.name``), held in memory.

A loader takes the config and returns :class:`ImageData` (uint8 images) or a toy mixture;
``data.batches(batch_size, device, seed)`` gives the sampler the loop draws from. Images are
scaled to [-1, 1] on the training device, so no per-sample Python runs on the hot path.
"""
from __future__ import annotations

from ganforge.data.base import DATASETS, Batches, ImageData, load_data

# Importing the modules registers the datasets.
from ganforge.data import images, mnist, stacked, toy  # noqa: E402,F401


def is_toy(name: str) -> bool:
    return name in toy.TOY


__all__ = ["DATASETS", "Batches", "ImageData", "is_toy", "load_data"]
