"""torchvision and timm MobileNetV2 / MobileNetV3 keys -> ours (and the helpers EfficientNet's rules share).

Our layers are ``stages.<s>.<i>`` (``layers.inverted_residual.layer_names``): the stem conv and every
inverted residual block, then ``head_conv``. A reference numbers the same layers its own way
(torchvision: ``features.<k>``, timm: ``blocks.<stage>.<i>``), so the rules pair the two name lists
layer by layer, then each reference sub-module with ours: one ``(module, module)`` pair per conv,
norm or SE layer, every tensor of the module renamed alike (``weight``, ``running_var``, ...).

Where torchvision's blocks are ``nn.Sequential`` the sub-module index depends on which parts the block
has: ``[expand] depthwise [se] project``, exactly our order, so both come from the block's spec.
timm's ``mobilenetv3_large_100`` differs from torchvision's ``mobilenet_v3_large`` in batch norm eps
(a config override) and in computing the classifier's hidden layer as a 1x1 conv on the pooled map
(``conv_head``): the same function as our hidden ``Linear``, so only the weight is reshaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from vision_backbones.convert.reference import Reference, StateDict, register_references
from vision_backbones.layers.inverted_residual import InvertedResidualSpec, layer_names
from vision_backbones.models import mobilenet_v2, mobilenet_v3

ModulePairs = list[tuple[str, str]]  # (reference module, our module)


def module_rules(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """One rule per module pair: every tensor ``<reference>.<tensor>`` becomes ``<ours>.<tensor>``."""
    return [(re.escape(f"{ref}.") + r"(\w+)", f"{ours}.\\1") for ref, ours in pairs]


def _our_parts(spec: InvertedResidualSpec) -> list[str]:
    """Our block's sub-modules in forward order (``InvertedResidual`` leaves out expand and SE when unused)."""
    expand = ["expand"] if spec.expanded_channels != spec.in_channels else []
    se = ["se"] if spec.squeeze_channels > 0 else []
    return [*expand, "depthwise", *se, "project"]


def conv_pairs(ref_conv: str, ref_norm: str, ours: str) -> ModulePairs:
    return [(ref_conv, f"{ours}.conv"), (ref_norm, f"{ours}.norm")]


def torchvision_block(ref: str, ours: str, spec: InvertedResidualSpec, *, split_project: bool = False) -> ModulePairs:
    """torchvision's ``<ref>.<k>`` sub-modules: ``Conv2dNormActivation`` (``.0`` conv, ``.1`` norm) or
    ``SqueezeExcitation`` (``fc1``, ``fc2``). MobileNetV2 (``split_project``) keeps the projection's
    conv and norm as two entries ``<k>`` and ``<k + 1>``."""
    pairs: ModulePairs = []
    for k, part in enumerate(_our_parts(spec)):
        if part == "se":
            pairs += [(f"{ref}.{k}.fc1", f"{ours}.se.reduce"), (f"{ref}.{k}.fc2", f"{ours}.se.expand")]
        elif part == "project" and split_project:
            pairs += conv_pairs(f"{ref}.{k}", f"{ref}.{k + 1}", f"{ours}.project")
        else:
            pairs += conv_pairs(f"{ref}.{k}.0", f"{ref}.{k}.1", f"{ours}.{part}")
    return pairs


def timm_block(ref: str, ours: str, spec: InvertedResidualSpec) -> ModulePairs:
    """timm's ``InvertedResidual`` (``conv_pw bn1 conv_dw bn2 se conv_pwl bn3``) or, without expansion,
    ``DepthwiseSeparableConv`` (``conv_dw bn1 se conv_pw bn2``)."""
    pairs: ModulePairs = []
    if spec.expanded_channels != spec.in_channels:
        pairs += conv_pairs(f"{ref}.conv_pw", f"{ref}.bn1", f"{ours}.expand")
        pairs += conv_pairs(f"{ref}.conv_dw", f"{ref}.bn2", f"{ours}.depthwise")
        project = conv_pairs(f"{ref}.conv_pwl", f"{ref}.bn3", f"{ours}.project")
    else:
        pairs += conv_pairs(f"{ref}.conv_dw", f"{ref}.bn1", f"{ours}.depthwise")
        project = conv_pairs(f"{ref}.conv_pw", f"{ref}.bn2", f"{ours}.project")
    if spec.squeeze_channels > 0:
        pairs += [(f"{ref}.se.conv_reduce", f"{ours}.se.reduce"), (f"{ref}.se.conv_expand", f"{ours}.se.expand")]
    return pairs + project


