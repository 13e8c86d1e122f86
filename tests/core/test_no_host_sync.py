"""The hot paths read nothing back to the host (issue 16), and their arithmetic runs in float32 under autocast.

On the CPU a :class:`~torch.utils._python_dispatch.TorchDispatchMode` records every aten op that would
synchronise a CUDA stream with the host: scalar reads (``.item()``, ``bool(tensor)``), ``nonzero``,
``masked_select``, boolean-mask indexing, ``equal`` and friends.  The projection, the forward sample and every
reverse step of the sampler must run none.  The batched ``torch.linalg.svd`` / ``eigh`` of the projection
synchronise on CUDA by design; on the CPU their checks happen inside the op, so they are not counted, and on a
GPU only :func:`lrdm.core.lowrank.spectral_decomposition` is allowed to synchronise.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lrdm.config import TrainConfig
from lrdm.core import lowrank
from lrdm.core.diffusion import q_sample, training_loss
from lrdm.core.lowrank import fit_pca_basis, project_low_rank, spec_ranks
from lrdm.core.prediction import Prediction, TrainingExample
from lrdm.core.process import build_network, build_process
from lrdm.core.sampling import sample
from lrdm.core.schedules import residual_schedule
from lrdm.vocab import RankSpec

aten = torch.ops.aten
SYNC_OPS = {
    aten._local_scalar_dense,  # .item(), bool(tensor), float(tensor); a CPU tensor's .tolist() is not dispatched
    aten.item,
    aten.is_nonzero,
    aten.equal,
    aten.nonzero,
    aten.masked_select,
    aten._unique2,
    aten.unique_consecutive,
}
"""Ops whose result size or value the host must wait for on CUDA."""
MASK_INDEXED = {aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_}
"""Ops that synchronise when one of their indices is a boolean mask."""

T = 1000
SIZE = 16


class SyncOps(TorchDispatchMode):
    """Records the name of every synchronising aten op run inside the ``with`` block."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func.overloadpacket
        if packet in SYNC_OPS:
            self.seen.append(str(func))
        elif packet in MASK_INDEXED:
            indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ()):
                self.seen.append(f"{func} with a boolean mask")
        return func(*args, **kwargs)


def sync_ops(fn) -> list[str]:
    with SyncOps() as mode:
        fn()
    return mode.seen


def batch(seed: int = 0, size: int = SIZE, batch_size: int = 4):
    g = torch.Generator().manual_seed(seed)
    shape = (batch_size, 3, size, size)
    x0 = torch.rand(shape, generator=g) * 2 - 1
    x_in = (x0 + 0.3 * torch.randn(shape, generator=g)).clamp(-1, 1)
    return x0, x_in, torch.randn(shape, generator=g)


def test_the_counter_sees_what_syncs():
    x = torch.randn(6)
    assert sync_ops(lambda: bool(x.any())) == ["aten._local_scalar_dense.default"]
    assert sync_ops(lambda: x[x > 0]) == ["aten.index.Tensor with a boolean mask"]
    assert sync_ops(lambda: x.nonzero()) and sync_ops(lambda: float(x.sum())) and sync_ops(lambda: x.sum().item())
    assert sync_ops(lambda: x[:2] * 2 + x[torch.tensor([1, 2])]) == []


@pytest.mark.parametrize("solver", ["svd", "gram", "pca"])
def test_projection_with_per_sample_ranks_reads_nothing_back(solver):
    x0, x_in, _ = batch()
    residual = x_in - x0
    t = torch.tensor([0, 10, 500, 999])  # t = 0 gives the full rank, the identity, beside projected samples
    k = spec_ranks(RankSpec.parse("poly_decrease-p3"), t, T, SIZE, SIZE)
    assert int(k[0]) == SIZE and int(k[-1]) < SIZE
    basis = fit_pca_basis([residual]) if solver == "pca" else None
    solver_name = "svd" if solver == "pca" else solver

    assert sync_ops(lambda: spec_ranks(RankSpec.parse("poly_decrease-p3"), t, T, SIZE, SIZE)) == []
    assert sync_ops(lambda: project_low_rank(residual, k, basis=basis, solver=solver_name)) == []
    out = project_low_rank(residual, k, basis=basis, solver=solver_name)
    assert torch.equal(out[0], residual[0])  # k >= min(H, W): exactly the identity
    for b in range(1, 4):  # each sample at its own rank, as when projected alone
        alone = project_low_rank(residual[b : b + 1], int(k[b]), basis=basis, solver=solver_name)
        torch.testing.assert_close(out[b : b + 1], alone, rtol=1e-5, atol=1e-5)


def test_projection_checks_tensor_ranks_on_the_device():
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(RuntimeError, match=">= 1"):  # torch._assert_async: raises on the CPU, no host read
        project_low_rank(x, torch.tensor([2, 0]))


def test_q_sample_and_training_targets_read_nothing_back():
    x0, x_in, noise = batch()
    schedule = residual_schedule(T)
    t = torch.tensor([0, 10, 500, 999])
    residual = x_in - x0
    assert sync_ops(lambda: q_sample(x0, residual, t, noise, schedule)) == []

    def network(x_t, t, x_in):
        return Prediction(x_t - x_in, x_t * 0.5)

    spec = RankSpec.parse("poly_decrease-p3")
    assert sync_ops(lambda: training_loss(network, TrainingExample(x0, x_in, t, noise), schedule, rank_spec=spec)) == []


