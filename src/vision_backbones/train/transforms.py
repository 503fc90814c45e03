"""Transforms: encoded image bytes (or a PIL image opened lazily, not decoded yet) -> ``uint8`` CHW tensor.

Speed: the crop is drawn from the image's header size before anything is decoded, and JPEGs are
decoded at reduced size where the crop allows it (libjpeg scales by 1/2, 1/4 or 1/8 in the DCT
domain: simplejpeg where installed, else Pillow's draft mode; see
:mod:`~vision_backbones.train.decode`). Workers hand over ``uint8`` tensors (4x less to copy than
float); normalization runs on the batch, on the training device, after transfer
(:meth:`~vision_backbones.train.datamodule.ImageDataModule.on_after_batch_transfer`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from PIL import Image
from torch import Tensor

from vision_backbones.train.decode import (
    DecoderName,
    decode_jpeg_scaled,
    is_jpeg,
    jpeg_size,
    resolve_decoder,
    scale_divisor,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


def _interpolation(name: str):
    from torchvision.transforms import InterpolationMode

    return InterpolationMode(name.lower())


def _size_only(width: int, height: int) -> Tensor:
    """A zero-byte ``(3, height, width)`` tensor: what ``RandomResizedCrop.get_params`` reads the size from."""
    return torch.empty(()).expand(3, height, width)


def _region_pil(
    image: Image.Image, box: tuple[float, float, float, float], output: tuple[int, int], draft: bool
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """``image`` in RGB, decoded in JPEG draft mode at the smallest scale that keeps ``box`` >= ``output``; ``box`` rescaled to it."""
    if draft and image.format == "JPEG":
        full_w, full_h = image.size
        width, height = box[2] - box[0], box[3] - box[1]
        image.draft("RGB", (math.ceil(full_w * output[0] / width), math.ceil(full_h * output[1] / height)))
        sx, sy = image.size[0] / full_w, image.size[1] / full_h
        box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image, box


class EncodedImageTransform:
    """Base of the library's transforms: takes encoded bytes (fast decoders) or a PIL image.

    ``choose_box(width, height)`` draws the source region before decoding (so the decoder can
    scale); the region is then decoded at reduced scale and resized to ``output`` in one PIL call.
    """

    takes_encoded = True  # :func:`~vision_backbones.train.datasets.load_sample` hands over bytes

    def __init__(self, *, decoder: DecoderName, draft: bool, reducing_gap: float | None, pil_filter: int) -> None:
        self.decoder = resolve_decoder(decoder)
        self.draft = draft
        self.reducing_gap = reducing_gap
        self.pil_filter = pil_filter

    def _region(
        self,
        image: Image.Image | bytes,
        choose_box: Callable[[int, int], tuple[float, float, float, float]],
        output: tuple[int, int],
    ) -> Image.Image:
        if isinstance(image, (bytes, bytearray, memoryview)):
            data = bytes(image)
            size = jpeg_size(data) if self.decoder == "simplejpeg" and is_jpeg(data) else None
            if size is not None:
                box = choose_box(*size)
                divisor = scale_divisor(size, (box[2] - box[0], box[3] - box[1]), output) if self.draft else 1
                try:
                    decoded = decode_jpeg_scaled(data, size, divisor)
                except ValueError:  # what simplejpeg cannot read, Pillow may (or reports it)
                    decoded = None
                if decoded is not None:
                    scale_x, scale_y = decoded.size[0] / size[0], decoded.size[1] / size[1]
                    box = (box[0] * scale_x, box[1] * scale_y, box[2] * scale_x, box[3] * scale_y)
                    return decoded.resize(output, self.pil_filter, box=box, reducing_gap=self.reducing_gap).convert(
                        "RGB"
                    )
                with Image.open(io.BytesIO(data)) as opened:
                    return self._pil_region(opened, box, output)
            with Image.open(io.BytesIO(data)) as opened:
                return self._pil_region(opened, choose_box(*opened.size), output)
        return self._pil_region(image, choose_box(*image.size), output)

    def _pil_region(
        self, image: Image.Image, box: tuple[float, float, float, float], output: tuple[int, int]
    ) -> Image.Image:
        image, box = _region_pil(image, box, output, self.draft)
        return image.resize(output, self.pil_filter, box=box, reducing_gap=self.reducing_gap)


class TrainTransform(EncodedImageTransform):
    """RandomResizedCrop (decoded at reduced scale when the crop allows), flip, TrivialAugmentWide, RandomErasing.

    The crop parameters come from torchvision's ``RandomResizedCrop.get_params`` before the image is
    decoded (same distribution of scale and ratio as torchvision); the JPEG is then decoded at the
    smallest 1/2^k scale that still holds the crop at the output size, and cropped and resized in
    one PIL call (``reducing_gap`` uses a fast box reduction first for large reductions). Flip and
    TrivialAugmentWide are torchvision.transforms.v2 on the small PIL image; RandomErasing is v2 on
    the ``uint8`` tensor, with the mean colour. The random draws come in that order from torch's
    CPU generator whatever the decoder, so a seeded sample gets the same crop and augmentation with
    simplejpeg and with Pillow (pixels differ by decoder rounding only).
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
        decoder: DecoderName = "auto",
    ) -> None:
        from torchvision.transforms import v2

        from vision_backbones.validate import check_choice, check_float, check_int, check_range

        check_int("crop_size", crop_size, min=1)
        check_range("scale", scale, min=0, max=1)
        check_range("ratio", ratio, min=0, max=float("inf"))
        check_float("hflip_prob", hflip_prob, min=0, max=1)
        check_float("random_erase_prob", random_erase_prob, min=0, max=1)
        check_choice("interpolation", interpolation, tuple(_PIL_FILTERS))
        super().__init__(
            decoder=decoder, draft=draft, reducing_gap=reducing_gap, pil_filter=_PIL_FILTERS[interpolation]
        )
        self.crop_size = crop_size
        self.scale = list(scale)
        self.ratio = list(ratio)
        self.interpolation = _interpolation(interpolation)
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

    def random_box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """torchvision's RandomResizedCrop region of a ``width`` x ``height`` image, as a PIL box."""
        from torchvision.transforms import RandomResizedCrop

        top, left, crop_h, crop_w = RandomResizedCrop.get_params(_size_only(width, height), self.scale, self.ratio)
        return (left, top, left + crop_w, top + crop_h)

    def __call__(self, image: Image.Image | bytes) -> Tensor:
        from torchvision.transforms.v2 import functional as F

        image = self._region(image, self.random_box, (self.crop_size, self.crop_size))
        if self.pil_steps is not None:
            image = self.pil_steps(image)
        tensor = F.pil_to_tensor(image)
        return self.erase(tensor) if self.erase is not None else tensor


