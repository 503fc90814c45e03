"""Recomputed batch-norm statistics: the plain average over the batches, modes and momenta kept."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from vision_backbones import create_model
from vision_backbones.batch_norm import batch_norms, recompute_batch_norm_statistics


def _batches(count: int = 4, *, mean: float = 3.0, std: float = 2.0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [mean + std * torch.randn(8, 3, 5, 5, generator=generator) for _ in range(count)]


def test_statistics_are_the_average_over_the_batches_without_dropout() -> None:
    # Dropout before the norm: were it on during the pass, the variance would come out inflated.
    model = nn.Sequential(nn.Dropout(0.5), nn.BatchNorm2d(3, momentum=0.1)).eval()
    batches = _batches()
    recompute_batch_norm_statistics(model, batches)
    norm = model[1]
    data = torch.cat(batches)
    expected_mean = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    expected_var = torch.stack([b.var(dim=(0, 2, 3), unbiased=True) for b in batches]).mean(0)
    torch.testing.assert_close(norm.running_mean, expected_mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(norm.running_var, expected_var, rtol=1e-4, atol=1e-4)
    assert abs(float(norm.running_mean.mean()) - float(data.mean())) < 1e-4
    assert norm.momentum == 0.1 and not model.training and not norm.training
    assert int(norm.num_batches_tracked) == len(batches)


def test_max_batches_labels_and_training_mode_are_respected() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).train()
    labelled = [(b, torch.zeros(len(b), dtype=torch.long)) for b in _batches(5)]
    returned = recompute_batch_norm_statistics(model, labelled, max_batches=2)
    assert returned is model and model.training and model[1].training
    assert int(model[1].num_batches_tracked) == 2


def test_empty_batches_raise_and_leave_the_statistics() -> None:
    model = nn.Sequential(nn.BatchNorm2d(3))
    model[0].running_mean.fill_(7.0)
    with pytest.raises(ValueError, match="batches is empty"):
        recompute_batch_norm_statistics(model, [])
    assert torch.all(model[0].running_mean == 7.0) and model[0].momentum == 0.1
    with pytest.raises(ValueError, match="max_batches"):
        recompute_batch_norm_statistics(model, _batches(), max_batches=0)


def test_a_norm_eval_backbone_gets_new_statistics_and_stays_frozen() -> None:
    model = create_model(
        "resnet18", num_classes=4, depths=(1, 1, 1, 1), widths=(8, 8, 16, 16), stem_channels=8, norm_eval=True
    )
    model.train()
    norms = batch_norms(model)
    assert norms and not any(n.training for n in norms)
    before = norms[0].running_mean.clone()
    recompute_batch_norm_statistics(model, [torch.randn(4, 3, 32, 32) + 1.0 for _ in range(2)])
    assert not torch.equal(norms[0].running_mean, before)
    assert model.training and not any(n.training for n in norms)


def test_lightning_callback_recomputes_from_the_training_loader() -> None:
    from vision_backbones.train.batch_norm_callback import RecomputeBatchNormStatistics

    module = SimpleNamespace(model=nn.Sequential(nn.BatchNorm2d(3)), device=torch.device("cpu"))
    trainer = SimpleNamespace(train_dataloader=_batches(3), sanity_checking=False, training=True)
    callback = RecomputeBatchNormStatistics(max_batches=2)
    callback.on_validation_start(trainer, module)  # type: ignore[arg-type]
    assert int(module.model[0].num_batches_tracked) == 2
    trainer.sanity_checking = True
    module.model[0].num_batches_tracked.zero_()
    callback.on_validation_start(trainer, module)  # type: ignore[arg-type]
    assert int(module.model[0].num_batches_tracked) == 0
    with pytest.raises(ValueError, match="max_batches"):
        RecomputeBatchNormStatistics(max_batches=0)
