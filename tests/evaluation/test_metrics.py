"""Tests for lrdm.evaluation.metrics against independent NumPy/SciPy re-implementations and pyiqa."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d
from skimage import data as skdata

from lrdm.evaluation import metrics
from lrdm.evaluation.metrics import PROTOCOLS, rgb_to_y, score, score_batch
from lrdm.evaluation.protocols import PROTOCOL_TABLE

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
    return _untie(np.clip(np.round(img + rng.normal(0, sigma, img.shape)), 0, 255).astype(np.uint8))


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
    n = sum(int(y_is_tie(np.stack([np.full_like(g, r), g, b], -1)).sum()) for r in range(256))
    assert n == 194  # number quoted in the module docstring


def test_rgb_to_y_matches_exact_integer_formula() -> None:
    rng = np.random.default_rng(123)
    rgb = rng.integers(0, 256, (1_000_000, 3), dtype=np.uint8)
    extremes = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
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
def test_rgb_channelwise_matches_reference(name: str) -> None:
    p, t = PAIRS[name]
    got = score(p, t, "rgb_channelwise")
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
    padded = np.mean((2 * mu1 * mu2 + c1) * (2 * s12 + c2) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2)))
    assert abs(got - padded) > 1e-3


def test_identical_images_give_inf_psnr_and_unit_ssim() -> None:
    img = PAIRS["photo_noise"][1]
    mask = np.zeros(img.shape[:2], bool)
    mask[20:50, 30:70] = True
    for protocol in PROTOCOLS:
        got = score(img, img.copy(), protocol, mask if protocol == "istd" else None)
        assert got["psnr"] == math.inf
        assert got["ssim"] == pytest.approx(1.0, abs=1e-12)
        if protocol == "istd":
            assert got["mae_all"] == got["mae_shadow"] == got["mae_nonshadow"] == 0.0


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
    for protocol in ("derain_y", "rgb", "rgb_channelwise"):
        want = [score(PAIRS[n][0], PAIRS[n][1], protocol) for n in names]
        assert score_batch(preds, targets, protocol) == want
        assert score_batch(list(preds), list(targets), protocol) == want
    # mixed sizes as a list
    mixed = ["photo_noise", "ramp_noise", "uniform_random"]
    got = score_batch([PAIRS[n][0] for n in mixed], [PAIRS[n][1] for n in mixed], "derain_y")
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
    with pytest.raises(ValueError, match=r"pred must have dtype uint8.*int16"):
        score(img.astype(np.int16), img, "rgb")
    with pytest.raises(ValueError, match=r"a float pred must hold finite values in \[0, 1\]"):
        score(img.astype(np.float64), img, "rgb")  # 0..255 floats: not a [0, 1] prediction
    with pytest.raises(ValueError, match=r"target must have dtype uint8.*uint16"):
        score(img, img.astype(np.uint16), "rgb")
    with pytest.raises(ValueError, match=r"pred must be an RGB image of shape \(H, W, 3\).*\(96, 128\)"):
        score(img[..., 0], img[..., 0], "derain_y")
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\).*\(96, 128, 4\)"):
        score(np.zeros((96, 128, 4), np.uint8), img, "rgb")
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\).*\(1, 96, 128, 3\)"):
        score(img[None], img[None], "rgb")
    with pytest.raises(ValueError, match=r"shape mismatch.*\(96, 128, 3\).*\(96, 127, 3\)"):
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


def test_public_api() -> None:
    assert metrics.PROTOCOLS == ("derain_y", "rgb", "rgb_channelwise", "istd", "realblur", "lrdm_y")
    assert isinstance(PROTOCOLS, tuple)


def test_dispatch_table_has_one_entry_per_protocol() -> None:
    assert tuple(PROTOCOL_TABLE) == PROTOCOLS
    stacked = {name for name, entry in PROTOCOL_TABLE.items() if entry.score_stack is not None}
    assert stacked == {"derain_y", "rgb", "rgb_channelwise"}


# ------------------------------------------------------- GoPro: MATLAB 3-D SSIM


def ref_ssim_volume(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """MATLAB ssim on an M x N x 3 volume: explicit 11x11x11 gaussian, replicate padding."""
    from scipy.signal import correlate

    g = np.exp(-(np.arange(-5, 6) ** 2) / (2 * 1.5**2))
    k = g[:, None, None] * g[None, :, None] * g[None, None, :]
    k /= k.sum()

    def f(z: np.ndarray) -> np.ndarray:
        return correlate(np.pad(z, 5, mode="edge"), k, mode="valid", method="direct")

    x, y = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
    smap = (2 * mx * my + c1) * (2 * sxy + c2) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    assert smap.shape == a.shape  # full map, nothing cropped
    return float(smap.mean())


GOPRO_CASES = ["photo_noise", "photo_shift", "ramp_noise", "checker_blur", "uniform_random"]


@pytest.mark.parametrize("name", GOPRO_CASES)
def test_rgb_is_matlab_3d_ssim(name: str) -> None:
    p, t = PAIRS[name]
    p, t = p[:48, :56], t[:48, :56]  # keep the direct 3-D correlation cheap
    got = score(p, t, "rgb")
    assert set(got) == {"psnr", "ssim"} and all(type(v) is float for v in got.values())
    assert got["psnr"] == pytest.approx(ref_psnr(p, t), abs=1e-12)
    # separable (ours) vs direct 3-D sums: observed |diff| <= 3.3e-13
    assert got["ssim"] == pytest.approx(ref_ssim_volume(p, t), abs=1e-11)
    assert metrics.ssim_volume(t, t) == 1.0
    # a genuinely different quantity from the per-channel 2-D mean
    assert abs(got["ssim"] - score(p, t, "rgb_channelwise")["ssim"]) > 1e-3


def test_ssim_volume_replicates_along_channels() -> None:
    # Changing only the blue channel makes the z-padding matter: with replicate padding
    # the blue slice is repeated 5 times beyond the volume's end, with mirror padding it
    # is not, and the results differ clearly.
    from scipy.ndimage import gaussian_filter

    t = PAIRS["coffee_noise"][1][:40, :40]
    p = t.copy()
    p[..., 2] = 255 - p[..., 2]
    got = metrics.ssim_volume(p, t)
    assert got == pytest.approx(ref_ssim_volume(p, t), abs=1e-11)
    x, y = p.astype(float), t.astype(float)

    def with_mode(mode: str) -> float:
        def f(z: np.ndarray) -> np.ndarray:
            return gaussian_filter(z, 1.5, radius=5, mode=mode)

        c1, c2 = 6.5025, 58.5225
        mx, my = f(x), f(y)
        sxx, syy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
        return float(np.mean((2 * mx * my + c1) * (2 * sxy + c2) / ((mx * mx + my * my + c1) * (sxx + syy + c2))))

    assert with_mode("nearest") == pytest.approx(got, abs=1e-12)
    assert abs(with_mode("mirror") - got) > 1e-3
    # data_range scales C1, C2: 0..1 images with L = 1 give the same value
    assert metrics.ssim_volume(x / 255, y / 255, data_range=1.0) == pytest.approx(got, abs=1e-12)


# ---------------------------------------------------------------- resizing


def pil_imresize(a: np.ndarray, size: tuple[int, int], round_passes: bool = False) -> np.ndarray:
    """MATLAB imresize via PIL: PIL's antialiased bicubic (a = -0.5) on a symmetrically
    padded copy with a source box, so its kernel never reaches the padded image's edge;
    one axis at a time (smaller scale first), optionally rounded after each pass."""
    from PIL import Image

    out = a.astype(np.float64)
    h, w = a.shape[:2]
    scales = [size[0] / h, size[1] / w]
    for axis in sorted((0, 1), key=lambda ax: scales[ax]):
        n_in, n_out = out.shape[axis], size[axis]
        if n_in == n_out:
            continue
        pad = int(np.ceil(2 / min(scales[axis], 1))) + 4
        widths = [(0, 0)] * out.ndim
        widths[axis] = (pad, pad)
        padded = np.pad(out, widths, mode="symmetric")
        chans = []
        for c in range(out.shape[2] if out.ndim == 3 else 1):
            plane = padded[..., c] if out.ndim == 3 else padded
            im = Image.fromarray(plane.astype(np.float32), "F")
            if axis == 0:
                res = im.resize((plane.shape[1], n_out), Image.BICUBIC, box=(0, pad, plane.shape[1], pad + n_in))
            else:
                res = im.resize((n_out, plane.shape[0]), Image.BICUBIC, box=(pad, 0, pad + n_in, plane.shape[0]))
            chans.append(np.asarray(res, np.float64))
        out = np.stack(chans, -1) if out.ndim == 3 else chans[0]
        if round_passes:
            out = np.clip(np.floor(out + 0.5), 0, 255)
    return out


@pytest.mark.parametrize("size", [(20, 25), (64, 64), (30, 90), (48, 33)])
def test_imresize_matches_pil_bicubic_with_symmetric_border(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(7)
    a = rng.integers(0, 256, (48, 60, 3)).astype(np.float64)  # exact in PIL's float32
    got = metrics.imresize(a, size)
    assert got.dtype == np.float64 and got.shape == (*size, 3)
    # PIL stores float32: observed max |diff| <= 2.3e-5 on values up to 255
    np.testing.assert_allclose(got, pil_imresize(a, size), rtol=0, atol=1e-4)
    u8 = metrics.imresize(a.astype(np.uint8), size)
    assert u8.dtype == np.uint8
    # uint8: rounded after each pass.  Upsampling by 3/2 has weights in 1/16 (-1, 9, 9, -1),
    # so exact .5 ties occur; PIL's float32 coefficients may break them the other way
    # (observed: 7 of 8100 values off by 1 for (30, 90), none for the other sizes).
    diff = np.abs(u8.astype(int) - pil_imresize(a, size, round_passes=True))
    assert diff.max() <= 1 and diff.mean() < 1e-3
    np.testing.assert_array_equal(metrics.imresize(a, a.shape[:2]), a)


def test_resize_policy() -> None:
    t_big = PAIRS["coffee_noise"][1]  # (80, 100, 3)
    p = PAIRS["photo_noise"][0][:40, :40]
    want_t = metrics.imresize(t_big, (40, 40))
    for protocol in ("derain_y", "rgb", "rgb_channelwise"):
        got = score(p, t_big, protocol, resize=40)
        assert got == score(p, want_t, protocol)  # pred (already 40x40) untouched
        assert score(p, t_big, protocol, resize=(40, 40)) == got
    both = score(PAIRS["coffee_noise"][0], t_big, "rgb", resize=(32, 48))
    assert both == score(metrics.imresize(PAIRS["coffee_noise"][0], (32, 48)), metrics.imresize(t_big, (32, 48)), "rgb")
    with pytest.raises(ValueError, match=r"shape mismatch"):
        score(p, t_big, "rgb")
    for bad in (8, (40,), (40, 40, 3), True, 40.0):
        with pytest.raises(ValueError, match=r"resize must"):
            score(p, t_big, "rgb", resize=bad)


# ----------------------------------------------------------------------- ISTD


def ref_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] -> CIE L*a*b* (D65, 2 degree), straight from the definitions."""
    lin = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    m = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    d = 6 / 29
    fx = np.where(xyz > d**3, np.cbrt(xyz), xyz / (3 * d * d) + 4 / 29)
    return np.stack([116 * fx[..., 1] - 16, 500 * (fx[..., 0] - fx[..., 1]), 200 * (fx[..., 1] - fx[..., 2])], -1)


