"""JPEG decoding for the input pipeline: simplejpeg with DCT-domain scaling where installed, else Pillow.

Why a second decoder: Pillow's ``Image.open`` + ``load`` parses the file in Python (markers, MPO
check, chunked reads) before libjpeg-turbo runs; simplejpeg hands the bytes to libjpeg-turbo in one
call. Both can decode at 1/2, 1/4 or 1/8 scale in the DCT domain, which is where most of the
saving on large photos lies: the scale is chosen from the crop, so the decoded crop still has at
least the output's resolution.

Only the power-of-two scales are used: libjpeg-turbo also offers M/8 scales (7/8, 5/8, ...) but
those are slower than a full decode on this kind of CPU.

pillow-simd (a drop-in Pillow fork with SIMD resize and filters, version strings like
``9.5.0.post1``) is recognised by :func:`pillow_is_simd`; it speeds up the resize and
TrivialAugmentWide steps of the Pillow path, and nothing else needs to change for it.
"""

from __future__ import annotations

import functools
import math
import threading
from typing import Literal

from PIL import Image

DecoderName = Literal["auto", "simplejpeg", "pillow"]
DECODERS = ("auto", "simplejpeg", "pillow")
JPEG_MAGIC = b"\xff\xd8\xff"
SCALE_DIVISORS = (8, 4, 2, 1)  # DCT-domain reductions libjpeg does quickly


@functools.lru_cache(maxsize=1)
def simplejpeg_available() -> bool:
    try:
        import simplejpeg  # noqa: F401
    except ImportError:
        return False
    return True


def pillow_is_simd() -> bool:
    """True under pillow-simd (its versions carry a ``.postN`` suffix, e.g. ``9.5.0.post1``)."""
    import PIL

    return "post" in PIL.__version__


def resolve_decoder(name: str) -> Literal["simplejpeg", "pillow"]:
    """The decoder ``name`` stands for on this machine (``auto``: simplejpeg if installed, else Pillow)."""
    from vision_backbones.validate import check_choice

    check_choice("decoder", name, DECODERS)
    if name == "auto":
        return "simplejpeg" if simplejpeg_available() else "pillow"
    if name == "simplejpeg" and not simplejpeg_available():
        raise ValueError(
            "decoder 'simplejpeg' is not installed (pip install simplejpeg); use decoder 'pillow' or 'auto'"
        )
    return name  # type: ignore[return-value]


def describe_decoder(name: str) -> str:
    """One line for logs and benchmark tables: which library decodes, and on which Pillow."""
    import PIL

    resolved = resolve_decoder(name)
    pillow = f"pillow-simd {PIL.__version__}" if pillow_is_simd() else f"Pillow {PIL.__version__}"
    if resolved == "simplejpeg":
        import simplejpeg

        return f"simplejpeg {simplejpeg.__version__} (JPEG), {pillow} (other formats, augmentation)"
    return pillow


def is_jpeg(data: bytes) -> bool:
    return data[:3] == JPEG_MAGIC


def scale_divisor(size: tuple[int, int], box_size: tuple[float, float], output_size: tuple[int, int]) -> int:
    """The largest of 8, 4, 2, 1 that still leaves ``box_size`` (source pixels) at least ``output_size``.

    The same rule as Pillow's ``Image.draft``: decoding at ``1/k`` never makes the crop smaller
    than the output, so no detail the resize would have kept is lost.
    """
    width, height = size
    for divisor in SCALE_DIVISORS:
        # libjpeg's scaled size is ceil(size / k); the box shrinks by the same factor
        scaled_w, scaled_h = math.ceil(width / divisor), math.ceil(height / divisor)
        if box_size[0] * scaled_w / width >= output_size[0] and box_size[1] * scaled_h / height >= output_size[1]:
            return divisor
    return 1


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the JPEG header with simplejpeg, or ``None`` if it cannot read it (CMYK, corrupt)."""
    import simplejpeg

    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if colorspace not in ("Gray", "YCbCr", "RGB"):  # CMYK / YCCK: leave them to Pillow's conversion
        return None
    return width, height


class _DecodeBuffer(threading.local):
    """One growing output buffer per thread (each loader worker is a process with its own).

    Decoding into the same memory every time, rather than into a fresh array, avoids a page fault
    per 4 KiB on every image (blocks this large are mapped anew by glibc on each allocation).
    """

    def __init__(self) -> None:
        self.data = bytearray(0)

    def get(self, size: int) -> bytearray:
        if len(self.data) < size:
            self.data = bytearray(size)
        return self.data


_buffer = _DecodeBuffer()


def decode_jpeg_scaled(data: bytes, size: tuple[int, int], divisor: int) -> Image.Image:
    """The image decoded by simplejpeg at ``1/divisor`` of ``size`` (DCT-domain scaling), as an ``RGBX`` PIL view.

    The view shares this thread's decode buffer (no copy into Pillow): resize or copy it before the
    next decode in the same thread.
    """
    import simplejpeg

    width, height = math.ceil(size[0] / divisor), math.ceil(size[1] / divisor)
    buffer = _buffer.get(width * height * 4)
    array = simplejpeg.decode_jpeg(data, colorspace="RGBX", min_width=width, min_height=height, buffer=buffer)
    return Image.frombuffer("RGBX", (array.shape[1], array.shape[0]), buffer, "raw", "RGBX", 0, 1)
