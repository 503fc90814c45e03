"""What is special about NASNet: cells built from their tables, two-input stages, the paper's figures."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from vision_backbones import create_model
from vision_backbones.flops import count_flops
from vision_backbones.layers import DropPath, SeparableConv2d, drop_path_rates
from vision_backbones.models.nasnet import (
    CURRENT,
    NASNET_A_NORMAL,
    NASNET_A_REDUCTION,
    PREVIOUS,
    SEPARABLE_KERNELS,
    VARIANTS,
    Branch,
    Cell,
    CellSpec,
    FactorizedReduction,
    SamePad,
    block_output,
)
from vision_backbones.registry import build_on_meta

NAME = "nasnet_a_mobile"


def _describe(op: nn.Module) -> tuple[str, int]:
    """(kind, stride) of a built op, to compare with the table."""
    if isinstance(op, nn.Identity):
        return "identity", 1
    if isinstance(op, nn.Sequential) and isinstance(op[-1], (nn.AvgPool2d, nn.MaxPool2d)):
        op = op[-1]  # same-padded pool
    if isinstance(op, nn.AvgPool2d):
        return "avg_3x3", op.stride
    if isinstance(op, nn.MaxPool2d):
        return "max_3x3", op.stride
    first = op.conv1.depthwise
    assert op.conv2.depthwise.kernel_size == first.kernel_size and op.conv2.depthwise.stride == (1, 1)
    return f"sep_{first.kernel_size[0]}x{first.kernel_size[1]}", first.stride[0]


@pytest.mark.parametrize("spec", [NASNET_A_NORMAL, NASNET_A_REDUCTION], ids=["normal", "reduction"])
def test_cell_table_drives_the_ops(spec: CellSpec) -> None:
    cell = Cell(
        spec,
        8,
        current_channels=16,
        previous_channels=16,
        previous_reduced=False,
        same_padding=False,
        norm_layer=nn.BatchNorm2d,
    )
    assert len(cell.blocks) == len(spec.blocks)
    for block, (left, right) in zip(cell.blocks, spec.blocks):
        assert (block.left_input, block.right_input) == (left.input, right.input)
        for op, branch in ((block.left, left), (block.right, right)):
            stride = 2 if spec.reduction and branch.input in (CURRENT, PREVIOUS) else 1
            assert _describe(op) == (branch.op, stride)
    assert cell.out_channels == 8 * len(spec.concat)
    x = torch.randn(1, 16, 8, 8)
    assert cell(x, x).shape == (1, 8 * len(spec.concat), 4 if spec.reduction else 8, 4 if spec.reduction else 8)


def test_edited_table_changes_the_network() -> None:
    # Swap the normal cell's first op for a 7x7 separable conv: every normal cell follows the table.
    (first, second), *rest = NASNET_A_NORMAL.blocks
    edited = NASNET_A_NORMAL._replace(blocks=((Branch("sep_7x7", first.input), second), *rest))
    model = build_on_meta(NAME, features_only=True, normal_cell=edited)
    normal_cells = [m for m in model.modules() if isinstance(m, Cell) and not m.reduction]
    assert len(normal_cells) == sum(VARIANTS[NAME].depths)
    assert all(cell.blocks[0].left.conv1.depthwise.kernel_size == (7, 7) for cell in normal_cells)
    kernels = {m.depthwise.kernel_size[0] for m in model.modules() if isinstance(m, SeparableConv2d)}
    assert kernels == set(SEPARABLE_KERNELS.values())


def test_mobile_matches_the_paper() -> None:
    """NASNet-A (4 @ 1056): 5.3 M parameters, 564 M multiply-adds at 224 (paper Table 2, with classifier)."""
    with torch.device("meta"):
        model = create_model(NAME, num_classes=1000)
    params = sum(p.numel() for p in model.parameters())
    macs = count_flops(model, torch.empty(1, 3, 224, 224, device="meta")).macs
    assert abs(params / 5.3e6 - 1) < 0.02, params
    assert abs(macs / 564e6 - 1) < 0.02, macs
    assert model.level_channels == (32, 44, 264, 528, 1056) and model.level_strides == (2, 4, 8, 16, 32)


def _cell_inputs(model: nn.Module, stage: int, cells: tuple[int, ...], x: torch.Tensor) -> list[tuple]:
    """The ``(x, previous)`` each of ``cells`` of ``stages[stage]`` receives."""
    captured: list[tuple] = []
    hooks = [
        model.stages[stage].cells[i].register_forward_hook(lambda module, args, out: captured.append(args))
        for i in cells
    ]
    with torch.no_grad():
        model.forward_features(x)
    for hook in hooks:
        hook.remove()
    return captured


@pytest.mark.parametrize("skip", [False, True])
def test_cell_after_reduction_takes_the_right_previous_input(skip: bool) -> None:
    model = create_model(NAME, features_only=True, depths=(1, 1, 1), skip_reduction_input=skip).eval()
    x = torch.randn(1, 3, 64, 64)
    (reduction_x, reduction_previous), (next_x, next_previous) = _cell_inputs(model, 3, (0, 1), x)
    assert next_previous is (reduction_previous if skip else reduction_x)
    assert next_x.shape[-1] == reduction_x.shape[-1] // 2  # so h_{i-1} needs the factorized reduction
    assert isinstance(model.stages[3].cells[1].adjust_previous, FactorizedReduction)


def test_first_cell_takes_the_stem_conv_as_both_inputs_untouched() -> None:
    model = create_model(NAME, features_only=True, depths=(1, 1, 1)).eval()
    first = model.stages[1].cells[0]
    assert isinstance(first.adjust_previous, nn.Identity)
    ((x, previous),) = _cell_inputs(model, 1, (0,), torch.randn(1, 3, 64, 64))
    assert x is previous and x.shape[1] == VARIANTS[NAME].stem_channels


def test_factorized_reduction_reads_both_pixel_grids() -> None:
    reduce = FactorizedReduction(4, 6, norm_layer=nn.Identity)
    x = torch.randn(1, 4, 7, 7)
    even, odd = reduce.paths
    shifted = nn.functional.pad(x.relu()[:, :, 1::2, 1::2], [0, 1, 0, 1])  # 3 odd rows/cols, zero-padded to 4
    expected = torch.cat([even(x.relu()), nn.functional.conv2d(shifted, odd.weight)], dim=1)
    torch.testing.assert_close(reduce(x), expected)


@pytest.mark.parametrize(("size", "pads"), [(8, (0, 1)), (7, (1, 1))])
def test_same_pad_is_asymmetric_on_even_sizes(size: int, pads: tuple[int, int]) -> None:
    x = torch.ones(1, 1, size, size)
    padded = SamePad(3, 2)(x)
    assert padded.shape[-1] == size + sum(pads)
    assert padded[0, 0, pads[0], pads[0]] == 1 and padded[0, 0, 0, 0] == (0 if pads[0] else 1)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"penultimate_channels": 1000}, "multiple of 24"),
        ({"depths": (4, 0, 4)}, "depths"),
        ({"normal_cell": NASNET_A_REDUCTION}, "reduction=False"),
        ({"normal_cell": NASNET_A_NORMAL._replace(blocks=((Branch("conv_9x9", 0), Branch("max_3x3", 1)),))}, "unknown"),
        ({"normal_cell": NASNET_A_NORMAL._replace(concat=(block_output(5),))}, "concatenates state"),
        ({"reduction_cell": NASNET_A_REDUCTION._replace(concat=(CURRENT,))}, "not reduced"),
        ({"drop_path_rate": 1.0}, "drop_path_rate"),
    ],
)
def test_bad_config_raises(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(VARIANTS[NAME], **overrides)


def test_drop_path_grows_linearly_from_zero_over_the_cells() -> None:
    model = build_on_meta(NAME, features_only=True, depths=(1, 1, 1), drop_path_rate=0.3)
    cells = [m for m in model.modules() if isinstance(m, Cell)]
    rates = [max((d.p for d in m.modules() if isinstance(d, DropPath)), default=0.0) for m in cells]
    assert rates == pytest.approx(drop_path_rates(0.3, len(cells)))  # 0 at the first cell, 0.3 at the last


def test_grad_checkpointing_carries_both_states() -> None:
    plain = create_model(NAME, num_classes=3, depths=(1, 1, 1))
    checkpointed = create_model(NAME, num_classes=3, depths=(1, 1, 1), grad_checkpointing=True)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    for model in (plain, checkpointed):
        torch.manual_seed(5)  # the same dropout draws in both runs
        model.train()(x).square().mean().backward()
    for (key, a), b in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-6, rtol=1e-4, msg=key)
    for (key, a), b in zip(plain.named_buffers(), checkpointed.buffers(), strict=True):
        torch.testing.assert_close(b, a, msg=key)  # running statistics updated once, not twice