def ref_istd(p: np.ndarray, t: np.ndarray, shadow: np.ndarray) -> dict[str, float]:
    """Per-image LAB MAE, channel differences summed, averaged over the region's pixels."""
    d = np.abs(ref_lab(np.clip(p, 0, 1)) - ref_lab(np.clip(t, 0, 1))).sum(-1)
    return {
        "mae_all": float(d.sum() / d.size),
        "mae_shadow": float(d[shadow].sum() / shadow.sum()),
        "mae_nonshadow": float(d[~shadow].sum() / (~shadow).sum()),
    }


def _istd_pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = PAIRS["photo_noise"][1][:48, :56]
    yy, xx = np.mgrid[0:48, 0:56]
    shadow = (yy - 20) ** 2 / 200 + (xx - 30) ** 2 / 300 < 1  # an ellipse
    p = t.astype(np.float64)
    p[shadow] *= 0.5  # a shadow left in the prediction
    p = np.clip(np.round(p + np.random.default_rng(9).normal(0, 4, p.shape)), 0, 255).astype(np.uint8)
    return p, t, shadow


def test_istd_native_size_matches_direct_lab_mae() -> None:
    p, t, shadow = _istd_pair()
    got = score(p, t, "istd", shadow, resize=(48, 56))  # working size = image size: no resampling
    assert set(got) == {"psnr", "ssim", "mae_all", "mae_shadow", "mae_nonshadow"}
    want = ref_istd(p / 255, t / 255, shadow)
    for k, v in want.items():
        # skimage uses the rounded CIE constants 0.008856 and 7.787: observed rel ~1e-7
        assert got[k] == pytest.approx(v, rel=1e-6), k
    n = shadow.sum()
    assert got["mae_all"] == pytest.approx(
        (got["mae_shadow"] * n + got["mae_nonshadow"] * (shadow.size - n)) / shadow.size
    )
    assert got["mae_shadow"] > 5 * got["mae_nonshadow"]
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    pf, tf = p / 255, t / 255
    assert got["psnr"] == pytest.approx(peak_signal_noise_ratio(tf, pf, data_range=1.0), abs=1e-10)
    want_ssim = structural_similarity(
        tf, pf, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert got["ssim"] == pytest.approx(want_ssim, abs=1e-12)
    # same SSIM as the Wang reference per channel on the 0..1 scale (C scaled with L)
    assert got["ssim"] == pytest.approx(np.mean([ref_ssim(p[..., c], t[..., c]) for c in range(3)]), abs=1e-10)


def test_istd_default_resizes_to_256() -> None:
    p, t, shadow = _istd_pair()
    got = score(p, t, "istd", shadow)
    pr, tr = pil_imresize(p / 255, (256, 256)), pil_imresize(t / 255, (256, 256))
    sr = pil_imresize(shadow * 255.0, (256, 256), round_passes=True) > 0
    assert sr.sum() > 0.2 * sr.size / 4
    want = ref_istd(pr, tr, sr)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-5), k  # PIL float32 resampling
    assert got["psnr"] == pytest.approx(ref_psnr(pr * 255, tr * 255), abs=1e-4)
    # pred already 256x256 (RDDM output) and a full-size target/mask
    p256 = metrics.imresize(p, (256, 256))
    assert score(p256, t, "istd", shadow)["mae_all"] == pytest.approx(ref_istd(p256 / 255, tr, sr)["mae_all"], rel=1e-5)


