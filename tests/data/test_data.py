"""Tests for lrdm.data: synthetic degradations, dataset files, index, loaders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lrdm.data.images import load_rgb
from lrdm.data.index import INDEX_COLUMNS, MANIFEST_FILENAME, read_index, verify_index
from lrdm.data.paired import PairedImageDataset, from_model_space, sample_batch, to_model_space, to_unit_float
from lrdm.data.synthetic import (
    DEFAULT_TEST_SOURCES,
    DEGRADATIONS,
    RainSettings,
    SynthesisOptions,
    add_motion_blur,
    add_rain,
    add_shadow,
    apply_degradation,
    get_degradation,
    line_kernel,
    load_source_photo,
    make_synthetic_dataset,
)
from lrdm.errors import ChecksumError, ImageReadError, IndexSchemaError
from lrdm.files import sha256_file, write_png
from lrdm.paths import INDEX_FILE

PATCH = 64  # small patches keep the suite fast
TRAIN_PATCHES = 3
TEST_PATCHES = 2
SOURCES = ("astronaut", "chelsea", "coffee", "rocket")  # subset: fewer photos to decode


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def make(out: Path, task: str = "rain", seed: int = 0, **kw) -> pd.DataFrame:
    kw.setdefault("sources", SOURCES)
    options = SynthesisOptions(PATCH, TRAIN_PATCHES, TEST_PATCHES, seed=seed, **kw)
    return make_synthetic_dataset(out, task, options)


@pytest.fixture(scope="module")
def clean_patches() -> list[np.ndarray]:
    """A few 96x96 natural patches with texture (not flat sky)."""
    photo = load_source_photo("astronaut")
    chelsea = load_source_photo("chelsea")
    return [
        np.ascontiguousarray(photo[100:196, 150:246]),
        np.ascontiguousarray(photo[300:396, 50:146]),
        np.ascontiguousarray(chelsea[100:196, 200:296]),
    ]


@pytest.fixture(scope="module")
def shadow_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shadow")
    make(out, "shadow")
    return out


@pytest.fixture(scope="module")
def rain_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rain")
    make(out, "rain")
    return out


def copy_set(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------- degradations


def test_unknown_degradation_lists_valid_names():
    with pytest.raises(ValueError, match="blur.*rain.*shadow"):
        get_degradation("snow")
    with pytest.raises(ValueError, match="snow"):
        make_synthetic_dataset("/nonexistent", "snow")


def test_line_kernel_normalised_and_oriented():
    k = line_kernel(9, 0.0)
    assert k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert np.isclose(k.sum(), 1.0) and (k >= 0).all()
    centre = k.shape[0] // 2
    assert np.isclose(k[centre].sum(), 1.0)  # horizontal line lies on the centre row
    kv = line_kernel(9, 90.0)
    assert np.isclose(kv[:, centre].sum(), 1.0)


@pytest.mark.parametrize("task", sorted(DEGRADATIONS))
def test_degradation_deterministic(task, clean_patches):
    img = clean_patches[0]
    a = apply_degradation(task, img, np.random.default_rng(1))
    b = apply_degradation(task, img, np.random.default_rng(1))
    c = apply_degradation(task, img, np.random.default_rng(2))
    assert np.array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    assert a[0].dtype == np.uint8 and a[0].shape == img.shape


# PSNR (dB, RGB) bands: clearly degraded but still "near-domain".
PSNR_BAND = {"rain": (14.0, 40.0), "blur": (16.0, 45.0), "shadow": (10.0, 45.0)}
MAX_MEAN_ABS_RESIDUAL = 35.0  # in uint8 units
SHADOW_INSIDE_MAX_RATIO = 0.8  # mean shadowed/clean brightness inside the mask
SHADOW_OUTSIDE_MIN_RATIO = 0.9  # ... and outside it (soft edge only)


@pytest.mark.parametrize("task", sorted(DEGRADATIONS))
def test_degradation_near_domain(task, clean_patches):
    lo, hi = PSNR_BAND[task]
    for seed, img in enumerate(clean_patches):
        out, _ = apply_degradation(task, img, np.random.default_rng(seed))
        assert not np.array_equal(out, img)
        assert lo < psnr(out, img) < hi
        assert np.abs(out.astype(float) - img).mean() < MAX_MEAN_ABS_RESIDUAL


def test_rain_brightens_sparse_streaks(clean_patches):
    for seed, img in enumerate(clean_patches):
        rainy = add_rain(img, np.random.default_rng(seed))
        res = rainy.astype(int) - img.astype(int)
        changed = np.abs(res) > 1
        assert (res >= -1).all()  # never darker than rounding
        assert (res[changed] > 0).mean() > 0.99
        assert 0.01 < changed.any(axis=2).mean() < 0.6  # residual concentrated


def test_blur_preserves_mean_and_smooths(clean_patches):
    for seed, img in enumerate(clean_patches):
        blurred = add_motion_blur(img, np.random.default_rng(seed))
        assert abs(blurred.astype(float).mean() - img.astype(float).mean()) < 1.5
        # Blur removes high frequencies: gradient energy drops.
        grad = lambda x: (
            np.abs(np.diff(x.astype(float), axis=0)).mean() + np.abs(np.diff(x.astype(float), axis=1)).mean()
        )
        assert grad(blurred) < grad(img)


def test_shadow_mask_marks_darkened_pixels(clean_patches):
    for seed, img in enumerate(clean_patches):
        out, mask = add_shadow(img, np.random.default_rng(seed))
        assert mask.dtype == bool and mask.shape == img.shape[:2]
        assert 0.02 < mask.mean() < 0.95
        ratio = (out.astype(float) + 1) / (img.astype(float) + 1)
        inside = ratio[mask].mean()
        outside = ratio[~mask].mean()
        assert inside < SHADOW_INSIDE_MAX_RATIO
        assert outside > SHADOW_OUTSIDE_MIN_RATIO
        assert (out.astype(int) <= img.astype(int) + 1).all()  # shadows only darken


def test_degradation_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        add_rain(np.zeros((8, 8, 3), np.float32), np.random.default_rng(0))


def test_rain_settings_are_the_ranges_drawn_from(clean_patches):
    img = clean_patches[0]
    assert np.array_equal(add_rain(img, np.random.default_rng(0), RainSettings(opacity=(0.0, 0.0))), img)
    dense = add_rain(img, np.random.default_rng(0), RainSettings(density=(0.05, 0.05)))
    assert psnr(dense, img) < psnr(add_rain(img, np.random.default_rng(0)), img)
    with pytest.raises(ValueError, match="size must be >= 1"):
        SynthesisOptions(size=0)


# ---------------------------------------------------------------- dataset files


def test_make_dataset_deterministic(tmp_path, rain_set):
    again = make(tmp_path / "a", "rain", seed=0)
    first = sorted(p.relative_to(rain_set) for p in rain_set.rglob("*") if p.is_file())
    second = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert first == second
    for rel in first:
        assert (rain_set / rel).read_bytes() == (tmp_path / "a" / rel).read_bytes(), rel
    other = make(tmp_path / "b", "rain", seed=1)
    assert set(other["input_sha256"]).isdisjoint(set(again["input_sha256"]))
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))  # atomic writes cleaned up


def test_split_by_source(tmp_path, rain_set):
    df = read_index(rain_set / INDEX_FILE)
    train, test = (
        set(df[df.split == "train"].source),
        set(df[df.split == "test"].source),
    )
    assert train.isdisjoint(test)
    assert test == set(DEFAULT_TEST_SOURCES)
    assert train == set(SOURCES) - test
    assert (df.split == "train").sum() == len(train) * TRAIN_PATCHES
    assert (df.split == "test").sum() == len(test) * TEST_PATCHES
    manifest = json.loads((rain_set / MANIFEST_FILENAME).read_text())
    assert manifest["test_sources"] == sorted(test) and manifest["train_sources"] == sorted(train)

    explicit = make(tmp_path / "e", test_sources=["astronaut"])
    assert set(explicit[explicit.split == "test"].source) == {"astronaut"}
    frac = make(tmp_path / "f", test_fraction=0.25, seed=3)
    fr_train, fr_test = (
        set(frac[frac.split == "train"].source),
        set(frac[frac.split == "test"].source),
    )
    assert len(fr_test) == 1 and fr_train.isdisjoint(fr_test)
    with pytest.raises(ValueError, match="not among"):
        make(tmp_path / "g", test_sources=["retina"])


def test_index_schema_and_checksums(rain_set, shadow_set):
    raw = pd.read_parquet(rain_set / INDEX_FILE)
    assert tuple(raw.columns) == INDEX_COLUMNS
    assert raw["image_id"].is_unique
    assert raw["mask"].isna().all() and raw["mask_sha256"].isna().all()
    assert (raw["task"] == "rain").all() and (raw["height"] == PATCH).all() and (raw["width"] == PATCH).all()
    for _, row in raw.iterrows():
        for col in ("input", "target"):
            assert not Path(row[col]).is_absolute()
            assert row[col] == f"{row.split}/{col}/{row.image_id}.png"
            assert sha256_file(rain_set / row[col]) == row[f"{col}_sha256"]

    sh = read_index(shadow_set / INDEX_FILE)
    assert sh["mask"].notna().all()
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in sh["mask"])
    assert verify_index(sh) == 3 * len(sh)


def test_read_index_missing_column(tmp_path, rain_set):
    df = pd.read_parquet(rain_set / INDEX_FILE).drop(columns=["target"])
    bad = tmp_path / "broken_index.parquet"
    df.to_parquet(bad)
    with pytest.raises(IndexSchemaError, match=r"broken_index\.parquet.*target"):
        read_index(bad)
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        read_index(tmp_path / "nope.parquet")


def test_verify_index_sha_mismatch(tmp_path, rain_set):
    root = copy_set(rain_set, tmp_path / "set")
    df = read_index(root / INDEX_FILE)
    victim = Path(df.loc[0, "target"])
    write_png(victim, np.zeros((PATCH, PATCH, 3), np.uint8))
    with pytest.raises(ChecksumError, match=victim.name):
        verify_index(df)
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=victim.name):
        verify_index(df)


def test_datasets_verify_command(tmp_path, rain_set, capsys):
    """``lrdm datasets --verify INDEX``: every file and checksum of an index, or one line naming the bad file."""
    from lrdm.cli import ERROR_EXIT, main

    root = copy_set(rain_set, tmp_path / "set")
    index = root / INDEX_FILE
    assert main(["datasets", "--verify", str(index)]) in (None, 0)
    pairs = len(read_index(index))
    assert f"{pairs} pairs, every file present, {2 * pairs} sha256 checks passed" in capsys.readouterr().out
    victim = Path(read_index(index).loc[1, "input"])
    write_png(victim, np.zeros((PATCH, PATCH, 3), np.uint8))
    assert main(["datasets", "--verify", str(index)]) == ERROR_EXIT
    error = capsys.readouterr().err.strip()
    assert error.startswith("lrdm datasets: error:") and victim.name in error and "\n" not in error


# ---------------------------------------------------------------- image loading


def test_load_rgb_conversions(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = load_rgb(tmp_path / "g.png")
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert (out == gray[..., None]).all()
    rgba = np.random.default_rng(0).integers(0, 256, (8, 8, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.array_equal(load_rgb(tmp_path / "a.png"), rgba[..., :3])  # alpha dropped
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(tmp_path / "deep16.png")  # 16-bit gray
    with pytest.raises(ImageReadError, match="deep16.png"):
        load_rgb(tmp_path / "deep16.png")


def test_load_rgb_errors_name_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_rgb(tmp_path / "missing.png")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not a png at all" * 10)
    with pytest.raises(ValueError, match="garbage.png"):
        load_rgb(garbage)
    # A truncated real PNG must fail at decode time, too.
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "t.png")
    payload = (tmp_path / "t.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(payload[: len(payload) // 2])
    with pytest.raises(ValueError, match="truncated.png"):
        load_rgb(tmp_path / "truncated.png")


def test_model_space_roundtrip():
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x = to_model_space(img)
    assert x.shape == (3, 5, 7) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert to_model_space(np.zeros((2, 2, 3), np.uint8)).eq(-1).all()
    assert to_model_space(np.full((2, 2, 3), 255, np.uint8)).eq(1).all()
    assert np.array_equal(from_model_space(x), img)
    assert to_model_space(img[None]).shape == (1, 3, 5, 7)


def test_from_model_space_round_trip_is_exact() -> None:
    u = np.arange(256, dtype=np.uint8)
    r, g = np.meshgrid(u, u, indexing="ij")
    img = np.stack([r, g, u[::-1, None].repeat(256, 1)], -1)
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255.0 * 2.0 - 1.0  # (3, H, W)
    out = from_model_space(x)
    assert out.dtype == np.uint8 and out.shape == (256, 256, 3)
    np.testing.assert_array_equal(out, img)
    batched = from_model_space(torch.stack([x, -x]))
    assert batched.shape == (2, 256, 256, 3)
    np.testing.assert_array_equal(batched[0], img)
    np.testing.assert_array_equal(batched[1], 255 - img)


def test_from_model_space_clamps_and_rounds() -> None:
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 7.0, 2 / 255 - 1, 2.6 / 255 * 2 - 1]).view(1, 1, 7)
    x = x.repeat(3, 1, 1)
    out = from_model_space(x)
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 128, 255, 255, 1, 3])
    assert from_model_space(x.double()).dtype == np.uint8


def test_from_model_space_equals_round_of_scaled_clamp_bit_for_bit() -> None:
    """The uint8 image is round((clamp(x, -1, 1) + 1) * 127.5) in float32, ties included: the conversion
    the evaluation used before it moved here, so no score changes."""
    ties = (torch.arange(256, dtype=torch.float32) + 0.5) / 127.5 - 1.0
    near = torch.cat([ties, torch.nextafter(ties, ties + 1), torch.nextafter(ties, ties - 1)])
    noise = torch.randn(30_000, generator=torch.Generator().manual_seed(0)) * 1.2
    x = torch.cat([near, noise])
    x = x[: len(x) // 3 * 3].view(3, 1, -1)
    want = torch.round((x.clamp(-1.0, 1.0) + 1.0) * 127.5).to(torch.uint8).movedim(-3, -1).numpy()
    np.testing.assert_array_equal(from_model_space(x), want)


def test_to_unit_float_is_the_clamped_unrounded_image() -> None:
    x = torch.tensor([-3.0, -1.0, 0.0, 0.5, 1.0, 7.0]).view(1, 1, 6).repeat(3, 1, 1)
    out = to_unit_float(x)
    assert out.dtype == np.float32 and out.shape == (1, 6, 3)
    np.testing.assert_array_equal(out[0, :, 0], np.float32([0.0, 0.0, 0.5, 0.75, 1.0, 1.0]))
    assert to_unit_float(x[None]).shape == (1, 1, 6, 3)


@pytest.mark.parametrize("convert", [from_model_space, to_unit_float])
def test_model_space_conversions_reject_bad_input(convert) -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*\(4, 8, 8\)"):
        convert(torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*\(8, 8\)"):
        convert(torch.zeros(8, 8))
    with pytest.raises(ValueError, match=r"NaN"):
        convert(torch.full((3, 4, 4), float("nan")))
    with pytest.raises(TypeError, match=r"torch.Tensor"):
        convert(np.zeros((3, 4, 4)))


# ---------------------------------------------------------------- torch dataset


def test_dataset_items(shadow_set):
    ds = PairedImageDataset(shadow_set / INDEX_FILE, "train", cache=True)
    assert len(ds) == (len(SOURCES) - len(DEFAULT_TEST_SOURCES)) * TRAIN_PATCHES
    item = ds[0]
    for key in ("input", "target"):
        assert item[key].shape == (3, PATCH, PATCH) and item[key].dtype == torch.float32
        assert item[key].min() >= -1 and item[key].max() <= 1
    assert item["mask"].shape == (1, PATCH, PATCH)
    assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    assert isinstance(item["image_id"], str) and item["image_id"] == ds.image_ids[0]
    assert ds.has_mask
    # Works with a plain DataLoader (deterministic evaluation view).
    loaded = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert loaded["input"].shape == (2, 3, PATCH, PATCH) and len(loaded["image_id"]) == 2
    assert torch.equal(ds[0]["input"], item["input"])  # cached read is identical


def test_preload_fills_the_cache_before_workers_fork(shadow_set):
    ds = PairedImageDataset(shadow_set / INDEX_FILE, "train", cache=True)
    ds.preload()
    assert sorted(ds._cache) == list(range(len(ds)))
    with pytest.raises(ValueError, match="cache=True"):
        PairedImageDataset(shadow_set / INDEX_FILE, "train").preload()

    test = PairedImageDataset(read_index(shadow_set / INDEX_FILE), "test")
    assert len(test) == len(DEFAULT_TEST_SOURCES) * TEST_PATCHES
    with pytest.raises(ValueError, match="val"):
        PairedImageDataset(shadow_set / INDEX_FILE, "val")


def test_sample_batch_reproducible(shadow_set):
    crop = PATCH // 2
    ds = PairedImageDataset(shadow_set / INDEX_FILE, "train", crop=crop, flip=True)
    batch = sample_batch(ds, 4, torch.Generator().manual_seed(7))
    assert batch["input"].shape == (4, 3, crop, crop) and batch["target"].shape == (
        4,
        3,
        crop,
        crop,
    )
    assert batch["mask"].shape == (4, 1, crop, crop)
    assert len(batch["image_id"]) == 4
    same = sample_batch(ds, 4, torch.Generator().manual_seed(7))
    for key in ("input", "target", "mask", "index"):
        assert torch.equal(batch[key], same[key])
    # Fresh dataset object (as after a restart) + same per-step seed -> same batch.
    resumed = PairedImageDataset(shadow_set / INDEX_FILE, "train", crop=crop, flip=True)
    assert torch.equal(
        sample_batch(resumed, 4, torch.Generator().manual_seed(7))["input"],
        batch["input"],
    )
    other = sample_batch(ds, 4, torch.Generator().manual_seed(8))
    assert not torch.equal(other["input"], batch["input"])
    # Crops are consistent between input and target: the clean crop is a crop of the target image.
    tgt_full = ds.load_pair(int(batch["index"][0]))[1]
    crop_u8 = from_model_space(batch["target"][0])
    windows = np.lib.stride_tricks.sliding_window_view(tgt_full, (crop, crop, 3))[..., 0, :, :, :]
    flat = windows.reshape(-1, crop, crop, 3)
    assert any(np.array_equal(w, crop_u8) or np.array_equal(w[:, ::-1], crop_u8) for w in flat)


def test_dataset_size_errors(tmp_path, rain_set):
    root = copy_set(rain_set, tmp_path / "set")
    index = root / INDEX_FILE
    big_crop = PairedImageDataset(index, "train", crop=PATCH * 2)
    first_input = Path(big_crop.rows.loc[0, "input"]).name
    with pytest.raises(ValueError, match=rf"{first_input}.*smaller than the crop"):
        big_crop.get_item(0, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=first_input):
        big_crop[0]

    df = read_index(index)
    row = df[df.split == "train"].iloc[0]
    write_png(row["input"], np.zeros((PATCH // 2, PATCH, 3), np.uint8))
    ds = PairedImageDataset(index, "train")
    with pytest.raises(ValueError, match=Path(row["input"]).name) as err:
        ds[0]
    assert Path(row["target"]).name in str(err.value)
    # Full-size (uncropped) items of different sizes cannot be stacked into one batch.
    with pytest.raises(ValueError, match="different sizes"):
        _mixed_batch(ds)


def _mixed_batch(ds: PairedImageDataset) -> None:
    """Make pair 0 consistent again but smaller than pair 1, then batch them."""
    row = ds.rows.iloc[0]
    write_png(row["target"], np.zeros((PATCH // 2, PATCH, 3), np.uint8))
    ds.get_batch([0, 1])


def test_dataset_corrupt_and_missing_files(tmp_path, rain_set):
    root = copy_set(rain_set, tmp_path / "set")
    df = read_index(root / INDEX_FILE)
    train = df[df.split == "train"].reset_index(drop=True)
    Path(train.loc[0, "input"]).write_bytes(b"\x89PNG garbage")
    Path(train.loc[1, "target"]).unlink()
    ds = PairedImageDataset(df, "train")
    with pytest.raises(ValueError, match=Path(train.loc[0, "input"]).name):
        ds[0]
    with pytest.raises(FileNotFoundError, match=Path(train.loc[1, "target"]).name):
        ds[1]


def test_residual_scale_makes_the_same_degradation_lighter(rain_set):
    """``residual_scale``: the input becomes ``I_0 + λ (I_in - I_0)``, λ drawn per item after the crop and flip."""
    plain = PairedImageDataset(rain_set / INDEX_FILE, "train", crop=PATCH // 2, flip=True)
    scaled = PairedImageDataset(
        rain_set / INDEX_FILE, "train", crop=PATCH // 2, flip=True, residual_scale=(0.25, 1)
    )
    a = plain.get_item(0, torch.Generator().manual_seed(3))
    b = scaled.get_item(0, torch.Generator().manual_seed(3))
    assert torch.equal(a["target"], b["target"])  # the same crop and flip: λ is drawn last
    ratio = (b["input"] - b["target"]).sum() / (a["input"] - a["target"]).sum()
    assert 0.25 <= float(ratio) <= 1
    torch.testing.assert_close(b["input"], a["target"] + ratio * (a["input"] - a["target"]), atol=1e-5, rtol=0)
    fixed = PairedImageDataset(rain_set / INDEX_FILE, "train", crop=PATCH // 2, residual_scale=(0.5, 0.5))
    torch.testing.assert_close(fixed[0]["input"], plain[0]["input"])  # no generator: evaluation view, unscaled
    half = fixed.get_item(0, torch.Generator().manual_seed(0))
    unscaled = PairedImageDataset(rain_set / INDEX_FILE, "train", crop=PATCH // 2)
    same = unscaled.get_item(0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(half["input"], same["target"] + 0.5 * (same["input"] - same["target"]))
