"""Layer-wise learning-rate decay: every parameter gets lr * decay ** (L - 1 - layer)."""

import pytest
import torch

from eegfm import MAPEClassifier
from eegfm.finetune import FinetuneConfig, FinetuneTask, layer_decay_groups
from eegfm.training.schedule import make_scheduler

ENC = dict(embed_dim=32, depth=3, num_heads=2, patch_size=50)


def test_each_parameter_gets_the_rate_of_its_layer():
    model = MAPEClassifier(n_outputs=2, encoder=ENC)
    groups = layer_decay_groups(model, weight_decay=0.05, layer_decay=0.5)
    scale = {name: g["lr_scale"] for g in groups for name in g["names"]}
    assert set(scale) == {n for n, _ in model.named_parameters()}
    # L = depth + 2 = 5 layer ids: embeddings 0, blocks 1..3, norm + head 4
    assert scale["head.weight"] == scale["encoder.norm.bias"] == 1.0
    assert scale["encoder.blocks.2.attn.qkv.weight"] == 0.5
    assert scale["encoder.blocks.1.mlp.0.weight"] == 0.25
    assert scale["encoder.blocks.0.norm1.weight"] == 0.125
    assert scale["encoder.cls_token"] == scale["encoder.patch_embed.convs.0.0.weight"] == 0.0625


def test_no_weight_decay_on_biases_norms_and_cls_token():
    model = MAPEClassifier(n_outputs=2, encoder=ENC)
    wd = {name: g["weight_decay"] for g in layer_decay_groups(model, weight_decay=0.05, layer_decay=0.7)
          for name in g["names"]}
    assert wd["encoder.blocks.0.attn.qkv.weight"] == wd["head.weight"] == 0.05
    assert wd["encoder.blocks.0.attn.qkv.bias"] == wd["encoder.norm.weight"] == wd["encoder.cls_token"] == 0.0


def test_scheduler_applies_the_scales_to_the_optimizer():
    model = MAPEClassifier(n_outputs=2, encoder=ENC)
    opt = torch.optim.AdamW(layer_decay_groups(model, weight_decay=0.05, layer_decay=0.5), lr=1.0)
    make_scheduler(opt, total_steps=10, warmup_steps=0, base_lr=1e-3, min_lr=1e-5)
    for group in opt.param_groups:
        assert group["lr"] == pytest.approx(1e-3 * 0.5 ** (4 - group["layer"]))


def test_linear_probing_trains_the_head_only():
    model = MAPEClassifier(n_outputs=2, encoder=ENC)
    task = FinetuneTask(model, FinetuneConfig(mode="linear"))
    assert {id(p) for p in task.trainable_parameters()} == {id(p) for p in model.head.parameters()}
    task.train()
    assert model.head.training and not model.encoder.training


def test_frozen_parameters_are_left_out_and_bad_decay_is_named():
    model = MAPEClassifier(n_outputs=2, encoder=ENC)
    model.encoder.requires_grad_(False)
    names = [n for g in layer_decay_groups(model, weight_decay=0.0, layer_decay=0.9) for n in g["names"]]
    assert names == ["head.bias", "head.weight"] or sorted(names) == ["head.bias", "head.weight"]
    with pytest.raises(ValueError, match=r"layer_decay must be in \(0, 1\], got layer_decay=1.5"):
        layer_decay_groups(model, weight_decay=0.0, layer_decay=1.5)
    with pytest.raises(TypeError, match="has no layer_id"):
        layer_decay_groups(torch.nn.Linear(2, 2), weight_decay=0.0, layer_decay=0.9)
