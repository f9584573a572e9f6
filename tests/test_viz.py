"""Sample grids, the progress GIF and the curves."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.viz import make_gif, plot_curves, save_grid
from ganforge.viz.plots import grid_image, read_metrics


def test_grid_image_layout_and_values():
    images = torch.full((6, 1, 4, 4), 1.0)
    images[0] = -1.0
    img = grid_image(images, nrow=3)
    assert img.mode == "L" and img.size == (3 * 6 + 2, 2 * 6 + 2)
    assert img.getpixel((2, 2)) == 0 and img.getpixel((8, 2)) == 255  # first black, second white
    assert img.getpixel((0, 0)) == 0  # padding is black (-1)
    rgb = grid_image(torch.zeros(5, 3, 4, 4))  # default: a square-ish grid, 3 per row
    assert rgb.mode == "RGB" and rgb.size == (3 * 6 + 2, 2 * 6 + 2)
    assert rgb.getpixel((2, 2)) in ((127, 127, 127), (128, 128, 128))


def test_save_grid_scale(tmp_path):
    save_grid(torch.zeros(4, 1, 4, 4), tmp_path / "g.png", scale=3)
    with Image.open(tmp_path / "g.png") as img:
        assert img.size == (3 * 14, 3 * 14)


def test_grids_refuse_what_is_not_an_image_batch_and_take_uint8(tmp_path):
    for bad in (torch.zeros(0, 1, 4, 4), torch.zeros(1, 1, 1, 4, 4), torch.zeros(500, 2),
                torch.zeros(2, 2, 4, 4), torch.zeros(2, 1, 4, 4).numpy(), [[0.0]]):
        with pytest.raises(ValueError, match=r"a grid needs an \(N, C, H, W\) image tensor"):
            save_grid(bad, tmp_path / "bad.png")
    for nrow in (0, -1, 2.5):
        with pytest.raises(ValueError, match="nrow=.*: it must be a whole number >= 1"):
            grid_image(torch.zeros(2, 1, 4, 4), nrow=nrow)
    for scale in (0, -2, 2.5):
        with pytest.raises(ValueError, match="scale=.*: it must be a whole number >= 1"):
            save_grid(torch.zeros(2, 1, 4, 4), tmp_path / "bad.png", scale=scale)
    with pytest.raises(ValueError, match="is a folder; give the grid a file name"):
        save_grid(torch.zeros(2, 1, 4, 4), tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written by any of them
    save_grid(torch.zeros(2, 1, 4, 4), tmp_path / "grid")  # no suffix: a PNG
    assert Image.open(tmp_path / "grid.png").format == "PNG"
    white = torch.full((1, 1, 4, 4), 255, dtype=torch.uint8)
    assert grid_image(white).getpixel((2, 2)) == 255  # uint8 is read as 0..255, not clamped


def test_make_gif(tmp_path):
    frames = []
    for i in range(3):
        frames.append(tmp_path / f"f{i}.png")
        save_grid(torch.full((1, 1, 4, 4), i - 1.0), frames[-1])
    make_gif(frames, tmp_path / "p.gif")
    with Image.open(tmp_path / "p.gif") as gif:
        assert gif.n_frames == 3
    make_gif([], tmp_path / "none.gif")
    assert not (tmp_path / "none.gif").exists()


RECORD = {"step": 1, "d_loss": 0.7, "g_loss": 0.8, "d_acc": 0.5, "d_real": 0.5, "d_fake": 0.5,
          "js_estimate": 0.1}


def test_curves_and_metrics(tmp_path):
    assert read_metrics(tmp_path / "missing.jsonl") == []
    plot_curves([], tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()
    records = [{**RECORD, "step": s, "js_estimate": -0.1 + 0.05 * s} for s in range(1, 6)]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + "\n")
    assert read_metrics(tmp_path / "m.jsonl") == records  # blank lines skipped
    assert read_metrics(str(tmp_path / "m.jsonl")) == records
    plot_curves(records, tmp_path / "c.png")
    with Image.open(tmp_path / "c.png") as img:
        assert img.format == "PNG" and img.width > img.height
    critic = [{"step": s, "d_loss": -2.0, "g_loss": 40.0, "d_real": -30.0, "d_fake": -32.0,
               "w_estimate": 2.0 / s} for s in range(1, 6)]  # a WGAN run: no d_acc, no JS
    least_squares = [{**{k: v for k, v in r.items() if k != "js_estimate"},
                      "delta_estimate": 0.3 * r["step"]} for r in records]
    custom = [{k: v for k, v in r.items() if k != "js_estimate"} for r in records]  # no estimate
    own_estimate = [{**r, "chi2_estimate": 0.1} for r in custom]  # DISTANCE_ESTIMATES entry
    resumed = records + [{**r, "step": r["step"] + 5} for r in critic]  # another D loss from 6
    for name, recs in (("w.png", critic), ("ls.png", least_squares), ("own.png", custom),
                       ("chi2.png", own_estimate),
                       ("resumed.png", resumed)):
        plot_curves(recs, tmp_path / name)
        with Image.open(tmp_path / name) as img:
            assert img.size == Image.open(tmp_path / "c.png").size


def test_no_module_sets_the_matplotlib_backend():
    """Figures come from viz.plots.figure (no pyplot), so a notebook's backend survives."""
    src = Path(__file__).resolve().parents[1] / "src" / "ganforge"
    offenders = [p.name for p in src.rglob("*.py")
                 if any(s in p.read_text() for s in ("matplotlib.use(", "matplotlib.pyplot"))]
    assert offenders == []


