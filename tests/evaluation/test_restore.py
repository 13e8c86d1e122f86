"""`lrdm restore`: your own images of any size (1 × 1 up), batches that do not change the outputs, tiles, unreadable
files, grayscale kept, an --out that would overwrite inputs refused, and the plan that fits --max-memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lrdm.cli import ERROR_EXIT, main
from lrdm.data.images import load_rgb
from lrdm.errors import MemoryBudgetError
from lrdm.evaluation.inference import Sampling
from lrdm.evaluation.restore import RestoreOptions, list_images, restore_images
from lrdm.evaluation.tiling import (
    MEMORY_MODELS,
    TILE_CANDIDATES,
    NetworkShape,
    TileRequest,
    auto_tile,
    choose_tiling,
    parse_memory,
)
from lrdm.files import write_png
from lrdm.training.trainer import train
from lrdm.vocab import BACKBONES

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
        options = RestoreOptions(Sampling(2), batch=batch, tile=TILE, overlap=OVERLAP, progress=False)
        summary = restore_images(model, photos, tmp_path / f"b{batch}", options)
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
    whole = restore_images(
        model, photos / "big.png", tmp_path / "whole", RestoreOptions(Sampling(2), tile=None, progress=False)
    )
    options = RestoreOptions(Sampling(2), tile=TILE, overlap=OVERLAP, progress=False)
    tiled = restore_images(model, photos / "big.png", tmp_path / "tiled", options)
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


def restore_cli(model, *args: str) -> list[str]:
    return ["restore", "--model", str(model), "--steps", "1", *args]


def one_error_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lrdm restore: error: "), text
    return lines[0]


def test_out_holding_the_inputs_or_naming_a_file_is_refused_before_the_model_loads(photos, tmp_path, capsys):
    missing_model = tmp_path / "not-loaded.pt"  # the check comes first, so the model is never read
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    for out in (photos, photos.parent):
        assert main(restore_cli(missing_model, "--input", str(photos / "a.png"), "--out", str(out))) == ERROR_EXIT
        line = one_error_line(capsys.readouterr().err)
        assert f"--out {out}: the folder holds the input image" in line
    assert main(restore_cli(missing_model, "--input", str(photos), "--output", str(photos))) == ERROR_EXIT
    assert str(photos) in one_error_line(capsys.readouterr().err)
    assert main(restore_cli(missing_model, "--input", str(photos), "--out", str(photos / "a.png"))) == ERROR_EXIT
    assert f"--out {photos / 'a.png'}: is an existing file" in one_error_line(capsys.readouterr().err)
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before


def test_tiny_images_restore_beside_a_bad_one(model, tmp_path, capsys):
    folder = tmp_path / "tiny"
    rng = np.random.default_rng(1)
    sizes = {"0_one": (1, 1), "1_row": (1, 30), "2_column": (9, 2), "3_normal": (20, 24)}
    for stem, size in sizes.items():
        write_png(folder / f"{stem}.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    (folder / "00_broken.jpg").write_bytes(b"not a jpeg")
    (folder / "01_dangling.png").symlink_to(tmp_path / "nowhere.png")
    out = tmp_path / "out"
    assert main(restore_cli(model, "--input", str(folder), "--out", str(out))) == 1
    captured = capsys.readouterr()
    assert "00_broken.jpg" in captured.err and "01_dangling.png" in captured.err
    assert "restored 4 images" in captured.out and "2 skipped" in captured.out
    for stem, size in sizes.items():
        assert load_rgb(out / f"{stem}.png").shape == (*size, 3)


def test_grayscale_comes_back_grayscale(model, tmp_path):
    folder = tmp_path / "gray"
    folder.mkdir()
    gray = np.random.default_rng(2).integers(0, 256, (20, 24), dtype=np.uint8)
    Image.fromarray(gray).save(folder / "gray.png")
    Image.fromarray(np.stack([gray] * 3, axis=2)).save(folder / "colour.png")
    assert main(restore_cli(model, "--input", str(folder), "--out", str(tmp_path / "out"))) == 0
    with Image.open(tmp_path / "out" / "gray.png") as im:
        assert im.mode == "L" and im.size == (24, 20)
    with Image.open(tmp_path / "out" / "colour.png") as im:
        assert im.mode == "RGB"


def test_nan_weights_name_the_model(model, tmp_path, capsys):
    state = torch.load(model, weights_only=True)
    name = next(iter(state["ema"]))
    state["ema"][name] = torch.full_like(state["ema"][name], float("nan"))
    broken = tmp_path / "nan" / "model.pt"
    broken.parent.mkdir()
    torch.save(state, broken)
    write_png(tmp_path / "in" / "a.png", np.zeros((8, 8, 3), np.uint8))
    assert main(restore_cli(broken, "--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"))) == ERROR_EXIT
    line = one_error_line(capsys.readouterr().err)
    assert str(broken) in line and "NaN or inf" in line and name in line
    assert not (tmp_path / "out").exists()


def test_the_sampler_is_chosen_from_the_table(model, tmp_path, capsys):
    write_png(tmp_path / "in" / "a.png", np.random.default_rng(3).integers(0, 256, (12, 20, 3), dtype=np.uint8))
    for name in ("default", "ddim"):
        out = tmp_path / name
        assert main(restore_cli(model, "--input", str(tmp_path / "in"), "--out", str(out), "--sampler", name)) == 0
    assert np.array_equal(load_rgb(tmp_path / "default" / "a.png"), load_rgb(tmp_path / "ddim" / "a.png"))
    capsys.readouterr()
    argv = restore_cli(model, "--input", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--sampler", "resshift")
    assert main(argv) == ERROR_EXIT
    line = one_error_line(capsys.readouterr().err)
    assert "--sampler: sampler 'resshift' samples process 'resshift', not 'rddm'" in line
    assert not (tmp_path / "o").exists()


def test_a_memory_bound_below_the_model_is_one_line(model, photos, tmp_path, capsys):
    assert main(restore_cli(model, "--input", str(photos), "--out", str(tmp_path / "o"), "--max-memory", "1M")) == 2
    assert "--max-memory 1 MB" in one_error_line(capsys.readouterr().err)


def test_memory_sizes_parse():
    assert parse_memory("4G") == 4 * 1024**3 and parse_memory("512m") == 512 * 1024**2
    assert parse_memory("1.5GiB") == int(1.5 * 1024**3) and parse_memory("2048") == 2048
    for bad in ("", "4X", "-1G", "0"):
        with pytest.raises(ValueError, match="--max-memory"):
            parse_memory(bad)


def test_every_backbone_has_a_memory_model():
    assert set(MEMORY_MODELS) == set(BACKBONES)
    with pytest.raises(ValueError, match="unet9"):
        choose_tiling(10, 10, NetworkShape("unet9", 16, 4, 32), 1e9, TileRequest())


def test_auto_tile_follows_the_training_side():
    assert auto_tile(32, 4) == 128 and auto_tile(256, 8) == 512 and auto_tile(8, 4) == 64
    assert auto_tile(30, 8) == 120 and auto_tile(1000, 16) == 512


@pytest.mark.parametrize("backbone", BACKBONES)
def test_the_plan_fits_the_bound_and_uses_it(backbone):
    shape = NetworkShape(backbone, 16, 4, 32)
    budget = 3 * 1024**3  # 4 GB less a loaded model
    largest = shape.auto_tile
    for height, width in ((1, 1), (128, 100), (399, 600), (768, 1024), (3000, 4000)):
        plan = choose_tiling(height, width, shape, budget, TileRequest(batch=4))
        assert plan.expected_bytes <= budget and 1 <= plan.batch <= 4
        if max(height, width) <= largest:
            assert plan.tile is None
        else:
            assert plan.tile == largest and 0 < plan.overlap < plan.tile
    # the bound shrinks: tiles shrink or the batch drops, never past the bound
    large = choose_tiling(3000, 4000, shape, budget, TileRequest(batch=4))
    for bound in (budget / 2, 880 * 1024**2):  # the image alone takes 4000 × 3000 × 64 bytes (768 MiB)
        small = choose_tiling(3000, 4000, shape, bound, TileRequest(batch=4))
        assert small.expected_bytes <= bound and (small.tile, small.batch) <= (large.tile, large.batch)
        assert small.tile in (largest, *TILE_CANDIDATES)
        for bigger in (side for side in TILE_CANDIDATES if small.tile < side <= largest):  # the largest that fits
            with pytest.raises(MemoryBudgetError):
                choose_tiling(3000, 4000, shape, bound, TileRequest(tile=bigger, batch=1))
    with pytest.raises(MemoryBudgetError, match="photo.png: 4000×3000 cannot be restored"):
        choose_tiling(3000, 4000, shape, 1024**2, TileRequest(), name="photo.png")
    with pytest.raises(MemoryBudgetError, match="--no-tiles"):
        choose_tiling(3000, 4000, shape, budget, TileRequest(tile=None), name="photo.png")
