"""Low-rank residual projection ``Q_k`` and the rank schedulers ``k(t)`` of LRDM.

LRDM replaces the residual injected by the forward process with its best rank-``k`` approximation
(LRDM Eq. 13/14): ``I_t = I_0 + ᾱ_t Q_{k(t)}(I_res) + β̄_t ε``.  ``Q_k`` acts on every ``H×W``
channel matrix of every sample (Eckart–Young truncated SVD); ``k`` may differ per sample because a
training batch mixes timesteps.  The rank schedulers are LRDM Eq. 15–19.

Notation map, from the official LRDM code (``ResidualDiffusion`` with ``enable_res_low_rank``) to this module:

====================================  ===========================================================
official code                         here
====================================  ===========================================================
``enable_res_low_rank=False``         rank spec ``full``
``rank_func: 100`` (an integer)       rank spec ``fixed-r100``
``rank_func: poly_3_decrease``        rank spec ``poly_decrease-p3`` (:class:`lrdm.vocab.RankSpec`)
``envelope_fn2(d, p)``                :func:`envelope`
per-sample ``torch.linalg.svd``       :func:`project_low_rank` (``solver="svd"``)
====================================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from lrdm.core.precision import as_float32, full_precision
from lrdm.core.schedules import check_timesteps
from lrdm.vocab import DEFAULT_ORDER, RANK_KINDS, SOLVERS, RankSpec, check_choice


def _check_kind(kind: str) -> None:
    check_choice(kind, RANK_KINDS, "rank scheduler")


def envelope(d: torch.Tensor | float, p: int) -> torch.Tensor:
    """Polynomial envelope of LRDM Eq. 17: ``1 + a d^p + b d^(p+1) + c d^(p+2)``.

    ``a = -(p+1)(p+2)/2``, ``b = p(p+2)``, ``c = -p(p+1)/2``, so ``envelope(0) = 1`` and
    ``envelope(1) = 0``.  ``d`` in [0, 1]; float64 result of ``d``'s shape.
    """
    if isinstance(p, bool) or not isinstance(p, int) or p < 1:
        raise ValueError(f"polynomial order p must be an integer >= 1, got {p!r}")
    d = torch.as_tensor(d, dtype=torch.float64)
    a = -(p + 1) * (p + 2) / 2
    b = p * (p + 2)
    c = -p * (p + 1) / 2
    return 1 + a * d**p + b * d ** (p + 1) + c * d ** (p + 2)


def rank_schedule(
    kind: str,
    t: int | torch.Tensor,
    T: int,
    max_rank: int,
    order: int = DEFAULT_ORDER,
    rank: int | None = None,
) -> torch.Tensor:
    """Rank ``k(t)`` for code timesteps ``t`` (LRDM Eq. 15–19), clamped to ``[1, max_rank]``.

    ``d = t / T``; ``fixed``: ``rank``; ``lin_increase``: ``ceil(d R_m)`` (Eq. 15); ``lin_decrease``:
    ``ceil((1-d) R_m)`` (Eq. 16); ``poly_increase``: ``ceil((1 - envelope(d; p)) R_m)`` (Eq. 18);
    ``poly_decrease``: ``ceil(envelope(d; p) R_m)`` (Eq. 19).  ``full`` means no projection and
    returns ``max_rank`` everywhere.

    Args:
        t: an int or a ``(B,)`` integer tensor with values in ``[0, T-1]``.
        max_rank: ``R_m`` (usually ``min(H, W)``).
    Returns:
        LongTensor of ``t``'s shape (0-d for an int).
    """
    _check_kind(kind)
    if T <= 0:
        raise ValueError(f"T must be a positive integer, got {T}")
    t_tensor = torch.as_tensor(t)
    check_timesteps(t_tensor, T, lowest=0)  # the API edge: user timesteps are read back once
    return _scheduled_ranks(kind, t_tensor, T, max_rank, order, rank)


def _scheduled_ranks(
    kind: str, t: torch.Tensor, T: int, max_rank: int, order: int, rank: int | None
) -> torch.Tensor:
    """:func:`rank_schedule` on timesteps already known to lie in ``[0, T-1]``: arguments are checked on the
    host, the values of ``t`` are not read, so the ranks are computed where ``t`` lives without a sync."""
    _check_kind(kind)
    if isinstance(max_rank, bool) or not isinstance(max_rank, int) or max_rank <= 0:
        raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
    d = t.to(torch.float64) / T
    if kind == "full":
        k = torch.full_like(d, float(max_rank))
    elif kind == "fixed":
        if rank is None or isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
            raise ValueError(f"rank scheduler 'fixed' needs a positive integer rank, got {rank!r}")
        k = torch.full_like(d, float(rank))
    elif kind == "lin_increase":
        k = torch.ceil(d * max_rank)
    elif kind == "lin_decrease":
        k = torch.ceil((1 - d) * max_rank)
    elif kind == "poly_increase":
        k = torch.ceil((1 - envelope(d, order)) * max_rank)
    else:  # poly_decrease
        k = torch.ceil(envelope(d, order) * max_rank)
    return k.clamp(1, max_rank).to(dtype=torch.long)


SCHEDULED_KINDS = ("lin_increase", "lin_decrease", "poly_increase", "poly_decrease")
"""Rank schedulers that depend on ``t`` (those whose official arithmetic can differ from Eq. 15-19 here)."""
COMPARED_ORDERS = (1, 2, 3, 4, 5)
"""Polynomial orders of LRDM Tab. 4, compared by :func:`rank_differences`."""


def official_ranks(
    kind: str, t: torch.Tensor, T: int, image_size: int, order: int = DEFAULT_ORDER, rank: int | None = None
) -> torch.Tensor:
    """How many singular values the official LRDM training (``p_losses`` with ``enable_res_low_rank``) keeps at
    timesteps ``t`` on ``image_size × image_size`` images: a re-derivation of its arithmetic, for measuring the
    differences from :func:`rank_schedule` (docs/paper.md, "The authors' LRDM weights").

    The official code computes ``d = t / T`` and the envelope in float32, scales by ``image_size`` (not the
    image's ``min(H, W)``), takes no ``clamp``, writes ``poly_increase`` as ``ceil(1 - envelope · size)`` (the
    precedence slip) and slices ``U[:, :, :k]``: a ``k ≤ 0`` keeps ``size + k`` values (none at ``k = 0``, an
    all-zero residual), a ``k`` above ``size`` keeps all.  ``fixed``: ``rank``; ``full``: ``image_size``.
    Returns a LongTensor of ``t``'s shape.
    """
    _check_kind(kind)
    t = torch.as_tensor(t)
    if kind == "full":
        return torch.full_like(t, image_size, dtype=torch.long)
    if kind == "fixed":
        return torch.full_like(t, min(int(rank or 0), image_size), dtype=torch.long)
    d = t.to(torch.float32) / T
    if kind.startswith("poly"):
        p = float(order)
        a, b, c = -(p + 1) * (p + 2) / 2, p * (p + 2), -p * (p + 1) / 2
        shape = 1 + a * d**p + b * d ** (p + 1) + c * d ** (p + 2)
        shape = torch.where(d < 1, shape, torch.zeros_like(d))
        k = torch.ceil(1 - shape * image_size) if kind == "poly_increase" else torch.ceil(shape * image_size)
    else:
        k = torch.ceil(d * image_size) if kind == "lin_increase" else torch.ceil((1 - d) * image_size)
    k = k.long()
    return torch.where(k >= 0, k.clamp(max=image_size), (image_size + k).clamp(min=0))


def rank_differences(T: int = 1000, image_size: int = 256) -> list[dict[str, object]]:
    """Per scheduler (and order): how many timesteps ``t ∈ [0, T-1]`` :func:`official_ranks` differs from
    :func:`rank_schedule` (``max_rank = image_size``) at, how many of them keep no singular value at all in the
    official code, the largest ``|ours - official|`` and the first and last differing ``(t, ours, official)``."""
    t = torch.arange(T)
    rows: list[dict[str, object]] = []
    for kind in SCHEDULED_KINDS:
        for order in COMPARED_ORDERS if kind.startswith("poly") else (DEFAULT_ORDER,):
            ours = rank_schedule(kind, t, T, image_size, order=order)
            theirs = official_ranks(kind, t, T, image_size, order=order)
            differ = (ours != theirs).nonzero().flatten().tolist()
            point = [(t, int(ours[t]), int(theirs[t])) for t in (differ[:1] + differ[-1:])]
            rows.append({
                "scheduler": kind,
                "order": order if kind.startswith("poly") else None,
                "timesteps_differing": len(differ),
                "official_zero_rank": int((theirs[differ] == 0).sum()) if differ else 0,
                "largest_gap": int((ours - theirs).abs().max()),
                "first (t, ours, official)": point[0] if point else None,
                "last (t, ours, official)": point[-1] if point else None,
            })  # fmt: skip
    return rows


def spec_ranks(spec: RankSpec, t: torch.Tensor, T: int, height: int, width: int) -> torch.Tensor:
    """``k(t)`` ``(B,)`` of a rank spec for a batch of timesteps on images of size ``height × width``.

    The hot path of training: ``t`` ``(B,)`` must already lie in ``[0, T-1]`` (the trainer draws it so); its
    values are not read back, so on a GPU the ranks stay on the device without a host sync.
    """
    if T <= 0:
        raise ValueError(f"T must be a positive integer, got {T}")
    t_tensor = torch.as_tensor(t)
    if t_tensor.is_floating_point():
        raise ValueError(f"t must hold integer timesteps, got dtype {t_tensor.dtype}")
    max_rank = spec.resolve_max_rank(height, width)
    return _scheduled_ranks(spec.kind, t_tensor, T, max_rank, spec.schedule_order, spec.rank)


@dataclass(frozen=True)
class Projector:
    """How ``Q_k`` is computed for a run: the per-image subspace (``solver``) or a fixed ``dataset_pca``
    ``basis``.  Calling it is :func:`project_low_rank`."""

    solver: str = "svd"
    basis: PCABasis | None = None

    def __call__(self, x: torch.Tensor, k: int | torch.Tensor) -> torch.Tensor:
        return project_low_rank(x, k, basis=self.basis, solver=self.solver)


PER_IMAGE_SVD = Projector()
"""The default: per-image truncated SVD, as the reference implementation computes it."""


@dataclass(frozen=True)
class PCABasis:
    """A fixed two-sided subspace shared by all images (the ``dataset_pca`` basis).

    ``U``: ``(C, H, H)`` eigenvectors of ``E[R Rᵀ]`` as columns, by decreasing eigenvalue;
    ``V``: ``(C, W, W)`` eigenvectors of ``E[Rᵀ R]``; ``eig_u`` ``(C, H)``, ``eig_v`` ``(C, W)``.
    """

    U: torch.Tensor
    V: torch.Tensor
    eig_u: torch.Tensor
    eig_v: torch.Tensor

    def save(self, path: str | Path) -> None:
        torch.save({"U": self.U, "V": self.V, "eig_u": self.eig_u, "eig_v": self.eig_v}, path)

    @classmethod
    def load(cls, path: str | Path) -> PCABasis:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return cls(U=state["U"], V=state["V"], eig_u=state["eig_u"], eig_v=state["eig_v"])


def fit_pca_basis(residuals: Iterable[torch.Tensor]) -> PCABasis:
    """Fits the ``dataset_pca`` basis (LRDM Hypothesis 1, Eq. 6, made tractable) from residual
    batches ``(B, C, H, W)``: per channel, the eigenvectors of the second-moment matrices
    ``E[R Rᵀ]`` (H×H) and ``E[Rᵀ R]`` (W×W), accumulated in float64."""
    gram_rows = gram_cols = None
    count = 0
    for batch in residuals:
        r = batch.to(torch.float64)
        rows = torch.einsum("bchw,bcgw->chg", r, r)
        cols = torch.einsum("bchw,bchv->cwv", r, r)
        if gram_rows is None:
            gram_rows, gram_cols = rows, cols
        elif rows.shape != gram_rows.shape or cols.shape != gram_cols.shape:
            raise ValueError(f"all residual batches must share (C, H, W); got {tuple(batch.shape[1:])}")
        else:
            gram_rows, gram_cols = gram_rows + rows, gram_cols + cols
        count += r.shape[0]
    if gram_rows is None:
        raise ValueError("fit_pca_basis needs at least one residual batch")
    eig_u, U = torch.linalg.eigh(gram_rows / count)
    eig_v, V = torch.linalg.eigh(gram_cols / count)
    # eigh sorts ascending; the basis is ordered by decreasing eigenvalue
    return PCABasis(
        U=torch.flip(U, dims=(-1,)).float(),
        V=torch.flip(V, dims=(-1,)).float(),
        eig_u=torch.flip(eig_u, dims=(-1,)).float(),
        eig_v=torch.flip(eig_v, dims=(-1,)).float(),
    )


def _ranks_per_sample(k: int | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """``k`` as a ``(batch,)`` LongTensor on ``device``, checked without reading tensor values to the host.

    An int is checked on the host.  A tensor's values are checked on its device (``torch._assert_async``): a
    CPU tensor raises at once, a CUDA one fails the stream with a device-side assert, and neither waits.
    """
    if isinstance(k, int) and not isinstance(k, bool):
        if k <= 0:
            raise ValueError(f"rank k must be >= 1, got {k}")
        return torch.full((batch,), k, dtype=torch.long, device=device)
    k_tensor = torch.as_tensor(k)
    if k_tensor.is_floating_point() or k_tensor.dtype == torch.bool:
        raise ValueError(f"rank k must be integer, got dtype {k_tensor.dtype}")
    if k_tensor.ndim == 0:
        k_tensor = k_tensor.expand(batch)
    if k_tensor.shape != (batch,):
        raise ValueError(f"rank k must be an int or a ({batch},) tensor, got shape {tuple(k_tensor.shape)}")
    k_tensor = k_tensor.to(device=device, dtype=torch.long, non_blocking=True)
    torch._assert_async(torch.all(k_tensor >= 1), "rank k must be >= 1")
    return k_tensor


def _leading_mask(k: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, size)`` float mask of the first ``k[b]`` components."""
    return (torch.arange(size, device=k.device)[None, :] < k[:, None]).float()


