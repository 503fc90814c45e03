"""ImageNet-1k top-1 of the timm checkpoints that ``backbones convert --source timm`` turns into our models.

timm's wheel ships no accuracy table, so the figures are copied here, each with its checkpoint and
source: timm's default pretrained tag of each reference (timm 1.0.31 ``get_pretrained_cfg(name).tag``)
at its default input size, from timm's published results CSV
(https://github.com/huggingface/pytorch-image-models/blob/aa4b5850c1543fa488abf260f18390eda46cf85d/results/results-imagenet.csv).
The ``create_model`` overrides a checkpoint's architecture needs are its conversion reference's
(``convert.get_reference("timm", name)``), not repeated here.
``LEFT_OUT``: references without a figure, and why.
"""

from __future__ import annotations

from typing import Any

SOURCE_URL = "https://github.com/huggingface/pytorch-image-models/blob/aa4b5850c1543fa488abf260f18390eda46cf85d/results/results-imagenet.csv"

# model: [{checkpoint, top1, image_size, crop_pct, source}]
TIMM_TOP1: dict[str, list[dict[str, Any]]] = {
    "cspdarknet53": [
        {
            "checkpoint": "cspdarknet53.ra_in1k",
            "top1": 80.078,
            "image_size": 256,
            "crop_pct": 0.887,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "darknet53": [
        {
            "checkpoint": "darknet53.c2ns_in1k",
            "top1": 80.008,
            "image_size": 256,
            "crop_pct": 0.887,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "efficientnet_b0": [
        {
            "checkpoint": "efficientnet_b0.ra_in1k",
            "top1": 77.698,
            "image_size": 224,
            "crop_pct": 0.875,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "vovnet39": [
        {
            "checkpoint": "ese_vovnet39b.ra_in1k",
            "top1": 79.312,
            "image_size": 224,
            "crop_pct": 0.875,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "vovnet57": [
        {
            "checkpoint": "ese_vovnet57b.ra4_e3600_r256_in1k",
            "top1": 82.46,
            "image_size": 256,
            "crop_pct": 0.95,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "inception_resnet_v2": [
        {
            "checkpoint": "inception_resnet_v2.tf_in1k",
            "top1": 80.434,
            "image_size": 299,
            "crop_pct": 0.897,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "inception_v3": [
        {
            "checkpoint": "inception_v3.tv_in1k",
            "top1": 77.472,
            "image_size": 299,
            "crop_pct": 0.875,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "inception_v4": [
        {
            "checkpoint": "inception_v4.tf_in1k",
            "top1": 80.144,
            "image_size": 299,
            "crop_pct": 0.875,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "senet154": [
        {
            "checkpoint": "legacy_senet154.in1k",
            "top1": 81.32,
            "image_size": 224,
            "crop_pct": 0.875,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "seresnet101": [
        {
            "checkpoint": "legacy_seresnet101.in1k",
            "top1": 78.37,
            "image_size": 224,
            "crop_pct": 0.875,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "seresnet152": [
        {
            "checkpoint": "legacy_seresnet152.in1k",
            "top1": 78.662,
            "image_size": 224,
            "crop_pct": 0.875,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "seresnet50": [
        {
            "checkpoint": "legacy_seresnet50.in1k",
            "top1": 77.65,
            "image_size": 224,
            "crop_pct": 0.875,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "seresnext101_32x4d": [
        {
            "checkpoint": "legacy_seresnext101_32x4d.in1k",
            "top1": 80.274,
            "image_size": 224,
            "crop_pct": 0.875,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "seresnext50_32x4d": [
        {
            "checkpoint": "legacy_seresnext50_32x4d.in1k",
            "top1": 79.08,
            "image_size": 224,
            "crop_pct": 0.875,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "xception": [
        {
            "checkpoint": "legacy_xception.tf_in1k",
            "top1": 79.058,
            "image_size": 299,
            "crop_pct": 0.897,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "mobilenet_v1": [
        {
            "checkpoint": "mobilenetv1_100.ra4_e3600_r224_in1k",
            "top1": 75.388,
            "image_size": 224,
            "crop_pct": 0.875,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "mobilenet_v3_large": [
        {
            "checkpoint": "mobilenetv3_large_100.ra_in1k",
            "top1": 75.784,
            "image_size": 224,
            "crop_pct": 0.875,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "nasnet_a_large": [
        {
            "checkpoint": "nasnetalarge.tf_in1k",
            "top1": 82.638,
            "image_size": 331,
            "crop_pct": 0.911,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "resnet50": [
        {
            "checkpoint": "resnet50.a1_in1k",
            "top1": 80.382,
            "image_size": 224,
            "crop_pct": 0.95,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "preact_resnet101": [
        {
            "checkpoint": "resnetv2_101.a1h_in1k",
            "top1": 82.042,
            "image_size": 224,
            "crop_pct": 0.95,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "preact_resnet18": [
        {
            "checkpoint": "resnetv2_18.ra4_e3600_r224_in1k",
            "top1": 73.572,
            "image_size": 224,
            "crop_pct": 0.9,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "preact_resnet34": [
        {
            "checkpoint": "resnetv2_34.ra4_e3600_r224_in1k",
            "top1": 77.626,
            "image_size": 224,
            "crop_pct": 0.9,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
    "preact_resnet50": [
        {
            "checkpoint": "resnetv2_50.a1h_in1k",
            "top1": 80.41,
            "image_size": 224,
            "crop_pct": 0.95,
            "source": "huggingface/pytorch-image-models results/results-imagenet.csv @ aa4b5850c154",
        }
    ],
}

LEFT_OUT: dict[str, str] = {
    "ese_vovnet19b_slim.untrained": "timm 1.0.31 ships no pretrained weights for it (tag 'untrained')",
    "ese_vovnet99b.untrained": "timm 1.0.31 ships no pretrained weights for it (tag 'untrained')",
    "mobilenetv1_125.ra4_e3600_r224_in1k": "needs overrides {'width_multiplier': 1.25}: not a registered variant",
    "resnetv2_152.untrained": "timm 1.0.31 ships no pretrained weights for it (tag 'untrained')",
    "vovnet39a.untrained": "timm 1.0.31 ships no pretrained weights for it (tag 'untrained')",
    "vovnet57a.untrained": "timm 1.0.31 ships no pretrained weights for it (tag 'untrained')",
}
