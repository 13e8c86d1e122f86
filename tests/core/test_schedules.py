import pytest
import torch

from lrdm.core.schedules import (
    SHAPES,
    check_timesteps,
    device_table,
    gather,
    power_weights,
    residual_schedule,
)


@pytest.mark.parametrize("T", [1, 10, 1000])
@pytest.mark.parametrize("beta2_sum", [1.0, 0.01])
def test_default_schedule_invariants(T, beta2_sum):
    s = residual_schedule(T=T, beta2_sum=beta2_sum)
    for name in ("alpha", "alpha_bar", "beta2", "beta2_bar", "beta_bar"):
        value = getattr(s, name)
        assert value.shape == (T,) and value.dtype == torch.float64
    assert s.alpha.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert s.alpha_bar[-1].item() == pytest.approx(1.0, abs=1e-12)
    assert s.beta2_bar[-1].item() == pytest.approx(beta2_sum, rel=1e-12)
    assert torch.allclose(s.beta_bar**2, s.beta2_bar)
    assert torch.allclose(torch.cumsum(s.alpha, 0), s.alpha_bar)
    if T > 1:
        # α linearly decreasing ∝ (T - t), β² linearly increasing ∝ (t + 1)
        t = torch.arange(T, dtype=torch.float64)
        assert torch.allclose(s.alpha / s.alpha[0], (T - t) / T)
        assert torch.allclose(s.beta2 / s.beta2[0], t + 1)
        assert bool((torch.diff(s.alpha) < 0).all()) and bool((torch.diff(s.beta2) > 0).all())


def test_power_shapes():
    T = 7
    t = torch.arange(T, dtype=torch.float64)
    assert torch.allclose(power_weights(T, "mean"), torch.ones(T, dtype=torch.float64))
    assert torch.allclose(power_weights(T, "power", 2.0), (t + 1) ** 2)
    assert torch.allclose(power_weights(T, "power_decreasing", 3.0), (T - t) ** 3)
    s = residual_schedule(T=T, alpha_shape="mean", beta2_shape="power", beta2_power=2.0)
    assert torch.allclose(s.alpha, torch.full((T,), 1 / T, dtype=torch.float64))
    assert s.beta2_bar[-1].item() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"alpha_shape": "cosine"}, "valid choices"),
        ({"beta2_sum": 0.0}, "beta2_sum"),
        ({"T": 0}, "T must be"),
        ({"beta2_shape": "power", "beta2_power": -1.0}, "power"),
    ],
)
def test_invalid_schedule_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        residual_schedule(**kwargs)


def test_unknown_shape_lists_choices():
    with pytest.raises(ValueError) as err:
        power_weights(5, "quadratic")
    for name in SHAPES:
        assert name in str(err.value)


def test_gather_handles_clean_end_and_range():
    s = residual_schedule(T=10)
    like = torch.zeros(3, 2, 4, 4)
    values = gather(s.alpha_bar, torch.tensor([-1, 0, 9]), like)
    assert values.shape == (3, 1, 1, 1)
    assert values[0].item() == 0.0 and values[2].item() == pytest.approx(1.0)
    # gather reads nothing back to the host; an index out of range still never wraps around
    for bad in ([10], [-2]):
        with pytest.raises(IndexError):
            gather(s.alpha_bar, torch.tensor(bad), like)
        with pytest.raises(ValueError, match="timesteps"):  # the check at the API edge
            check_timesteps(torch.tensor(bad), s.T)
    with pytest.raises(ValueError, match="integers"):
        check_timesteps(torch.tensor([1.0]), s.T)
    assert check_timesteps(torch.tensor([[-1, 9]]), s.T).tolist() == [-1, 9]


def test_gather_tables_are_cached_per_device_and_dtype():
    s = residual_schedule(T=10)
    like = torch.zeros(2, 3, 4, 4)
    table = device_table(s.alpha_bar, like.device, like.dtype)
    assert table is device_table(s.alpha_bar, like.device, like.dtype)
    assert table.shape == (11,) and table[0] == 0 and table.dtype == torch.float32
    assert device_table(s.alpha_bar, like.device, torch.float64).dtype == torch.float64
    # values equal a float64 lookup cast afterwards, as before the cache
    t = torch.tensor([3, 7])
    expected = s.alpha_bar[t].float().reshape(2, 1, 1, 1)
    assert torch.equal(gather(s.alpha_bar, t, like), expected)
    changed = s.alpha_bar.clone()
    before = gather(changed, t, like)
    changed.mul_(2)  # a table changed in place is copied again
    assert torch.equal(gather(changed, t, like), 2 * before)
