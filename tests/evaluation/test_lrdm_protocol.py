"""The LRDM paper's test protocol (``lrdm_y`` and its 256 transform) against numbers produced by running the
official LRDM test code (tests/fixtures/lrdm-protocol/, a copy of ../shared/fixtures/lrdm-protocol/, see its
README), and against an independent
NumPy/OpenCV-free re-derivation of the formulas."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lrdm
from lrdm.evaluation.metrics import score_batch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lrdm-protocol"  # a copy of ../shared/fixtures/'s
PSNR_TOL = 1e-3  # dB
SSIM_TOL = 1e-4
GREY_TOL = 1  # grey levels, transform


def _refs() -> dict:
    return json.loads((FIXTURES / "refs.json").read_text())


def _pair(name: str) -> tuple[np.ndarray, np.ndarray]:
    gt = np.asarray(Image.open(FIXTURES / f"{name}_gt.png").convert("RGB"))
    pred = np.asarray(Image.open(FIXTURES / f"{name}_pred.png").convert("RGB"))
    return pred, gt


def _float_prediction(name: str, pred: np.ndarray) -> np.ndarray:
    """The fixture README's float prediction: pred/255 plus uniform noise of ±0.5 grey, clipped."""
    u = np.random.default_rng(1000 + int(name)).uniform(-0.5, 0.5, pred.shape)
    return np.clip(pred / 255 + u / 255, 0, 1).astype(np.float32)


PAIRS = ["10", "11", "12"]


@pytest.mark.parametrize("name", PAIRS)
def test_lrdm_y_matches_the_official_code_on_uint8_and_float(name):
    ref = _refs()[name]
    pred, gt = _pair(name)
    assert list(gt.shape[1::-1]) == ref["size"]
    for prediction, key in ((pred, "uint8"), (_float_prediction(name, pred), "float")):
        got = lrdm.score(prediction, gt, "lrdm_y")
        assert got["psnr"] == pytest.approx(ref[key]["psnr"], abs=PSNR_TOL)
        assert got["ssim"] == pytest.approx(ref[key]["ssim"], abs=SSIM_TOL)


@pytest.mark.parametrize("name", PAIRS)
def test_lrdm_test_resize_matches_the_official_transform(name):
    ref = _refs()[name]
    expected = np.load(FIXTURES / "transformed_256.npz")
    pred, gt = _pair(name)
    gt_256, pred_256 = lrdm.lrdm_test_resize(gt), lrdm.lrdm_test_resize(pred)
    assert gt_256.shape == (256, 256, 3) and gt_256.dtype == np.uint8
    for got, key in ((gt_256, f"{name}_gt_256"), (pred_256, f"{name}_pred_256")):
        assert np.abs(got.astype(int) - expected[key].astype(int)).max() <= GREY_TOL
    if np.array_equal(gt_256, expected[f"{name}_gt_256"]):
        assert hashlib.sha256(gt_256.tobytes()).hexdigest() == ref["transform"]["gt_256_sha256"]
    transformed = lrdm.score(pred_256, gt_256, "lrdm_y")
    assert transformed["psnr"] == pytest.approx(ref["transform"]["psnr"], abs=PSNR_TOL)
    assert transformed["ssim"] == pytest.approx(ref["transform"]["ssim"], abs=SSIM_TOL)