def test_pp_lab_pools_pixels() -> None:
    p, t, shadow = _istd_pair()
    empty = np.zeros_like(shadow)
    s1 = score(p, t, "istd", shadow, resize=(48, 56))
    s2 = score(t, p, "istd", empty, resize=(48, 56))
    assert math.isnan(s2["mae_shadow"])
    pooled = metrics.pp_lab([s1, s2], [shadow, empty], size=(48, 56))
    n = int(shadow.sum())
    assert pooled["mae_shadow"] == pytest.approx(s1["mae_shadow"])
    assert pooled["mae_all"] == pytest.approx((s1["mae_all"] + s2["mae_all"]) / 2)
    m = shadow.size
    assert pooled["mae_nonshadow"] == pytest.approx(
        (s1["mae_nonshadow"] * (m - n) + s2["mae_nonshadow"] * m) / (2 * m - n)
    )


def test_istd_invalid_inputs() -> None:
    p, t, shadow = _istd_pair()
    with pytest.raises(ValueError, match=r"'istd' protocol needs mask"):
        score(p, t, "istd")
    with pytest.raises(ValueError, match=r"mask shape \(48, 55\) does not match.*\(48, 56\)"):
        score(p, t, "istd", shadow[:, :-1])
    with pytest.raises(ValueError, match=r"mask must be a bool.*uint8"):
        score(p, t, "istd", shadow.astype(np.uint8))
    with pytest.raises(ValueError, match=r"mask is only used by the 'istd' protocol, not by 'rgb'"):
        score(p, t, "rgb", shadow)
    with pytest.raises(ValueError, match=r"pred must have dtype uint8"):
        score(p.astype(np.uint16), t, "istd", shadow)
    assert score(p / 255, t, "istd", shadow) == score(p, t, "istd", shadow)  # a float pred is rounded first
    with pytest.raises(ValueError, match=r"2 preds but 1 masks"):
        score_batch([p, p], [t, t], "istd", [shadow])


