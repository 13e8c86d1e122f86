"""The one path by which images go through a network (lrdm/evaluation/inference.py): padding, tiles that cover
the image with the overlap asked for, and evaluation and ``lrdm restore`` giving the same image for the same input
(issue 28)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lrdm.data.images import load_rgb
from lrdm.data.paired import PairedImageDataset
from lrdm.evaluation.evaluate import evaluate_run
from lrdm.evaluation.inference import (
    Sampling,
    batches_by_tiling,
    blend_weights,
    pad_to_multiple,
    same_size_batches,
    tile_spans,
)
from lrdm.evaluation.restore import RestoreOptions, restore_images
from lrdm.evaluation.tiling import Tiling
from lrdm.training.trainer import train


def test_pad_to_multiple_reflects_repeats_short_sides_and_reports_size():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    padded, size = pad_to_multiple(x, 4)
    assert padded.shape == (2, 3, 8, 8) and size == (5, 7)
    assert torch.equal(padded[..., :5, :7], x)
    same, _ = pad_to_multiple(x[..., :4, :4], 4)
    assert same.shape == (2, 3, 4, 4)
    tiny, size = pad_to_multiple(x[..., :1, :2], 4)  # shorter than the multiple: the edge repeated
    assert tiny.shape == (2, 3, 4, 4) and size == (1, 2) and torch.equal(tiny[..., 3, :2], x[..., 0, :2])


@pytest.mark.parametrize("tile, overlap, multiple", [(32, 8, 1), (128, 16, 4), (64, 0, 8), (17, 16, 1)])
def test_tiles_cover_the_image_evenly_with_the_overlap(tile, overlap, multiple):
    for length in (1, 31, 32, 33, 70, 100, 481, 1600):
        spans = tile_spans(length, tile, overlap, multiple)
        sizes = {size for _, size in spans}
        assert len(sizes) == 1 and max(sizes) <= max(tile, length if length <= tile else 0)
        covered = np.zeros(length, bool)
        for start, size in spans:
            covered[start : start + size] = True
        assert covered.all() and spans[0][0] == 0 and spans[-1][0] + spans[-1][1] == length
        assert all(a + size - b >= overlap for (a, size), (b, _) in zip(spans, spans[1:]))  # the overlap kept
        if length > tile:  # the fewest tiles: one less, even of the full side, leaves a gap or a thinner seam
            assert (len(spans) - 1) * tile - (len(spans) - 2) * overlap < length
    with pytest.raises(ValueError, match="overlap"):
        tile_spans(100, 16, 16)


def test_blend_weights_ramp_at_the_edges():
    weights = blend_weights(32, 24, 8)
    assert weights.shape == (32, 24) and weights.min() > 0 and weights[16, 12] == 1
    assert weights[0, 0] < weights[8, 8]


def test_same_size_batches_keep_order_and_split_at_a_new_size_or_a_full_batch():
    shapes = [(2, 2), (2, 2), (2, 2), (3, 3), (2, 2)]
    entries = [{"shape": shape, "number": i} for i, shape in enumerate(shapes)]
    got = [[entry["number"] for entry in group] for group in same_size_batches(entries, 2, lambda e: e["shape"])]
    assert got == [[0, 1], [2], [3], [4]]
    size_of = {0: "a", 1: "a", 2: "a", 3: None, 4: None, 5: "b"}
    batch_of = {"a": 3, None: 1, "b": 5}
    batches = same_size_batches(list(size_of), batch_of.__getitem__, size_of.__getitem__)
    assert list(batches) == [[0, 1, 2], [3], [4], [5]]


def test_plan_batches_put_whole_images_of_one_shape_together_and_tiled_images_alone():
    whole, tiled = Tiling(None, 0, 2, 0.0), Tiling(32, 4, 4, 0.0)
    entries = [("a", whole), ("a", whole), ("a", whole), ("big", tiled), ("big", tiled), ("b", whole), ("a", whole)]
    batches = batches_by_tiling(range(len(entries)), lambda i: entries[i][1], lambda i: entries[i][0])
    assert list(batches) == [[0, 1], [2], [3], [4], [5], [6]]


@pytest.fixture(scope="module")
def model(tiny_config, tmp_path_factory):
    return train(tiny_config.replace(steps=2), tmp_path_factory.mktemp("run") / "inference", progress=False)


@pytest.mark.parametrize("tile", [None, 24])
def test_evaluation_restores_an_image_exactly_as_lrdm_restore_does(model, rain_index, tmp_path, tile):
    frame = evaluate_run(model, rain_index, steps=2, limit=1, tile=tile, save_dir=tmp_path / "scored")
    first = Path(PairedImageDataset(rain_index, split="test").rows.iloc[0]["input"])
    if not first.is_absolute():
        first = Path(rain_index).parent / first
    options = RestoreOptions(Sampling(2), batch=1, tile=tile, progress=False)
    restored = restore_images(model, first, tmp_path / "restored", options)
    scored = load_rgb(tmp_path / "scored" / f"{frame['image_id'][0]}.png")
    assert np.array_equal(scored, load_rgb(restored.written[0]))
    assert (first in restored.plans) == (tile is not None)
