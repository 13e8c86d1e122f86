import numpy as np
import pytest
import torch

from lrdm.core.diffusion import noise_from_residual, official_predictions, project_residual
from lrdm.core.prediction import Prediction
from lrdm.core.sampling import sample, step_pairs
from lrdm.core.schedules import ResidualSchedule, residual_schedule, schedule_from_coefficients
from lrdm.vocab import FULL_RANK, RankSpec

T = 1000


def ddim_alphas_cumprod(T: int, beta_start: float = 1e-4, beta_end: float = 2e-2) -> torch.Tensor:
    """DDPM/DDIM's linear-β schedule ``ᾱ^DDIM_t = Π_{i≤t} (1 - β_i)``, ``(T,)`` float64."""
    return torch.cumprod(1.0 - torch.linspace(beta_start, beta_end, T, dtype=torch.float64), dim=0)


def schedule_from_ddim(alphas_cumprod: torch.Tensor) -> ResidualSchedule:
    """RDDM Eq. 17: ``ᾱ_t = 1 - sqrt(ᾱ^DDIM_t)``, ``β̄²_t = 1 - ᾱ^DDIM_t`` (with ``I_in = 0`` RDDM's forward
    process is DDIM's)."""
    zero = torch.zeros(1, dtype=torch.float64)
    alpha = torch.diff(1.0 - alphas_cumprod.sqrt(), prepend=zero)
    return schedule_from_coefficients(alpha, torch.diff(1.0 - alphas_cumprod, prepend=zero))


def test_schedule_from_ddim_eq17():
    ac = ddim_alphas_cumprod(1000)
    s = schedule_from_ddim(ac)
    assert torch.allclose(1 - s.alpha_bar, ac.sqrt())
    assert torch.allclose(s.beta2_bar, 1 - ac)
    # with I_in = 0, RDDM's I_t = (1 - ᾱ_t) I_0 + β̄_t ε is DDIM's forward sample
    x0, eps = torch.randn(2, 3, 4, 4, dtype=torch.float64).unbind(0)
    t = 437
    rddm = (1 - s.alpha_bar[t]) * x0 + s.beta_bar[t] * eps
    ddim = ac[t].sqrt() * x0 + (1 - ac[t]).sqrt() * eps
    assert torch.allclose(rddm, ddim)


def test_step_pairs():
    assert step_pairs(1000, 5) == [(999, 799), (799, 599), (599, 399), (399, 199), (199, -1)]
    assert step_pairs(1000, 1) == [(999, -1)]
    pairs = step_pairs(1000, 3)
    assert pairs[0][0] == 999 and pairs[-1][1] == -1
    assert [p[1] for p in pairs[:-1]] == [665, 332]
    for steps in (2, 7, 10, 1000):
        times = [p[0] for p in step_pairs(1000, steps)] + [-1]
        assert len(set(times)) == steps + 1 and times == sorted(times, reverse=True)
    for bad in (0, -1, 1001, 2.0):
        with pytest.raises(ValueError, match="sampling steps"):
            step_pairs(1000, bad)


