"""The official training recipe as config keys (grad_accum, resize) and the official backbone in training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrdm.config import TrainConfig
from lrdm.core.nets import OfficialTermNetwork
from lrdm.data.paired import OFFICIAL_PAD_BLOCK, PairedImageDataset, official_resize
from lrdm.training.rundir import load_checkpoint, load_model
from lrdm.training.trainer import process_shard, train

ACCUMULATION_TOLERANCE = 1e-4
"""The same mean loss summed in two halves: float32 rounding only, which Adam's division by a small second
moment can magnify (1.2e-5 seen on one CPU); a different batch moves the weights by far more (checked below)."""


@pytest.mark.parametrize(
    ("extra", "share_encoder"),
    [({}, 0), ({"network": "one_net"}, 1), ({"objective": "pred_res"}, -1), ({"objective": "pred_noise"}, -1)],
)
def test_official_backbone_trains_loads_and_samples(tiny_config, tmp_path, extra, share_encoder):
    config = tiny_config.replace(backbone="rddm_unetres", steps=2, checkpoint_every=2, **extra)
    model = train(config, tmp_path / "run", progress=False)
    loaded, network, process = load_model(model)
    assert loaded == config and isinstance(network, OfficialTermNetwork)
    assert network.share_encoder == share_encoder
    x_in = torch.zeros(1, 3, 8, 8)
    x_T = torch.full_like(x_in, 0.5)
    with torch.no_grad():
        a = process.sample(network, x_in, 3, x_T=x_T, generator=torch.Generator().manual_seed(0))
        b = process.sample(network, x_in, 3, x_T=x_T, generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(a).all() and torch.equal(a, b)  # with x_T given nothing is drawn


def test_default_backbone_is_unchanged(tiny_config):
    assert TrainConfig().backbone == "ddpm_unet" and tiny_config.grad_accum == 1 and tiny_config.resize is None


def test_grad_accum_equals_one_step_on_the_whole_batch(tiny_config, tmp_path):
    accumulated = train(tiny_config.replace(batch_size=1, grad_accum=2, steps=2), tmp_path / "a", progress=False)
    whole = train(tiny_config.replace(batch_size=2, steps=2), tmp_path / "b", progress=False)
    a, b = load_checkpoint(accumulated)["ema"], load_checkpoint(whole)["ema"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=ACCUMULATION_TOLERANCE)
    one = load_checkpoint(train(tiny_config.replace(batch_size=1, steps=2), tmp_path / "c", progress=False))["ema"]
    assert max((a[k] - one[k]).abs().max().item() for k in a) > 10 * ACCUMULATION_TOLERANCE


def test_process_shard_takes_each_processes_share_of_every_micro_batch():
    assert process_shard(4, 1, 2, 1) == slice(2, 4)
    assert process_shard(4, 2, 2, 1).tolist() == [2, 3, 6, 7]
    assert process_shard(2, 3, 1, 0).tolist() == [0, 2, 4]


def test_official_resize_pads_then_resizes(rain_index):
    image = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    out = official_resize(image, OFFICIAL_PAD_BLOCK * 2)  # padded to 16 x 16: the resize is the identity
    assert out.shape == (16, 16, 3) and np.array_equal(out[:10, :12], image) and not out[10:].any()
    dataset = PairedImageDataset(rain_index, split="train", resize=16, flip=True)
    item = dataset.get_item(0, torch.Generator().manual_seed(0))
    assert item["input"].shape == (3, 16, 16) and item["target"].shape == (3, 16, 16)
    with pytest.raises(ValueError, match="excludes crop"):
        PairedImageDataset(rain_index, split="train", resize=16, crop=16)


def test_resize_view_trains(tiny_config, tmp_path):
    model = train(tiny_config.replace(resize=16, steps=1, checkpoint_every=1), tmp_path / "run", progress=False)
    assert model.exists()


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"grad_accum": 0}, "grad_accum"),
        ({"resize": 10, "dim_mults": (1, 2, 4)}, "resize"),
        ({"backbone": "x"}, "backbone"),
    ],
)
def test_recipe_keys_are_validated(values, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**values)
