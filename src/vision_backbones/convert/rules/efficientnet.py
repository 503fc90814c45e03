"""torchvision and timm EfficientNet keys -> ours.

Both libraries group the blocks by the rows of the (depth-scaled) B0 table: torchvision as
``features.<row + 1>.<i>.block.<k>`` between the stem ``features.0`` and the head conv
``features.<rows + 1>``, timm as ``blocks.<row>.<i>`` between ``conv_stem``/``bn1`` and
``conv_head``/``bn2``. Our stages cut the same block sequence where the resolution halves (the head
conv is our ``head_conv``), so the rules pair the two name lists layer by layer (helpers shared with ``convert/rules/mobilenet.py``).
timm's ``efficientnet_b0`` is torchvision's architecture (same SE width, batch norm eps 1e-5).
"""

from __future__ import annotations

from vision_backbones.convert.reference import Reference, register_references
from vision_backbones.convert.rules.mobilenet import (
    ModulePairs,
    conv_pairs,
    module_rules,
    nested_names,
    timm_block,
    torchvision_block,
)
from vision_backbones.layers.inverted_residual import layer_names, row_repeats
from vision_backbones.models.efficientnet import VARIANTS, EfficientNetConfig, block_specs


def _torchvision_rules(config: EfficientNetConfig) -> list[tuple[str, str]]:
    specs, repeats = block_specs(config), row_repeats(config.rows, config.depth_multiplier)
    names = layer_names(specs)
    pairs: ModulePairs = conv_pairs("features.0.0", "features.0.1", names[0])
    # An empty group 0 (the stem) makes row r of the table torchvision's features.<r + 1>.
    for ref, ours, spec in zip(nested_names("features", [0, *repeats]), names[1:-1], specs):
        pairs += torchvision_block(f"{ref}.block", ours, spec)
    last = len(repeats) + 1
    pairs += conv_pairs(f"features.{last}.0", f"features.{last}.1", names[-1])
    return module_rules([*pairs, ("classifier.1", "head.fc")])


def _timm_rules(config: EfficientNetConfig) -> list[tuple[str, str]]:
    specs = block_specs(config)
    names = layer_names(specs)
    pairs: ModulePairs = conv_pairs("conv_stem", "bn1", names[0])
    for ref, ours, spec in zip(
        nested_names("blocks", row_repeats(config.rows, config.depth_multiplier)), names[1:-1], specs
    ):
        pairs += timm_block(ref, ours, spec)
    pairs += conv_pairs("conv_head", "bn2", names[-1])
    return module_rules([*pairs, ("classifier", "head.fc")])


register_references(
    [Reference("torchvision", name, name, _torchvision_rules(config)) for name, config in VARIANTS.items()]
    + [Reference("timm", "efficientnet_b0", "efficientnet_b0", _timm_rules(VARIANTS["efficientnet_b0"]))]
)
