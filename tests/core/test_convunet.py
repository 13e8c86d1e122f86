"""The ``conv_unet`` backbone (lrdm.core.convunet): shapes, conditioning, checkpoints, and its errors."""

import pytest
import torch

from lrdm.core.convunet import ConvUNet, timestep_features
from lrdm.core.nets import ConditionalUNets, build_term_network, count_parameters
from lrdm.training.rundir import load_model
from lrdm.training.trainer import train


def test_terms_are_split_from_one_unet_or_given_one_each():
    x_t, x_in = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    t = torch.tensor([0, 99])
    torch.manual_seed(0)
    one = build_term_network("conv_unet", ("res", "noise"), "one_net", 8, (1, 2))
    torch.manual_seed(0)
    two = build_term_network("conv_unet", ("res", "noise"), "two_net", 8, (1, 2))
    assert isinstance(one, ConditionalUNets) and len(one.unets) == 1 and len(two.unets) == 2
    assert all(isinstance(unet, ConvUNet) for unet in [*one.unets, *two.unets])
    for network in (one, two):
        out = network(x_t, t, x_in)
        assert list(out.terms()) == ["res", "noise"] and all(v.shape == x_t.shape for v in out.terms().values())
    # one_net: the two heads are the channels of one output, so they differ from each other
    out = one(x_t, t, x_in)
    assert not torch.equal(out.res, out.noise)
    assert count_parameters(two) > count_parameters(one)


def test_output_depends_on_the_timestep_and_on_the_condition():
    torch.manual_seed(0)
    network = build_term_network("conv_unet", ("res",), "two_net", 8, (1, 2))
    with torch.no_grad():  # a freshly initialised network: perturb the timestep projections to make them count
        for module in network.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_()
    x_t, x_in = torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16)
    base = network(x_t, torch.tensor([10]), x_in).res
    assert not torch.allclose(base, network(x_t, torch.tensor([900]), x_in).res)
    assert not torch.allclose(base, network(x_t, torch.tensor([10]), -x_in).res)


def test_timestep_features_are_sinusoids_of_the_timestep():
    feats = timestep_features(torch.tensor([0, 5]), 8)
    assert feats.shape == (2, 8)
    assert torch.equal(feats[0], torch.tensor([0.0] * 4 + [1.0] * 4))  # sin 0, cos 0
    assert torch.allclose(feats[1, 0], torch.sin(torch.tensor(5.0)))  # the lowest frequency is 1


def test_a_trained_conv_unet_run_loads_back_with_its_backbone(tiny_config, tmp_path):
    path = train(tiny_config.replace(steps=2, backbone="conv_unet"), tmp_path / "m", progress=False)
    config, network, process = load_model(path)
    assert config.backbone == "conv_unet" and isinstance(network.unets[0], ConvUNet)
    x = torch.zeros(1, 3, 16, 16)
    out = process.sample(network, x, 2)
    assert out.shape == x.shape and torch.isfinite(out).all()
    state = torch.load(path, weights_only=True)["ema"]
    assert all(torch.equal(state[k], v) for k, v in network.state_dict().items())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dim": 7, "dim_mults": (1, 2)}, "positive and even"),
        ({"dim": 6, "dim_mults": (1, 1)}, "divisible by the 4 attention heads"),
        ({"dim": 8, "dim_mults": ()}, "positive and even"),
    ],
)
def test_invalid_sizes_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvUNet(channels=6, out_dim=3, **kwargs)


def test_conditional_unets_refuses_a_backbone_it_does_not_build():
    with pytest.raises(ValueError, match="not 'rddm_unetres'"):
        ConditionalUNets(("res",), backbone="rddm_unetres")