def nested_names(prefix: str, sizes: Sequence[int]) -> list[str]:
    """``<prefix>.<group>.<index>`` for groups of the given sizes, in order."""
    return [f"{prefix}.{group}.{index}" for group, size in enumerate(sizes) for index in range(size)]


def torchvision_flat_pairs(specs: Sequence[InvertedResidualSpec], block: str, *, split_project: bool) -> ModulePairs:
    """torchvision MobileNets: ``features.0`` stem, ``features.<k>.<block>`` blocks, ``features.<n+1>`` head conv."""
    names = layer_names(specs)
    pairs = conv_pairs("features.0.0", "features.0.1", names[0])
    for k, (ours, spec) in enumerate(zip(names[1:-1], specs), start=1):
        pairs += torchvision_block(f"features.{k}.{block}", ours, spec, split_project=split_project)
    last = len(specs) + 1
    return pairs + conv_pairs(f"features.{last}.0", f"features.{last}.1", names[-1])


def _timm_mobilenetv3_pairs(specs: Sequence[InvertedResidualSpec], stage_sizes: Sequence[int]) -> ModulePairs:
    names = layer_names(specs)
    ref_blocks = nested_names("blocks", stage_sizes)
    if len(ref_blocks) != len(specs):
        raise ValueError(f"timm stage sizes {stage_sizes} give {len(ref_blocks)} blocks, the config {len(specs)}")
    pairs = conv_pairs("conv_stem", "bn1", names[0])
    for ref, ours, spec in zip(ref_blocks, names[1:-1], specs):
        pairs += timm_block(ref, ours, spec)
    head_conv = f"blocks.{len(stage_sizes)}.0"  # timm's last "stage" is the 1x1 conv to 960 channels
    pairs += conv_pairs(f"{head_conv}.conv", f"{head_conv}.bn1", names[-1])
    return [*pairs, ("conv_head", "head.hidden.0"), ("classifier", "head.fc")]


def _conv_head_to_linear(state_dict: StateDict) -> StateDict:
    """timm's ``conv_head`` is a 1x1 conv on the pooled (B, 960, 1, 1) map: our hidden Linear's weight, 4-D."""
    return {k: v.flatten(1) if k == "conv_head.weight" else v for k, v in state_dict.items()}


_V2 = mobilenet_v2.block_specs(mobilenet_v2.VARIANTS["mobilenet_v2"])
_V3 = {name: mobilenet_v3.block_specs(config) for name, config in mobilenet_v3.VARIANTS.items()}
# timm groups mobilenetv3_large_100's 15 blocks by its own stage table (``_gen_mobilenet_v3``).
_TIMM_V3_LARGE_STAGES = (1, 2, 3, 4, 2, 3)

register_references(
    [
        Reference(
            "torchvision",
            "mobilenet_v2",
            "mobilenet_v2",
            module_rules([*torchvision_flat_pairs(_V2, "conv", split_project=True), ("classifier.1", "head.fc")]),
        ),
        *(
            Reference(
                "torchvision",
                name,
                name,
                module_rules(
                    [
                        *torchvision_flat_pairs(specs, "block", split_project=False),
                        ("classifier.0", "head.hidden.0"),
                        ("classifier.3", "head.fc"),
                    ]
                ),
            )
            for name, specs in _V3.items()
        ),
        Reference(
            "timm",
            "mobilenetv3_large_100",
            "mobilenet_v3_large",
            module_rules(_timm_mobilenetv3_pairs(_V3["mobilenet_v3_large"], _TIMM_V3_LARGE_STAGES)),
            overrides={"bn_eps": 1e-5, "bn_momentum": 0.1},
            transform=_conv_head_to_linear,
        ),
    ]
)
