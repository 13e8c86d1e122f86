"""A convolutional UNet for CPU-sized checks (backbone ``conv_unet``).

Residual blocks of two 3x3 convolutions with SiLU, the timestep applied as a per-channel scale and shift after
the first convolution, strided-convolution downsampling, nearest-neighbour upsampling and skip
concatenations; one self-attention layer at the coarsest level.  Unlike denoising-diffusion-pytorch's
``Unet`` it has no attention at the finer levels and no normalisation in its residual blocks, so a training
step costs about 0.4x that of a ``Unet`` of the same ``dim`` (docs/results.md).
Not the paper's network (that is ``rddm_unetres``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from lrdm.core.unetres import SINUSOID_MAX_PERIOD

TIME_EMBED_MULT = 4
"""Width of the timestep embedding, in multiples of ``dim``."""
BLOCKS_PER_LEVEL = 2
"""Residual blocks per encoder level (the decoder mirrors them)."""
ATTENTION_HEADS = 4
"""Heads of the coarsest level's self-attention (``dim * dim_mults[-1]`` must be divisible by it)."""


def timestep_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of timesteps ``t`` ``(B,)`` -> ``(B, dim)`` (``dim`` even; DDPM's embedding): frequencies
    ``exp(-k·ln(SINUSOID_MAX_PERIOD)/(dim/2))``, ``k = 0 … dim/2 - 1``.  The official network's
    :class:`lrdm.core.unetres.SinusoidalEmbedding` divides by ``dim/2 - 1`` instead; trained ``conv_unet`` runs
    depend on this spacing, so the two stay apart."""
    half = dim // 2
    freqs = torch.exp(-math.log(SINUSOID_MAX_PERIOD) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """``x`` ``(B, c_in, H, W)`` and a time embedding ``(B, time_dim)`` -> ``(B, c_out, H, W)``."""

    def __init__(self, c_in: int, c_out: int, time_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, 2 * c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        scale, shift = self.time(time)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.conv1(x) * (1 + scale) + shift)
        return F.silu(self.conv2(h)) + self.skip(x)


class MidAttention(nn.Module):
    """Pre-normalised multi-head self-attention over all ``H*W`` positions, added to its input: the one
    global operation of the network, at its coarsest level, ``(B, c, H, W)`` -> same.

    The projections are those of an ``nn.MultiheadAttention`` (its parameter names, so trained runs load), but the
    attention itself is :func:`torch.nn.functional.scaled_dot_product_attention`: fused kernels (flash or
    memory-efficient on a GPU, the blocked flash kernel on a CPU) that never hold the ``(H·W)²`` score matrix,
    3.7x faster than ``nn.MultiheadAttention``'s own path at 9,600 positions on one CPU thread (issue 28)."""

    def __init__(self, channels: int, heads: int = ATTENTION_HEADS) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, H·W, c)
        q, k, v = F.linear(tokens, self.attention.in_proj_weight, self.attention.in_proj_bias).chunk(3, dim=-1)
        heads = self.attention.num_heads
        # (B, heads, H·W, c / heads), contiguous: on a CPU, strided inputs send the call to the math kernel
        q, k, v = (part.unflatten(-1, (heads, c // heads)).transpose(1, 2).contiguous() for part in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)  # (B, H·W, c)
        return x + self.attention.out_proj(out).transpose(1, 2).reshape(b, c, h, w)


class ConvUNet(nn.Module):
    """``(x, time)`` -> output, with ``x`` ``(B, channels, H, W)`` and ``time`` ``(B,)`` timesteps (any dtype)
    -> ``(B, out_dim, H, W)``; ``H`` and ``W`` divisible by ``2 ** (len(dim_mults) - 1)``.

    The call signature is that of denoising-diffusion-pytorch's ``Unet``, so :class:`lrdm.core.nets.ConditionalUNets`
    uses either.
    """

    def __init__(self, dim: int, dim_mults: tuple[int, ...], channels: int, out_dim: int) -> None:
        super().__init__()
        if dim <= 0 or dim % 2 or not dim_mults or any(m <= 0 for m in dim_mults):
            raise ValueError(f"dim must be positive and even, dim_mults positive; got dim={dim}, dim_mults={dim_mults}")
        if (dim * dim_mults[-1]) % ATTENTION_HEADS:
            raise ValueError(
                f"dim * dim_mults[-1] = {dim * dim_mults[-1]} must be divisible by the "
                f"{ATTENTION_HEADS} attention heads"
            )
        self.dim = dim
        time_dim = TIME_EMBED_MULT * dim
        self.time_mlp = nn.Sequential(nn.Linear(dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.init_conv = nn.Conv2d(channels, dim, 3, padding=1)
        widths = [dim * m for m in dim_mults]
        last = len(widths) - 1
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = dim
        for level, width in enumerate(widths):
            blocks = []
            for _ in range(BLOCKS_PER_LEVEL):
                blocks.append(ResBlock(c, width, time_dim))
                c = width
            self.down.append(nn.ModuleList(blocks))
            self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1) if level < last else nn.Identity())
        self.mid = ResBlock(c, c, time_dim)
        self.mid_attention = MidAttention(c)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(widths))):
            width = widths[level]
            blocks = [ResBlock(c + width, width, time_dim)]
            blocks += [ResBlock(width, width, time_dim) for _ in range(BLOCKS_PER_LEVEL - 1)]
            self.up.append(nn.ModuleList(blocks))
            c = width
            if level > 0:
                self.upsample.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, widths[level - 1], 3, padding=1)
                    )
                )
                c = widths[level - 1]
            else:
                self.upsample.append(nn.Identity())
        self.final_conv = nn.Conv2d(c, out_dim, 3, padding=1)

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_features(time, self.dim).to(x.dtype))
        h = self.init_conv(x)
        skips = []
        for blocks, downsample in zip(self.down, self.downsample):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            h = downsample(h)
        h = self.mid_attention(self.mid(h, emb))
        for blocks, upsample in zip(self.up, self.upsample):
            h = torch.cat([h, skips.pop()], dim=1)
            for block in blocks:
                h = block(h, emb)
            h = upsample(h)
        return self.final_conv(h)
