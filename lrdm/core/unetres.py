"""The official RDDM network (``UnetRes`` of nachifur/RDDM), rebuilt layer for layer from its description.

Parameter names and shapes equal the official ones, so the UnetRes part of an official checkpoint (the
``model.`` entries of a ``ResidualDiffusion`` state_dict) loads with ``load_state_dict(strict=True)``.

One UNet (:class:`OfficialUnet`), for ``dims = [dim, dim·m_1, …, dim·m_L]``:

* ``init_conv``: 7×7 conv, 6 channels ``concat(x_t, x_in)`` -> ``dim``;
* ``time_mlp``: parameter-free sinusoidal embedding of the **raw integer** ``t`` (width ``dim``), Linear to
  ``4·dim``, GELU, Linear;
* per level ``i`` (``downs.i``): two ResNet blocks, a residual pre-normalised linear attention, then a 4×4
  stride-2 conv to the next width (a 3×3 conv at the last level); every ResNet block is two
  weight-standardised 3×3 convs with GroupNorm(8) and SiLU, the time embedding as scale and shift after the
  first normalisation, and a 1×1 skip conv where the width changes;
* middle: ResNet block, residual pre-normalised softmax attention, ResNet block;
* decoder (``ups.i``, levels reversed): the same blocks on ``concat(current, skip)``, nearest 2× upsampling
  and a 3×3 conv (a plain 3×3 conv at the last level);
* ``final_res_block`` on ``concat(decoder output, init_conv output)`` and the 1×1 ``final_conv`` to 3 channels.

:class:`UnetRes` combines UNets by ``share_encoder``: ``0`` two UNets (``unet0`` -> residual, ``unet1`` ->
noise), ``-1`` one UNet with a single output, ``1`` one shared encoder with two decoders (a decoder without
skips for the residual, ``ups_no_skip``/``final_res_block_1``/``final_conv_1``, and the usual one for the
noise, ``ups``/``final_res_block_2``/``final_conv_2``).  Outputs are in the official head order
(residual, noise).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lrdm.vocab import check_choice

IMAGE_CHANNELS = 3
CONDITION_CHANNELS = 2 * IMAGE_CHANNELS  # concat(x_t, x_in)
GROUPS = 8  # GroupNorm groups of every ResNet block
HEADS = 4
HEAD_DIM = 32
TIME_WIDTH_FACTOR = 4  # time embedding width = 4·dim
INIT_KERNEL = 7
DOWN_KERNEL, DOWN_STRIDE, DOWN_PADDING = 4, 2, 1
SINUSOID_MAX_PERIOD = 10_000
NORM_EPS_FP32 = 1e-5
NORM_EPS_LOW_PRECISION = 1e-3  # the official code's epsilon for half/bfloat16 inputs
SHARE_ENCODER_MODES = (1, 0, -1)
"""1: one encoder, two decoders; 0: two UNets; -1: one UNet with one output."""


def norm_eps(x: torch.Tensor) -> float:
    return NORM_EPS_FP32 if x.dtype == torch.float32 else NORM_EPS_LOW_PRECISION


class StandardizedConv2d(nn.Conv2d):
    """Conv whose weight is standardised per output channel at every call (zero mean, unit biased variance)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        mean = weight.mean(dim=(1, 2, 3), keepdim=True)
        var = weight.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
        standardized = (weight - mean) * torch.rsqrt(var + norm_eps(x))
        return F.conv2d(x, standardized, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of ``(B, C, H, W)``, gain ``g`` ``(1, C, 1, 1)``, no bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.var(dim=1, unbiased=False, keepdim=True)
        mean = x.mean(dim=1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + norm_eps(x)) * self.g


class PreNormResidual(nn.Module):
    """``x + fn(norm(x))``; the wrapped module is ``fn.fn`` and the norm ``fn.norm`` (official names)."""

    def __init__(self, channels: int, fn: nn.Module) -> None:
        super().__init__()
        self.fn = nn.Module()
        self.fn.norm = ChannelLayerNorm(channels)
        self.fn.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn.fn(self.fn.norm(x)) + x


class SinusoidalEmbedding(nn.Module):
    """``t`` ``(B,)`` (raw step index) -> ``(B, dim)``: ``[sin(t·f_k), cos(t·f_k)]`` with
    ``f_k = exp(-k·ln(10000)/(dim/2 - 1))``, ``k = 0 … dim/2 - 1``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        rate = math.log(SINUSOID_MAX_PERIOD) / (half - 1)
        freqs = torch.exp(torch.arange(half, device=t.device) * -rate)
        angles = t[:, None] * freqs[None, :]
        return torch.cat((angles.sin(), angles.cos()), dim=-1)


class ConvBlock(nn.Module):
    """Standardised 3×3 conv, GroupNorm, optional ``x·(scale+1)+shift``, SiLU."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = StandardizedConv2d(dim_in, dim_out, 3, padding=1)
        self.norm = nn.GroupNorm(GROUPS, dim_out)

    def forward(self, x: torch.Tensor, scale_shift: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = self.norm(self.proj(x))
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return F.silu(x)


class ResBlock(nn.Module):
    """``block2(block1(x, time scale/shift)) + res_conv(x)``; ``mlp`` = SiLU, Linear(time -> 2·dim_out)."""

    def __init__(self, dim_in: int, dim_out: int, time_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * dim_out))
        self.block1 = ConvBlock(dim_in, dim_out)
        self.block2 = ConvBlock(dim_out, dim_out)
        self.res_conv = nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, time_emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.mlp(time_emb)[:, :, None, None].chunk(2, dim=1)
        return self.block2(self.block1(x, (scale, shift))) + self.res_conv(x)


def split_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, heads·d, H, W)`` -> ``(B, heads, d, H·W)``."""
    batch, _, height, width = x.shape
    return x.reshape(batch, HEADS, -1, height * width)


class LinearAttention(nn.Module):
    """Linear attention: queries softmax-normalised over features, keys over positions; output 1×1 conv +
    channel LayerNorm (``to_out.0``, ``to_out.1``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        hidden = HEADS * HEAD_DIM
        self.to_qkv = nn.Conv2d(dim, 3 * hidden, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden, dim, 1), ChannelLayerNorm(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        q, k, v = (split_heads(part) for part in self.to_qkv(x).chunk(3, dim=1))
        q = q.softmax(dim=-2) * HEAD_DIM**-0.5
        k = k.softmax(dim=-1)
        v = v / (height * width)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q)
        return self.to_out(out.reshape(batch, -1, height, width))


class SoftmaxAttention(nn.Module):
    """Full softmax attention over positions (``HEADS`` × ``HEAD_DIM``), output 1×1 conv.

    ``softmax(q·kᵀ/√d)·v`` as the official network computes it with two einsums, here through
    :func:`torch.nn.functional.scaled_dot_product_attention`, whose fused kernels never hold the ``n²`` score
    matrix, so memory grows linearly in pixels (issue 28; the official fixtures match as before)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        hidden = HEADS * HEAD_DIM
        self.to_qkv = nn.Conv2d(dim, 3 * hidden, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        # (B, heads, n, d), contiguous: on a CPU, strided inputs send the call to the math kernel (the n² matrix)
        q, k, v = (split_heads(part).transpose(-2, -1).contiguous() for part in self.to_qkv(x).chunk(3, dim=1))
        out = F.scaled_dot_product_attention(q, k, v, scale=HEAD_DIM**-0.5)  # (B, heads, n, d)
        return self.to_out(out.permute(0, 1, 3, 2).reshape(batch, -1, height, width))


def upsample(dim_in: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(dim_in, dim_out, 3, padding=1))


def level_widths(dim: int, dim_mults: tuple[int, ...]) -> list[tuple[int, int]]:
    """``(width in, width out)`` of each encoder level: consecutive pairs of ``[dim, dim·m_1, …]``."""
    widths = [dim, *(dim * m for m in dim_mults)]
    return list(zip(widths[:-1], widths[1:]))


def encoder_level(dim_in: int, dim_out: int, time_dim: int, is_last: bool) -> nn.ModuleList:
    change = (
        nn.Conv2d(dim_in, dim_out, 3, padding=1)
        if is_last
        else nn.Conv2d(dim_in, dim_out, DOWN_KERNEL, DOWN_STRIDE, DOWN_PADDING)
    )
    return nn.ModuleList(
        [
            ResBlock(dim_in, dim_in, time_dim),
            ResBlock(dim_in, dim_in, time_dim),
            PreNormResidual(dim_in, LinearAttention(dim_in)),
            change,
        ]
    )


def decoder_level(dim_in: int, dim_out: int, time_dim: int, is_last: bool, skip: bool) -> nn.ModuleList:
    """One decoder level (``dim_in``/``dim_out`` of the mirrored encoder level); ``skip``: blocks take the
    concatenated skip tensor (``dim_out + dim_in`` channels)."""
    block_in = dim_out + dim_in if skip else dim_out
    change = nn.Conv2d(dim_out, dim_in, 3, padding=1) if is_last else upsample(dim_out, dim_in)
    return nn.ModuleList(
        [
            ResBlock(block_in, dim_out, time_dim),
            ResBlock(block_in, dim_out, time_dim),
            PreNormResidual(dim_out, LinearAttention(dim_out)),
            change,
        ]
    )


def add_encoder(module: nn.Module, dim: int, dim_mults: tuple[int, ...]) -> None:
    """Registers ``init_conv``, ``time_mlp``, ``downs`` and the middle blocks on ``module`` (official names,
    at the module's top level): the part every official UNet shares."""
    time_dim = TIME_WIDTH_FACTOR * dim
    module.init_conv = nn.Conv2d(CONDITION_CHANNELS, dim, INIT_KERNEL, padding=INIT_KERNEL // 2)
    module.time_mlp = nn.Sequential(
        SinusoidalEmbedding(dim), nn.Linear(dim, time_dim), nn.GELU(), nn.Linear(time_dim, time_dim)
    )
    levels = level_widths(dim, dim_mults)
    module.downs = nn.ModuleList(encoder_level(a, b, time_dim, i == len(levels) - 1) for i, (a, b) in enumerate(levels))
    mid = levels[-1][1]
    module.mid_block1 = ResBlock(mid, mid, time_dim)
    module.mid_attn = PreNormResidual(mid, SoftmaxAttention(mid))
    module.mid_block2 = ResBlock(mid, mid, time_dim)


def encode(
    module: nn.Module, x: torch.Tensor, time: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Runs the layers of :func:`add_encoder`: ``x`` ``(B, 6, H, W)``, ``time`` ``(B,)`` ->
    (middle features, time embedding ``(B, 4·dim)``, ``init_conv`` output, skip tensors)."""
    x = module.init_conv(x)
    initial = x
    t = module.time_mlp(time)
    skips = []
    for block1, block2, attn, down in module.downs:
        x = block1(x, t)
        skips.append(x)
        x = attn(block2(x, t))
        skips.append(x)
        x = down(x)
    x = module.mid_block2(module.mid_attn(module.mid_block1(x, t)), t)
    return x, t, initial, skips


def decode_with_skips(ups: nn.ModuleList, x: torch.Tensor, t: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
    """Decoder with skip connections, concatenated as ``(current, skip)``; consumes ``skips`` from the end."""
    skips = list(skips)
    for block1, block2, attn, up in ups:
        x = block1(torch.cat((x, skips.pop()), dim=1), t)
        x = attn(block2(torch.cat((x, skips.pop()), dim=1), t))
        x = up(x)
    return x


def decode_without_skips(ups: nn.ModuleList, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    for block1, block2, attn, up in ups:
        x = up(attn(block2(block1(x, t), t)))
    return x


def decoder(dim: int, dim_mults: tuple[int, ...], skip: bool) -> nn.ModuleList:
    time_dim = TIME_WIDTH_FACTOR * dim
    levels = list(reversed(level_widths(dim, dim_mults)))
    return nn.ModuleList(decoder_level(a, b, time_dim, i == len(levels) - 1, skip) for i, (a, b) in enumerate(levels))


class OfficialUnet(nn.Module):
    """One official conditional UNet: ``(B, 6, H, W)``, ``(B,)`` raw steps -> ``(B, 3, H, W)``."""

    def __init__(self, dim: int, dim_mults: tuple[int, ...]) -> None:
        super().__init__()
        add_encoder(self, dim, dim_mults)
        self.ups = decoder(dim, dim_mults, skip=True)
        self.final_res_block = ResBlock(2 * dim, dim, TIME_WIDTH_FACTOR * dim)
        self.final_conv = nn.Conv2d(dim, IMAGE_CHANNELS, 1)

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        x, t, initial, skips = encode(self, x, time)
        x = decode_with_skips(self.ups, x, t, skips)
        return self.final_conv(self.final_res_block(torch.cat((x, initial), dim=1), t))


def heads_of(share_encoder: int) -> int:
    """Number of outputs of a ``share_encoder`` mode (2 for 1 and 0, 1 for -1)."""
    check_choice(share_encoder, SHARE_ENCODER_MODES, "share_encoder")
    return 1 if share_encoder == -1 else 2


class UnetRes(nn.Module):
    """The official ``UnetRes`` (conditional, 3 image channels, no self-conditioning).

    Args:
        dim: base width; dim_mults: per-level multipliers; ``H`` and ``W`` must be divisible by
            ``2 ** (len(dim_mults) - 1)``.
        share_encoder: 1, 0 or -1 (see the module docstring).
    """

    def __init__(self, dim: int = 64, dim_mults: tuple[int, ...] = (1, 2, 4, 8), share_encoder: int = 0) -> None:
        super().__init__()
        heads_of(share_encoder)
        if dim <= 0 or dim % GROUPS or not dim_mults or any(m <= 0 for m in dim_mults):
            raise ValueError(
                f"dim must be a positive multiple of {GROUPS} and dim_mults positive, got dim={dim}, "
                f"dim_mults={dim_mults}"
            )
        self.share_encoder = share_encoder
        self.dim = dim
        self.dim_mults = tuple(dim_mults)
        if share_encoder == 1:  # the official code registers these at the top level
            time_dim = TIME_WIDTH_FACTOR * dim
            add_encoder(self, dim, dim_mults)
            self.ups = decoder(dim, dim_mults, skip=True)
            self.ups_no_skip = decoder(dim, dim_mults, skip=False)
            self.final_res_block_1 = ResBlock(dim, dim, time_dim)
            self.final_conv_1 = nn.Conv2d(dim, IMAGE_CHANNELS, 1)
            self.final_res_block_2 = ResBlock(2 * dim, dim, time_dim)
            self.final_conv_2 = nn.Conv2d(dim, IMAGE_CHANNELS, 1)
        else:
            self.unet0 = OfficialUnet(dim, dim_mults)
            if share_encoder == 0:
                self.unet1 = OfficialUnet(dim, dim_mults)

    @property
    def unets(self) -> tuple[nn.Module, ...]:
        """The independently compilable parts (:func:`lrdm.core.nets.compile_unets`)."""
        if self.share_encoder == 1:
            return (self,)
        return (self.unet0, self.unet1) if self.share_encoder == 0 else (self.unet0,)

    def shared_forward(self, x: torch.Tensor, time: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``share_encoder = 1``: the skip-free decoder gives the residual, the decoder with skips the noise."""
        x, t, initial, skips = encode(self, x, time)
        res = self.final_conv_1(self.final_res_block_1(decode_without_skips(self.ups_no_skip, x, t), t))
        x = decode_with_skips(self.ups, x, t, skips)
        noise = self.final_conv_2(self.final_res_block_2(torch.cat((x, initial), dim=1), t))
        return res, noise

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``x`` = ``concat(x_t, x_in)`` ``(B, 6, H, W)`` in [-1, 1], ``time`` ``(B,)`` raw step indices ->
        outputs in the official head order, each ``(B, 3, H, W)``."""
        if self.share_encoder == 1:
            return self.shared_forward(x, time)
        if self.share_encoder == 0:
            return self.unet0(x, time), self.unet1(x, time)
        return (self.unet0(x, time),)
