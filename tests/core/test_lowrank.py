import math

import numpy as np
import pytest
import torch

from lrdm.core.lowrank import (
    RANK_KINDS,
    PCABasis,
    RankSpec,
    cumulative_magnitude_ratio,
    energy_rank,
    envelope,
    fit_pca_basis,
    magnitude_derivative,
    normalized_magnitude,
    project_low_rank,
    rank_schedule,
    singular_spectrum,
    spectrum_summary,
)

T = 1000


def numpy_envelope(d: float, p: int) -> float:
    a = -(p + 1) * (p + 2) / 2
    b = p * (p + 2)
    c = -p * (p + 1) / 2
    return 1 + a * d**p + b * d ** (p + 1) + c * d ** (p + 2)


def expected_rank(kind: str, t: int, max_rank: int, order: int, rank: int | None) -> int:
    d = t / T
    raw = {
        "full": max_rank,
        "fixed": rank,
        "lin_increase": math.ceil(d * max_rank),
        "lin_decrease": math.ceil((1 - d) * max_rank),
        "poly_increase": math.ceil((1 - numpy_envelope(d, order)) * max_rank),
        "poly_decrease": math.ceil(numpy_envelope(d, order) * max_rank),
    }[kind]
    return min(max(raw, 1), max_rank)


@pytest.mark.parametrize("p", [1, 2, 3, 4, 5])
def test_envelope_endpoints_and_shape(p):
    assert envelope(0.0, p).item() == pytest.approx(1.0, abs=1e-12)
    assert envelope(1.0, p).item() == pytest.approx(0.0, abs=1e-12)
    d = torch.linspace(0, 1, 101, dtype=torch.float64)
    values = envelope(d, p)
    assert np.allclose(values.numpy(), [numpy_envelope(float(x), p) for x in d])
    # monotone decreasing from 1 to 0, flat at both ends (derivative 0 at d = 0 for p > 1 and at d = 1)
    assert bool((torch.diff(values) <= 1e-12).all())
    assert bool((values >= -1e-12).all()) and bool((values <= 1 + 1e-12).all())


@pytest.mark.parametrize("kind", RANK_KINDS)
@pytest.mark.parametrize("p", [1, 2, 3, 4, 5])
def test_rank_schedule_matches_formulas(kind, p):
    max_rank = 64
    rank = 16 if kind == "fixed" else None
    t = torch.arange(T)
    got = rank_schedule(kind, t, T, max_rank, order=p, rank=rank)
    assert got.dtype == torch.long and got.shape == (T,)
    want = [expected_rank(kind, int(i), max_rank, p, rank) for i in t]
    assert got.tolist() == want
    # ints give 0-d tensors with the same values
    for i in (0, 1, 500, 999):
        scalar = rank_schedule(kind, i, T, max_rank, order=p, rank=rank)
        assert scalar.ndim == 0 and scalar.item() == want[i]


def test_rank_schedule_directions():
    t = torch.arange(T)
    for kind, sign in (("lin_increase", 1), ("poly_increase", 1), ("lin_decrease", -1), ("poly_decrease", -1)):
        k = rank_schedule(kind, t, T, 128)
        assert bool((sign * torch.diff(k) >= 0).all())
        assert int(k.min()) >= 1 and int(k.max()) <= 128
    assert rank_schedule("poly_decrease", 0, T, 128).item() == 128
    assert rank_schedule("lin_increase", 0, T, 128).item() == 1  # ceil(0) clamped to 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "cosine"}, "valid choices: full, fixed, lin_increase"),
        ({"kind": "fixed", "rank": 0}, "positive integer rank"),
        ({"kind": "fixed", "rank": None}, "positive integer rank"),
        ({"kind": "fixed", "rank": -3}, "positive integer rank"),
        ({"kind": "poly_decrease", "order": 0}, "order p"),
        ({"kind": "full", "max_rank": 0}, "max_rank"),
        ({"kind": "full", "t": T}, "timesteps"),
        ({"kind": "full", "t": -1}, "timesteps"),
    ],
)
def test_rank_schedule_invalid(kwargs, match):
    args = {"kind": "full", "t": 3, "T": T, "max_rank": 32, **kwargs}
    with pytest.raises(ValueError, match=match):
        rank_schedule(**args)


def test_rank_spec_parse_roundtrip_and_errors():
    for text in ("full", "fixed-r16", "lin_increase", "lin_decrease", "poly_increase-p1", "poly_decrease-p3"):
        assert RankSpec.parse(text).name == text
    spec = RankSpec.parse("poly_decrease-p3", max_rank=40)
    assert spec.resolve_max_rank(64, 96) == 40 and spec.resolve_max_rank(32, 64) == 32
    for bad, match in (
        ("fixed", "positive rank"),
        ("fixed-r0", "positive rank"),
        ("poly_decrease", "order"),
        ("lin_increase-p3", "no polynomial order"),
        ("full-r3", "no fixed rank"),
        ("wavy-p2", "valid choices"),
        ("FIXED R", "cannot parse"),
    ):
        with pytest.raises(ValueError, match=match):
            RankSpec.parse(bad)


