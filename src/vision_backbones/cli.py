"""The ``backbones`` command.

``backbones table`` prints every model's parameters, FLOPs, channels and strides;
``backbones convert`` turns a torchvision/timm checkpoint into a safetensors file that
``create_model(name, pretrained=path)`` loads. Training, data and deployment commands live in
their own modules and are dispatched from here, so importing the models never imports them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

# command -> (module with a ``main(argv) -> int``, one-line help); loaded only when used.
DELEGATED = {
    "train": ("vision_backbones.train.cli", "train a model with the Lightning CLI (needs the [train] extra)"),
    "data": ("vision_backbones.train.data_cli", "prepare ImageNet folders and WebDataset shards"),
    "export-backbone": ("vision_backbones.train.export", "strip a training checkpoint down to backbone weights"),
    "demo": ("vision_backbones.train.demo", "train on scikit-learn's digits: the end-to-end demo"),
    "profile": ("vision_backbones.deploy.profile", "parameters, FLOPs, memory and speed of models"),
    "export": ("vision_backbones.deploy.export", "export to ONNX / ExportedProgram / TorchScript, verified"),
}


def _format_row(info: dict, published) -> list[str]:
    def ref(value: float | None, precision: int) -> str:
        return "" if value is None else f"{value:.{precision}f}"

    return [
        info["name"],
        f"{info['params'] / 1e6:.2f}",
        ref(published.params_m if published else None, 2),
        f"{info['flops'] / 1e9:.2f}",
        ref(published.gflops if published else None, 2),
        f"{info['flops_2x_macs'] / 1e9:.2f}",
        " ".join(str(c) for c in info["out_channels"]),
        " ".join(str(s) for s in info["strides"]),
    ]


def references_by_model() -> dict[str, list[str]]:
    """Our model name -> the torchvision/timm models whose weights convert to it (identical logits)."""
    from vision_backbones.convert import list_references

    mapping: dict[str, list[str]] = {}
    for reference in list_references():
        mapping.setdefault(reference.model, []).append(f"{'tv' if reference.library == 'torchvision' else 'timm'}:{reference.name}")
    return mapping


def table_rows(pattern: str = "*", image_size: int = 224) -> list[list[str]]:
    from vision_backbones.published import PUBLISHED
    from vision_backbones.registry import list_models, model_info

    references = references_by_model()
    return [
        _format_row(model_info(name, image_size=image_size), PUBLISHED.get(name)) + [" ".join(references.get(name, []))]
        for name in list_models(pattern)
    ]


TABLE_HEADER = ["model", "params (M)", "published", "GFLOPs", "published", "2xMACs (G)", "out_channels", "strides", "converts from"]


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def cmd_table(args: argparse.Namespace) -> int:
    rows = table_rows(args.pattern, args.image_size)
    if not rows:
        print(f"no model matches {args.pattern!r}", file=sys.stderr)
        return 2
    if args.markdown:
        print(markdown_table(rows))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Backbones at 1x3x{args.image_size}x{args.image_size} (backbone only, no head)")
    for column in TABLE_HEADER:
        table.add_column(column, justify="left" if column in {"model", "out_channels", "strides", "converts from"} else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)
    print("GFLOPs: the seed's convention, 2 x (conv/linear MACs + 2 per batch-norm element + 1 per pooled element).")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from vision_backbones.registry import list_models

    names = list_models(args.pattern)
    print("\n".join(names))
    return 0 if names else 2


def cmd_convert(args: argparse.Namespace) -> int:
    from vision_backbones.convert import convert
    from vision_backbones.weights import read_checkpoint, save_weights

    state_dict, _ = read_checkpoint(args.checkpoint)
    model_name, overrides, renamed = convert(args.source, args.name, state_dict)
    from vision_backbones.registry import create_model
    from vision_backbones.weights import check_state_dict

    # Prove the weights fit before anything is written.
    model = create_model(model_name, num_classes=1000, **overrides)
    check_state_dict(model, renamed, source=str(args.checkpoint))
    path = save_weights(renamed, args.output, model_name=model_name, overrides=overrides)
    extra = f", {overrides}" if overrides else ""
    print(f"wrote {path}: load with create_model({model_name!r}, pretrained={str(path)!r}){' (architecture' + extra + ' stored in the file)' if overrides else ''}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backbones", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    table = commands.add_parser("table", help="parameters, FLOPs, channels and strides of every model")
    table.add_argument("pattern", nargs="?", default="*", help="shell wildcard over model names")
    table.add_argument("--image-size", type=int, default=224)
    table.add_argument("--markdown", action="store_true", help="print a Markdown table")
    table.set_defaults(run=cmd_table)

    listing = commands.add_parser("list", help="registered model names")
    listing.add_argument("pattern", nargs="?", default="*")
    listing.set_defaults(run=cmd_list)

    conv = commands.add_parser("convert", help="torchvision/timm checkpoint -> safetensors for create_model")
    conv.add_argument("--source", choices=["torchvision", "timm"], required=True)
    conv.add_argument("name", help="the reference model's name in that library, e.g. resnet50, ese_vovnet39b")
    conv.add_argument("checkpoint", type=Path, help=".pth/.pt (read with weights_only=True) or .safetensors")
    conv.add_argument("output", type=Path, help="output .safetensors path")
    conv.set_defaults(run=cmd_convert)

    for name, (_, help_text) in DELEGATED.items():
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        module_name = DELEGATED[argv[0]][0]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            print(f"backbones {argv[0]}: needs {error.name!r}; install the extras: pip install 'vision-backbones[train]'", file=sys.stderr)
            return 2
        return int(module.main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ValueError as error:
        print(f"backbones {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
