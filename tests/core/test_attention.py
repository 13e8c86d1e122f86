"""Every backbone's full attention runs through ``scaled_dot_product_attention`` and equals the explicit
``softmax(q·kᵀ/√d)·v`` it replaces (issue 28)."""

from __future__ import annotations

import torch
from denoising_diffusion_pytorch.attend import Attend

from lrdm.core.convunet import MidAttention
from lrdm.core.nets import ConditionalUNets
from lrdm.core.unetres import HEAD_DIM, HEADS, SoftmaxAttention


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """``(B, heads, n, d)`` each -> ``(B, heads, n, d)``: the score matrix held whole."""
    return torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1) @ v


def test_conv_unet_attention_equals_multihead_attention_of_the_same_weights():
    torch.manual_seed(0)
    block = MidAttention(32).eval()
    x = torch.randn(2, 32, 12, 10)
    tokens = block.norm(x).flatten(2).transpose(1, 2)
    expected, _ = block.attention(tokens, tokens, tokens, need_weights=True)  # the explicit path: weights asked
    with torch.no_grad():
        got = block(x)
        want = x + expected.transpose(1, 2).reshape(x.shape)
    torch.testing.assert_close(got, want, atol=2e-6, rtol=1e-5)


def test_official_softmax_attention_equals_the_explicit_formula():
    torch.manual_seed(0)
    block = SoftmaxAttention(24).eval()
    x = torch.randn(2, 24, 9, 7)
    with torch.no_grad():
        q, k, v = (part.reshape(2, HEADS, HEAD_DIM, -1).transpose(-2, -1) for part in block.to_qkv(x).chunk(3, 1))
        out = explicit_attention(q, k, v, HEAD_DIM**-0.5)  # (B, heads, n, d)
        want = block.to_out(out.permute(0, 1, 3, 2).reshape(2, -1, 9, 7))
        got = block(x)
    torch.testing.assert_close(got, want, atol=2e-6, rtol=1e-5)


def test_ddpm_unet_is_built_with_fused_attention_equal_to_its_explicit_path():
    network = ConditionalUNets(("res", "noise"), network="one_net", dim=16, dim_mults=(1, 2), backbone="ddpm_unet")
    attends = [module for module in network.modules() if isinstance(module, Attend)]
    assert attends and all(module.flash for module in attends)
    torch.manual_seed(0)
    x = torch.randn(1, 6, 16, 16)
    t = torch.tensor([3.0])
    with torch.no_grad():
        fused = network.unets[0](x, t)
        for module in attends:
            module.flash = False
        explicit = network.unets[0](x, t)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)