def spectral_decomposition(matrices: torch.Tensor, solver: str) -> tuple[torch.Tensor, ...]:
    """The projection's one batched decomposition of ``(..., M, N)`` matrices: ``(U, S, Vh)`` of a reduced SVD
    (``solver="svd"``) or ``(eigenvalues, eigenvectors)`` of symmetric matrices (``solver="gram"``).

    ``torch.linalg.svd`` and ``torch.linalg.eigh`` synchronise with the host on CUDA by design (they check the
    solver's status); this is the only place the training step calls them, once per step.  Its results stay on
    the device.
    """
    if solver == "gram":
        return torch.linalg.eigh(matrices)
    return torch.linalg.svd(matrices, full_matrices=False)


def _project_svd(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    U, S, Vh = spectral_decomposition(x, "svd")
    S = S * _leading_mask(k, S.shape[-1])[:, None, :]
    return (U * S[..., None, :]) @ Vh


def _project_gram(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``U_k U_kᵀ X`` (or ``X V_k V_kᵀ`` when W < H) with ``U_k`` the top-``k`` eigenvectors of ``X Xᵀ``.

    The projector onto the top-k left singular subspace applied to X is exactly the rank-k truncated SVD
    (Eckart–Young).  The Gram matrix is formed and decomposed in float64, so squaring the singular values
    costs no accuracy at float32 output precision.
    """
    work = x.to(torch.float64)
    rows = work.shape[-2] <= work.shape[-1]
    gram = work @ work.mT if rows else work.mT @ work
    size = gram.shape[-1]
    _, vectors = spectral_decomposition(gram, "gram")  # ascending: the top k are the last k columns
    keep = (torch.arange(size, device=x.device)[None, :] >= size - k[:, None]).to(work.dtype)
    top = vectors * keep[:, None, None, :]
    projector = top @ top.mT
    return (projector @ work if rows else work @ projector).to(x.dtype)


def _project_pca(x: torch.Tensor, k: torch.Tensor, basis: PCABasis) -> torch.Tensor:
    C, H, W = x.shape[1:]
    if basis.U.shape != (C, H, H) or basis.V.shape != (C, W, W):
        raise ValueError(
            f"dataset_pca basis was fitted on (C, H, W) = ({basis.U.shape[0]}, {basis.U.shape[1]}, "
            f"{basis.V.shape[1]}) but the residual is {(C, H, W)}"
        )
    U = basis.U.to(device=x.device, dtype=x.dtype)
    V = basis.V.to(device=x.device, dtype=x.dtype)
    proj_rows = torch.einsum("chi,bi,cgi->bchg", U, _leading_mask(k, H).to(x.dtype), U)
    proj_cols = torch.einsum("cwi,bi,cvi->bcwv", V, _leading_mask(k, W).to(x.dtype), V)
    return proj_rows @ x @ proj_cols


def project_low_rank(
    x: torch.Tensor, k: int | torch.Tensor, basis: PCABasis | None = None, solver: str = "svd"
) -> torch.Tensor:
    """Best rank-``k`` approximation ``Q_k(x)`` of every ``H×W`` channel matrix (LRDM Eq. 13).

    Args:
        x: ``(B, C, H, W)`` float tensor (e.g. the residual ``I_in - I_0`` in [-2, 2]).
        k: an int or a ``(B,)`` LongTensor of ranks >= 1; samples with ``k >= min(H, W)`` are
            returned unchanged (the identity).  An int below 1 raises ``ValueError``; a tensor's values are
            checked on its device without a host read (``RuntimeError`` on the CPU, a device-side assert on
            CUDA).  With a tensor every sample is decomposed, in one batched call, and the full-rank ones take
            ``x`` itself, so nothing is read back to the host (no boolean-mask indexing).
        basis: None for the per-image truncated SVD (Eckart–Young; what the reference code does), or
            a :class:`PCABasis` for the fixed ``dataset_pca`` subspace ``U_k U_kᵀ R V_k V_kᵀ``.
        solver: how the per-image projection is computed, one of :data:`SOLVERS` (ignored with a basis).
    Returns:
        ``(B, C, H, W)`` tensor of ``x``'s dtype; ``x`` is not modified.  Half-precision inputs are
        decomposed in float32.
    """
    if x.ndim != 4:
        raise ValueError(f"project_low_rank expects (B, C, H, W), got shape {tuple(x.shape)}")
    check_choice(solver, SOLVERS, "projection solver")
    B, _, H, W = x.shape
    ranks = _ranks_per_sample(k, B, x.device)
    if isinstance(k, int) and k >= min(H, W):  # known on the host: nothing to project
        return x.clone()
    with full_precision(x.device):
        work = as_float32(x)
        if basis is not None:
            projected = _project_pca(work, ranks, basis)
        elif solver == "gram":
            projected = _project_gram(work, ranks)
        else:
            projected = _project_svd(work, ranks)
        # every sample is projected (no boolean-mask indexing: its size would be read back to the host);
        # samples with k >= min(H, W) then take x itself, exactly
        identity = (ranks >= min(H, W)).reshape(B, 1, 1, 1)
        return torch.where(identity, x, projected.to(x.dtype))


def singular_spectrum(x: torch.Tensor) -> torch.Tensor:
    """Singular values of every channel matrix: ``(B, C, H, W)`` -> ``(B, C, min(H, W))``, descending."""
    if x.ndim != 4:
        raise ValueError(f"singular_spectrum expects (B, C, H, W), got shape {tuple(x.shape)}")
    work = as_float32(x)
    return torch.linalg.svdvals(work)


def normalized_magnitude(sv: torch.Tensor) -> torch.Tensor:
    """``σ_i / σ_1`` (LRDM Fig. 3a) for spectra ``(..., r)``; all-zero spectra give zeros."""
    top = sv[..., :1]
    return torch.where(top > 0, sv / torch.where(top > 0, top, torch.ones_like(top)), torch.zeros_like(sv))


def magnitude_derivative(sv: torch.Tensor) -> torch.Tensor:
    """First difference of the normalised magnitude (LRDM Fig. 3b): ``(..., r)`` -> ``(..., r-1)``."""
    return torch.diff(normalized_magnitude(sv), dim=-1)


def cumulative_magnitude_ratio(sv: torch.Tensor) -> torch.Tensor:
    """``Σ_{j≤i} σ_j / Σ_j σ_j`` (LRDM Fig. 3c) for spectra ``(..., r)``; all-zero spectra give ones."""
    total = sv.sum(dim=-1, keepdim=True)
    safe = torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, torch.cumsum(sv, dim=-1) / safe, torch.ones_like(sv))


def energy_rank(sv: torch.Tensor, fraction: float) -> torch.Tensor:
    """Smallest ``k`` whose top-``k`` singular values hold ``fraction`` of ``Σ σ²``: ``(..., r)`` ->
    ``(...)`` LongTensor (``k90``: fraction 0.9, ``k99``: 0.99).  All-zero spectra give 0."""
    if not 0 < fraction <= 1:
        raise ValueError(f"energy fraction must lie in (0, 1], got {fraction}")
    energy = sv.to(torch.float64) ** 2
    total = energy.sum(dim=-1, keepdim=True)
    ratio = torch.cumsum(energy, dim=-1) / torch.where(total > 0, total, torch.ones_like(total))
    # tolerance so that a ratio equal to the fraction up to rounding counts as reaching it
    k = (ratio < fraction - 1e-12).sum(dim=-1) + 1
    k = k.clamp(max=sv.shape[-1])
    return torch.where(total[..., 0] > 0, k, torch.zeros_like(k))


def spectrum_summary(sv: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-matrix spectrum statistics for spectra ``(..., r)``: the normalised magnitude, its
    derivative, the cumulative magnitude ratio and the energy ranks ``k90``/``k99``."""
    return {
        "normalized_magnitude": normalized_magnitude(sv),
        "derivative": magnitude_derivative(sv),
        "cumulative_magnitude_ratio": cumulative_magnitude_ratio(sv),
        "k90": energy_rank(sv, 0.90),
        "k99": energy_rank(sv, 0.99),
    }