def _reference_lrdm_y(pred255: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """lrdm_y written out from the protocol's description, with a direct 'valid' gaussian window."""
    w = np.array([65.738, 129.057, 25.064])
    d = ((pred255 - gt) / 255.0 * w).sum(-1) / 256.0
    psnr = -10 * np.log10(np.mean(d[1:-1, 1:-1] ** 2))
    y1 = (np.rint(np.clip(pred255, 0, 255)) * w).sum(-1) / 255.0 + 16
    y2 = (gt.astype(np.float64) * w).sum(-1) / 255.0 + 16
    y1, y2 = y1[1:-1, 1:-1], y2[1:-1, 1:-1]
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    g /= g.sum()
    win = np.outer(g, g)

    def filt(a):
        h, k = a.shape[0] - 10, a.shape[1] - 10
        return np.array([[np.sum(a[i : i + 11, j : j + 11] * win) for j in range(k)] for i in range(h)])

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    m1, m2 = filt(y1), filt(y2)
    s1, s2, s12 = filt(y1 * y1) - m1**2, filt(y2 * y2) - m2**2, filt(y1 * y2) - m1 * m2
    ssim = ((2 * m1 * m2 + c1) * (2 * s12 + c2)) / ((m1**2 + m2**2 + c1) * (s1 + s2 + c2))
    return float(psnr), float(ssim.mean())


def test_lrdm_y_equals_the_written_out_formulas_on_random_images():
    rng = np.random.default_rng(7)
    gt = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    pred = np.clip(gt / 255 + rng.normal(0, 0.05, gt.shape), 0, 1).astype(np.float32)
    psnr, ssim = _reference_lrdm_y(pred.astype(np.float64) * 255, gt)
    got = lrdm.score(pred, gt, "lrdm_y")
    assert got["psnr"] == pytest.approx(psnr, abs=1e-9)
    assert got["ssim"] == pytest.approx(ssim, abs=1e-9)


def test_lrdm_y_psnr_is_unrounded_and_ssim_rounded():
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    exact = gt / 255.0
    nudged = np.clip(exact + 0.3 / 255, 0, 1)  # less than half a grey level: rounds back to gt
    got = lrdm.score(nudged, gt, "lrdm_y")
    assert np.isfinite(got["psnr"])  # unrounded: a real difference
    assert got["ssim"] == pytest.approx(1.0, abs=1e-12)  # rounded: identical images
    assert lrdm.score(gt, gt, "lrdm_y")["psnr"] == float("inf")


@pytest.mark.parametrize("protocol", ["derain_y", "rgb", "rgb_channelwise"])
def test_matlab_protocols_round_a_float_prediction_first(protocol):
    rng = np.random.default_rng(5)
    gt = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    pred = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    nudged = np.clip(pred / 255.0 + 0.4 / 255, 0, 1)  # rounds to pred (as a saved PNG)
    assert lrdm.score(nudged, gt, protocol) == lrdm.score(pred, gt, protocol)
    assert score_batch(nudged[None], gt[None], protocol) == [lrdm.score(pred, gt, protocol)]


@pytest.mark.parametrize(
    ("height", "width", "padded"),
    [
        (70, 100, (256, 256)),
        (300, 257, (304, 264)),
        (256, 256, (256, 256)),
        (321, 481, (328, 488)),
        (13, 500, (256, 504)),
    ],
)
def test_lrdm_test_resize_pads_bottom_right_to_256_and_a_multiple_of_8(height, width, padded):
    image = np.full((height, width, 3), 200, dtype=np.uint8)
    out = lrdm.lrdm_test_resize(image)
    # the black padding is resized with the image: a corner's share of black equals the padded fraction
    expected = np.zeros((*padded, 3), dtype=np.uint8)
    expected[:height, :width] = 200
    reference = np.asarray(Image.fromarray(expected).resize((256, 256), Image.Resampling.BICUBIC))
    assert np.array_equal(out, reference)
    assert out[0, 0, 0] == 200


def test_bad_inputs_raise():
    gt = np.zeros((32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"float pred must hold finite values in \[0, 1\]"):
        lrdm.score(np.full((32, 32, 3), 1.5), gt, "lrdm_y")
    with pytest.raises(ValueError, match="shape mismatch"):
        lrdm.score(np.zeros((31, 32, 3)), gt, "lrdm_y")
    with pytest.raises(ValueError, match="size must be a positive integer"):
        lrdm.lrdm_test_resize(gt, size=0)
    with pytest.raises(ValueError, match="uint8"):
        lrdm.lrdm_test_resize(gt.astype(np.float32))
