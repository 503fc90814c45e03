"""torchvision VGG keys -> ours.

torchvision's ``features`` is one flat ``nn.Sequential`` (conv, [norm], ReLU, ..., pool, ...), so a
conv's index depends on the variant: the rules are generated from our variant table by walking that
sequence. ``classifier`` holds the linears at 0, 3, 6.

The ``_bn`` variants have a conv bias right before each norm. It is redundant (the norm subtracts
the mean), so ``_fold_conv_bias`` moves it into the norm's running mean: ``norm(conv(x) + b)`` with
``running_mean`` equals ``norm(conv(x))`` with ``running_mean - b``, in eval and in training alike.
"""

from __future__ import annotations

import re

from vision_backbones.convert.reference import Reference, StateDict, register_references
from vision_backbones.models.vgg import VARIANTS, VGGConfig

_HEAD_RULES: tuple[tuple[str, str], ...] = (
    (r"classifier\.0\.(weight|bias)", r"head.fc1.\1"),
    (r"classifier\.3\.(weight|bias)", r"head.fc2.\1"),
    (r"classifier\.6\.(weight|bias)", r"head.fc.\1"),
)


def _rules(config: VGGConfig) -> list[tuple[str, str]]:
    """One rule per conv (and norm) at its index in torchvision's flat ``features``."""
    rules: list[tuple[str, str]] = []
    index = 0
    for stage, depth in enumerate(config.depths):
        for conv in range(depth):
            ours = f"stages.{stage}.convs.{conv}"
            if config.batch_norm:
                rules.append((rf"features\.{index}\.weight", f"{ours}.conv.weight"))  # bias folded away
                rules.append((rf"features\.{index + 1}\.(.+)", rf"{ours}.norm.\1"))
                index += 3  # conv, norm, ReLU
            else:
                rules.append((rf"features\.{index}\.(weight|bias)", rf"{ours}.conv.\1"))
                index += 2  # conv, ReLU
        index += 1  # max pool
    return rules + list(_HEAD_RULES)


def _fold_conv_bias(state_dict: StateDict) -> StateDict:
    """Drop each conv bias that precedes a norm, subtracting it from that norm's running mean."""
    out = dict(state_dict)
    for key, weight in state_dict.items():
        match = re.fullmatch(r"features\.(\d+)\.weight", key)
        norm_mean = f"features.{int(match[1]) + 1}.running_mean" if match else ""
        if match and weight.dim() == 4 and norm_mean in state_dict:
            out[norm_mean] = state_dict[norm_mean] - out.pop(f"features.{match[1]}.bias")
    return out


register_references(
    [
        Reference("torchvision", name, name, _rules(config), transform=_fold_conv_bias if config.batch_norm else None)
        for name, config in VARIANTS.items()
    ]
)
