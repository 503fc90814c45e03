"""The recipe pieces: lr schedule, lr scaling, weight-decay groups, one-of CutMix/MixUp, EMA."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

pytest.importorskip("lightning")

from vision_backbones import create_model
from vision_backbones.train.module import ImageClassifier, WarmupCosine
from vision_backbones.train.recipe import lr_factor, make_batch_mix, param_groups, scaled_lr

TINY = {"depths": (1, 1, 1, 1), "widths": (4, 4, 8, 8), "stem_channels": 4}


def test_lr_factor_at_given_steps():
    kw = dict(total_steps=1100, warmup_steps=100, warmup_start_factor=0.01)
    assert lr_factor(0, **kw) == pytest.approx(0.01)
    assert lr_factor(50, **kw) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_factor(100, **kw) == pytest.approx(1.0)  # warm-up done: the peak
    assert lr_factor(600, **kw) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_factor(350, **kw) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))
    assert lr_factor(1100, **kw) == pytest.approx(0.0)
    assert lr_factor(5000, **kw) == pytest.approx(0.0)
    assert lr_factor(1100, **kw, min_factor=0.1) == pytest.approx(0.1)


def test_schedule_steps_per_step_through_lambda_lr():
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(total_steps=20, warmup_steps=5))
    lrs = []
    for _ in range(21):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.004)
    assert lrs[5] == pytest.approx(0.4)
    assert all(a < b for a, b in zip(lrs[:5], lrs[1:6]))  # rising during warm-up
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:]))  # falling after
    assert lrs[20] == pytest.approx(0.0, abs=1e-12)
    assert scheduler.state_dict()["lr_lambdas"][0] == {
        "total_steps": 20,
        "warmup_steps": 5,
        "warmup_start_factor": 0.01,
        "min_factor": 0.0,
    }


def test_linear_lr_scaling():
    assert scaled_lr(0.5, 1024, 1024) == pytest.approx(0.5)
    assert scaled_lr(0.5, 256, 1024) == pytest.approx(0.125)
    assert scaled_lr(0.5, 2 * 512, 1024) == pytest.approx(0.5)  # the seed: 2 GPUs x 512


def test_no_weight_decay_on_norms_and_biases_and_backbone_lr():
    model = create_model("resnet18", num_classes=5, **TINY)
    groups = param_groups(model, lr=0.1, weight_decay=2e-5, backbone_lr_scale=0.1)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"backbone/norm", "backbone/weight", "head/bias", "head/weight"}
    norm_ids = {id(p) for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()}
    bias_ids = {id(p) for n, p in model.named_parameters() if n.endswith("bias")}
    for group in groups:
        ids = {id(p) for p in group["params"]}
        if ids & (norm_ids | bias_ids):
            assert group["weight_decay"] == 0.0, group["name"]
            assert ids <= norm_ids | bias_ids
        else:
            assert group["weight_decay"] == 2e-5
    assert {id(p) for p in by_name["backbone/norm"]["params"]} == norm_ids
    assert by_name["backbone/weight"]["lr"] == pytest.approx(0.01) and by_name["head/weight"]["lr"] == pytest.approx(
        0.1
    )
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_frozen_stages_are_left_out_of_the_optimizer():
    model = create_model("resnet18", num_classes=5, frozen_stages=2, **TINY)
    grouped = {id(p) for g in param_groups(model, lr=0.1, weight_decay=1e-4) for p in g["params"]}
    frozen = {id(p) for m in (model.stem, *model.stages[:2]) for p in m.parameters()}
    assert frozen and not grouped & frozen
    assert grouped == {id(p) for p in model.parameters() if p.requires_grad}


def _kind(mixed: torch.Tensor, x: torch.Tensor) -> str:
    rolled = x.roll(1, 0)
    pixelwise_source = (mixed == x) | (mixed == rolled)
    if pixelwise_source.all():
        return "cutmix"  # every pixel from one image or the other: a pasted box
    lam = ((mixed - rolled) / (x - rolled))[(x - rolled).abs() > 1e-3]
    assert torch.allclose(lam, lam[0], atol=1e-4), "neither a pure CutMix nor a pure MixUp"
    return "mixup"


def test_exactly_one_of_cutmix_or_mixup_per_batch():
    mix = make_batch_mix(num_classes=4, cutmix_alpha=1.0, mixup_alpha=0.2)
    x = torch.rand(6, 3, 16, 16)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    seen = []
    for seed in range(40):
        torch.manual_seed(seed)
        mixed, target = mix(x, y)
        assert target.shape == (6, 4) and torch.allclose(target.sum(1), torch.ones(6))
        seen.append(_kind(mixed, x))
    assert {"cutmix", "mixup"} == set(seen)
    assert make_batch_mix(4, 0.0, 0.0) is None
    assert type(make_batch_mix(4, 1.0, 0.0)).__name__ == "CutMix"


def test_ema_update_and_copy_during_warmup():
    module = ImageClassifier(
        "resnet18", num_classes=3, model_overrides=TINY, ema=True, ema_decay=0.75, ema_adjust=False, ema_every_n_steps=1
    )
    ema, model = module.ema, module.model
    assert all(not p.requires_grad for p in ema.parameters())
    means = [b for n, b in model.named_buffers() if n.endswith("running_mean")]

    def fill(value: float) -> None:
        with torch.no_grad():
            for tensor in [*model.parameters(), *means]:
                tensor.fill_(value)

    fill(1.0)
    ema.update_parameters(model)  # the first update copies
    assert all(torch.equal(p, torch.ones_like(p)) for p in ema.module.parameters())
    fill(3.0)
    ema.update_parameters(model)
    expected = 0.75 * 1.0 + 0.25 * 3.0
    for p in ema.module.parameters():
        assert torch.allclose(p, torch.full_like(p, expected))
    # batch-norm statistics are averaged too (use_buffers=True)
    for n, b in ema.module.named_buffers():
        if n.endswith("running_mean"):
            assert torch.allclose(b, torch.full_like(b, expected))
    # during the lr warm-up the average restarts from the live weights (torchvision)
    from vision_backbones.train.recipe import copy_into_average

    copy_into_average(ema)
    ema.update_parameters(model)
    assert all(torch.allclose(p, torch.full_like(p, 3.0)) for p in ema.module.parameters())
