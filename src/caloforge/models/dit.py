"""CaloDiT: a diffusion transformer backbone for showers on the cylindrical mesh.

A DiT (Peebles & Xie 2023, arXiv:2212.09748) over 3D patches of the (z, phi, r) voxel grid,
conditioned through adaLN-Zero on ``c = emb(c_noise) + emb(cond)``. The backbone is
``forward(x, c_noise, cond) -> tensor`` and knows nothing of noise schedules or detectors: a
preconditioner supplies ``c_noise`` (e.g. EDM's ``ln(sigma) / 4``) and the data preprocessing
encodes energy, angles and detector into ``cond``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from caloforge.errors import SpecError
from caloforge.models.layers import (
    AdaLNModulation,
    CondEmbedder,
    DiTBlock,
    FinalLayer,
    NoiseEmbedder,
    cylinder_embedding,
)


@dataclass(frozen=True)
class CaloDiTConfig:
    """Hyperparameters of :class:`CaloDiT`. Presets live in :mod:`caloforge.models.registry`."""

    mesh_shape: tuple[int, int, int] = (45, 16, 9)  # (Z, A, R): z layers, phi (alpha) bins, r bins
    patch_size: tuple[int, int, int] = (2, 2, 2)  # (pz, pa, pr) voxels per token; pa divides A
    embed_dim: int = 144  # D, token width: even and a multiple of num_heads
    depth: int = 4  # number of DiT blocks
    num_heads: int = 4  # attention heads
    mlp_ratio: float = 4.0  # hidden width of the block MLPs, in units of D
    n_cond: int = 7  # width of cond: energy, theta, sin phi, cos phi + a 3-slot detector one-hot
    dropout: float = 0.0  # on attention weights and on the attention and MLP outputs
    # the final layer's shift and scale depend on the token's position as well as on the
    # conditioning (CaloDiT-2): a token whose voxels span one radial bin knows which one
    final_position: bool = False
    # values per voxel, in and out: 1 (its energy or fraction), 2 (and its occupancy bit)
    channels: int = 1

    def __post_init__(self) -> None:
        # YAML gives lists: store tuples so that configs compare and hash.
        object.__setattr__(self, "mesh_shape", tuple(int(v) for v in self.mesh_shape))
        object.__setattr__(self, "patch_size", tuple(int(v) for v in self.patch_size))
        if len(self.mesh_shape) != 3 or min(self.mesh_shape) < 1:
            raise SpecError(f"mesh_shape must be three positive sizes, got {self.mesh_shape}")
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise SpecError(f"patch_size must be three positive sizes, got {self.patch_size}")
        n_a, p_a = self.mesh_shape[1], self.patch_size[1]
        if n_a % p_a:
            divisors = [p for p in range(1, n_a + 1) if n_a % p == 0]
            raise SpecError(
                f"the phi patch size {p_a} does not divide the {n_a} phi bins: phi is periodic and "
                f"is never padded; use one of {divisors}"
            )
        if self.embed_dim < 6 or self.embed_dim % 2 or self.embed_dim % self.num_heads:
            raise SpecError(
                f"embed_dim must be even, >= 6 and a multiple of num_heads={self.num_heads}, "
                f"got {self.embed_dim}"
            )
        if self.depth < 1 or self.num_heads < 1 or self.n_cond < 1 or self.channels < 1:
            raise SpecError("depth, num_heads, n_cond and channels must be >= 1")
        if self.mlp_ratio <= 0 or not 0.0 <= self.dropout < 1.0:
            raise SpecError("mlp_ratio must be > 0 and dropout in [0, 1)")

    @property
    def grid(self) -> tuple[int, int, int]:
        """Tokens along (z, phi, r): z and r are rounded up, phi divides exactly."""
        return (
            -(-self.mesh_shape[0] // self.patch_size[0]),
            self.mesh_shape[1] // self.patch_size[1],
            -(-self.mesh_shape[2] // self.patch_size[2]),
        )

    @property
    def n_tokens(self) -> int:
        nz, na, nr = self.grid
        return nz * na * nr

    @property
    def padded_shape(self) -> tuple[int, int, int]:
        """(Zpad, A, Rpad): the mesh padded to whole patches."""
        return (
            self.grid[0] * self.patch_size[0],
            self.mesh_shape[1],
            self.grid[2] * self.patch_size[2],
        )


class CaloDiT(nn.Module):
    """Diffusion transformer over 3D patches of a (Z, A, R) shower.

    Args:
        config: the hyperparameters.
    """

    pos_embed: torch.Tensor

    def __init__(self, config: CaloDiTConfig) -> None:
        super().__init__()
        self.config = config
        d = config.embed_dim
        pz, pa, pr = config.patch_size
        # A Conv3d with kernel = stride = patch is one linear map per patch.
        self.x_embedder = nn.Conv3d(
            config.channels, d, kernel_size=config.patch_size, stride=config.patch_size
        )
        self.noise_embedder = NoiseEmbedder(d)
        self.cond_embedder = CondEmbedder(config.n_cond, d)
        # Fixed, derived from the config: not a parameter and not saved in checkpoints.
        pos = cylinder_embedding(config.grid, d)  # (N, D)
        self.register_buffer("pos_embed", pos[None], persistent=False)  # (1, N, D)
        self.blocks = nn.ModuleList(
            DiTBlock(d, config.num_heads, config.mlp_ratio, config.dropout)
            for _ in range(config.depth)
        )
        self.final_layer = FinalLayer(d, pz * pa * pr * config.channels)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Initialise every parameter, so that the untrained model outputs exactly zero.

        - Linear layers: xavier-uniform weights, zero biases.
        - Patch embedding: the Conv3d is a linear map of each flattened patch, so it is
          initialised like a Linear (xavier-uniform on its (D, pz*pa*pr) view), zero bias.
        - Noise embedding MLP: normal(0, 0.02) weights, zero biases (as DiT's timestep MLP);
          the condition MLP keeps xavier-uniform (see below).
        - adaLN-Zero (DiT, Sec. 3.2): the Linear regressing shift/scale/gate in every block and
          shift/scale in the final layer is zero, so every gate is 0 and every block starts as
          the identity; the final Linear is zero too, so the output is exactly 0. Gradients
          still flow: the final Linear sees non-zero inputs, and once it moves, so do the rest.

        The positional embedding is fixed (:func:`caloforge.models.layers.cylinder_embedding`).
        """

        def _xavier(module: nn.Module) -> None:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

        self.apply(_xavier)

        w = self.x_embedder.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        if self.x_embedder.bias is not None:
            nn.init.zeros_(self.x_embedder.bias)

        for module in self.modules():
            # Only the noise MLP starts at normal(0, 0.02) (DiT's timestep embedder); its input,
            # 256 sin/cos features, has norm ~11. The condition MLP keeps xavier-uniform: for a
            # 7-wide input, two layers at std 0.02 start at a saddle where its output and the
            # gradients of both layers scale as 0.02^2, and a model trained from there ignored
            # its conditions for thousands of steps.
            if isinstance(module, NoiseEmbedder):
                nn.init.normal_(module.fc1.weight, std=0.02)
                nn.init.normal_(module.fc2.weight, std=0.02)
            elif isinstance(module, AdaLNModulation):
                nn.init.zeros_(module.linear.weight)
                nn.init.zeros_(module.linear.bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """Embed each patch of the zero-padded mesh as one token.

        Z and R are padded with zeros at their far end (deep layers, large radii) up to whole
        patches; A is periodic and divided exactly, so it is never padded.

        Args:
            x: (B, C, Z, A, R).

        Returns:
            (B, N, D), tokens in (z, phi, r) order with r fastest.
        """
        (z, _, r), (z_pad, _, r_pad) = self.config.mesh_shape, self.config.padded_shape
        x = F.pad(x, (0, r_pad - r, 0, 0, 0, z_pad - z))  # (B, C, Zpad, A, Rpad)
        x = self.x_embedder(x)  # (B, D, nz, na, nr)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """Put each token's voxels back in place and crop the padding: the inverse layout of
        :meth:`patchify`.

        Args:
            x: (B, N, pz * pa * pr * C), each token's voxels in (z, phi, r) order with r
                fastest, and each voxel's C channels.

        Returns:
            (B, C, Z, A, R).
        """
        nz, na, nr = self.config.grid
        pz, pa, pr = self.config.patch_size
        z, _, r = self.config.mesh_shape
        b, c = x.shape[0], self.config.channels
        x = x.reshape(b, nz, na, nr, pz, pa, pr, c)  # (B, nz, na, nr, pz, pa, pr, C)
        x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)  # (B, C, nz, pz, na, pa, nr, pr)
        x = x.reshape(b, c, nz * pz, na * pa, nr * pr)  # (B, C, Zpad, A, Rpad)
        return x[:, :, :z, :, :r]  # (B, C, Z, A, R)

    def _check_inputs(
        self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        """Raise ValueError on wrongly shaped inputs; return c_noise broadcast to (B,)."""
        b = x.shape[0]
        if tuple(x.shape[1:]) != (self.config.channels, *self.config.mesh_shape):
            msg = f"x must be (B, {self.config.channels}, {', '.join(map(str, self.config.mesh_shape))})"
            raise ValueError(f"{msg}, got {tuple(x.shape)}")
        if tuple(cond.shape) != (b, self.config.n_cond):
            raise ValueError(f"cond must be ({b}, {self.config.n_cond}), got {tuple(cond.shape)}")
        if c_noise.numel() not in (1, b):
            raise ValueError(f"c_noise must be ({b},) or a scalar, got {tuple(c_noise.shape)}")
        return c_noise.reshape(-1).expand(b)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Denoiser backbone output for noisy showers.

        Args:
            x: (B, C, Z, A, R) float32, the (preconditioned) noisy showers.
            c_noise: (B,) or a scalar, the noise-level input (e.g. ``ln(sigma) / 4``).
            cond: (B, n_cond) float32, the encoded conditions.

        Returns:
            (B, C, Z, A, R).

        Raises:
            ValueError: an input whose shape does not match the config.
        """
        c_noise = self._check_inputs(x, c_noise, cond)  # (B,)
        x = self.patchify(x) + self.pos_embed  # (B, N, D)
        c = self.noise_embedder(c_noise) + self.cond_embedder(cond)  # (B, D)
        for block in self.blocks:
            x = block(x, c)  # (B, N, D)
        if self.config.final_position:
            x = self.final_layer(x, c[:, None, :] + self.pos_embed)  # (B, N, pz * pa * pr)
        else:
            x = self.final_layer(x, c)  # (B, N, pz * pa * pr)
        return self.unpatchify(x)  # (B, C, Z, A, R)
