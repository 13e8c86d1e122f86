"""Conditional UNets for residual diffusion, one per backbone (:data:`lrdm.vocab.BACKBONES`).

The network sees ``concat(I_t, I_in)`` (6 channels) and the timestep ``t`` and returns a
:class:`lrdm.core.prediction.Prediction` that sets the terms it predicts (``res``, ``noise`` for RDDM; ``x0``
for ResShift).  The paper's size is ``dim=64, dim_mults=(1, 2, 4, 8)``.

* ``ddpm_unet`` (:class:`ConditionalUNets`): denoising-diffusion-pytorch 2.x ``Unet``; ``two_net`` gives every
  term its own UNet, ``one_net`` shares one UNet whose output channels are split.
* ``conv_unet`` (:class:`ConditionalUNets` too): :class:`lrdm.core.convunet.ConvUNet`, a convolutional UNet
  with attention only at its coarsest level and no normalisation in its blocks, for CPU-sized checks;
  ``two_net`` and ``one_net`` as for ``ddpm_unet``.
* ``rddm_unetres`` (:class:`OfficialTermNetwork`): the official RDDM ``UnetRes`` (:mod:`lrdm.core.unetres`),
  whose parameter names equal the official ones.  Two terms: ``two_net`` -> ``share_encoder = 0`` (two UNets),
  ``one_net`` -> ``share_encoder = 1`` (shared encoder, two decoders); one term -> ``share_encoder = -1``.
"""

from __future__ import annotations

from typing import Any

import torch
from denoising_diffusion_pytorch.denoising_diffusion_pytorch import Unet
from torch import nn

from lrdm.core.convunet import ConvUNet
from lrdm.core.prediction import TERMS, Prediction
from lrdm.core.unetres import UnetRes
from lrdm.errors import ConfigError
from lrdm.vocab import BACKBONES, NETWORKS, check_choice

IMAGE_CHANNELS = 3


def check_network(network: str) -> None:
    check_choice(network, NETWORKS, "network")


UNET_BACKBONES: dict[str, type[nn.Module]] = {"ddpm_unet": Unet, "conv_unet": ConvUNet}
"""The backbones :class:`ConditionalUNets` builds, by name; each is called as ``unet(x, time)``."""


FUSED_ATTENTION_OPTIONS: dict[str, dict[str, bool]] = {"ddpm_unet": {"flash_attn": True}, "conv_unet": {}}
"""Constructor options that make each backbone's full attention use
:func:`torch.nn.functional.scaled_dot_product_attention` (``conv_unet`` always does); they add no parameters."""


def _unet(backbone: str, dim: int, dim_mults: tuple[int, ...], out_channels: int) -> nn.Module:
    return UNET_BACKBONES[backbone](
        dim=dim,
        dim_mults=tuple(dim_mults),
        channels=2 * IMAGE_CHANNELS,
        out_dim=out_channels,
        **FUSED_ATTENTION_OPTIONS[backbone],
    )


class ConditionalUNets(nn.Module):
    """Predicts ``terms`` from ``(x_t, t, x_in)``.

    Args:
        terms: names of the predicted ``(B, 3, H, W)`` tensors, a subset of :data:`TERMS`.
        network: ``two_net`` (one UNet per term) or ``one_net`` (one UNet, channels split).
        backbone: a key of :data:`UNET_BACKBONES`.
        dim, dim_mults: UNet width and per-level multipliers; ``H`` and ``W`` must be divisible by
            ``2 ** (len(dim_mults) - 1)`` (see :attr:`downsample_factor`).
    """

    def __init__(
        self,
        terms: tuple[str, ...],
        network: str = "two_net",
        dim: int = 64,
        dim_mults: tuple[int, ...] = (1, 2, 4, 8),
        backbone: str = "ddpm_unet",
    ) -> None:
        super().__init__()
        check_network(network)
        if backbone not in UNET_BACKBONES:
            raise ValueError(f"ConditionalUNets builds the backbones {', '.join(UNET_BACKBONES)}, not {backbone!r}")
        if not terms or any(term not in TERMS for term in terms) or len(set(terms)) != len(terms):
            raise ValueError(f"terms must be distinct names from {TERMS}, got {terms}")
        if dim <= 0 or not dim_mults or any(m <= 0 for m in dim_mults):
            raise ValueError(f"dim and dim_mults must be positive, got dim={dim}, dim_mults={dim_mults}")
        self.terms = tuple(terms)
        self.network = network
        if network == "two_net":
            self.unets = nn.ModuleList(_unet(backbone, dim, dim_mults, IMAGE_CHANNELS) for _ in terms)
        else:
            self.unets = nn.ModuleList([_unet(backbone, dim, dim_mults, IMAGE_CHANNELS * len(terms))])
        self.downsample_factor = 2 ** (len(dim_mults) - 1)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, x_in: torch.Tensor) -> Prediction:
        """``x_t``, ``x_in``: ``(B, 3, H, W)`` in model space; ``t``: ``(B,)`` timesteps -> :class:`Prediction`
        setting :attr:`terms`, each ``(B, 3, H, W)``."""
        h = torch.cat([x_t, x_in], dim=1)
        time = t.to(h.dtype)
        if self.network == "two_net":
            return Prediction(**{term: unet(h, time) for term, unet in zip(self.terms, self.unets)})
        return Prediction(**dict(zip(self.terms, self.unets[0](h, time).split(IMAGE_CHANNELS, dim=1))))