def numpy_truncated_svd(x: np.ndarray, k: int) -> np.ndarray:
    u, s, vh = np.linalg.svd(x, full_matrices=False)
    s = s.copy()
    s[k:] = 0
    return (u * s) @ vh


def test_projection_equals_numpy_truncated_svd_per_sample_rank():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 12, 9, generator=g, dtype=torch.float64)
    k = torch.tensor([1, 3, 5, 9])
    got = project_low_rank(x, k)
    for b in range(4):
        for c in range(3):
            want = numpy_truncated_svd(x[b, c].numpy(), int(k[b]))
            np.testing.assert_allclose(got[b, c].numpy(), want, atol=1e-10)
    # per-sample ranks hold: the channel matrices have exactly rank k (k < min(H, W))
    for b in range(3):
        assert int(torch.linalg.matrix_rank(got[b, 0])) == int(k[b])


def test_projection_properties():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 3, 16, 16, generator=g)
    before = x.clone()
    once = project_low_rank(x, 4)
    assert torch.equal(x, before), "input must not be modified"
    torch.testing.assert_close(project_low_rank(once, 4), once, atol=1e-5, rtol=1e-5)  # idempotent
    assert torch.equal(project_low_rank(x, 16), x)  # full rank is the identity
    assert torch.equal(project_low_rank(x, 100), x)
    mixed = project_low_rank(x, torch.tensor([16, 2, 40]))
    assert torch.equal(mixed[0], x[0]) and torch.equal(mixed[2], x[2])
    # Eckart–Young: the error is the energy of the discarded singular values
    sv = singular_spectrum(x)
    err = ((x - once) ** 2).sum(dim=(-2, -1))
    torch.testing.assert_close(err, (sv[..., 4:] ** 2).sum(-1), rtol=1e-4, atol=1e-4)


def test_projection_half_precision_and_errors():
    x = torch.randn(2, 3, 8, 8).bfloat16()
    out = project_low_rank(x, 2)
    assert out.dtype == torch.bfloat16 and out.shape == x.shape
    with pytest.raises(ValueError, match=">= 1"):
        project_low_rank(x, 0)
    with pytest.raises(ValueError, match="shape"):
        project_low_rank(x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="integer"):
        project_low_rank(x, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        project_low_rank(x[0], 2)


def test_singular_spectrum_and_summary():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 10, 6, generator=g, dtype=torch.float64)
    sv = singular_spectrum(x)
    assert sv.shape == (2, 3, 6)
    np.testing.assert_allclose(sv[1, 2].numpy(), np.linalg.svd(x[1, 2].numpy(), compute_uv=False))
    nm = normalized_magnitude(sv)
    assert torch.allclose(nm[..., 0], torch.ones(2, 3, dtype=torch.float64))
    assert magnitude_derivative(sv).shape == (2, 3, 5)
    cmr = cumulative_magnitude_ratio(sv)
    assert torch.allclose(cmr[..., -1], torch.ones(2, 3, dtype=torch.float64))
    summary = spectrum_summary(sv)
    assert set(summary) == {"normalized_magnitude", "derivative", "cumulative_magnitude_ratio", "k90", "k99"}


