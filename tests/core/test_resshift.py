import math

import pytest
import torch

from lrdm.core.diffusion import project_residual
from lrdm.core.prediction import Prediction, TrainingExample
from lrdm.core.resshift import (
    ResShiftSchedule,
    q_posterior,
    q_sample,
    resshift_schedule,
    sample,
    training_loss,
)
from lrdm.core.samplers import SamplerOptions
from lrdm.core.sampling import step_pairs
from lrdm.vocab import RankSpec


def data(seed=0, shape=(2, 3, 8, 8), scale=0.5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x0 = (torch.rand(shape, generator=g, dtype=dtype) * 2 - 1) * 0.8
    x_in = x0 + scale * (torch.rand(shape, generator=g, dtype=dtype) - 0.5)
    return x0, x_in


# ---------------------------------------------------------------- schedule


def test_default_schedule_properties():
    s = resshift_schedule()
    assert isinstance(s, ResShiftSchedule)
    assert s.T == 15 and s.kappa == 2.0
    assert s.eta.dtype == torch.float64 and s.eta.shape == (15,)
    assert bool((torch.diff(s.eta) > 0).all())
    # η_1 = min((0.04 / κ)², 0.001) = 0.0004 for κ = 2; η_T = 0.99
    assert math.isclose(float(s.eta[0]), 0.0004, rel_tol=1e-12)
    assert math.isclose(float(s.eta[-1]), 0.99, rel_tol=1e-12)
    assert torch.allclose(s.alpha.cumsum(0), s.eta, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "T,kappa,power,eta_min,eta_max", [(15, 2.0, 0.3, None, 0.99), (4, 1.0, 1.0, 0.01, 0.5), (50, 0.5, 2.0, 1e-4, 1.0)]
)
def test_schedule_geometric_law(T, kappa, power, eta_min, eta_max):
    s = resshift_schedule(T=T, kappa=kappa, power=power, eta_min=eta_min, eta_max=eta_max)
    expected_min = min((0.04 / kappa) ** 2, 0.001) if eta_min is None else eta_min
    assert math.isclose(float(s.eta[0]), expected_min, rel_tol=1e-12)
    assert math.isclose(float(s.eta[-1]), eta_max, rel_tol=1e-12)
    assert bool((torch.diff(s.eta) > 0).all())
    # log sqrt(η_t) = log sqrt(η_1) + β_t log b0, β_t = ((t-1)/(T-1))^p (T-1)
    beta = (torch.arange(T, dtype=torch.float64) / (T - 1)) ** power * (T - 1)
    log_sqrt_eta = 0.5 * torch.log(s.eta)
    slope = (log_sqrt_eta - log_sqrt_eta[0])[1:] / beta[1:]
    log_b0 = math.log(eta_max / expected_min) / (2 * (T - 1))
    torch.testing.assert_close(slope, torch.full_like(slope, log_b0), rtol=1e-10, atol=0)


def test_schedule_power_one_is_geometric_sequence():
    s = resshift_schedule(T=6, power=1.0, eta_min=0.01, eta_max=0.64)
    ratios = s.eta[1:] / s.eta[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, 64 ** (1 / 5)), rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"T": 1}, "T"),
        ({"T": 0}, "T"),
        ({"T": 15.0}, "T"),
        ({"T": True}, "T"),
        ({"kappa": 0.0}, "kappa"),
        ({"kappa": -1.0}, "kappa"),
        ({"kappa": float("nan")}, "kappa"),
        ({"power": 0.0}, "power"),
        ({"power": -0.3}, "power"),
        ({"eta_max": 0.0}, "eta_max"),
        ({"eta_max": 1.5}, "eta_max"),
        ({"eta_max": 1e-5}, "eta_max"),  # below the default eta_min
        ({"eta_min": 0.0}, "eta_min"),
        ({"eta_min": -0.1}, "eta_min"),
        ({"eta_min": 0.99}, "eta_min"),
        ({"eta_min": 0.5, "eta_max": 0.4}, "eta_min"),
    ],
)
def test_schedule_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        resshift_schedule(**kwargs)


# ---------------------------------------------------------------- forward process