def data(seed=0, shape=(2, 3, 8, 8), scale=0.5):
    g = torch.Generator().manual_seed(seed)
    x0 = (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * 0.8
    x_in = x0 + scale * (torch.rand(shape, generator=g, dtype=torch.float64) - 0.5)
    return x0, x_in


def oracle_model(x0, schedule, rank_spec=FULL_RANK):
    """The exact residual Q_{k(t)}(I_in - I_0) and the noise that explains the current I_t."""

    def model_fn(x_t, t, x_in):
        residual = project_residual(x_in - x0, t, schedule.T, rank_spec)
        alpha_bar = schedule.alpha_bar[t].to(x_t)[:, None, None, None]
        beta_bar = schedule.beta_bar[t].to(x_t)[:, None, None, None]
        noise = (x_t - x0 - alpha_bar * residual) / beta_bar
        return residual, noise

    return model_fn


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 10])
@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("beta2_sum", [1.0, 0.01])
def test_oracle_recovers_clean_image(steps, eta, beta2_sum):
    s = residual_schedule(T=T, beta2_sum=beta2_sum)
    x0, x_in = data()
    out = sample(oracle_model(x0, s), x_in, s, steps, eta=eta, generator=torch.Generator().manual_seed(1), clip=False)
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-9)
    # with clipping on and data inside [-1, 1] the result is the same
    clipped = sample(oracle_model(x0, s), x_in, s, steps, eta=eta, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(clipped, x0, rtol=0, atol=1e-9)


@pytest.mark.parametrize("spec", ["fixed-r2", "poly_decrease-p3", "lin_increase"])
def test_oracle_recovers_clean_image_low_rank(spec):
    s = residual_schedule(T=T)
    x0, x_in = data(1)
    out = sample(
        oracle_model(x0, s, RankSpec.parse(spec)), x_in, s, 5, clip=False, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(out, x0, rtol=0, atol=1e-9)


def test_deterministic_trajectory_follows_eq13():
    s = residual_schedule(T=T)
    _, x_in = data(2)
    seen = []

    def model_fn(x_t, t, x_in):  # a fixed, non-oracle function of its inputs
        seen.append((x_t.clone(), int(t[0])))
        return 0.5 * torch.tanh(x_t - x_in) + 0.01, 0.3 * torch.sin(3 * x_t) + 1e-4 * t[:, None, None, None]

    out = sample(model_fn, x_in, s, 5, eta=0.0, generator=torch.Generator().manual_seed(3), clip=False)
    pairs = step_pairs(T, 5)
    assert [t for _, t in seen] == [p[0] for p in pairs]
    z = torch.randn(x_in.shape, generator=torch.Generator().manual_seed(3), dtype=x_in.dtype)
    torch.testing.assert_close(seen[0][0], x_in + s.beta_bar[-1] * z)
    for (x_t, t), (x_next, _), (_, s_) in zip(seen, seen[1:] + [(None, None)], pairs):
        res, eps = model_fn(x_t, torch.full((2,), t), x_in)
        seen.pop()  # drop the call made for checking
        if s_ < 0:
            torch.testing.assert_close(out, x_t - s.alpha_bar[t] * res - s.beta_bar[t] * eps)
        else:
            want = x_t - (s.alpha_bar[t] - s.alpha_bar[s_]) * res - (s.beta_bar[t] - s.beta_bar[s_]) * eps
            torch.testing.assert_close(x_next, want)


def test_sampler_is_deterministic_by_generator_and_eta():
    s = residual_schedule(T=T)
    _, x_in = data(3)
    model_fn = lambda x_t, t, x_in: (0.1 * x_t, 0.1 * x_in)  # noqa: E731
    a = sample(model_fn, x_in, s, 4, eta=1.0, generator=torch.Generator().manual_seed(7))
    b = sample(model_fn, x_in, s, 4, eta=1.0, generator=torch.Generator().manual_seed(7))
    c = sample(model_fn, x_in, s, 4, eta=1.0, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.abs().max()) <= 1.0  # clipped
    with pytest.raises(ValueError, match="eta"):
        sample(model_fn, x_in, s, 4, eta=1.5)


@pytest.mark.parametrize("steps", [1, 4, 10])
def test_rddm_from_ddim_equals_ddim_sampling(steps):
    """RDDM Eq. 17: with I_in = 0 and noise prediction, RDDM sampling is DDIM sampling."""
    ac = ddim_alphas_cumprod(T)
    s = schedule_from_ddim(ac)

    def eps_model(x, t):
        return 0.4 * torch.tanh(x) + 0.05 * torch.cos(t.to(x.dtype) / 100)[:, None, None, None]

    class NoiseNet:
        def __call__(self, x_t, t, x_in):
            return None, eps_model(x_t, t)

    shape = (2, 3, 6, 6)
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    rddm = sample(NoiseNet(), torch.zeros(shape, dtype=torch.float64), s, steps, clip=False, x_T=x_T)

    x = x_T  # independent DDIM (η = 0) on the same step list
    padded = torch.cat([torch.ones(1, dtype=torch.float64), ac])  # ᾱ^DDIM_{-1} = 1
    for t, t_next in step_pairs(T, steps):
        eps = eps_model(x, torch.full((2,), t))
        x0 = (x - (1 - ac[t]).sqrt() * eps) / ac[t].sqrt()
        a_next = padded[t_next + 1]
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    torch.testing.assert_close(rddm, x, rtol=1e-9, atol=1e-9)


def test_sampler_rejects_mismatched_start():
    s = residual_schedule(T=10)
    x_in = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match="x_T shape"):
        sample(lambda *a: (a[0], a[0]), x_in, s, 2, x_T=torch.zeros(1, 3, 5, 5))


def official_float32_times(T, steps):
    """Independent re-implementation of the official step list: torch's CPU float32 linspace (each point is
    ``start + i·step`` in the first half and ``end - (n-1-i)·step`` in the second, in float32), truncated."""
    n = steps + 1
    start, end = np.float32(-1), np.float32(T - 1)
    step = np.float32((end - start) / np.float32(n - 1))
    points = [start + np.float32(i) * step if i < n // 2 else end - np.float32(n - 1 - i) * step for i in range(n)]
    return [int(p) for p in np.asarray(points, dtype=np.float32)][::-1]


def test_step_pairs_equal_official_float32_construction_for_every_steps():
    float64_differs = 0
    for steps in range(1, T + 1):
        times = official_float32_times(T, steps)
        assert step_pairs(T, steps) == list(zip(times[:-1], times[1:])), steps
        float64 = torch.linspace(-1, T - 1, steps + 1, dtype=torch.float64).long().tolist()[::-1]
        float64_differs += times != float64
    assert float64_differs == 156  # the count: S = 26 and 155 other values
    float64_26 = torch.linspace(-1, T - 1, 27, dtype=torch.float64).long().tolist()[::-1]
    assert step_pairs(T, 26) != list(zip(float64_26[:-1], float64_26[1:]))


def test_sm_res_and_sm_n_follow_official_clipping_order():
    s = residual_schedule(T=T, beta2_sum=0.01)
    x_in = torch.full((1, 3, 2, 2), 0.9)
    x_t = x_in + 0.1 * torch.ones_like(x_in)
    t = torch.tensor([500])
    big = torch.full_like(x_in, 3.0)
    res, eps, x0 = official_predictions(Prediction(res=big), x_t, x_in, t, s)
    assert float(res.max()) == 1.0  # residual clipped first ...
    torch.testing.assert_close(eps, noise_from_residual(x_t, x_in, res, t, s))  # ... noise from the clipped one
    torch.testing.assert_close(x0, (x_in - res).clamp(-1, 1))
    res, eps, x0 = official_predictions(Prediction(noise=-big * 10), x_t, x_in, t, s)
    assert float(x0.max()) == 1.0  # Î_0 clipped first ...
    torch.testing.assert_close(res, (x_in - x0).clamp(-1, 1))  # ... residual from the clipped Î_0
    torch.testing.assert_close(eps, -big * 10)
