"""Tests for lrdm.metrics against independent NumPy/SciPy re-implementations and pyiqa."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d
from skimage import data as skdata

from lrdm import metrics
from lrdm.metrics import PROTOCOLS, rgb_to_y, score, score_batch, to_uint8

# ---------------------------------------------------------------- references


def ref_y(rgb: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr Y on uint8, in exact integer arithmetic.

    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 = num / 255000 with
    num = 16 * 255000 + 65481 R + 128553 G + 24966 B; rounded half away from zero.
    """
    c = rgb.astype(np.int64)
    num = 16 * 255000 + 65481 * c[..., 0] + 128553 * c[..., 1] + 24966 * c[..., 2]
    return ((2 * num + 255000) // 510000).astype(np.float64)


def y_is_tie(rgb: np.ndarray) -> np.ndarray:
    """True where the exact Y lies exactly on .5 (rounding decided by float error)."""
    c = rgb.astype(np.int64)
    num = 65481 * c[..., 0] + 128553 * c[..., 1] + 24966 * c[..., 2]
    return num % 255000 == 127500


def gauss_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """fspecial('gaussian', size, sigma)."""
    r = (size - 1) / 2
    x = np.arange(size) - r
    w = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    return w / w.sum()


def ref_ssim(a: np.ndarray, b: np.ndarray, relu_cs: bool = False) -> float:
    """Wang et al. ssim_index.m on 2-D arrays in 0..255 (filter2 'valid' = correlate2d)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    w = gauss_window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def f(z: np.ndarray) -> np.ndarray:
        return correlate2d(z, w, mode="valid")

    mu1, mu2 = f(a), f(b)
    s11 = f(a * a) - mu1 * mu1
    s22 = f(b * b) - mu2 * mu2
    s12 = f(a * b) - mu1 * mu2
    lum = (2 * mu1 * mu2 + c1) / (mu1**2 + mu2**2 + c1)
    cs = (2 * s12 + c2) / (s11 + s22 + c2)
    if relu_cs:
        cs = np.maximum(cs, 0.0)
    assert lum.shape == (a.shape[0] - 10, a.shape[1] - 10)
    return float(np.mean(lum * cs))


def ref_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


# ------------------------------------------------------------------- fixtures


def _noisy(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return _untie(
        np.clip(np.round(img + rng.normal(0, sigma, img.shape)), 0, 255).astype(
            np.uint8
        )
    )


def _untie(img: np.ndarray) -> np.ndarray:
    """Move exact-.5 Y colours off the tie by changing B by 1 (see y_is_tie)."""
    img = img.copy()
    tie = y_is_tie(img)
    b = img[..., 2]
    b[tie] = np.where(b[tie] < 255, b[tie] + 1, b[tie] - 1)
    assert not y_is_tie(img).any()
    return img


def _pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    photo = _untie(skdata.astronaut()[100:196, 150:278])  # (96, 128, 3)
    coffee = _untie(skdata.coffee()[50:130, 200:300])  # (80, 100, 3)
    yy, xx = np.mgrid[0:64, 0:72]
    ramp = np.stack([xx * 3, yy * 4, (xx + yy) * 2], -1).clip(0, 255).astype(np.uint8)
    checker = (((yy // 8 + xx // 8) % 2) * 200 + 30).astype(np.uint8)
    checker = np.repeat(checker[..., None], 3, -1)
    shifted = np.roll(photo, 2, axis=1)
    return {
        "photo_noise": (_noisy(photo, 8, 1), photo),
        "photo_heavy": (_noisy(photo, 30, 2), photo),
        "photo_shift": (shifted, photo),
        "coffee_noise": (_noisy(coffee, 5, 3), coffee),
        "ramp_noise": (_noisy(ramp, 10, 4), ramp),
        "checker_blur": (_noisy(checker, 20, 5), checker),
        "uniform_random": (
            _untie(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)),
            _untie(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)),
        ),
    }


PAIRS = _pairs()
# Pairs whose local structure terms stay positive, so pyiqa's relu on cs is a no-op
# (not photo_shift: misaligned edges give negative local correlation).
PYIQA_AGREES = [
    "photo_noise",
    "photo_heavy",
    "coffee_noise",
    "ramp_noise",
    "checker_blur",
]


def test_fixtures_avoid_y_ties() -> None:
    # Tie colours may legitimately differ by 1 between implementations; keep them out.
    for name, (p, t) in PAIRS.items():
        assert not y_is_tie(p).any() and not y_is_tie(t).any(), name


# ------------------------------------------------------------------ Y channel


def test_tie_colours_count() -> None:
    v = np.arange(256, dtype=np.int64)
    g, b = np.meshgrid(v, v, indexing="ij")
    n = sum(
        int(y_is_tie(np.stack([np.full_like(g, r), g, b], -1)).sum())
        for r in range(256)
    )
    assert n == 194  # number quoted in the module docstring


def test_rgb_to_y_matches_exact_integer_formula() -> None:
    rng = np.random.default_rng(123)
    rgb = rng.integers(0, 256, (1_000_000, 3), dtype=np.uint8)
    extremes = np.array(
        [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8
    )
    rgb = np.concatenate([rgb, extremes])
    ties = y_is_tie(rgb)
    y = rgb_to_y(rgb)
    assert y.dtype == np.float64 and y.shape == rgb.shape[:-1]
    np.testing.assert_array_equal(y[~ties], ref_y(rgb)[~ties])
    assert np.all(np.abs(y[ties] - ref_y(rgb)[ties]) <= 1)
    assert y.min() >= 16 and y.max() <= 235
    np.testing.assert_array_equal(rgb_to_y(extremes), [16, 235, 81, 145, 41])


# --------------------------------------------------- independent references


@pytest.mark.parametrize("name", list(PAIRS))
def test_derain_y_matches_reference(name: str) -> None:
    p, t = PAIRS[name]
    got = score(p, t, "derain_y")
    yp, yt = ref_y(p), ref_y(t)
    assert set(got) == {"psnr", "ssim"} and all(type(v) is float for v in got.values())
    assert got["psnr"] == pytest.approx(ref_psnr(yp, yt), abs=1e-12)
    assert got["ssim"] == pytest.approx(ref_ssim(yp, yt), abs=1e-12)


@pytest.mark.parametrize("name", list(PAIRS))
def test_rgb_matches_reference(name: str) -> None:
    p, t = PAIRS[name]
    got = score(p, t, "rgb")
    want_ssim = np.mean([ref_ssim(p[..., c], t[..., c]) for c in range(3)])
    assert got["psnr"] == pytest.approx(ref_psnr(p, t), abs=1e-12)
    assert got["ssim"] == pytest.approx(want_ssim, abs=1e-12)


def test_ssim_is_valid_region_only() -> None:
    # Damage confined to the 5-px border: the 'valid' average sees it only through the
    # outer ring of windows, a padded ('same') average would weight it differently.
    from scipy.ndimage import correlate

    photo = PAIRS["photo_noise"][1]
    p = photo.copy()
    p[:5] = 255 - p[:5]
    p[:, -5:] = 0
    got = score(p, photo, "derain_y")["ssim"]
    a, b = ref_y(p), ref_y(photo)
    assert got == pytest.approx(ref_ssim(a, b), abs=1e-12)
    w, c1, c2 = gauss_window(), (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def f(z: np.ndarray) -> np.ndarray:
        return correlate(z, w, mode="reflect")

    mu1, mu2 = f(a), f(b)
    s11, s22, s12 = f(a * a) - mu1**2, f(b * b) - mu2**2, f(a * b) - mu1 * mu2
    padded = np.mean(
        (2 * mu1 * mu2 + c1)
        * (2 * s12 + c2)
        / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    )
    assert abs(got - padded) > 1e-3


def test_identical_images_give_inf_psnr_and_unit_ssim() -> None:
    img = PAIRS["photo_noise"][1]
    for protocol in PROTOCOLS:
        got = score(img, img.copy(), protocol)
        assert got["psnr"] == math.inf
        assert got["ssim"] == pytest.approx(1.0, abs=1e-12)


def test_derain_y_ignores_chroma_only_changes() -> None:
    # Two colours with the same Y but different chroma: derain_y sees no difference.
    t = np.full((16, 16, 3), [100, 100, 100], np.uint8)
    p = np.full((16, 16, 3), [101, 100, 98], np.uint8)
    assert ref_y(p)[0, 0] == ref_y(t)[0, 0]
    assert score(p, t, "derain_y")["psnr"] == math.inf
    assert score(p, t, "rgb")["psnr"] < math.inf


# --------------------------------------------------------------------- batch


def test_score_batch_matches_score() -> None:
    names = ["photo_noise", "photo_heavy", "photo_shift"]
    preds = np.stack([PAIRS[n][0] for n in names])
    targets = np.stack([PAIRS[n][1] for n in names])
    for protocol in PROTOCOLS:
        want = [score(PAIRS[n][0], PAIRS[n][1], protocol) for n in names]
        assert score_batch(preds, targets, protocol) == want
        assert score_batch(list(preds), list(targets), protocol) == want
    # mixed sizes as a list
    mixed = ["photo_noise", "ramp_noise", "uniform_random"]
    got = score_batch(
        [PAIRS[n][0] for n in mixed], [PAIRS[n][1] for n in mixed], "derain_y"
    )
    assert got == [score(*PAIRS[n], "derain_y") for n in mixed]
    assert score_batch([], [], "rgb") == []


# --------------------------------------------------------------------- pyiqa


@pytest.fixture(scope="module")
def pyiqa_metrics():
    pyiqa = pytest.importorskip("pyiqa")
    kw = {"test_y_channel": True, "color_space": "ycbcr", "device": "cpu"}
    return (
        pyiqa.create_metric("psnr", data_range=255.0, **kw),
        pyiqa.create_metric("ssim", **kw),
    )


def _to_tensor(imgs: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255.0


@pytest.mark.parametrize("name", PYIQA_AGREES)
def test_derain_y_matches_pyiqa(pyiqa_metrics, name: str) -> None:
    m_psnr, m_ssim = pyiqa_metrics
    p, t = PAIRS[name]
    got = score(p, t, "derain_y")
    with torch.no_grad():
        want_psnr = m_psnr(_to_tensor([p]), _to_tensor([t])).item()
        want_ssim = m_ssim(_to_tensor([p]), _to_tensor([t])).item()
    # pyiqa computes Y/MSE/log10 in float32 (observed |dPSNR| <= 2.4e-6 dB) and builds
    # the gaussian window in float32 (observed |dSSIM| <= 4.6e-7).
    assert got["psnr"] == pytest.approx(want_psnr, abs=1e-5)
    assert got["ssim"] == pytest.approx(want_ssim, abs=1e-6)


@pytest.mark.parametrize("name", ["uniform_random", "photo_shift"])
def test_pyiqa_ssim_clamps_negative_structure(pyiqa_metrics, name: str) -> None:
    # pyiqa applies relu to the contrast-structure map; Wang's ssim_index.m does not.
    # Where local correlation is negative (noise, misaligned edges) the two differ,
    # and pyiqa is never lower.
    _, m_ssim = pyiqa_metrics
    p, t = PAIRS[name]
    ours = score(p, t, "derain_y")["ssim"]
    with torch.no_grad():
        theirs = m_ssim(_to_tensor([p]), _to_tensor([t])).item()
    assert theirs == pytest.approx(ref_ssim(ref_y(p), ref_y(t), relu_cs=True), abs=1e-6)
    assert theirs > ours + 5e-4


# -------------------------------------------------------------------- errors


def test_invalid_inputs_raise() -> None:
    img = PAIRS["photo_noise"][1]
    with pytest.raises(ValueError, match=r"unknown protocol 'y'.*derain_y, rgb"):
        score(img, img, "y")
    with pytest.raises(ValueError, match=r"unknown protocol"):
        score_batch(img[None], img[None], "gopro")
    with pytest.raises(ValueError, match=r"pred must have dtype uint8.*float64"):
        score(img.astype(np.float64), img, "rgb")
    with pytest.raises(ValueError, match=r"target must have dtype uint8.*uint16"):
        score(img, img.astype(np.uint16), "rgb")
    with pytest.raises(
        ValueError, match=r"pred must be an RGB image of shape \(H, W, 3\).*\(96, 128\)"
    ):
        score(img[..., 0], img[..., 0], "derain_y")
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\).*\(96, 128, 4\)"):
        score(np.zeros((96, 128, 4), np.uint8), img, "rgb")
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\).*\(1, 96, 128, 3\)"):
        score(img[None], img[None], "rgb")
    with pytest.raises(
        ValueError, match=r"shape mismatch.*\(96, 128, 3\).*\(96, 127, 3\)"
    ):
        score(img, img[:, :-1], "rgb")
    with pytest.raises(ValueError, match=r"at least 11x11.*\(10, 128, 3\)"):
        score(img[:10], img[:10], "derain_y")
    with pytest.raises(TypeError, match=r"numpy array.*list"):
        score(img.tolist(), img, "rgb")
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\).*\(96, 128, 3\)"):
        score_batch(img, img, "rgb")
    with pytest.raises(ValueError, match=r"2 preds but 1 targets"):
        score_batch([img, img], [img], "rgb")
    with pytest.raises(ValueError, match=r"shape mismatch"):
        score_batch([img, img], [img, img[1:]], "rgb")


# ------------------------------------------------------------------ to_uint8


def test_to_uint8_round_trip_is_exact() -> None:
    u = np.arange(256, dtype=np.uint8)
    r, g = np.meshgrid(u, u, indexing="ij")
    img = np.stack([r, g, u[::-1, None].repeat(256, 1)], -1)
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255.0 * 2.0 - 1.0  # (3, H, W)
    out = to_uint8(x)
    assert out.dtype == np.uint8 and out.shape == (256, 256, 3)
    np.testing.assert_array_equal(out, img)
    batched = to_uint8(torch.stack([x, -x]))
    assert batched.shape == (2, 256, 256, 3)
    np.testing.assert_array_equal(batched[0], img)
    np.testing.assert_array_equal(batched[1], 255 - img)


def test_to_uint8_clamps_and_rounds() -> None:
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 7.0, 2 / 255 - 1, 2.6 / 255 * 2 - 1]).view(
        1, 1, 7
    )
    x = x.repeat(3, 1, 1)
    out = to_uint8(x)
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 128, 255, 255, 1, 3])
    assert to_uint8(x.double()).dtype == np.uint8


def test_to_uint8_invalid() -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*\(4, 8, 8\)"):
        to_uint8(torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*\(8, 8\)"):
        to_uint8(torch.zeros(8, 8))
    with pytest.raises(ValueError, match=r"NaN"):
        to_uint8(torch.full((3, 4, 4), float("nan")))
    with pytest.raises(TypeError, match=r"torch.Tensor"):
        to_uint8(np.zeros((3, 4, 4)))


def test_public_api() -> None:
    assert metrics.PROTOCOLS == ("derain_y", "rgb")
    assert isinstance(PROTOCOLS, tuple)
