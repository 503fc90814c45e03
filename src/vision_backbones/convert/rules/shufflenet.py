"""torchvision ShuffleNetV2 keys -> ours (ShuffleNet v1 has no torchvision or timm reference).

torchvision names the stem conv/BN ``conv1.0``/``conv1.1``, the shuffle stages ``stage2..4`` (our
``stages.1..3``, whose units sit in ``blocks``), a unit's strided second branch ``branch1`` (our
``shortcut``: depthwise conv/BN at 0/1, 1x1 conv/BN at 2/3) and its main branch ``branch2`` (our
``branch``: convs/BNs at 0/1, 3/4, 5/6), the last 1x1 conv ``conv5`` (our ``head_conv``) and the classifier ``fc``.
"""

from __future__ import annotations

from vision_backbones.convert.reference import Reference, register_references

# (torchvision module index, our ConvNormAct, its part) inside each branch.
_BRANCH1 = ((0, "0.conv"), (1, "0.norm"), (2, "1.conv"), (3, "1.norm"))
_BRANCH2 = ((0, "0.conv"), (1, "0.norm"), (3, "1.conv"), (4, "1.norm"), (5, "2.conv"), (6, "2.norm"))

RULES: list[tuple[str, str]] = [
    (r"conv1\.0\.weight", r"stages.0.conv.conv.weight"),
    (r"conv1\.1\.(.+)", r"stages.0.conv.norm.\1"),
    *(
        (rf"stage{s}\.(\d+)\.branch1\.{k}\.(.+)", rf"stages.{s - 1}.blocks.\1.shortcut.{ours}.\2")
        for s in (2, 3, 4)
        for k, ours in _BRANCH1
    ),
    *(
        (rf"stage{s}\.(\d+)\.branch2\.{k}\.(.+)", rf"stages.{s - 1}.blocks.\1.branch.{ours}.\2")
        for s in (2, 3, 4)
        for k, ours in _BRANCH2
    ),
    (r"conv5\.0\.weight", r"head_conv.conv.weight"),
    (r"conv5\.1\.(.+)", r"head_conv.norm.\1"),
    (r"fc\.(weight|bias)", r"head.fc.\1"),
]

register_references(
    [
        Reference("torchvision", name, name, RULES)
        for name in ("shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0")
    ]
)