def test_energy_rank_on_known_spectra():
    sv = torch.tensor([[3.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    # energies: 9/10 in rank 1 -> k90 = 1; k99 = 2. Flat: 90 % needs 4 of 4 (3/4 < 0.9)
    assert energy_rank(sv, 0.9).tolist() == [1, 4, 0]
    assert energy_rank(sv, 0.99).tolist() == [2, 4, 0]
    with pytest.raises(ValueError, match="fraction"):
        energy_rank(sv, 0.0)


def test_energy_rank_of_low_rank_matrix():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(1, 1, 20, 3, generator=g, dtype=torch.float64)
    b = torch.randn(1, 1, 3, 20, generator=g, dtype=torch.float64)
    sv = singular_spectrum(a @ b)
    assert int(energy_rank(sv, 0.99999)) <= 3


def test_dataset_pca_basis_recovers_shared_subspace():
    g = torch.Generator().manual_seed(4)
    H, W, r = 12, 10, 3
    left = torch.linalg.qr(torch.randn(H, r, generator=g, dtype=torch.float64))[0]
    right = torch.linalg.qr(torch.randn(W, r, generator=g, dtype=torch.float64))[0]
    coeff = torch.randn(32, 2, r, r, generator=g, dtype=torch.float64)
    residuals = (left @ coeff @ right.T).float()  # every residual lives in the same rank-3 subspace
    basis = fit_pca_basis(residuals.split(8))
    assert basis.U.shape == (2, H, H) and basis.V.shape == (2, W, W)
    assert bool((torch.diff(basis.eig_u, dim=-1) <= 1e-6).all())
    projected = project_low_rank(residuals, 3, basis=basis)
    torch.testing.assert_close(projected, residuals, atol=1e-4, rtol=1e-4)
    # with rank 1 the fixed basis keeps only part of the energy, and never more than per-image SVD
    pca1 = project_low_rank(residuals, 1, basis=basis)
    svd1 = project_low_rank(residuals, 1)
    err_pca = ((residuals - pca1) ** 2).sum()
    err_svd = ((residuals - svd1) ** 2).sum()
    assert err_pca >= err_svd - 1e-4
    # a projector: applying it twice changes nothing
    torch.testing.assert_close(project_low_rank(pca1, 1, basis=basis), pca1, atol=1e-5, rtol=1e-5)


def test_dataset_pca_basis_save_load_and_size_check(tmp_path):
    basis = fit_pca_basis([torch.randn(4, 3, 8, 8)])
    path = tmp_path / "basis.pt"
    basis.save(path)
    loaded = PCABasis.load(path)
    assert torch.equal(loaded.U, basis.U) and torch.equal(loaded.eig_v, basis.eig_v)
    with pytest.raises(ValueError, match="basis was fitted"):
        project_low_rank(torch.randn(2, 3, 6, 8), 2, basis=loaded)
    with pytest.raises(ValueError, match="at least one"):
        fit_pca_basis([])


@pytest.mark.parametrize("shape", [(3, 3, 16, 16), (2, 3, 12, 20), (2, 3, 20, 12)])
def test_gram_solver_equals_truncated_svd(shape):
    """Projecting onto the top-k eigenvectors of the Gram matrix (float64) is the rank-k truncated SVD."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(shape, generator=g)
    k = torch.randint(1, min(shape[-2:]), (shape[0],), generator=g)
    svd = project_low_rank(x, k, solver="svd")
    gram = project_low_rank(x, k, solver="gram")
    assert gram.dtype == x.dtype
    torch.testing.assert_close(gram, svd, rtol=1e-4, atol=1e-5)


def test_gram_solver_error_bound_on_degenerate_spectra():
    """With repeated singular values the rank-k subspace is not unique, but every solver must reach the
    Eckart–Young optimum: ||X - Q_k X||² = Σ_{i>k} σ_i², up to float rounding."""
    g = torch.Generator().manual_seed(6)
    n = 24
    u = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0]
    v = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0]
    sigma = torch.tensor([5.0] * 4 + [2.0] * 8 + [1e-3] * 12, dtype=torch.float64)  # ties straddle k = 6
    x = (u * sigma) @ v.T
    x = x.expand(1, 1, n, n).float()
    for k in (4, 6, 12, 20):
        for solver in ("svd", "gram"):
            err = ((x.double() - project_low_rank(x, k, solver=solver).double()) ** 2).sum()
            optimum = (sigma[k:] ** 2).sum()
            assert abs(err - optimum) <= 1e-5 * (sigma**2).sum(), (solver, k, float(err), float(optimum))


def test_unknown_solver_lists_choices():
    with pytest.raises(ValueError, match="valid choices: svd, gram"):
        project_low_rank(torch.zeros(1, 1, 4, 4), 2, solver="qr")


def test_the_official_lrdm_rank_arithmetic_differs_only_where_the_readme_says():
    """README, "The authors' LRDM weights": at 256², T=1000 the official poly_decrease keeps no singular value
    (float32 cancellation) at its last 1-3 timesteps where Eq. 19 here keeps 1; its poly_increase (the precedence
    slip, read through Python's slicing) keeps one more than Eq. 18 for most t and collapses to 1-2 near t = T;
    lin_increase keeps none at t = 0; lin_decrease and the released fixed rank 100 agree everywhere."""
    from lrdm.core.lowrank import official_ranks, rank_differences

    t = torch.arange(1000)
    ours = rank_schedule("poly_decrease", t, 1000, 256, order=3)
    theirs = official_ranks("poly_decrease", t, 1000, 256, order=3)
    assert theirs[997:].tolist() == [0, 0, 0] and ours[997:].tolist() == [1, 1, 1]
    assert torch.equal(ours[:997], theirs[:997])
    ours_i = rank_schedule("poly_increase", t, 1000, 256, order=3)
    theirs_i = official_ranks("poly_increase", t, 1000, 256, order=3)
    bulk = (ours_i > 1) & (ours_i < 200)
    assert torch.equal(theirs_i[bulk], ours_i[bulk] + 1) and theirs_i[-1] == 1 and ours_i[-1] == 256
    assert torch.equal(official_ranks("fixed", t, 1000, 256, rank=100), torch.full((1000,), 100))
    rows = {(r["scheduler"], r["order"]): r for r in rank_differences()}
    assert rows[("lin_decrease", None)]["timesteps_differing"] == 0
    assert rows[("lin_increase", None)]["first (t, ours, official)"] == (0, 1, 0)
    assert rows[("poly_decrease", 3)]["timesteps_differing"] == rows[("poly_decrease", 3)]["official_zero_rank"] == 3