def test_a_full_disk_leaves_every_picture_whole(tmp_path, monkeypatch):
    """The disk fills after a writer's first bytes: the picture there before stays as it was,
    and no temporary file is left beside it."""
    import builtins
    import errno

    from ganforge.viz.plots import figure, save_figure

    real_open = builtins.open

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(bytes(data)[:8])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def open_on_a_full_disk(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return FullDisk(f) if "w" in mode else f

    frame = tmp_path / "frame.png"
    save_grid(torch.zeros(1, 1, 4, 4), frame)
    fig, ax = figure()
    ax.plot([0, 1])
    writers = {"grid.png": lambda p: save_grid(torch.zeros(4, 1, 4, 4), p),
               "p.gif": lambda p: make_gif([frame, frame], p),
               "figure.png": lambda p: save_figure(fig, p),
               "curves.png": lambda p: plot_curves([RECORD], p)}
    for name in writers:
        (tmp_path / name).write_bytes(b"the picture before")
    monkeypatch.setattr(builtins, "open", open_on_a_full_disk)
    for name, write in writers.items():
        try:
            write(tmp_path / name)
        except OSError as e:
            assert e.errno == errno.ENOSPC, name
        else:
            raise AssertionError(f"{name}: the simulated full disk was never met")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p != frame} == {
        name: b"the picture before" for name in writers}


def test_pictures_are_written_only_through_the_whole_or_nothing_writers():
    """save_grid, make_gif and save_figure write through files.replacing; a direct savefig
    elsewhere would bring back cut-off pictures."""
    src = Path(__file__).resolve().parents[1] / "src" / "ganforge"
    offenders = [p.name for p in src.rglob("*.py")
                 if p.name != "plots.py" and ".savefig(" in p.read_text()]
    assert offenders == []


def test_writers_take_open_files_and_long_names(tmp_path):
    """API users may hand the writers an open file (written directly) or a name as long as the
    file system allows (the temporary name is cut to fit); save_figure gives a bare name .png."""
    import io

    from ganforge.viz.plots import figure, save_figure

    frame = tmp_path / "f.png"
    save_grid(torch.zeros(1, 1, 4, 4), frame)
    buffers = {name: io.BytesIO() for name in ("grid", "gif", "curves")}
    save_grid(torch.zeros(4, 1, 4, 4), buffers["grid"])
    make_gif([frame, frame], buffers["gif"])
    plot_curves([RECORD], buffers["curves"])
    assert [Image.open(b).format for b in buffers.values()] == ["PNG", "GIF", "PNG"]
    fig, _ = figure()
    save_figure(fig, tmp_path / "bare")
    assert Image.open(tmp_path / "bare.png").format == "PNG"
    (tmp_path / "dir").mkdir()
    with pytest.raises(ValueError, match="is a folder; give the figure a file name"):
        save_figure(fig, tmp_path / "dir")  # not dir.png beside it
    (tmp_path / "dir").rmdir()
    long = tmp_path / ("a" * 251 + ".png")
    save_grid(torch.zeros(1, 1, 4, 4), long)
    assert Image.open(long).format == "PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([long.name, "bare.png", "f.png"])


