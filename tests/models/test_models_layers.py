from __future__ import annotations

import pytest
import torch

from caloforge.models.dit import CaloDiT, CaloDiTConfig
from caloforge.models.layers import (
    DiTBlock,
    cylinder_embedding,
    ring_embedding,
    sincos_embedding,
)


def is_circulant(gram: torch.Tensor) -> bool:
    """G[a, b] depends only on (b - a) mod n: shifting both indices around the ring is a no-op."""
    return torch.allclose(gram, torch.roll(gram, shifts=(1, 1), dims=(0, 1)), atol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 4, 5, 8, 16])
def test_ring_embedding_gram_is_circulant(n):
    emb = ring_embedding(n, 48)  # (n, 48)
    gram = emb @ emb.T
    assert is_circulant(gram)
    # every position has the same norm, and the seam (n - 1 -> 0) is an ordinary neighbour
    assert torch.allclose(gram.diagonal(), torch.full((n,), 24.0), atol=1e-4)
    if n > 2:
        assert gram[0, n - 1] == pytest.approx(gram[0, 1].item(), abs=1e-4)
        assert gram[0, 1] < gram[0, 0] - 1e-3  # neighbours are told apart


def test_open_axis_embedding_is_not_circulant():
    # the z/r features must *not* wrap around: this is what makes the ring test meaningful
    emb = sincos_embedding(torch.arange(8), 48)
    assert not is_circulant(emb @ emb.T)


def test_model_phi_embedding_gram_is_circulant():
    config = CaloDiTConfig(patch_size=(3, 4, 3), embed_dim=24, num_heads=2)  # grid 15 x 4 x 3
    nz, na, nr = config.grid
    pos = CaloDiT(config).pos_embed.reshape(nz, na, nr, 24)
    d_z = d_phi = 2 * (24 // 6)
    phi_part = pos[0, :, 0, d_z : d_z + d_phi]  # (na, d_phi)
    assert is_circulant(phi_part @ phi_part.T)
    # the phi part is the same at every (z, r), and the full embedding's phi Gram is circulant too
    assert torch.equal(pos[..., d_z : d_z + d_phi], phi_part[None, :, None].expand(nz, na, nr, -1))
    for iz, ir in [(0, 0), (7, 2)]:
        full = pos[iz, :, ir]
        assert is_circulant(full @ full.T)


def test_cylinder_embedding_tokens_are_distinct():
    emb = cylinder_embedding((5, 4, 3), 36)
    assert emb.shape == (60, 36)
    assert torch.unique(emb, dim=0).shape[0] == 60


def test_dit_block_starts_as_identity():
    torch.manual_seed(0)
    block = DiTBlock(16, num_heads=2)
    torch.nn.init.zeros_(block.adaLN_modulation.linear.weight)
    torch.nn.init.zeros_(block.adaLN_modulation.linear.bias)
    x, c = torch.randn(3, 7, 16), torch.randn(3, 16)
    assert torch.equal(block(x, c), x)
