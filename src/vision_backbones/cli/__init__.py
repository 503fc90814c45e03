"""The ``backbones`` command.

``backbones table`` prints every model's parameters, FLOPs, channels and strides;
``backbones convert`` turns a torchvision/timm checkpoint into a safetensors file that
``create_model(name, pretrained=path)`` loads. Training, data and deployment commands live in
their own modules and are dispatched from here, so importing the models never imports them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line usage errors (``prog: error: ... (see prog --help)``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` for ints >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an int >= {minimum}, got {value}")
        return value

    parse.__name__ = f"int >= {minimum}"
    return parse


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def run_command(prog: str, run: Callable[[], int | None]) -> int:
    """The one error path of every command: one line on stderr, no traceback.

    Exit code 2 for usage errors (a bad argument, value or input file: ``ValueError``, an existing
    output without ``--force``), 1 for runtime failures (disk full, permission denied, anything
    else). ``BACKBONES_TRACEBACK=1`` shows the traceback of a runtime failure.
    """
    try:
        return int(run() or 0)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] == "vision_backbones":
            raise
        print(f"{prog}: error: {missing_extra(prog, error)}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"{prog}: error: {first_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # runtime failure: one line, code 1
        if os.environ.get("BACKBONES_TRACEBACK"):
            raise
        kind = "" if isinstance(error, OSError) else f"{type(error).__name__}: "
        print(f"{prog}: error: {kind}{first_line(error)}", file=sys.stderr)
        return 1


def missing_extra(prog: str, error: ModuleNotFoundError) -> str:
    """``needs 'rich'; install the extras: pip install 'vision-backbones[cli]'``: the extra that brings what a command lacks."""
    command = prog.split()[-1]
    extra = EXTRAS.get(command, "cli" if command not in DELEGATED else "train")
    return f"needs {(error.name or '?').split('.')[0]!r}; install the extras: pip install 'vision-backbones[{extra}]'"


# command -> (module with a ``main(argv) -> int``, one-line help); loaded only when used.
DELEGATED = {
    "train": ("vision_backbones.cli.train", "train a model with the Lightning CLI (needs the [train] extra)"),
    "data": ("vision_backbones.cli.data", "prepare ImageNet folders and WebDataset shards"),
    "export-backbone": ("vision_backbones.cli.export_backbone", "strip a training checkpoint down to backbone weights"),
    "demo": ("vision_backbones.cli.demo", "train on scikit-learn's digits: the end-to-end demo"),
    "profile": ("vision_backbones.cli.profile", "parameters, FLOPs, memory and speed of models"),
    "export": ("vision_backbones.cli.export", "export to ONNX / ExportedProgram / TorchScript, verified"),
    "search": (
        "vision_backbones.cli.search",
        "neural architecture search over registered families (needs the [search] extra)",
    ),
    "pick": ("vision_backbones.cli.pick", "the most accurate models that meet a latency budget on this machine"),
    "scale": ("vision_backbones.cli.scale", "compound-scale a family (EfficientNet, dWr or explicit multipliers)"),
    "adapt": ("vision_backbones.cli.adapt", "shrink a model to a latency target with NetAdapt"),
}

# the extra that brings what a delegated command imports (``train`` where not listed)
EXTRAS = {"search": "search", "export": "deploy", "profile": "bench", "pick": "bench", "adapt": "search"}


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
        mapping.setdefault(reference.model, []).append(
            f"{'tv' if reference.library == 'torchvision' else 'timm'}:{reference.name}"
        )
    return mapping


def table_rows(pattern: str = "*", image_size: int = 224) -> list[list[str]]:
    from vision_backbones.published import published_for
    from vision_backbones.registry import list_models, model_info
    from vision_backbones.validate import check_int

    check_int("image_size", image_size, min=1)

    references = references_by_model()
    return [
        [*_format_row(model_info(name, image_size=image_size), published_for(name)), " ".join(references.get(name, []))]
        for name in list_models(pattern)
    ]


TABLE_HEADER = [
    "model",
    "params (M)",
    "published",
    "GFLOPs",
    "published",
    "2xMACs (G)",
    "out_channels",
    "strides",
    "converts from",
]


LEFT_COLUMNS = {"model", "out_channels", "strides", "converts from"}
GFLOPS_NOTE = "GFLOPs: the seed's convention, 2 x (conv/linear MACs + 2 per batch-norm element + 1 per pooled element)."


def plain_table(title: str, rows: list[list[str]]) -> str:
    """The table as aligned plain text (what ``backbones table`` prints without rich)."""
    widths = [max(len(cell) for cell in column) for column in zip(TABLE_HEADER, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if h in LEFT_COLUMNS else c.rjust(w) for c, w, h in zip(cells, widths, TABLE_HEADER, strict=True)
        ).rstrip()

    return "\n".join([title, line(TABLE_HEADER), "  ".join("-" * w for w in widths), *(line(row) for row in rows)])


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
    title = f"Backbones at 1x3x{args.image_size}x{args.image_size} (backbone only, no head)"
    try:
        from rich.console import Console
        from rich.table import Table
    except ModuleNotFoundError:  # a bare install (no [cli] extra): the same table in plain text
        print(plain_table(title, rows))
        print(GFLOPS_NOTE)
        return 0

    table = Table(title=title)
    for column in TABLE_HEADER:
        table.add_column(column, justify="left" if column in LEFT_COLUMNS else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)
    print(GFLOPS_NOTE)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from vision_backbones.registry import list_models

    names = list_models(args.pattern)
    if not names:
        print(f"backbones list: no model matches {args.pattern!r}; see `backbones list`", file=sys.stderr)
        return 2
    print("\n".join(names))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from vision_backbones.convert import convert
    from vision_backbones.io import check_overwrite
    from vision_backbones.weights import read_checkpoint, save_weights

    if args.output.suffix != ".safetensors":
        raise ValueError(f"expected a .safetensors output path, got {str(args.output)!r}")
    check_overwrite(args.output, force=args.force)
    state_dict, _ = read_checkpoint(args.checkpoint)
    model_name, overrides, renamed = convert(args.source, args.name, state_dict)
    from vision_backbones.registry import create_model
    from vision_backbones.weights import check_state_dict

    # Prove the weights fit before anything is written.
    model = create_model(model_name, num_classes=1000, **overrides)
    check_state_dict(model, renamed, source=str(args.checkpoint))
    path = save_weights(renamed, args.output, model_name=model_name, overrides=overrides)
    extra = f", {overrides}" if overrides else ""
    print(
        f"wrote {path}: load with create_model({model_name!r}, pretrained={str(path)!r}){' (architecture' + extra + ' stored in the file)' if overrides else ''}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="backbones", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    table = commands.add_parser("table", help="parameters, FLOPs, channels and strides of every model")
    table.add_argument("pattern", nargs="?", default="*", help="shell wildcard over model names")
    table.add_argument("--image-size", type=int_at_least(1), default=224)
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
    conv.add_argument("--force", action="store_true", help="overwrite an existing output")
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
            print(f"backbones {argv[0]}: {missing_extra(f'backbones {argv[0]}', error)}", file=sys.stderr)
            return 2
        return run_command(f"backbones {argv[0]}", lambda: module.main(argv[1:]))
    args = build_parser().parse_args(argv)
    return run_command(f"backbones {args.command}", lambda: args.run(args))
