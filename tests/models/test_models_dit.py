from __future__ import annotations

import pytest
import torch

from caloforge.errors import SpecError
from caloforge.models.dit import CaloDiT, CaloDiTConfig

SMALL = {"embed_dim": 24, "depth": 2, "num_heads": 2, "n_cond": 5}
ODD = CaloDiTConfig(mesh_shape=(10, 8, 5), patch_size=(3, 4, 2), **SMALL)


def inputs(config: CaloDiTConfig, b: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, config.channels, *config.mesh_shape, generator=g)
    return x, torch.randn(b, generator=g), torch.randn(b, config.n_cond, generator=g)


def perturb_zero_init(model: torch.nn.Module, std: float = 0.2, seed: int = 1) -> None:
    """Give every all-zero parameter (adaLN-Zero, final layer, biases) random values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(std * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize(
    ("config", "grid"),
    [
        (CaloDiTConfig(**SMALL), (23, 8, 5)),  # default 45 x 16 x 9 mesh, 2x2x2 patches
        (CaloDiTConfig(patch_size=(3, 4, 3), **SMALL), (15, 4, 3)),
        (ODD, (4, 2, 3)),  # z and r padded: 10 -> 12, 5 -> 6
        (CaloDiTConfig(patch_size=(3, 16, 1), channels=2, **SMALL), (15, 1, 9)),  # + bits
    ],
)
def test_output_shape(config, grid):
    assert config.grid == grid
    model = CaloDiT(config)
    perturb_zero_init(model)
    x, c_noise, cond = inputs(config)
    out = model(x, c_noise, cond)
    assert out.shape == x.shape
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_untrained_model_outputs_zeros():
    model = CaloDiT(ODD)
    x, c_noise, cond = inputs(ODD)
    assert torch.equal(model(x, c_noise, cond), torch.zeros_like(x))


def test_perturbed_model_depends_on_noise_and_condition():
    model = CaloDiT(ODD)
    perturb_zero_init(model)
    x, c_noise, cond = inputs(ODD)
    out = model(x, c_noise, cond)
    assert out.abs().max() > 1e-3
    assert not torch.allclose(model(x, c_noise + 0.5, cond), out, atol=1e-5)
    assert not torch.allclose(model(x, c_noise, cond + 0.5), out, atol=1e-5)
    assert not torch.allclose(model(x + 0.5, c_noise, cond), out, atol=1e-5)


def test_sample_does_not_depend_on_its_batch():
    model = CaloDiT(ODD).eval()
    perturb_zero_init(model)
    x, c_noise, cond = inputs(ODD, b=4)
    torch.testing.assert_close(model(x[1:2], c_noise[1:2], cond[1:2]), model(x, c_noise, cond)[1:2])


def test_scalar_c_noise_is_broadcast():
    model = CaloDiT(ODD)
    perturb_zero_init(model)
    x, _, cond = inputs(ODD)
    torch.testing.assert_close(
        model(x, torch.tensor(0.3), cond), model(x, torch.full((3,), 0.3), cond)
    )


def identity_patch_model(config: CaloDiTConfig) -> CaloDiT:
    """A model whose patch embedding copies each patch's voxels into the token (D = patch)."""
    model = CaloDiT(config)
    n_patch = config.embed_dim
    with torch.no_grad():
        model.x_embedder.weight.copy_(torch.eye(n_patch).reshape(n_patch, 1, *config.patch_size))
        model.x_embedder.bias.zero_()
    return model


def test_patchify_unpatchify_round_trip():
    config = CaloDiTConfig(mesh_shape=(10, 8, 5), patch_size=(3, 4, 2), embed_dim=24, num_heads=2)
    model = identity_patch_model(config)
    x, _, _ = inputs(config)
    tokens = model.patchify(x)
    assert tokens.shape == (3, config.n_tokens, 24)
    assert torch.equal(model.unpatchify(tokens), x)
    # the padded cells hold zeros: 10 * 8 * 5 real voxels out of 12 * 8 * 6 token slots
    assert (tokens != 0).sum() == x.numel()


def test_token_voxel_map_is_a_bijection():
    model = CaloDiT(ODD)
    n_slots = ODD.n_tokens * 3 * 4 * 2
    slots = torch.arange(n_slots, dtype=torch.float32).reshape(1, ODD.n_tokens, -1)
    voxels = model.unpatchify(slots).flatten()
    assert voxels.numel() == 10 * 8 * 5
    assert torch.unique(voxels).numel() == voxels.numel()  # each voxel from its own slot


def test_token_voxel_map_is_a_bijection_with_two_channels():
    config = CaloDiTConfig(mesh_shape=(10, 8, 5), patch_size=(3, 4, 2), channels=2, **SMALL)
    model = CaloDiT(config)
    slots = torch.arange(config.n_tokens * 3 * 4 * 2 * 2, dtype=torch.float32)
    voxels = model.unpatchify(slots.reshape(1, config.n_tokens, -1))
    assert voxels.shape == (1, 2, 10, 8, 5)
    assert torch.unique(voxels).numel() == voxels.numel()
    # a voxel's two channels come from the same token
    token = torch.div(voxels, 3 * 4 * 2 * 2, rounding_mode="floor")
    assert torch.equal(token[:, 0], token[:, 1])


def test_phi_rotation_by_one_patch_rolls_the_tokens():
    config = CaloDiTConfig(mesh_shape=(10, 8, 5), patch_size=(3, 4, 2), embed_dim=24, num_heads=2)
    model = CaloDiT(config)
    x, _, _ = inputs(config)
    nz, na, nr = config.grid
    tokens = model.patchify(x).reshape(3, nz, na, nr, 24)
    rotated = model.patchify(torch.roll(x, shifts=4, dims=3)).reshape(3, nz, na, nr, 24)
    torch.testing.assert_close(rotated, torch.roll(tokens, shifts=1, dims=2))


def test_phi_patch_must_divide_phi_bins():
    with pytest.raises(SpecError, match="phi patch size 3 does not divide the 16 phi bins"):
        CaloDiTConfig(patch_size=(2, 3, 2))


@pytest.mark.parametrize(
    "bad",
    [{"embed_dim": 25}, {"embed_dim": 24, "num_heads": 5}, {"depth": 0}, {"mesh_shape": (45, 16)}],
)
def test_invalid_config_is_a_spec_error(bad):
    with pytest.raises(SpecError):
        CaloDiTConfig(**{**SMALL, **bad})


def test_config_accepts_lists_from_yaml():
    config = CaloDiTConfig(mesh_shape=[10, 8, 5], patch_size=[3, 4, 2], **SMALL)
    assert config == ODD


def test_wrong_input_shape_is_rejected():
    model = CaloDiT(ODD)
    x, c_noise, cond = inputs(ODD)
    with pytest.raises(ValueError, match="x must be"):
        model(x[..., :4], c_noise, cond)
    with pytest.raises(ValueError, match="cond must be"):
        model(x, c_noise, cond[:, :4])
