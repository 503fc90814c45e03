"""Transforms: a PIL image (opened lazily, not decoded yet) -> ``uint8`` CHW tensor.

Speed: JPEGs are decoded at reduced size where the crop allows it (JPEG draft mode: libjpeg
scales by 1/2, 1/4 or 1/8 while decoding), and workers hand over ``uint8`` tensors (4x less to
copy than float); normalization runs on the batch, on the training device, after transfer
(:meth:`~vision_backbones.train.datamodule.ImageDataModule.on_after_batch_transfer`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from PIL import Image
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_PIL_FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def _interpolation(name: str):
    from torchvision.transforms import InterpolationMode

    return InterpolationMode(name.lower())


class TrainTransform:
    """RandomResizedCrop (decoded in JPEG draft mode when the crop allows), flip, TrivialAugmentWide, RandomErasing.

    The crop parameters come from torchvision's ``RandomResizedCrop.get_params`` before the image is
    decoded; the JPEG is then decoded at the smallest 1/2^k scale that still holds the crop at the
    output size, and cropped and resized in one PIL call (``reducing_gap`` uses a fast box
    reduction first for large reductions). Flip and TrivialAugmentWide are torchvision.transforms.v2
    on the small PIL image; RandomErasing is v2 on the ``uint8`` tensor, with the mean colour.
    """

    def __init__(
        self,
        crop_size: int = 176,
        *,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        hflip_prob: float = 0.5,
        auto_augment: Literal["ta_wide", "randaugment", "augmix", "none"] = "ta_wide",
        random_erase_prob: float = 0.1,
        interpolation: str = "bilinear",
        draft: bool = True,
        reducing_gap: float | None = 3.0,
        mean: Sequence[float] = IMAGENET_MEAN,
    ) -> None:
        from torchvision.transforms import v2

        from vision_backbones.validate import check_choice, check_float, check_int, check_range

        check_int("crop_size", crop_size, min=1)
        check_range("scale", scale, min=0, max=1)
        check_range("ratio", ratio, min=0, max=float("inf"))
        check_float("hflip_prob", hflip_prob, min=0, max=1)
        check_float("random_erase_prob", random_erase_prob, min=0, max=1)
        check_choice("interpolation", interpolation, tuple(_PIL_FILTERS))
        self.crop_size = crop_size
        self.scale = list(scale)
        self.ratio = list(ratio)
        self.draft = draft
        self.reducing_gap = reducing_gap
        self.interpolation = _interpolation(interpolation)
        self.pil_filter = _PIL_FILTERS[interpolation]
        steps: list[Any] = []
        if hflip_prob > 0:
            steps.append(v2.RandomHorizontalFlip(hflip_prob))
        if auto_augment == "ta_wide":
            steps.append(v2.TrivialAugmentWide(interpolation=self.interpolation))
        elif auto_augment == "randaugment":
            steps.append(v2.RandAugment(interpolation=self.interpolation))
        elif auto_augment == "augmix":
            steps.append(v2.AugMix(interpolation=self.interpolation))
        elif auto_augment != "none":
            raise ValueError(f"auto_augment must be 'ta_wide', 'randaugment', 'augmix' or 'none', got {auto_augment!r}")
        self.pil_steps = v2.Compose(steps) if steps else None
        # erased pixels get the mean colour: zero after normalization, as in torchvision's recipe
        fill = [round(255 * m) for m in mean]
        self.erase = v2.RandomErasing(p=random_erase_prob, value=fill) if random_erase_prob > 0 else None

    def __call__(self, image: Image.Image) -> Tensor:
        from torchvision.transforms import RandomResizedCrop
        from torchvision.transforms.v2 import functional as F

        top, left, height, width = RandomResizedCrop.get_params(image, self.scale, self.ratio)
        box = (left, top, left + width, top + height)
        if self.draft and image.format == "JPEG":
            full_w, full_h = image.size
            image.draft("RGB", (math.ceil(full_w * self.crop_size / width), math.ceil(full_h * self.crop_size / height)))
            sx, sy = image.size[0] / full_w, image.size[1] / full_h
            box = (left * sx, top * sy, (left + width) * sx, (top + height) * sy)
        if image.mode != "RGB":
            image = image.convert("RGB")
        image = image.resize((self.crop_size, self.crop_size), self.pil_filter, box=box, reducing_gap=self.reducing_gap)
        if self.pil_steps is not None:
            image = self.pil_steps(image)
        tensor = F.pil_to_tensor(image)
        return self.erase(tensor) if self.erase is not None else tensor


class EvalTransform:
    """Resize the shorter side to ``resize_size`` and center crop ``crop_size``, in one PIL resize of the crop box.

    JPEGs are decoded in draft mode at the smallest scale still larger than the resize.
    """

    def __init__(
        self,
        resize_size: int = 232,
        crop_size: int = 224,
        *,
        interpolation: str = "bilinear",
        draft: bool = True,
        reducing_gap: float | None = 3.0,
    ) -> None:
        from vision_backbones.validate import check_choice, check_int

        check_int("resize_size", resize_size, min=1)
        check_int("crop_size", crop_size, min=1)
        if crop_size > resize_size:
            raise ValueError(f"crop_size {crop_size} must be <= resize_size {resize_size} (the center crop is taken from the resized image)")
        check_choice("interpolation", interpolation, tuple(_PIL_FILTERS))
        self.resize_size = resize_size
        self.crop_size = crop_size
        self.pil_filter = _PIL_FILTERS[interpolation]
        self.draft = draft
        self.reducing_gap = reducing_gap

    def __call__(self, image: Image.Image) -> Tensor:
        from torchvision.transforms.v2 import functional as F

        if self.draft and image.format == "JPEG":
            w, h = image.size
            short = min(w, h)
            image.draft("RGB", (math.ceil(w * self.resize_size / short), math.ceil(h * self.resize_size / short)))
        if image.mode != "RGB":
            image = image.convert("RGB")
        w, h = image.size
        factor = self.resize_size / min(w, h)  # source pixels -> resized pixels
        crop = self.crop_size / factor  # the center crop, in source pixels
        left, top = (w - crop) / 2, (h - crop) / 2
        image = image.resize((self.crop_size, self.crop_size), self.pil_filter, box=(left, top, left + crop, top + crop), reducing_gap=self.reducing_gap)
        return F.pil_to_tensor(image)