OFFICIAL_TWO_TERMS = ("res", "noise")
"""The official head order of a two-output ``UnetRes``."""
NETWORK_SHARE_ENCODER = {"two_net": 0, "one_net": 1}
"""``share_encoder`` of a two-term official network, by the ``network`` config key."""
SINGLE_OUTPUT_SHARE_ENCODER = -1


def check_backbone(backbone: str) -> None:
    check_choice(backbone, BACKBONES, "backbone")


def share_encoder_for(terms: tuple[str, ...], network: str) -> int:
    """The official ``share_encoder`` mode for predicting ``terms`` with a ``network`` layout."""
    check_network(network)
    if len(terms) == 1:
        return SINGLE_OUTPUT_SHARE_ENCODER
    if tuple(terms) != OFFICIAL_TWO_TERMS:
        raise ValueError(f"the official network predicts one term or {OFFICIAL_TWO_TERMS}, got {terms}")
    return NETWORK_SHARE_ENCODER[network]


OFFICIAL_UNET = "unet"
"""The attribute of :class:`OfficialTermNetwork` holding its ``UnetRes``; left out of the state_dict's names."""


class OfficialTermNetwork(nn.Module):
    """The official ``UnetRes`` (held as :attr:`unet`) behind the :class:`Prediction` interface of
    :class:`ConditionalUNets`.

    ``forward(x_t, t, x_in)`` feeds ``concat(x_t, x_in)`` and the raw integer ``t`` to the official network
    and names its outputs (official head order: residual, noise).  The state_dict is the official
    ``UnetRes``'s: its names carry no ``unet.`` prefix (:func:`official_names`, :func:`held_names`), so official
    checkpoints load as they are.
    """

    def __init__(
        self, terms: tuple[str, ...], network: str = "two_net", dim: int = 64, dim_mults: tuple[int, ...] = (1, 2, 4, 8)
    ) -> None:
        super().__init__()
        self.unet = UnetRes(dim=dim, dim_mults=dim_mults, share_encoder=share_encoder_for(terms, network))
        self.terms = tuple(terms)
        self.network = network
        self.downsample_factor = 2 ** (len(dim_mults) - 1)
        self.register_state_dict_post_hook(official_names)
        self.register_load_state_dict_pre_hook(held_names)

    @property
    def share_encoder(self) -> int:
        """The official ``share_encoder`` mode of :attr:`unet`."""
        return self.unet.share_encoder

    @property
    def unets(self) -> tuple[nn.Module, ...]:
        """The independently compilable parts of :attr:`unet` (:func:`compile_unets`)."""
        return self.unet.unets

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, x_in: torch.Tensor) -> Prediction:
        """``x_t``, ``x_in``: ``(B, 3, H, W)`` in [-1, 1]; ``t``: ``(B,)`` integer steps -> :class:`Prediction`
        setting :attr:`terms`, each ``(B, 3, H, W)``."""
        outputs = self.unet(torch.cat([x_t, x_in], dim=1), t.long())
        return Prediction(**dict(zip(self.terms, outputs)))


def official_names(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    """State-dict post-hook of :class:`OfficialTermNetwork`: ``<prefix>unet.<name>`` -> ``<prefix><name>`` in
    place, in order (its entries are the last ones written)."""
    held = f"{prefix}{OFFICIAL_UNET}."
    for key in [key for key in state_dict if key.startswith(held)]:
        state_dict[prefix + key[len(held) :]] = state_dict.pop(key)


def held_names(module: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    """Load-state-dict pre-hook of :class:`OfficialTermNetwork`, the inverse of :func:`official_names`:
    ``<prefix><name>`` -> ``<prefix>unet.<name>`` in place.  The hook's other arguments (``local_metadata``,
    ``strict``, ``missing_keys``, ``unexpected_keys``, ``error_msgs``) are not needed."""
    held = f"{prefix}{OFFICIAL_UNET}."
    for key in [key for key in state_dict if key.startswith(prefix) and not key.startswith(held)]:
        state_dict[held + key[len(prefix) :]] = state_dict.pop(key)


TermNetwork = ConditionalUNets | OfficialTermNetwork


def build_term_network(
    backbone: str, terms: tuple[str, ...], network: str, dim: int, dim_mults: tuple[int, ...]
) -> TermNetwork:
    """The network of a backbone predicting ``terms`` (see the module docstring)."""
    check_backbone(backbone)
    try:
        if backbone == "rddm_unetres":
            return OfficialTermNetwork(terms, network=network, dim=dim, dim_mults=dim_mults)
        return ConditionalUNets(terms, network=network, dim=dim, dim_mults=dim_mults, backbone=backbone)
    except ValueError as err:  # the backbone's widths: GroupNorm groups, attention heads, halved channels
        raise ConfigError(
            f"config key 'dim' ({dim}) with dim_mults {list(dim_mults)} does not fit backbone {backbone!r}: {err}",
            "dim",
        ) from None


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def compile_unets(network: TermNetwork, mode: str = "default") -> TermNetwork:
    """``torch.compile`` each UNet of ``network`` in place (``nn.Module.compile``) and return ``network``.

    Parameter names, and so checkpoints, stay those of the eager network.  Shapes are static: a new image
    size compiles anew, because inductor (torch 2.14) fails on this UNet with dynamic shapes on CPU.
    ``mode``: ``torch.compile`` mode (``reduce-overhead`` records CUDA graphs).
    """
    for unet in network.unets:
        unet.compile(mode=mode, dynamic=False)
    return network
