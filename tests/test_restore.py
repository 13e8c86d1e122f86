"""`lrdm restore`: your own images of any size, batches that do not change the outputs, tiles, unreadable files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrdm.cli import main
from lrdm.data.images import load_rgb
from lrdm.evaluation.restore import blend_weights, list_images, restore_images, tile_starts
from lrdm.files import write_png
from lrdm.training.trainer import train

SIZES = {"a": (20, 24), "b": (20, 24), "c": (20, 24), "odd": (17, 23), "tall": (45, 13), "big": (70, 50)}
"""(height, width) of the test images: three of one size (a batch), odd sizes, and one over the test tile."""
TILE, OVERLAP = 32, 8
MAX_FLIPPED_SHARE = 1e-3
"""Share of pixels whose rounding may differ between batch sizes (floating-point summation order only)."""


@pytest.fixture(scope="module")
def model(tiny_config, tmp_path_factory):
    config = tiny_config.replace(steps=2, rank_spec="fixed-r4")
    return train(config, tmp_path_factory.mktemp("run") / "restore", progress=False)


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    for stem, (height, width) in SIZES.items():
        write_png(folder / f"{stem}.png", rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    good = (folder / "a.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_tiles_cover_the_image_with_the_overlap():
    for length in (1, 31, 32, 33, 70, 100):
        starts = tile_starts(length, TILE, OVERLAP)
        covered = np.zeros(length, bool)
        for start in starts:
            covered[start : start + TILE] = True
        assert covered.all() and starts[-1] + min(TILE, length) == length
        assert all(b - a <= TILE - OVERLAP for a, b in zip(starts, starts[1:]))
    weights = blend_weights(TILE, TILE, OVERLAP)
    assert weights.min() > 0 and weights[TILE // 2, TILE // 2] == 1 and weights[0, 0] < weights[OVERLAP, OVERLAP]


def test_folder_of_odd_sizes_with_a_truncated_file(model, photos, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        ["restore", "--model", str(model), "--input", str(photos), "--out", str(out), "--steps", "2"]
        + ["--tile", str(TILE), "--overlap", str(OVERLAP)]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "truncated.png" in captured.err and "restored 6 images" in captured.out
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{stem}.png" for stem in SIZES)
    for stem, size in SIZES.items():
        assert load_rgb(out / f"{stem}.png").shape == (*size, 3)


def test_outputs_do_not_depend_on_the_batch(model, photos, tmp_path):
    (photos / "truncated.png").unlink()
    runs = {}
    for batch in (1, 3):
        summary = restore_images(
            model, photos, tmp_path / f"b{batch}", steps=2, batch=batch, tile=TILE, overlap=OVERLAP, progress=False
        )
        assert not summary.failed and len(summary.written) == len(SIZES)
        runs[batch] = {p.name: load_rgb(p) for p in summary.written}
    # the start noise is bitwise the same (test below); the network's batched kernels sum in another order
    # (~2e-6 in [-1, 1] measured on CPU), which can flip the rounding of a rare pixel by one grey level
    for name, image in runs[1].items():
        difference = np.abs(image.astype(int) - runs[3][name].astype(int))
        assert difference.max() <= 1 and (difference > 0).mean() <= MAX_FLIPPED_SHARE, name
    # the restored image is not the input (the model did something) and the noise differs between images
    assert not np.array_equal(runs[1]["a.png"], runs[1]["b.png"]) or not np.array_equal(
        load_rgb(photos / "a.png"), load_rgb(photos / "b.png")
    )


def test_no_tiles_restores_whole(model, photos, tmp_path):
    (photos / "truncated.png").unlink()
    whole = restore_images(model, photos / "big.png", tmp_path / "whole", steps=2, tile=None, progress=False)
    tiled = restore_images(
        model, photos / "big.png", tmp_path / "tiled", steps=2, tile=TILE, overlap=OVERLAP, progress=False
    )
    a, b = load_rgb(whole.written[0]), load_rgb(tiled.written[0])
    assert a.shape == b.shape == (*SIZES["big"], 3)
    assert not np.array_equal(a, b)  # tiling changed the computation, not the geometry


def test_single_file_and_bad_inputs(model, photos, tmp_path):
    assert list_images(photos / "odd.png") == [photos / "odd.png"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_images(tmp_path / "nowhere")
    (photos / "a.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="a.jpg"):
        list_images(photos)


def test_per_sample_generators_match_single_draws():
    from lrdm.core.sampling import standard_normal

    like = torch.zeros(3, 2, 4, 4)
    batched = standard_normal(like, [torch.Generator().manual_seed(s) for s in range(3)])
    single = [standard_normal(like[:1], torch.Generator().manual_seed(s)) for s in range(3)]
    assert torch.equal(batched, torch.cat(single))
