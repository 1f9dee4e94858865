from __future__ import annotations

import pytest
import torch

from caloforge.errors import SpecError
from caloforge.models.dit import CaloDiTConfig
from caloforge.models.registry import PRESETS, build_model


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build(name):
    model = build_model(name)
    assert model.config == PRESETS[name]
    if isinstance(model.config, CaloDiTConfig):
        assert model.config.mesh_shape == (45, 16, 9)
    else:  # the energy model: one value per layer of that mesh
        assert model.config.dim == 45
    assert sum(p.numel() for p in model.parameters()) > 0


def test_token_counts():
    assert build_model("calodit-paper").config.n_tokens == 23 * 8 * 5
    assert build_model("calodit-cpu").config.n_tokens == 15 * 4 * 3
    # one radial bin per token: no token splits the radial fall-off
    assert build_model("calodit-layers").config.n_tokens == 15 * 1 * 9


def test_energy_model_is_small_and_starts_at_zero():
    model = build_model("energy-mlp", n_cond=52)
    assert sum(p.numel() for p in model.parameters()) < 500_000
    out = model(torch.randn(3, 45), torch.zeros(3), torch.randn(3, 52))
    assert out.shape == (3, 45)
    assert torch.equal(out, torch.zeros(3, 45))


def test_position_aware_final_layer_sees_the_token_position():
    """With final_position, a token's output depends on where it is, not only on its input."""
    torch.manual_seed(0)
    model = build_model("calodit-layers", depth=1, embed_dim=32, num_heads=2, mesh_shape=(3, 16, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    x = torch.zeros(1, 1, 3, 16, 2)  # every token's input the same
    out = model(x, torch.zeros(1), torch.zeros(1, 7))[0, 0]  # (3, 16, 2)
    assert not torch.allclose(out[:, :, 0], out[:, :, 1])


def test_paper_preset_training_step_changes_parameters():
    torch.manual_seed(0)
    model = build_model("calodit-paper").train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(2, 1, 45, 16, 9), torch.randn(2, 1, 45, 16, 9)
    c_noise, cond = torch.randn(2), torch.randn(2, 7)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for _ in range(2):  # adaLN-Zero: step 1 moves the final Linear, step 2 everything behind it
        loss = torch.nn.functional.mse_loss(model(x, c_noise, cond), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.isfinite(loss)
    for name in [
        "final_layer.linear.weight",
        "final_layer.adaLN_modulation.linear.weight",
        "blocks.0.adaLN_modulation.linear.weight",
        "blocks.0.attn.qkv.weight",
        "blocks.3.mlp.fc2.weight",
        "x_embedder.weight",
        "noise_embedder.fc1.weight",
        "cond_embedder.fc2.weight",
    ]:
        assert not torch.equal(before[name], model.get_parameter(name)), name


def test_overrides():
    model = build_model("calodit-cpu", n_cond=9, depth=1)
    assert (model.config.n_cond, model.config.depth) == (9, 1)
    assert model.config.patch_size == (3, 4, 3)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(
        SpecError,
        match=r"unknown model .nope.*calodit-cpu, calodit-layers, calodit-paper, energy-mlp",
    ):
        build_model("nope")


def test_unknown_option_is_a_spec_error():
    with pytest.raises(SpecError, match="unknown model option"):
        build_model("calodit-cpu", width=3)


def test_mesh_override_is_checked_against_the_phi_patch():
    with pytest.raises(SpecError, match="does not divide"):
        build_model("calodit-cpu", mesh_shape=(45, 50, 18))
    assert build_model("calodit-paper", mesh_shape=(45, 50, 18), depth=1).config.grid == (23, 25, 9)
