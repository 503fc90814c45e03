"""timm Darknet / CSPDarknet keys -> ours.

timm (``cspnet.py``) names every conv-norm-act ``<name>.conv`` / ``<name>.bn``; ours are
``<name>.conv`` / ``<name>.norm``. Stage and block indices agree (timm's stem is one stride-1 conv, as
ours). timm's CSP stage splits with one 1x1 conv (``conv_exp``) and ``torch.split``; ours has two
1x1 convs, so ``_split_csp_expansion`` cuts ``conv_exp``'s output channels in two: the first half
is the cross path (timm's ``xs``), the second the block path (``xb``).
"""

from __future__ import annotations

import re

from vision_backbones.convert.reference import Reference, StateDict, register_references


def _conv_norm(timm_name: str, our_name: str) -> list[tuple[str, str]]:
    """Rules for one conv-norm-act module; ``\\1``.. in ``our_name`` refer to groups of ``timm_name``."""
    groups = re.compile(timm_name).groups
    return [
        (rf"{timm_name}\.conv\.weight", rf"{our_name}.conv.weight"),
        (rf"{timm_name}\.bn\.(.+)", rf"{our_name}.norm.\{groups + 1}"),
    ]


RULES: tuple[tuple[str, str], ...] = (
    *_conv_norm(r"stem\.conv1", "stem"),
    *_conv_norm(r"stages\.(\d+)\.conv_down", r"stages.\1.down"),
    *_conv_norm(r"stages\.(\d+)\.blocks\.(\d+)\.(conv[12])", r"stages.\1.blocks.\2.\3"),
    # CSP stages (conv_exp_cross / conv_exp_block are made by _split_csp_expansion).
    *_conv_norm(r"stages\.(\d+)\.conv_exp_cross", r"stages.\1.cross_conv"),
    *_conv_norm(r"stages\.(\d+)\.conv_exp_block", r"stages.\1.block_conv"),
    *_conv_norm(r"stages\.(\d+)\.conv_transition_b", r"stages.\1.block_transition"),
    *_conv_norm(r"stages\.(\d+)\.conv_transition", r"stages.\1.transition"),
    (r"head\.fc\.(weight|bias)", r"head.fc.\1"),
)

_CONV_EXP = re.compile(r"(stages\.\d+)\.conv_exp\.(.+)")


def _split_csp_expansion(state_dict: StateDict) -> StateDict:
    """timm's ``conv_exp`` (C -> 2S channels, then split) -> our ``cross_conv`` and ``block_conv`` (C -> S each)."""
    out: StateDict = {}
    for key, value in state_dict.items():
        match = _CONV_EXP.fullmatch(key)
        if match is None:
            out[key] = value
            continue
        stage, param = match.groups()
        # Conv weight (2S, C, 1, 1) and norm vectors (2S,) split along dim 0; the scalar
        # num_batches_tracked goes to both halves.
        cross, block = (value, value) if value.dim() == 0 else value.chunk(2, dim=0)
        out[f"{stage}.conv_exp_cross.{param}"] = cross.clone()
        out[f"{stage}.conv_exp_block.{param}"] = block.clone()
    return out


register_references(
    [
        # Same layout as ours; timm uses LeakyReLU(0.01).
        Reference("timm", "darknet53", "darknet53", RULES, overrides={"negative_slope": 0.01}),
        # YOLOv4's CSPDarknet-53: wide first stage, a 1x1 conv after each stage's blocks, LeakyReLU(0.01).
        Reference(
            "timm",
            "cspdarknet53",
            "cspdarknet53",
            RULES,
            overrides={"negative_slope": 0.01, "csp_wide_first_stage": True, "csp_block_transition": True},
            transform=_split_csp_expansion,
        ),
    ]
)
