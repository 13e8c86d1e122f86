"""What one run's network costs, counted from the network as this project builds it, on PyTorch's ``meta``
device (shapes only, no data), so that the paper's 72.5 M-parameter network at 256² costs seconds on a CPU:

* :func:`train_step_flops`: FLOPs of one optimiser step (``grad_accum`` micro-batches of ``batch_size``
  images, forward and backward of the network), counted by ``torch.utils.flop_counter.FlopCounterMode``;
* :func:`forward_flops`: FLOPs of one network call on one image; a restore at ``n`` sampling steps calls the
  network ``n`` times (both samplers call it once per step; ``tests/test_plan.py`` checks it against a real
  restore);
* :func:`saved_activation_bytes`: the tensors autograd keeps for the backward pass of one micro-batch
  (``torch.autograd.graph.saved_tensors_hooks``), parameters left out;
* :func:`checkpoint_bytes` and :func:`model_file_bytes`: the size of ``checkpoints/step-N.pt`` and ``model.pt``
  as :mod:`lrdm.training.trainer` writes them (model, EMA, Adam state), from the same structures on ``meta``.

The low-rank projection and the schedule arithmetic are not counted: they are not matrix products of the
network, and ``FlopCounterMode`` counts matrix products and convolutions only.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from ema_pytorch import EMA
from torch.utils.flop_counter import FlopCounterMode

from lrdm.config import TrainConfig
from lrdm.core.nets import TermNetwork, count_parameters
from lrdm.core.process import build_network, build_process

META = torch.device("meta")
CHANNELS = 3
"""Colour channels of the network's input and condition."""
ZIP_ALIGNMENT = 64
"""``torch.save`` aligns every tensor record of its zip archive to this many bytes (at most this much padding)."""


def meta_network(config: TrainConfig) -> TermNetwork:
    """The run's network (:func:`lrdm.core.process.build_network`) with its parameters on the ``meta`` device."""
    process = build_process(config)  # the schedule is computed on the CPU; only the network goes to meta
    with META:
        return build_network(config, process)


def parameter_bytes(network: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in network.parameters())


def _inputs(batch: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.empty(batch, CHANNELS, *size, device=META)
    t = torch.zeros(batch, dtype=torch.long, device=META)
    return x, t, x


def _loss(network: TermNetwork, batch: int, size: tuple[int, int]) -> torch.Tensor:
    out = network(*_inputs(batch, size))
    return sum(term.mean() for term in out.terms().values())


def forward_flops(network: TermNetwork, size: tuple[int, int]) -> int:
    """FLOPs of one network call (every term it predicts) on one ``size`` = (height, width) image."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(*_inputs(1, size))
    return counter.get_total_flops()


def train_step_flops(network: TermNetwork, config: TrainConfig, size: tuple[int, int]) -> int:
    """FLOPs of one optimiser step: ``grad_accum`` micro-batches of ``batch_size`` images, forward and backward."""
    with FlopCounterMode(display=False) as counter:
        for _ in range(config.grad_accum):
            _loss(network, config.batch_size, size).backward()
    network.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def saved_activation_bytes(network: TermNetwork, batch: int, size: tuple[int, int]) -> int:
    """Bytes of the tensors autograd saves for the backward pass of one micro-batch (each storage once; the
    parameters, which are counted apart, left out)."""
    parameters = {p.untyped_storage()._cdata for p in network.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage._cdata not in parameters:
            saved[storage._cdata] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = _loss(network, batch, size)
    del loss
    return sum(saved.values())


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)


def _emptied(value: Any) -> Any:
    """``value`` with every tensor replaced by an empty one of its dtype (state-dict metadata kept)."""
    if isinstance(value, torch.Tensor):
        return torch.empty(0, dtype=value.dtype)
    if isinstance(value, dict):
        out = type(value)((key, _emptied(item)) for key, item in value.items())
        if hasattr(value, "_metadata"):
            out._metadata = value._metadata
        return out
    if isinstance(value, list | tuple):
        return type(value)(_emptied(item) for item in value)
    return value


def saved_bytes(state: dict[str, Any]) -> int:
    """Bytes ``torch.save(state)`` writes, for a state whose tensors may be on ``meta``: the archive of the
    state with empty tensors, plus every tensor's data, plus one alignment block per tensor record (an upper
    bound of its padding)."""
    buffer = io.BytesIO()
    torch.save(_emptied(state), buffer)
    tensors = list(_tensors(state))
    return len(buffer.getvalue()) + sum(t.numel() * t.element_size() + ZIP_ALIGNMENT for t in tensors)


def checkpoint_state(network: TermNetwork, config: TrainConfig) -> dict[str, Any]:
    """The structure of ``checkpoints/step-N.pt`` (:func:`lrdm.training.rundir.save_checkpoint`) on ``meta``:
    the model, the EMA (as the trainer builds it) and Adam after one step."""
    with META:
        ema = EMA(network, beta=config.ema_decay, update_after_step=config.ema_start,
                  update_every=config.ema_update_every, include_online_model=False)  # fmt: skip
        optimizer = torch.optim.Adam(network.parameters(), lr=config.lr, betas=config.adam_betas)
        for p in network.parameters():
            p.grad = torch.zeros_like(p)
        optimizer.step()
    network.zero_grad(set_to_none=True)
    return {"step": config.steps, "model": network.state_dict(), "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict()}  # fmt: skip


def checkpoint_bytes(network: TermNetwork, config: TrainConfig) -> int:
    """Size of one ``checkpoints/step-N.pt`` of the run."""
    return saved_bytes(checkpoint_state(network, config))


def model_file_bytes(network: TermNetwork, config: TrainConfig) -> int:
    """Size of the run's ``model.pt`` (config and EMA weights)."""
    return saved_bytes({"config": config.to_dict(), "ema": network.state_dict(), "step": config.steps})


@dataclass(frozen=True)
class RunCost:
    """What one run's network costs (see the module docstring); bytes and FLOPs are exact counts."""

    parameters: int
    parameter_bytes: int
    step_flops: int
    restore_step_flops: int
    """FLOPs of one sampling step (one network call) on one image of the evaluation size."""
    activation_bytes: int
    checkpoint_bytes: int
    model_bytes: int
    run_bytes: int
    """``keep_checkpoints`` checkpoints and ``model.pt``: what a finished run holds."""
    gpu_bytes: int
    """Parameters, gradients, Adam's two moments, the EMA copy and the saved activations of one micro-batch."""


ADAM_MOMENTS = 2
TRAINING_COPIES = 1 + 1 + ADAM_MOMENTS + 1
"""Parameter-sized tensors a training process holds: weights, gradients, Adam's moments, the EMA weights."""


def run_cost(config: TrainConfig, train_size: tuple[int, int], eval_size: tuple[int, int]) -> RunCost:
    """Counts :class:`RunCost` for the run ``config`` training on ``train_size`` images and restoring
    ``eval_size`` ones (both (height, width))."""
    network = meta_network(config)
    checkpoint = checkpoint_bytes(network, config)
    model = model_file_bytes(network, config)
    activations = saved_activation_bytes(network, config.batch_size, train_size)
    return RunCost(
        parameters=count_parameters(network),
        parameter_bytes=parameter_bytes(network),
        step_flops=train_step_flops(network, config, train_size),
        restore_step_flops=forward_flops(network, eval_size),
        activation_bytes=activations,
        checkpoint_bytes=checkpoint,
        model_bytes=model,
        run_bytes=config.keep_checkpoints * checkpoint + model,
        gpu_bytes=TRAINING_COPIES * parameter_bytes(network) + activations,
    )