# ------------------------------------------------------------------- RealBlur


def _smooth_scene(n: int = 64, seed: int = 1):
    """A random sum of 300 gaussian blobs (sigma 1.5..4 px), evaluable anywhere."""
    rng = np.random.default_rng(seed)
    cent = rng.uniform(-10, n + 10, (300, 2))
    amp = rng.uniform(-1, 1, (300, 3))
    wid = rng.uniform(1.5, 4, 300)

    def f(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.zeros((*x.shape, 3))
        for (cx, cy), a, s in zip(cent, amp, wid):
            out += np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))[..., None] * a
        return np.clip(np.round(127.5 + 60 * out), 0, 255).astype(np.uint8)

    return f


HOMOGRAPHIES = {
    "projective": np.array([[1.0, 0.01, 0.8], [-0.008, 1.0, -0.6], [1e-4, -5e-5, 1.0]]),
    "scale_shift": np.array([[1.02, 0.0, 1.5], [0.01, 0.99, -1.0], [2e-4, 1e-4, 1.0]]),
    "translation": np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]]),
}


def _apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    q = pts @ h.T
    return q[:, :2] / q[:, 2:]


@pytest.mark.parametrize("name", list(HOMOGRAPHIES))
def test_realblur_alignment_recovers_known_homography(name: str) -> None:
    import cv2

    h_true, n = HOMOGRAPHIES[name], 64
    f = _smooth_scene(n)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    target = f(xx, yy)
    # pred(H p) = target(p), rendered exactly (no interpolation): pred(q) = f(H^-1 q)
    src = _apply(np.linalg.inv(h_true), np.stack([xx, yy, np.ones_like(xx)], -1).reshape(-1, 3))
    pred = f(src[:, 0].reshape(n, n), src[:, 1].reshape(n, n))
    # cv2.warpPerspective of the target renders (up to interpolation) the same pred
    assert (
        ref_psnr(cv2.warpPerspective(target, h_true, (n, n), flags=cv2.INTER_CUBIC)[8:-8, 8:-8], pred[8:-8, 8:-8]) > 30
    )

    zr, xr, valid, warp = metrics.realblur_align(pred, target)
    assert warp.shape == (3, 3) and warp[2, 2] == 1.0
    corners = np.array([[0, 0, 1], [n - 1, 0, 1], [0, n - 1, 1], [n - 1, n - 1, 1]], np.float64)
    err = np.abs(_apply(warp.astype(np.float64), corners) - _apply(h_true, corners)).max()
    assert err < 0.35  # observed 0.11 .. 0.18 px (ECC, 100 iterations, gaussFiltSize 5)
    assert np.abs(_apply(np.linalg.inv(h_true), corners) - _apply(h_true, corners)).max() > 1.5
    np.testing.assert_allclose(warp[:2, :2], h_true[:2, :2], atol=0.02)
    assert 0.9 < valid[..., 0].mean() < 1.0  # the warp pushes some target pixels off pred
    np.testing.assert_array_equal(xr, target / np.float32(255) * valid)

    aligned = score(pred, target, "realblur")
    plain = score(pred, target, "rgb")
    assert aligned["psnr"] > plain["psnr"] + 10  # observed +13 .. +22 dB
    assert aligned["ssim"] > plain["ssim"]
    assert aligned["psnr"] == metrics.masked_psnr(xr, zr, valid, peak=1.0)


