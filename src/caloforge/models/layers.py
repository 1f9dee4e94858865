"""Building blocks of diffusion transformers (DiT, Peebles & Xie 2023, arXiv:2212.09748).

Tokens are ``(B, N, D)`` tensors; the conditioning vector ``c`` that drives every adaptive
LayerNorm is ``(B, D)``. Nothing here knows about noise schedules, detectors or meshes beyond
the integer token grid handed to the positional embeddings.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------------------------
# Positional embeddings
# ---------------------------------------------------------------------------------------------


def sincos_embedding(
    positions: torch.Tensor, dim: int, max_period: float = 10000.0
) -> torch.Tensor:
    """Fixed sin/cos features of real positions on an open (non-periodic) axis.

    ``[cos(w_j p), sin(w_j p)]`` with ``w_j = max_period^(-j / (dim / 2))``, the Transformer's
    (Vaswani et al. 2017) frequencies from 1 down to ``1 / max_period``.

    Args:
        positions: (M,) positions, e.g. token indices along z.
        dim: even output width.
        max_period: the longest period.

    Returns:
        (M, dim) float32, on the device of ``positions``.
    """
    if dim % 2:
        raise ValueError(f"sin/cos embedding width must be even, got {dim}")
    half = dim // 2
    j = torch.arange(half, dtype=torch.float32, device=positions.device)
    omega = torch.exp(-math.log(max_period) * j / half)  # (dim/2,)
    args = positions.float()[:, None] * omega[None]  # (M, dim/2)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # (M, dim)


def ring_embedding(n: int, dim: int) -> torch.Tensor:
    """Fixed sin/cos features of ``n`` equally spaced positions on a ring (a periodic axis).

    Position ``a`` sits at the angle ``alpha_a = -pi + 2 pi (a + 1/2) / n`` (the centre of its
    bin, in the mesh's alpha convention) and gets ``[cos(k_j alpha_a), sin(k_j alpha_a)]`` for
    integer harmonics ``k_j``. Integer harmonics make every feature 2 pi-periodic in the angle:
    rotating by one position is an orthogonal map (a rotation by ``k_j 2 pi / n``
    in each cos/sin plane), so inner products depend only on ``(a - b) mod n``
    (``sum_j cos(k_j (alpha_a - alpha_b))``) and the first and last positions are as close as
    any two neighbours. A ring of ``n`` points has only ``max(1, n // 2)`` distinct harmonics
    (``k`` and ``n - k`` alias), so ``k_j`` cycles through ``1 .. max(1, n // 2)`` to fill
    ``dim``; each cos/sin pair has unit norm, as in :func:`sincos_embedding`.

    Args:
        n: number of positions around the ring.
        dim: even output width.

    Returns:
        (n, dim) float32.
    """
    if dim % 2:
        raise ValueError(f"ring embedding width must be even, got {dim}")
    n_harmonics = max(1, n // 2)
    k = 1 + torch.arange(dim // 2, dtype=torch.float64) % n_harmonics  # (dim/2,)
    alpha = -math.pi + 2 * math.pi * (torch.arange(n, dtype=torch.float64) + 0.5) / n  # (n,)
    args = alpha[:, None] * k[None]  # (n, dim/2)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1).float()  # (n, dim)


def cylinder_embedding(grid: tuple[int, int, int], dim: int) -> torch.Tensor:
    """Fixed positional embedding of a (z, phi, r) token grid on a cylinder.

    The width is split into three even parts ``[z | phi | r]`` of about ``dim / 3`` each:
    z and r, open axes, get :func:`sincos_embedding` of the token index; phi, periodic, gets
    :func:`ring_embedding`, so a shower rotated by one patch in phi sees the same relative
    geometry and the tokens at either side of the phi = +-pi seam are neighbours.

    Args:
        grid: tokens along (z, phi, r).
        dim: even total width, at least 6.

    Returns:
        (nz * nphi * nr, dim) float32, tokens in (z, phi, r) order with r fastest.
    """
    if dim % 2 or dim < 6:
        raise ValueError(f"cylinder embedding width must be even and >= 6, got {dim}")
    nz, na, nr = grid
    d_z = d_phi = 2 * (dim // 6)
    d_r = dim - d_z - d_phi
    emb_z = sincos_embedding(torch.arange(nz), d_z)  # (nz, d_z)
    emb_phi = ring_embedding(na, d_phi)  # (na, d_phi)
    emb_r = sincos_embedding(torch.arange(nr), d_r)  # (nr, d_r)
    return torch.cat(
        [
            emb_z[:, None, None, :].expand(nz, na, nr, d_z),
            emb_phi[None, :, None, :].expand(nz, na, nr, d_phi),
            emb_r[None, None, :, :].expand(nz, na, nr, d_r),
        ],
        dim=-1,
    ).reshape(nz * na * nr, dim)  # (N, dim)


# ---------------------------------------------------------------------------------------------
# Conditioning embeddings
# ---------------------------------------------------------------------------------------------


class EmbeddingMlp(nn.Module):
    """Linear, SiLU, Linear: embeds a conditioning input into a D-vector."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, dim)
        self.act = nn.SiLU()
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> (B, D)."""
        return self.fc2(self.act(self.fc1(x)))  # (B, D)


class NoiseEmbedder(EmbeddingMlp):
    """Embeds the scalar noise input ``c_noise``: sin/cos features, then the MLP.

    The features are :func:`sincos_embedding` of ``c_noise`` with frequencies 1 .. 1e-4, the
    positional embedding EDM feeds ``c_noise = ln(sigma) / 4`` to (Karras et al. 2022, Table 1).
    """

    def __init__(self, dim: int, freq_dim: int = 256) -> None:
        super().__init__(freq_dim, dim)
        self.freq_dim = freq_dim

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        """(B,) -> (B, D)."""
        freqs = sincos_embedding(c_noise, self.freq_dim)  # (B, freq_dim)
        return super().forward(freqs)  # (B, D)


class CondEmbedder(EmbeddingMlp):
    """Embeds the encoded condition vector (energy, angles, detector one-hot): (B, n_cond) ->
    (B, D)."""


class AdaLNModulation(nn.Module):
    """SiLU, then a Linear regressing ``n_chunks`` per-sample D-vectors (shifts, scales, gates)
    from the conditioning vector ``c``; zero-initialised for adaLN-Zero."""

    def __init__(self, dim: int, n_chunks: int) -> None:
        super().__init__()
        self.n_chunks = n_chunks
        self.act = nn.SiLU()
        self.linear = nn.Linear(dim, n_chunks * dim)

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, D) -> n_chunks x (B, D)."""
        return self.linear(self.act(c)).chunk(self.n_chunks, dim=1)  # n_chunks x (B, D)


# ---------------------------------------------------------------------------------------------
# Transformer
# ---------------------------------------------------------------------------------------------


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Adaptive LayerNorm modulation ``x (1 + scale) + shift``, one shift and scale per sample.

    Args:
        x: normalised tokens, (B, N, D).
        shift: (B, D).
        scale: (B, D); zero leaves ``x`` unchanged.

    Returns:
        (B, N, D).
    """
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class Attention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not a multiple of {num_heads} heads")
        self.num_heads = num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D)."""
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads)  # (B, N, 3, H, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, H, N, d), d = D / H
        p = self.dropout if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (B, H, N, d)
        x = x.transpose(1, 2).reshape(b, n, d)  # (B, N, D)
        return self.proj_drop(self.proj(x))  # (B, N, D)


class Mlp(nn.Module):
    """Token-wise feed-forward network: Linear, GELU (tanh approximation), Linear."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D)."""
        x = self.drop(self.act(self.fc1(x)))  # (B, N, hidden)
        return self.drop(self.fc2(x))  # (B, N, D)


class DiTBlock(nn.Module):
    """A transformer block with adaLN-Zero conditioning (DiT, Sec. 3.2).

    LayerNorms have no affine parameters: their shift and scale, and a gate on each residual
    branch, are regressed from ``c`` by ``adaLN_modulation``. With that Linear zero-initialised
    every gate is 0 and the block starts as the identity.
    """

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout)
        self.adaLN_modulation = AdaLNModulation(dim, 6)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Tokens (B, N, D) and conditioning (B, D) -> tokens (B, N, D)."""
        mod = self.adaLN_modulation(c)  # 6 x (B, D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod
        h = modulate(self.norm1(x), shift_msa, scale_msa)  # (B, N, D)
        x = x + gate_msa.unsqueeze(1) * self.attn(h)  # (B, N, D)
        h = modulate(self.norm2(x), shift_mlp, scale_mlp)  # (B, N, D)
        return x + gate_mlp.unsqueeze(1) * self.mlp(h)  # (B, N, D)


class FinalLayer(nn.Module):
    """adaLN-modulated LayerNorm, then a token-wise Linear to the voxels of one patch."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.adaLN_modulation = AdaLNModulation(dim, 2)
        self.linear = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Tokens (B, N, D) and conditioning (B, D), or one per token (B, N, D) ->
        (B, N, out_dim)."""
        if c.ndim == 3:  # per token: shift and scale depend on the token's position too
            shift, scale = self.adaLN_modulation.linear(self.adaLN_modulation.act(c)).chunk(2, -1)
            return self.linear(self.norm_final(x) * (1 + scale) + shift)  # (B, N, out_dim)
        shift, scale = self.adaLN_modulation(c)  # 2 x (B, D)
        x = modulate(self.norm_final(x), shift, scale)  # (B, N, D)
        return self.linear(x)  # (B, N, out_dim)