def test_a_temporary_name_never_hides_the_error(tmp_path):
    from ganforge.files import is_temporary, replacing

    with pytest.raises(ZeroDivisionError), replacing(tmp_path / "x.png") as tmp:
        assert is_temporary(tmp.name)
        1 / 0
    assert list(tmp_path.iterdir()) == []


def test_the_third_panel_draws_the_estimate_a_run_logs(monkeypatch, tmp_path):
    """Each D loss's estimate is drawn in the third panel with its title (one a registered loss
    adds to DISTANCE_ESTIMATES too); without one the panel holds a note and no line."""
    import ganforge.viz.plots as plots

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **kw: figures.append(fig))
    base = {k: v for k, v in RECORD.items() if k != "js_estimate"}
    for key, title in (("js_estimate", "JS estimate"), ("tv_estimate", "total variation"),
                       ("delta_estimate", "triangular"), ("w_estimate", "W1 estimate"),
                       ("chi2_estimate", "chi2_estimate"), (None, "distance estimate")):
        records = [{**base, "step": s, **({key: 0.1 * s} if key else {})} for s in (1, 2)]
        plots.plot_curves(records, tmp_path / "c.png")
        panel = figures[-1].axes[2]
        assert panel.get_title().startswith(title)
        drawn = [line for line in panel.get_lines() if list(line.get_xdata()) == [1, 2]]
        assert len(drawn) == (1 if key else 0), key
        if key:
            assert list(drawn[0].get_ydata()) == pytest.approx([0.1, 0.2])
        assert bool(panel.texts) == (key is None)


def test_a_uint8_grid_maps_0_to_black_and_255_to_white():
    from ganforge.viz.plots import grid_image
    x = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    x[1] = 255
    img = grid_image(x, nrow=2)
    assert img.getpixel((2, 2)) == 0 and img.getpixel((8, 2)) == 255


def test_the_gif_holds_its_last_frame_three_times_as_long(tmp_path):
    from ganforge.viz import make_gif
    frames = [Image.new("L", (4, 4), v) for v in (0, 128, 255)]
    make_gif(frames, tmp_path / "p.gif", ms_per_frame=200)
    with Image.open(tmp_path / "p.gif") as gif:
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
    assert durations == [200, 200, 600]


@pytest.mark.parametrize("channels", [1, 3])
def test_row_labels_sit_in_a_column_left_of_the_unchanged_grid(channels, tmp_path):
    images = torch.rand(6, channels, 8, 8) * 2 - 1
    save_grid(images, tmp_path / "plain.png", nrow=3, scale=2)
    save_grid(images, tmp_path / "named.png", nrow=3, scale=2, row_labels=["z - v", "z + v"])
    plain = np.array(Image.open(tmp_path / "plain.png"))
    named = np.array(Image.open(tmp_path / "named.png"))
    column = named.shape[1] - plain.shape[1]
    assert named.shape[0] == plain.shape[0] and column > 10
    assert np.array_equal(named[:, column:], plain)
    text = named[:, :column].reshape(named.shape[0], -1).max(1)  # brightest pixel of each line
    half = named.shape[0] // 2
    assert text[:half].max() > 128 and text[half:].max() > 128  # a name in each row
    with pytest.raises(ValueError, match="row_labels names 3 rows; the grid has 2"):
        save_grid(images, tmp_path / "x.png", nrow=3, row_labels=["a", "b", "c"])