def test_masked_psnr_by_hand() -> None:
    a = np.zeros((16, 16, 3))
    b = np.zeros((16, 16, 3))
    b[:, :8] = 0.1
    b[:, 8:] = 0.5
    left = np.zeros((16, 16, 3))
    left[:, :8] = 1
    assert metrics.masked_psnr(a, b, left) == pytest.approx(20.0, abs=1e-12)  # MSE 0.01
    assert metrics.masked_psnr(a * 255, b * 255, left[..., :1], peak=255.0) == pytest.approx(20.0, abs=1e-12)
    full = metrics.masked_psnr(a, b, np.ones_like(a))
    assert full == pytest.approx(10 * math.log10(1 / ((0.01 + 0.25) / 2)), abs=1e-12)
    assert metrics.masked_psnr(a, a, left) == math.inf


def test_masked_ssim_matches_reference() -> None:
    from scipy.ndimage import correlate

    p, t = PAIRS["photo_noise"]
    a, b = p[:40, :48] / 255, t[:40, :48] / 255
    valid = np.ones_like(a)
    valid[:, :7] = 0
    valid[-3:] = 0
    a, b = a * valid, b * valid
    w = gauss_window()
    c1, c2 = 0.01**2, 0.03**2
    per_channel = []
    for c in range(3):
        x, y = a[..., c], b[..., c]

        def f(z: np.ndarray) -> np.ndarray:
            return correlate(z, w, mode="reflect")

        mx, my = f(x), f(y)
        sxx, syy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
        smap = (2 * mx * my + c1) * (2 * sxy + c2) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        v = valid[5:-5, 5:-5, c]
        per_channel.append((smap[5:-5, 5:-5] * v).sum() / v.sum())
    assert metrics.masked_ssim(a, b, valid) == pytest.approx(np.mean(per_channel), abs=1e-12)


