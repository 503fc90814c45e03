"""timm ``nasnetalarge`` keys -> ours.

timm (Cadene's port of the TF-slim weights) names the stem conv ``conv0``, the stem reduction cells
``cell_stem_0``/``cell_stem_1``, the normal cells ``cell_0..17`` and the other reduction cells
``reduction_cell_0``/``_1``; our cells sit in ``stages.<level>.cells.<i>``. Inside a cell:
``conv_1x1`` adjusts ``h_i`` (our ``adjust_current``); ``conv_prev_1x1``, or the factorized reduction
``path_1``/``path_2`` + ``final_path_bn`` (our ``paths.0``/``paths.1`` + ``norm``), adjusts ``h_{i-1}``
(``adjust_previous``); block ``k``'s two ops are ``comb_iter_<k>_left``/``_right`` (``blocks.<k>.left``/
``.right``), a separable op being ``separable_<j>.depthwise_conv2d``/``.pointwise_conv2d`` + ``bn_sep_<j>``
(our ``conv<j>.depthwise``/``.pointwise`` + ``norm<j>``). The head is ``last_linear``.

timm builds the model with TF "SAME" padding (asymmetric on even sizes in strided separable convs and
pools; its strided average pools count the padded zeros) and TF's batch norm epsilon 1e-3.
"""

from __future__ import annotations

from vision_backbones.convert.reference import Reference, register_references

# timm cell name -> our module path, in forward order.
_CELLS: dict[str, str] = {
    "cell_stem_0": "stages.1.cells.0",
    "cell_stem_1": "stages.2.cells.0",
    **{f"cell_{i}": f"stages.2.cells.{i + 1}" for i in range(6)},
    "reduction_cell_0": "stages.3.cells.0",
    **{f"cell_{i}": f"stages.3.cells.{i - 5}" for i in range(6, 12)},
    "reduction_cell_1": "stages.4.cells.0",
    **{f"cell_{i}": f"stages.4.cells.{i - 11}" for i in range(12, 18)},
}

# Inside one cell: (timm suffix pattern, our suffix).
_CELL_RULES: list[tuple[str, str]] = [
    (r"conv_1x1\.conv\.weight", r"adjust_current.conv.weight"),
    (r"conv_1x1\.bn\.(.+)", r"adjust_current.norm.\1"),
    (r"conv_prev_1x1\.conv\.weight", r"adjust_previous.conv.weight"),
    (r"conv_prev_1x1\.bn\.(.+)", r"adjust_previous.norm.\1"),
    (r"path_1\.conv\.weight", r"adjust_previous.paths.0.weight"),
    (r"path_2\.conv\.weight", r"adjust_previous.paths.1.weight"),
    (r"final_path_bn\.(.+)", r"adjust_previous.norm.\1"),
    (
        r"comb_iter_(\d)_(left|right)\.separable_([12])\.(depthwise|pointwise)_conv2d\.weight",
        r"blocks.\1.\2.conv\3.\4.weight",
    ),
    (r"comb_iter_(\d)_(left|right)\.bn_sep_([12])\.(.+)", r"blocks.\1.\2.norm\3.\4"),
]

RULES: list[tuple[str, str]] = [
    (r"conv0\.conv\.weight", r"stages.0.conv.conv.weight"),
    (r"conv0\.bn\.(.+)", r"stages.0.conv.norm.\1"),
    *(
        (rf"{timm_cell}\.{pattern}", rf"{ours}.{replacement}")
        for timm_cell, ours in _CELLS.items()
        for pattern, replacement in _CELL_RULES
    ),
    (r"last_linear\.(weight|bias)", r"head.fc.\1"),
]

# timm's layout: TF "SAME" padding, TF batch norm epsilon, PyTorch momentum.
TIMM_OVERRIDES = {"same_padding": True, "bn_eps": 1e-3, "bn_momentum": 0.1}

register_references([Reference("timm", "nasnetalarge", "nasnet_a_large", RULES, overrides=TIMM_OVERRIDES)])
