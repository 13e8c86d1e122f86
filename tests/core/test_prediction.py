"""The model contract (lrdm.core.prediction): every network returns a Prediction, the samplers clamp it once
and report each step to a callback."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lrdm.config import TrainConfig
from lrdm.core import resshift
from lrdm.core.prediction import Prediction, as_prediction
from lrdm.core.process import build_network, build_process
from lrdm.core.samplers import DEFAULT_SAMPLER, SamplerOptions, sampler_for
from lrdm.core.sampling import sample, step_pairs
from lrdm.core.schedules import residual_schedule
from lrdm.vocab import OBJECTIVES

T = 100
SIZE = 8


def images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(2, 3, SIZE, SIZE, generator=g) * 1.6 - 0.8
    return x0, x0 + 0.2 * torch.rand(2, 3, SIZE, SIZE, generator=g)


def rddm_network(objective: str, scale: float = 1.0):
    """A fixed function of its inputs that sets the terms of ``objective``; ``scale`` > 1 pushes it out of [-1, 1]."""

    def network(x_t, t, x_in):
        res = scale * torch.tanh(x_in - x_t) if objective != "pred_noise" else None
        noise = scale * torch.sin(x_t) if objective != "pred_res" else None
        return Prediction(res, noise)

    return network


class ClampCounter(TorchDispatchMode):
    """Counts the clamps torch runs while active."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func.overloadpacket is torch.ops.aten.clamp
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_rddm_callback_sees_every_step_once_with_the_state(objective):
    schedule = residual_schedule(T)
    _, x_in = images()
    states, inputs = [], []
    network = rddm_network(objective)

    def model_fn(x_t, t, x_in_):
        inputs.append(x_t)
        return network(x_t, t, x_in_)

    steps = 4
    out = sample(
        model_fn, x_in, schedule, steps, eta=1.0, generator=torch.Generator().manual_seed(0), callback=states.append
    )
    assert [state["i"] for state in states] == list(range(steps))
    assert [state["t"] for state in states] == [t for t, _ in step_pairs(T, steps)]
    assert all(state["x"] is x_t for state, x_t in zip(states, inputs))  # the state the prediction was made at
    assert all(isinstance(state["prediction"], Prediction) for state in states)
    assert all(value is not None for state in states for value in state["prediction"])  # completed: res, noise, x0
    assert torch.equal(states[-1]["prediction"].x0, out)


def test_resshift_callback_sees_every_step_once_with_the_state():
    schedule = resshift.resshift_schedule()
    x0, x_in = images(1)
    states = []
    steps = 5
    out = resshift.sample(
        lambda x_t, t, x_in_: Prediction(x0=3 * x0),
        x_in,
        schedule,
        steps,
        generator=torch.Generator().manual_seed(0),
        callback=states.append,
    )
    assert [(state["i"], state["t"]) for state in states] == [(i, t) for i, (t, _) in enumerate(step_pairs(15, steps))]
    assert all(list(state["prediction"].terms()) == ["x0"] for state in states)
    assert all(torch.equal(state["prediction"].x0, (3 * x0).clamp(-1, 1)) for state in states)  # clipped
    assert torch.equal(out, states[-1]["prediction"].x0)


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("clip", [True, False])
def test_rddm_sampler_clamps_each_clipped_term_once_per_step(objective, clip):
    """Two clamps a step (the residual and Î_0, in the official order), none without clipping; the
    prediction the step uses lies in [-1, 1]."""
    schedule = residual_schedule(T)
    # the SM-N denominator table (one clamp of its own) is made once per schedule, before counting
    assert float(schedule.one_minus_alpha_bar.min()) > 0
    _, x_in = images(2)
    states = []
    steps = 3
    with ClampCounter() as counter:
        sample(rddm_network(objective, scale=4.0), x_in, schedule, steps, clip=clip, callback=states.append)
    assert counter.count == (2 * steps if clip else 0)
    for state in states:
        res, x0 = state["prediction"].res, state["prediction"].x0
        assert (float(res.abs().max()) <= 1.0 and float(x0.abs().max()) <= 1.0) == clip


@pytest.mark.parametrize("clip", [True, False])
def test_resshift_sampler_clamps_once_per_step(clip):
    x0, x_in = images(3)
    with ClampCounter() as counter:
        resshift.sample(
            lambda *a: Prediction(x0=3 * x0), x_in, resshift.resshift_schedule(), 4, options=SamplerOptions(clip=clip)
        )
    assert counter.count == (4 if clip else 0)


@pytest.mark.parametrize(
    ("backbone", "process", "objective", "terms"),
    [
        ("rddm_unetres", "rddm", "pred_res_noise", ["res", "noise"]),
        ("conv_unet", "rddm", "pred_res", ["res"]),
        ("conv_unet", "rddm", "pred_noise", ["noise"]),
        ("conv_unet", "resshift", "pred_x0", ["x0"]),
    ],
)
def test_every_network_returns_a_prediction_of_its_process_terms(backbone, process, objective, terms):
    config = TrainConfig(
        crop=SIZE,
        dim=8,
        dim_mults=(1, 2),
        backbone=backbone,
        process=process,
        objective=objective,
        T=15 if process == "resshift" else T,
    )
    built = build_process(config)
    network = build_network(config, built)
    x0, x_in = images(4)
    with torch.no_grad():
        out = network(x0, torch.tensor([0, 5]), x_in)
    assert isinstance(out, Prediction) and list(out.terms()) == terms == list(built.terms)
    assert all(value.shape == x0.shape for value in out.terms().values())
    assert all(getattr(out, name) is None for name in Prediction._fields if name not in terms)
    states = []
    with torch.no_grad():
        sampler = sampler_for(DEFAULT_SAMPLER, built.name).function
        restored = sampler(network, x_in, built.schedule, 2, callback=states.append)
    assert len(states) == 2 and restored.shape == x_in.shape


def test_plain_tuples_are_read_as_predictions_and_other_outputs_are_refused():
    res, noise, x0 = torch.ones(1), torch.zeros(1), torch.full((1,), 2.0)
    assert as_prediction((res, noise)) == Prediction(res, noise, None)
    assert as_prediction((res, noise, x0)).x0 is x0
    with pytest.raises(TypeError, match="model_fn must return a Prediction .* got Tensor"):
        as_prediction(res)
    with pytest.raises(TypeError, match="got tuple of length 1"):
        as_prediction((res,))
    schedule = residual_schedule(T)
    _, x_in = images()
    with pytest.raises(ValueError, match="sets res, noise or both; this one sets neither"):
        sample(lambda *a: Prediction(), x_in, schedule, 2)
    with pytest.raises(
        ValueError, match=r"a ResShift network returns Prediction\(x0=...\) and nothing else, got \['res'\]"
    ):
        resshift.sample(lambda *a: Prediction(res=a[0]), x_in, resshift.resshift_schedule(), 2)