@pytest.mark.parametrize("objective", ["pred_res_noise", "pred_res", "pred_noise"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_sampler_reads_nothing_back(objective, eta):
    x0, x_in, _ = batch()
    schedule = residual_schedule(T)

    def network(x_t, t, x_in):
        res = x_in - x0
        eps = torch.tanh(x_t)
        return Prediction(res if objective != "pred_noise" else None, eps if objective != "pred_res" else None)

    generator = torch.Generator().manual_seed(0)
    seen = sync_ops(lambda: sample(network, x_in, schedule, 5, eta=eta, generator=generator))
    assert seen == []  # the whole call, so in particular every reverse step


@pytest.mark.parametrize("backbone", ["ddpm_unet", "rddm_unetres", "conv_unet"])
def test_process_training_step_and_sampling_read_nothing_back(backbone):
    config = TrainConfig(crop=SIZE, dim=8, dim_mults=(1, 2), rank_spec="poly_decrease-p3", backbone=backbone)
    process = build_process(config)
    network = build_network(config, process)
    x0, x_in, noise = batch(batch_size=2)
    t = torch.tensor([3, 700])

    def step() -> None:  # Adam's step is left out: on the CPU it reads its step counter, a CPU tensor on CUDA too
        process.loss(network, TrainingExample(x0, x_in, t, noise)).backward()

    assert sync_ops(step) == []
    assert all(p.grad is not None for p in network.parameters())
    with torch.inference_mode():
        assert sync_ops(lambda: process.sample(network.eval(), x_in, 5)) == []


# ----------------------------------------------------------------------------------- precision boundaries


def test_projection_and_forward_sample_run_in_float32_under_autocast():
    g = torch.Generator().manual_seed(1)
    residual = torch.randn(4, 3, 64, 64, generator=g)
    x0 = torch.rand(4, 3, 64, 64, generator=g) * 2 - 1
    noise = torch.randn(4, 3, 64, 64, generator=g)
    t = torch.tensor([5, 250, 600, 900])
    k = spec_ranks(RankSpec.parse("poly_decrease-p3"), t, T, 64, 64)
    schedule = residual_schedule(T)
    basis = fit_pca_basis([residual])
    for kwargs in ({"solver": "svd"}, {"solver": "gram"}, {"basis": basis}):
        fp32 = project_low_rank(residual, k, **kwargs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = project_low_rank(residual, k, **kwargs)
        assert mixed.dtype == torch.float32
        torch.testing.assert_close(mixed, fp32, rtol=0, atol=1e-6)
    fp32 = q_sample(x0, residual, t, noise, schedule)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = q_sample(x0, residual, t, noise, schedule)
    torch.testing.assert_close(mixed, fp32, rtol=0, atol=1e-6)


def test_training_targets_and_sampler_arithmetic_stay_float32_under_autocast():
    """Only the network runs in bf16: the I_t it sees and the residual target equal their fp32 values."""
    x0, x_in, noise = batch(size=32)
    schedule = residual_schedule(T)
    t = torch.tensor([5, 250, 600, 900])
    spec = RankSpec.parse("poly_decrease-p3")
    conv = torch.nn.Conv2d(6, 6, 3, padding=1)

    def run(autocast: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.dtype]:
        seen = {}

        def network(x_t, t, x_in):
            seen.setdefault("x_t", x_t)  # the training call comes first
            out = conv(torch.cat([x_t, x_in], dim=1))  # bf16 under autocast
            seen["out_dtype"] = out.dtype
            return Prediction(out[:, :3], out[:, 3:])

        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = training_loss(network, TrainingExample(x0, x_in, t, noise), schedule, rank_spec=spec).detach()
            restored = sample(network, x_in, schedule, 3, x_T=x_in)
        return seen["x_t"], loss, restored, seen["out_dtype"]

    x_t32, loss32, restored32, dtype32 = run(False)
    x_t16, loss16, restored16, dtype16 = run(True)
    assert dtype32 == torch.float32 and dtype16 == torch.bfloat16  # the network did run in bf16
    assert x_t16.dtype == torch.float32 and loss16.dtype == torch.float32 and restored16.dtype == torch.float32
    torch.testing.assert_close(x_t16, x_t32, rtol=0, atol=1e-6)
    assert abs(loss16.item() - loss32.item()) < 0.05  # only the network's rounding differs


# ----------------------------------------------------------------------------------- on a CUDA GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("backbone", ["ddpm_unet", "rddm_unetres", "conv_unet"])
def test_training_step_and_sampling_do_not_sync_on_cuda(backbone, monkeypatch):
    """A training step (bf16 autocast, low-rank SVD projection) and a 5-step sample under
    ``torch.cuda.set_sync_debug_mode("error")``; the mode is off only around the projection's decomposition."""
    device = torch.device("cuda")
    config = TrainConfig(crop=64, dim=16, dim_mults=(1, 2, 4), rank_spec="poly_decrease-p3", backbone=backbone)
    process = build_process(config)
    network = build_network(config, process).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-4, betas=config.adam_betas)
    x0, x_in, noise = (v.to(device) for v in batch(size=64))
    t = torch.tensor([0, 10, 500, 999], device=device)
    decompose = lowrank.spectral_decomposition

    def decompose_allowed(matrices, solver):
        previous = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode(0)
        try:
            return decompose(matrices, solver)
        finally:
            torch.cuda.set_sync_debug_mode(previous)

    monkeypatch.setattr(lowrank, "spectral_decomposition", decompose_allowed)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = process.loss(network, TrainingExample(x0, x_in, t, noise))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def restore() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            return process.sample(network, x_in, 5)

    step()  # warm-up: library handles, kernel choices, the coefficient tables' device copies
    network.eval()
    restore()
    network.train()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
        network.eval()
        restored = restore()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert restored.shape == x_in.shape and restored.dtype == torch.float32
    assert bool(restored.isfinite().all())