class EvalTransform(EncodedImageTransform):
    """Resize the shorter side to ``resize_size`` and center crop ``crop_size``, in one PIL resize of the crop box.

    JPEGs are decoded at the smallest 1/2^k scale that keeps the crop at least ``crop_size``.
    """

    def __init__(
        self,
        resize_size: int = 232,
        crop_size: int = 224,
        *,
        interpolation: str = "bilinear",
        draft: bool = True,
        reducing_gap: float | None = 3.0,
        decoder: DecoderName = "auto",
    ) -> None:
        from vision_backbones.validate import check_choice, check_int

        check_int("resize_size", resize_size, min=1)
        check_int("crop_size", crop_size, min=1)
        if crop_size > resize_size:
            raise ValueError(
                f"crop_size {crop_size} must be <= resize_size {resize_size} (the center crop is taken from the resized image)"
            )
        check_choice("interpolation", interpolation, tuple(_PIL_FILTERS))
        super().__init__(
            decoder=decoder, draft=draft, reducing_gap=reducing_gap, pil_filter=_PIL_FILTERS[interpolation]
        )
        self.resize_size = resize_size
        self.crop_size = crop_size

    def center_box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """The center crop of the image resized to shorter side ``resize_size``, in source pixels."""
        crop = self.crop_size * min(width, height) / self.resize_size
        left, top = (width - crop) / 2, (height - crop) / 2
        return (left, top, left + crop, top + crop)

    def __call__(self, image: Image.Image | bytes) -> Tensor:
        from torchvision.transforms.v2 import functional as F

        return F.pil_to_tensor(self._region(image, self.center_box, (self.crop_size, self.crop_size)))
