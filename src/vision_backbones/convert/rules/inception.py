"""torchvision and timm Inception keys (GoogLeNet, Inception v3, v4, Inception-ResNet-v2) -> ours.

Every reference wraps its convs as ``<name>.conv`` + ``<name>.bn`` (our ``BasicConv``: ``.conv`` +
``.norm``) and names its Inception branches; ours are ``branches.<i>`` of a ``Branches`` module
(a branch that opens with a pool has its conv at ``.1``; a split 1x3 / 3x1 tail is a nested
``Branches``). Stages: ``stages.0`` is the stride-2 level, then each stage is ``downsample``
(pool or reduction block) + ``blocks`` (+ ``conv``). Auxiliary classifiers live in our head
(``head.aux*``), so features-only models skip them like the classifier.

Rules are built from two small tables per family: literal module prefixes (reference -> ours) and
the regex rules inside one block type, combined by ``_nest``.

Config notes: torchvision's builders set ``transform_input=True`` when they load their pretrained
weights; the references here are the architectures ``get_model(name, weights=None)`` builds
(``transform_input=False``). For torchvision's released googlenet / inception_v3 files pass
``transform_input=True`` to ``create_model`` together with the converted weights. timm's
``inception_v3`` has no aux head (its ``tv_in1k`` file carries torchvision's, which timm ignores).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vision_backbones.convert.reference import Reference, register_references

Rules = list[tuple[str, str]]


def _conv_bn(src: str, dst: str) -> Rules:
    """A reference conv + BN pair (``src``, a regex) -> our ``BasicConv`` ``dst`` (conv + norm)."""
    return [(src + r"\.conv\.weight", dst + ".conv.weight"), (src + r"\.bn\.(?P<leaf>\w+)", dst + r".norm.\g<leaf>")]


def _nest(prefixes: Sequence[tuple[str, str]], rules: Rules) -> Rules:
    """``rules`` applied inside each literal module prefix (reference prefix -> ours)."""
    return [(re.escape(src) + r"\." + pattern, f"{dst}.{repl}") for src, dst in prefixes for pattern, repl in rules]


def _blocks(names: Sequence[str], stage: int) -> list[tuple[str, str]]:
    return [(name, f"stages.{stage}.blocks.{i}") for i, name in enumerate(names)]


def _numbered(src: str, dst: str, count: int) -> Rules:
    """``src_1 .. src_<count>`` (1-based, a chain of convs) -> ``dst.0 .. dst.<count - 1>``."""
    return [rule for i in range(count) for rule in _conv_bn(f"{src}_{i + 1}", f"{dst}.{i}")]


def _linear(src: str, dst: str) -> Rules:
    return [(src + r"\.(weight|bias)", dst + r".\1")]


# ---------------------------------------------------------------- GoogLeNet (torchvision)

_V1_BLOCK: Rules = [
    *_conv_bn("branch1", "branches.0"),
    *_conv_bn(r"branch2\.(\d)", r"branches.1.\1"),
    *_conv_bn(r"branch3\.(\d)", r"branches.2.\1"),
    *_conv_bn(r"branch4\.1", "branches.3.1"),  # branch4.0 is the max pool
]
_V1_AUX: Rules = [*_conv_bn("conv", "reduce"), *_linear("fc1", "fc1"), *_linear("fc2", "fc2")]

GOOGLENET_RULES: Rules = [
    *_conv_bn("conv1", "stages.0"),
    *_conv_bn("conv2", "stages.1.blocks.0"),
    *_conv_bn("conv3", "stages.1.blocks.1"),
    *_nest(
        _blocks(["inception3a", "inception3b"], 2)
        + _blocks([f"inception4{c}" for c in "abcde"], 3)
        + _blocks(["inception5a", "inception5b"], 4),
        _V1_BLOCK,
    ),
    *_nest([("aux1", "head.aux1"), ("aux2", "head.aux2")], _V1_AUX),
    *_linear("fc", "head.fc"),
]
# torchvision's port: a 3x3 "5x5" branch, a 2x2 last pool, drop_rate 0.2; aux heads on (its default).
GOOGLENET_TORCHVISION = {"branch5x5_kernel_size": 3, "last_pool_kernel_size": 2, "drop_rate": 0.2, "aux_logits": True}

# ---------------------------------------------------------------- Inception v3 (torchvision and timm)

_V3_A: Rules = [  # InceptionA, Mixed_5b-d
    *_conv_bn("branch1x1", "branches.0"),
    *_numbered("branch5x5", "branches.1", 2),
    *_numbered("branch3x3dbl", "branches.2", 3),
    *_conv_bn("branch_pool", "branches.3.1"),
]
_V3_REDUCTION_A: Rules = [*_conv_bn("branch3x3", "branches.0"), *_numbered("branch3x3dbl", "branches.1", 3)]  # Mixed_6a
_V3_B: Rules = [  # InceptionC, Mixed_6b-e
    *_conv_bn("branch1x1", "branches.0"),
    *_numbered("branch7x7", "branches.1", 3),
    *_numbered("branch7x7dbl", "branches.2", 5),
    *_conv_bn("branch_pool", "branches.3.1"),
]
_V3_REDUCTION_B: Rules = [  # Mixed_7a
    *_numbered("branch3x3", "branches.0", 2),
    *_numbered("branch7x7x3", "branches.1", 4),
]
_V3_C: Rules = [  # InceptionE, Mixed_7b-c: the 1x3 / 3x1 pairs are nested Branches
    *_conv_bn("branch1x1", "branches.0"),
    *_conv_bn("branch3x3_1", "branches.1.0"),
    *_conv_bn("branch3x3_2a", "branches.1.1.branches.0"),
    *_conv_bn("branch3x3_2b", "branches.1.1.branches.1"),
    *_numbered("branch3x3dbl", "branches.2", 2),
    *_conv_bn("branch3x3dbl_3a", "branches.2.2.branches.0"),
    *_conv_bn("branch3x3dbl_3b", "branches.2.2.branches.1"),
    *_conv_bn("branch_pool", "branches.3.1"),
]

_V3_AUX: Rules = [*_conv_bn("conv0", "reduce"), *_conv_bn("conv1", "conv"), *_linear("fc", "fc")]

INCEPTION_V3_RULES: Rules = [
    *_conv_bn("Conv2d_1a_3x3", "stages.0.0"),
    *_conv_bn("Conv2d_2a_3x3", "stages.0.1"),
    *_conv_bn("Conv2d_2b_3x3", "stages.0.2"),
    *_conv_bn("Conv2d_3b_1x1", "stages.1.blocks.0"),
    *_conv_bn("Conv2d_4a_3x3", "stages.1.blocks.1"),
    *_nest(_blocks(["Mixed_5b", "Mixed_5c", "Mixed_5d"], 2), _V3_A),
    *_nest([("Mixed_6a", "stages.3.downsample")], _V3_REDUCTION_A),
    *_nest(_blocks(["Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"], 3), _V3_B),
    *_nest([("Mixed_7a", "stages.4.downsample")], _V3_REDUCTION_B),
    *_nest(_blocks(["Mixed_7b", "Mixed_7c"], 4), _V3_C),
    *_nest([("AuxLogits", "head.aux")], _V3_AUX),
    *_linear("fc", "head.fc"),
]
INCEPTION_V3_TIMM = {"aux_logits": False, "drop_rate": 0.0}
_V3_AUX_KEYS = [r"AuxLogits\..+"]

# ---------------------------------------------------------------- Inception v4 and Inception-ResNet-v2 (timm)

# timm numbers branches from 0 like ours; 1x3 / 3x1 tails are ``branch<i>_<j>a`` / ``b``.
_TIMM_BRANCHES: Rules = [
    *_conv_bn(r"branch(\d)", r"branches.\1"),
    *_conv_bn(r"branch(\d)\.(\d)", r"branches.\1.\2"),
    *_conv_bn(r"branch(\d)_(\d)", r"branches.\1.\2"),
    *_conv_bn(r"branch(\d)_(\d)a", r"branches.\1.\2.branches.0"),
    *_conv_bn(r"branch(\d)_(\d)b", r"branches.\1.\2.branches.1"),
]

_V4_LAYOUT = (  # timm ``features.<i>`` -> our module
    [("features.3", "stages.1.downsample"), ("features.4", "stages.1.blocks.0"), ("features.5", "stages.2.downsample")]
    + [(f"features.{6 + i}", f"stages.2.blocks.{i}") for i in range(4)]
    + [("features.10", "stages.3.downsample")]
    + [(f"features.{11 + i}", f"stages.3.blocks.{i}") for i in range(7)]
    + [("features.18", "stages.4.downsample")]
    + [(f"features.{19 + i}", f"stages.4.blocks.{i}") for i in range(3)]
)
INCEPTION_V4_RULES: Rules = [
    *_conv_bn(r"features\.3\.conv", "stages.1.downsample.branches.1"),  # stem split: [max pool, conv]
    *_conv_bn(r"features\.5\.conv", "stages.2.downsample.branches.0"),  # stem split: [conv, max pool]
    *_conv_bn(r"features\.([012])", r"stages.0.\1"),  # the stem convs
    *_nest(_V4_LAYOUT, _TIMM_BRANCHES),
    *_linear("last_linear", "head.fc"),
]

_IRV2_RESIDUAL: Rules = [*_TIMM_BRANCHES, *_linear("conv2d", "project")]
INCEPTION_RESNET_V2_RULES: Rules = [
    *_conv_bn("conv2d_1a", "stages.0.0"),
    *_conv_bn("conv2d_2a", "stages.0.1"),
    *_conv_bn("conv2d_2b", "stages.0.2"),
    *_conv_bn("conv2d_3b", "stages.1.blocks.0"),
    *_conv_bn("conv2d_4a", "stages.1.blocks.1"),
    *_nest([("mixed_5b", "stages.2.blocks.0")], _TIMM_BRANCHES),
    *_nest([(f"repeat.{i}", f"stages.2.blocks.{i + 1}") for i in range(10)], _IRV2_RESIDUAL),
    *_nest([("mixed_6a", "stages.3.downsample")], _TIMM_BRANCHES),
    *_nest(_blocks([f"repeat_1.{i}" for i in range(20)], 3), _IRV2_RESIDUAL),
    *_nest([("mixed_7a", "stages.4.downsample")], _TIMM_BRANCHES),
    *_nest(_blocks([f"repeat_2.{i}" for i in range(9)] + ["block8"], 4), _IRV2_RESIDUAL),
    *_conv_bn("conv2d_7b", "stages.4.conv"),
    *_linear("classif", "head.fc"),
]


register_references(
    [
        Reference("torchvision", "googlenet", "googlenet", GOOGLENET_RULES, overrides=GOOGLENET_TORCHVISION),
        Reference("torchvision", "inception_v3", "inception_v3", INCEPTION_V3_RULES, overrides={"aux_logits": True}),
        # timm builds no aux head; its tv_in1k file still carries torchvision's, which timm skips too.
        Reference(
            "timm", "inception_v3", "inception_v3", INCEPTION_V3_RULES, overrides=INCEPTION_V3_TIMM, drop=_V3_AUX_KEYS
        ),
        Reference("timm", "inception_v4", "inception_v4", INCEPTION_V4_RULES),
        Reference("timm", "inception_resnet_v2", "inception_resnet_v2", INCEPTION_RESNET_V2_RULES),
    ]
)