def test_q_sample_matches_markov_chain():
    """Iterating x_t = x_{t-1} + α_t e0 + κ sqrt(α_t) ε_t from x_{-1} = x0 equals the closed form with the
    combined noise Σ sqrt(α_i) ε_i / sqrt(η_t) (a standard Gaussian)."""
    s = resshift_schedule(T=15, kappa=2.0)
    x0, x_in = data(shape=(1, 2, 5, 5))
    e0 = x_in - x0
    g = torch.Generator().manual_seed(3)
    eps = torch.randn((s.T, *x0.shape), generator=g, dtype=torch.float64)
    alpha = torch.diff(s.eta, prepend=torch.zeros(1, dtype=torch.float64))
    x = x0.clone()
    noise_sum = torch.zeros_like(x0)
    for t in range(s.T):
        x = x + alpha[t] * e0 + s.kappa * torch.sqrt(alpha[t]) * eps[t]
        noise_sum = noise_sum + torch.sqrt(alpha[t]) * eps[t]
        combined = noise_sum / torch.sqrt(s.eta[t])
        closed = q_sample(x0, e0, torch.tensor([t]), combined, s)
        torch.testing.assert_close(closed, x, rtol=0, atol=1e-12)


def test_q_sample_closed_form_and_batch_timesteps():
    s = resshift_schedule()
    x0, x_in = data()
    noise = torch.randn_like(x0)
    t = torch.tensor([0, 14])
    out = q_sample(x0, x_in - x0, t, noise, s)
    for b in range(2):
        eta = s.eta[t[b]]
        expected = x0[b] + eta * (x_in[b] - x0[b]) + 2.0 * torch.sqrt(eta) * noise[b]
        torch.testing.assert_close(out[b], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("t", [[-1, 0], [0, 15], [0.0, 1.0]])
def test_q_sample_rejects_bad_timesteps(t):
    s = resshift_schedule()
    x0, x_in = data()
    with pytest.raises(ValueError, match="timesteps"):
        q_sample(x0, x_in - x0, torch.tensor(t), torch.zeros_like(x0), s)


# ---------------------------------------------------------------- posterior


def _gaussian_conditioning(x_t, x0, e0, eta_t, eta_s, kappa):
    """q(x_s | x_t) from the joint Gaussian of (x_s, x_t) given x0: Cov = κ² η_s, Var x_t = κ² η_t."""
    mean_s, mean_t = x0 + eta_s * e0, x0 + eta_t * e0
    var_s, var_t = kappa**2 * eta_s, kappa**2 * eta_t
    cov = var_s
    return mean_s + cov / var_t * (x_t - mean_t), var_s - cov**2 / var_t


def _grid_bayes(x_t, x0, e0, eta_t, eta_s, kappa):
    """Numerical Bayes on a grid:
    p(x_s | x_t) ∝ N(x_s; x0 + η_s e0, κ² η_s) N(x_t; x_s + (η_t-η_s) e0, κ² (η_t-η_s))."""
    grid = torch.linspace(-6.0, 6.0, 400001, dtype=torch.float64)
    log_p = -((grid - x0 - eta_s * e0) ** 2) / (2 * kappa**2 * eta_s)
    log_p = log_p - (x_t - grid - (eta_t - eta_s) * e0) ** 2 / (2 * kappa**2 * (eta_t - eta_s))
    w = torch.exp(log_p - log_p.max())
    w = w / w.sum()
    mean = (w * grid).sum()
    return float(mean), float((w * (grid - mean) ** 2).sum())


@pytest.mark.parametrize("t,s_", [(14, 13), (14, 9), (7, 0), (3, 2), (14, 0)])
def test_posterior_matches_bayes(t, s_):
    sched = resshift_schedule(T=15, kappa=0.5)  # small κ keeps the posterior well inside the grid
    x0, e0, x_t = 0.3, -0.7, 0.1
    mean, var = q_posterior(
        torch.full((1, 1, 1, 1), x_t, dtype=torch.float64),
        torch.full((1, 1, 1, 1), x0, dtype=torch.float64),
        torch.tensor([t]),
        torch.tensor([s_]),
        sched,
    )
    eta_t, eta_s = float(sched.eta[t]), float(sched.eta[s_])
    ref_mean, ref_var = _gaussian_conditioning(x_t, x0, e0, eta_t, eta_s, sched.kappa)
    assert math.isclose(float(mean), ref_mean, rel_tol=1e-12, abs_tol=1e-14)
    assert math.isclose(float(var), ref_var, rel_tol=1e-10, abs_tol=1e-16)
    grid_mean, grid_var = _grid_bayes(x_t, x0, e0, eta_t, eta_s, sched.kappa)
    assert math.isclose(float(mean), grid_mean, rel_tol=0, abs_tol=1e-6)
    assert math.isclose(float(var), grid_var, rel_tol=1e-4)


def test_posterior_one_step_is_resshift_eq():
    """For s = t - 1: mean = (η_{t-1}/η_t) x_t + (α_t/η_t) x0, variance = κ² η_{t-1} α_t / η_t."""
    sched = resshift_schedule()
    x0, x_t = data()
    alpha = sched.alpha
    for t in range(1, sched.T):
        tb, sb = torch.full((2,), t), torch.full((2,), t - 1)
        mean, var = q_posterior(x_t, x0, tb, sb, sched)
        eta_t, eta_s = sched.eta[t], sched.eta[t - 1]
        torch.testing.assert_close(mean, eta_s / eta_t * x_t + alpha[t] / eta_t * x0, rtol=0, atol=1e-14)
        assert math.isclose(float(var[0]), float(sched.kappa**2 * eta_s * alpha[t] / eta_t), rel_tol=1e-12)
    # s = -1: the posterior collapses onto x0
    mean, var = q_posterior(x_t, x0, torch.full((2,), 5), torch.full((2,), -1), sched)
    torch.testing.assert_close(mean, x0, rtol=0, atol=0)
    assert bool((var == 0).all())


def test_posterior_monte_carlo():
    """Regressing chain samples x_s on x_t (x0, y fixed) recovers slope η_s/η_t and the residual variance."""
    sched = resshift_schedule(T=15, kappa=2.0)
    t, s_ = 12, 6
    eta_t, eta_s = float(sched.eta[t]), float(sched.eta[s_])
    x0, e0, n = 0.2, 0.5, 400000
    g = torch.Generator().manual_seed(0)
    xs = x0 + eta_s * e0 + sched.kappa * math.sqrt(eta_s) * torch.randn(n, generator=g, dtype=torch.float64)
    xt = (
        xs
        + (eta_t - eta_s) * e0
        + sched.kappa * math.sqrt(eta_t - eta_s) * torch.randn(n, generator=g, dtype=torch.float64)
    )
    mean, var = q_posterior(
        xt.view(n, 1, 1, 1),
        torch.full((n, 1, 1, 1), x0, dtype=torch.float64),
        torch.full((n,), t),
        torch.full((n,), s_),
        sched,
    )
    resid = xs - mean.view(n)
    assert abs(float(resid.mean())) < 4 * math.sqrt(float(var[0])) / math.sqrt(n)
    assert math.isclose(float(resid.var()), float(var[0]), rel_tol=0.02)
    # the residual is uncorrelated with x_t (mean is the regression line)
    corr = torch.corrcoef(torch.stack([resid, xt]))[0, 1]
    assert abs(float(corr)) < 0.01


def test_posterior_rejects_bad_order():
    sched = resshift_schedule()
    x0, x_t = data()
    with pytest.raises(ValueError, match="s < t"):
        q_posterior(x_t, x0, torch.tensor([3, 3]), torch.tensor([3, 2]), sched)


# ---------------------------------------------------------------- sampler


def oracle(x0):
    return lambda x_t, t, x_in: Prediction(x0=x0.clone())


@pytest.mark.parametrize("steps", [1, 3, 15])
def test_oracle_sampler_returns_x0(steps):
    sched = resshift_schedule()
    x0, x_in = data()
    out = sample(
        oracle(x0), x_in, sched, steps, generator=torch.Generator().manual_seed(1), options=SamplerOptions(clip=False)
    )
    assert torch.equal(out, x0)
    out = sample(
        oracle(x0), x_in, sched, steps, generator=torch.Generator().manual_seed(1), options=SamplerOptions(clip=True)
    )
    assert torch.equal(out, x0)


def test_sampler_clips_prediction():
    sched = resshift_schedule()
    x0, x_in = data()
    out = sample(oracle(3 * x0), x_in, sched, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, (3 * x0).clamp(-1, 1))


def test_sampler_visits_step_pairs_and_starts_from_prior():
    sched = resshift_schedule()
    x0, x_in = data(dtype=torch.float32)
    seen = []

    def model_fn(x_t, t, x_in_):
        seen.append((t.clone(), x_t.clone()))
        assert t.dtype == torch.long and t.shape == (x_in.shape[0],)
        return Prediction(x0=x0)

    sample(model_fn, x_in, sched, 5, generator=torch.Generator().manual_seed(7))
    assert [int(t[0]) for t, _ in seen] == [p[0] for p in step_pairs(15, 5)]
    z = torch.randn(x_in.shape, generator=torch.Generator().manual_seed(7), dtype=x_in.dtype)
    torch.testing.assert_close(seen[0][1], x_in + 2.0 * math.sqrt(0.99) * z)


def test_sampler_full_steps_is_resshift_chain():
    """steps = T walks t → t-1 with ResShift's posterior and a fresh draw per step."""
    sched = resshift_schedule()
    _, x_in = data()

    def model_fn(x_t, t, x_in_):  # a non-trivial, x_t-dependent prediction
        return 0.5 * x_t + 0.1 * x_in_

    g = torch.Generator().manual_seed(11)
    out = sample(
        lambda *a: Prediction(x0=model_fn(*a)), x_in, sched, 15, generator=g, options=SamplerOptions(clip=False)
    )
    g = torch.Generator().manual_seed(11)
    x = x_in + 2.0 * math.sqrt(float(sched.eta[-1])) * torch.randn(x_in.shape, generator=g, dtype=x_in.dtype)
    for t in range(14, 0, -1):
        pred = model_fn(x, None, x_in)
        eta_t, eta_s, a = sched.eta[t], sched.eta[t - 1], sched.alpha[t]
        x = (
            eta_s / eta_t * x
            + a / eta_t * pred
            + torch.sqrt(4.0 * eta_s * a / eta_t) * torch.randn(x_in.shape, generator=g, dtype=x_in.dtype)
        )
    torch.testing.assert_close(out, model_fn(x, None, x_in), rtol=0, atol=1e-12)


def test_sampler_determinism_and_x_T():
    sched = resshift_schedule()
    _, x_in = data()

    def model_fn(x_t, t, x_in_):
        return Prediction(x0=0.5 * x_t)

    a = sample(model_fn, x_in, sched, 4, generator=torch.Generator().manual_seed(5))
    b = sample(model_fn, x_in, sched, 4, generator=torch.Generator().manual_seed(5))
    c = sample(model_fn, x_in, sched, 4, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # one step from a given x_T is deterministic: the prediction at t = T-1
    x_T = torch.zeros_like(x_in) + 0.25
    assert torch.equal(sample(model_fn, x_in, sched, 1, options=SamplerOptions(x_T=x_T)), 0.5 * x_T)
    with pytest.raises(ValueError, match="x_T shape"):
        sample(model_fn, x_in, sched, 1, options=SamplerOptions(x_T=x_T[:1]))
    for bad in (0, 16):
        with pytest.raises(ValueError, match="sampling steps"):
            sample(model_fn, x_in, sched, bad)


# ---------------------------------------------------------------- training loss


@pytest.mark.parametrize("spec", ["full", "fixed-r2", "lin_increase", "poly_decrease-p3"])
@pytest.mark.parametrize("loss", ["l1", "l2"])
def test_training_loss_oracle_zero(spec, loss):
    sched = resshift_schedule()
    x0, x_in = data()
    noise = torch.randn_like(x0)
    t = torch.tensor([0, 11])
    rank_spec = RankSpec.parse(spec)
    seen = {}

    def network(x_t, t_, x_in_):
        seen["x_t"] = x_t
        return Prediction(x0=x0)

    value = training_loss(network, TrainingExample(x0, x_in, t, noise), sched, loss=loss, rank_spec=rank_spec)
    assert value.ndim == 0 and float(value) == 0.0
    expected = q_sample(x0, project_residual(x_in - x0, t, sched.T, rank_spec), t, noise, sched)
    torch.testing.assert_close(seen["x_t"], expected, rtol=0, atol=0)
    if spec != "full":  # the low-rank variant really injects a different residual
        assert not torch.allclose(seen["x_t"], q_sample(x0, x_in - x0, t, noise, sched))


def test_training_loss_zero_network():
    sched = resshift_schedule()
    x0, x_in = data()
    noise = torch.randn_like(x0)
    t = torch.tensor([3, 14])

    def zero(x_t, t_, x_in_):
        return Prediction(x0=torch.zeros_like(x_t))

    l1 = training_loss(zero, TrainingExample(x0, x_in, t, noise), sched, loss="l1")
    l2 = training_loss(zero, TrainingExample(x0, x_in, t, noise), sched)  # default: ResShift's MSE
    assert math.isclose(float(l1), float(x0.abs().mean()), rel_tol=1e-6)
    assert math.isclose(float(l2), float((x0**2).mean()), rel_tol=1e-6)
    with pytest.raises(ValueError, match="loss"):
        training_loss(zero, TrainingExample(x0, x_in, t, noise), sched, loss="huber")
