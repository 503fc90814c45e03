"""torchvision detectors and segmentation-models-pytorch decoders take our backbones through the adapters."""

from __future__ import annotations

from typing import Any

import pytest
import torch

pytest.importorskip("torchvision")
from torchvision.models.detection import FasterRCNN, MaskRCNN, RetinaNet

from vision_backbones.adapters import detection_backbone, register_smp_encoders, smp_encoder

DETECTION_MODELS = ["resnet50", "vovnet39", "darknet53", "mobilenet_v3_large", "efficientnet_b0", "shufflenet_v2_x1_0"]
SMALL = {"min_size": 96, "max_size": 128}


def _targets(masks: bool) -> list[dict[str, torch.Tensor]]:
    targets = []
    for box in ([8.0, 8.0, 60.0, 50.0], [20.0, 16.0, 70.0, 80.0]):
        target = {"boxes": torch.tensor([box]), "labels": torch.tensor([1])}
        if masks:
            mask = torch.zeros(1, 100, 120, dtype=torch.uint8)
            mask[:, int(box[1]) : int(box[3]), int(box[0]) : int(box[2])] = 1
            target["masks"] = mask
        targets.append(target)
    return targets


def _train_and_eval(detector: torch.nn.Module, masks: bool = False) -> None:
    images = [torch.rand(3, 100, 120), torch.rand(3, 90, 128)]  # two sizes: the transform batches them
    detector.train()
    losses = detector(images, _targets(masks))
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None for p in detector.backbone.body.parameters())
    detector.eval()
    with torch.no_grad():
        detections = detector(images)
    assert len(detections) == 2 and all("boxes" in d for d in detections)


@pytest.mark.parametrize("name", DETECTION_MODELS)
def test_faster_rcnn(name: str) -> None:
    _train_and_eval(FasterRCNN(detection_backbone(name), num_classes=3, **SMALL))


@pytest.mark.parametrize("name", DETECTION_MODELS)
def test_retinanet(name: str) -> None:
    _train_and_eval(RetinaNet(detection_backbone(name, out_strides=(8, 16, 32), extra="p6p7"), num_classes=3, **SMALL))


@pytest.mark.parametrize("name", DETECTION_MODELS)
def test_mask_rcnn(name: str) -> None:
    _train_and_eval(MaskRCNN(detection_backbone(name, fpn_channels=64), num_classes=3, **SMALL), masks=True)


def test_detection_backbone_is_sized_from_the_contract() -> None:
    backbone = detection_backbone("resnet18", out_strides=(8, 16, 32), fpn_channels=32, extra=None)
    assert backbone.out_channels == 32
    assert [b[0].in_channels for b in backbone.fpn.inner_blocks] == [128, 256, 512]
    maps = backbone(torch.rand(1, 3, 64, 64))
    assert list(maps) == ["0", "1", "2"] and [m.shape[-1] for m in maps.values()] == [8, 4, 2]
    frozen = detection_backbone("resnet18", freeze_until_stride=4, norm_eval=True)
    assert all(not p.requires_grad for p in frozen.body.stages[1].parameters())


def test_detection_backbone_bad_arguments() -> None:
    with pytest.raises(ValueError, match="extra must be"):
        detection_backbone("resnet18", extra="p6")
    with pytest.raises(ValueError, match=r"out_strides \(3,\).*strides \(2, 4, 8, 16, 32\)"):
        detection_backbone("resnet18", out_strides=(3,))


@pytest.fixture
def smp() -> Any:
    """segmentation_models_pytorch, for the tests that need it (a module-level importorskip skipped every test)."""
    return pytest.importorskip("segmentation_models_pytorch")


@pytest.mark.parametrize("name", ["resnet18", "shufflenet_v2_x0_5", "mobilenet_v2"])
def test_smp_unet(name: str, smp: Any) -> None:
    (encoder_name,) = register_smp_encoders([name])
    model = smp.Unet(encoder_name, encoder_weights=None, classes=2, in_channels=1, decoder_channels=(32, 16, 16, 8, 8))
    out = model(torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 2, 64, 64)
    out.mean().backward()


def test_smp_conventions_and_deeplab(smp: Any) -> None:
    encoder = smp_encoder("shufflenet_v2_x0_5")
    assert encoder.out_channels[:2] == [3, 0]  # no stride-2 level: an empty placeholder, as smp's own encoders do
    features = encoder(torch.rand(1, 3, 64, 64))
    assert [f.shape[1] for f in features] == encoder.out_channels
    assert [f.shape[-1] for f in features] == [64, 32, 16, 8, 4, 2]
    register_smp_encoders(["resnet18"])
    deeplab = smp.DeepLabV3("vb-resnet18", encoder_weights=None, classes=2)  # asks for output_stride 8
    assert deeplab.encoder.model.strides == (2, 4, 8, 8, 8)
    assert deeplab(torch.rand(2, 3, 64, 64)).shape == (2, 2, 64, 64)
