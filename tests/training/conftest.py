"""Fixtures of the training tests."""

import pytest
import torch

from lrdm.training.rundir import load_checkpoint


@pytest.fixture
def assert_same_weights():
    """``assert_same_weights(a, b)``: the checkpoints or models at paths ``a`` and ``b`` hold the same EMA weights,
    bit for bit (the failure names the first tensor that differs)."""

    def check(a, b) -> None:
        first, second = (load_checkpoint(path)["ema"] for path in (a, b))
        assert first.keys() == second.keys()
        for key in first:
            assert torch.equal(first[key], second[key]), key

    return check
