import pytest
import torch

from lrdm.core.diffusion import (
    LOSSES,
    OBJECTIVES,
    noise_from_residual,
    project_residual,
    q_sample,
    training_loss,
    x0_from_noise,
)
from lrdm.core.lowrank import project_low_rank, spec_ranks
from lrdm.core.prediction import Prediction, TrainingExample
from lrdm.core.schedules import residual_schedule
from lrdm.vocab import RankSpec

T = 50


def images(seed=0, shape=(2, 3, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1
    x_in = (x0 + 0.3 * torch.rand(shape, generator=g, dtype=torch.float64)).clamp(-1, 1)
    noise = torch.randn(shape, generator=g, dtype=torch.float64)
    return x0, x_in, noise


@pytest.mark.parametrize("beta2_sum", [1.0, 0.01])
def test_q_sample_equals_markov_chain_eq9(beta2_sum):
    """Iterating q(I_t | I_{t-1}) = N(I_{t-1} + α_t I_res, β²_t I) from I_0 gives the closed form."""
    s = residual_schedule(T=T, beta2_sum=beta2_sum)
    x0, x_in, _ = images()
    residual = x_in - x0
    g = torch.Generator().manual_seed(5)
    eps = torch.randn(T, *x0.shape, generator=g, dtype=torch.float64)
    x = x0.clone()
    for t in range(T):
        x = x + s.alpha[t] * residual + s.beta2[t].sqrt() * eps[t]
        # the summed Gaussian noise, normalised, is the closed form's ε
        combined = (s.beta2[: t + 1].sqrt()[:, None, None, None, None] * eps[: t + 1]).sum(0) / s.beta_bar[t]
        closed = q_sample(x0, residual, torch.full((2,), t), combined, s)
        torch.testing.assert_close(x, closed, rtol=1e-10, atol=1e-10)
    # at t = T-1 the residual is fully added: I_T = I_in + β̄_T ε
    torch.testing.assert_close(x, x_in + s.beta_bar[-1] * combined, rtol=1e-10, atol=1e-10)


def test_eq16_conversions_invert_the_forward_process():
    s = residual_schedule(T=T)
    x0, x_in, noise = images(1)
    residual = x_in - x0
    t = torch.tensor([0, T - 2])
    x_t = q_sample(x0, residual, t, noise, s)
    torch.testing.assert_close(noise_from_residual(x_t, x_in, residual, t, s), noise)
    torch.testing.assert_close(x_in - x0_from_noise(x_t, x_in, noise, t, s), residual)
    # at t = T-1 (ᾱ = 1) the residual is unidentifiable; SM-N's denominator stays bounded away from 0
    last = torch.full((2,), T - 1)
    assert torch.isfinite(x0_from_noise(q_sample(x0, residual, last, noise, s), x_in, noise, last, s)).all()


class OracleNetwork:
    """Returns the exact training targets (projected residual and noise) for known data."""

    def __init__(self, target_res, noise, objective="pred_res_noise"):
        self.target_res, self.noise, self.objective = target_res, noise, objective

    def __call__(self, x_t, t, x_in):
        res = self.target_res if self.objective != "pred_noise" else None
        eps = self.noise if self.objective != "pred_res" else None
        return Prediction(res, eps)


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("loss", LOSSES)
def test_training_loss_zero_for_oracle_and_targets_projected_residual(objective, loss):
    s = residual_schedule(T=T)
    x0, x_in, noise = images(3)
    t = torch.tensor([0, 40])
    spec = RankSpec.parse("fixed-r2")
    projected = project_low_rank(x_in - x0, 2)
    oracle = OracleNetwork(projected, noise, objective)
    example = TrainingExample(x0, x_in, t, noise)
    assert training_loss(oracle, example, s, objective, loss, spec).item() == pytest.approx(0.0, abs=1e-12)
    if objective != "pred_noise":
        # the full residual is the wrong target under a low-rank forward process
        full = OracleNetwork(x_in - x0, noise, objective)
        assert training_loss(full, TrainingExample(x0, x_in, t, noise), s, objective, loss, spec).item() > 1e-3


def test_training_loss_value_for_zero_network():
    s = residual_schedule(T=T)
    x0, x_in, noise = images(4)
    t = torch.tensor([5, 6])
    zero = lambda x_t, t, x_in: Prediction(torch.zeros_like(x_t), torch.zeros_like(x_t))  # noqa: E731
    got = training_loss(zero, TrainingExample(x0, x_in, t, noise), s, "pred_res_noise", "l1")
    want = (x_in - x0).abs().mean() + noise.abs().mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    got = training_loss(zero, TrainingExample(x0, x_in, t, noise), s, "pred_res_noise", "l2")
    want = ((x_in - x0) ** 2).mean() + (noise**2).mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-6)


def test_project_residual_uses_rank_schedule_per_sample():
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    t = torch.tensor([0, 500, 999])
    spec = RankSpec.parse("poly_decrease-p3")
    got = project_residual(x, t, 1000, spec)
    k = spec_ranks(spec, t, 1000, 16, 16)
    torch.testing.assert_close(got, project_low_rank(x, k))
    assert project_residual(x, t, 1000, RankSpec("full")) is x


def test_invalid_objective_and_loss_list_choices():
    s = residual_schedule(T=T)
    x0, x_in, noise = images()
    net = OracleNetwork(x_in - x0, noise)
    with pytest.raises(ValueError, match="valid choices: pred_res_noise, pred_res, pred_noise"):
        training_loss(net, TrainingExample(x0, x_in, torch.tensor([1, 2]), noise), s, objective="pred_x0")
    with pytest.raises(ValueError, match="valid choices: l1, l2"):
        training_loss(net, TrainingExample(x0, x_in, torch.tensor([1, 2]), noise), s, loss="huber")
    with pytest.raises(ValueError, match="objective 'pred_res' predicts"):  # the network does not fit the objective
        training_loss(net, TrainingExample(x0, x_in, torch.tensor([1, 2]), noise), s, objective="pred_res")