def test_realblur_identical_and_failure() -> None:
    img = PAIRS["photo_noise"][1][:48, :48]
    assert score(img, img.copy(), "realblur") == {"psnr": math.inf, "ssim": 1.0}
    flat = np.full((32, 32, 3), 128, np.uint8)
    with pytest.raises(RuntimeError, match=r"ECC alignment failed"):
        score(flat, flat.copy(), "realblur")


# ---------------------------------------------------------- batch, new protocols


def test_score_batch_new_protocols() -> None:
    p, t, shadow = _istd_pair()
    q = PAIRS["photo_noise"][0][:48, :56]
    got = score_batch([p, q], [t, t], "istd", [shadow, ~shadow], resize=(48, 56))
    assert got == [score(p, t, "istd", shadow, resize=(48, 56)), score(q, t, "istd", ~shadow, resize=(48, 56))]
    got = score_batch(np.stack([p, q]), np.stack([t, t]), "istd", np.stack([shadow, shadow]))
    assert got == [score(p, t, "istd", shadow), score(q, t, "istd", shadow)]
    assert score_batch(np.stack([p, q]), np.stack([t, t]), "realblur") == [
        score(p, t, "realblur"),
        score(q, t, "realblur"),
    ]
    big = PAIRS["coffee_noise"][1]
    assert score_batch([p[:40, :40], q[:40, :40]], [big, big], "rgb", resize=40) == [
        score(p[:40, :40], big, "rgb", resize=40),
        score(q[:40, :40], big, "rgb", resize=40),
    ]
    with pytest.raises(ValueError, match=r"'istd' protocol needs mask"):
        score_batch([p], [t], "istd")


def test_unknown_protocol_lists_every_choice() -> None:
    img = PAIRS["photo_noise"][1]
    with pytest.raises(ValueError, match=r"unknown protocol 'gopro'") as e:
        score(img, img, "gopro")
    for name in PROTOCOLS:
        assert name in str(e.value)
