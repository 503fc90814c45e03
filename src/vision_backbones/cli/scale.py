"""``backbones scale NAME (--phi P | --target-gflops G | --width W --depth D --image-size S)``.

Scales through the fields the model's family declares (:mod:`vision_backbones.scaling`). Prints the
override dict, the input size, parameters and FLOPs of the scaled model (and of the base), and with
``--json F`` writes what ``create_model`` and ``backbones train`` take.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vision_backbones.cli import ArgumentParser, int_at_least
from vision_backbones.io import check_output_file, json_text, write_json
from vision_backbones.registry import model_info
from vision_backbones.scaling import EFFICIENTNET_COEFFICIENTS, FAST_SCALING_EXPONENTS, STRATEGIES, scale_model


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="backbones scale", description=__doc__.splitlines()[0])
    parser.add_argument("name", help="a registered model (see `backbones list`)")
    parser.add_argument(
        "--strategy",
        default=None,
        help=f"one of {', '.join(STRATEGIES)} (default: efficientnet; explicit when --width/--depth/--resolution/--image-size is given)",
    )
    goal = parser.add_mutually_exclusive_group()
    goal.add_argument(
        "--phi", type=float, help="compound coefficient (>= 0): efficientnet ~1.92**phi, dWr 2**phi times the FLOPs"
    )
    goal.add_argument(
        "--target-gflops", type=float, help="solve phi for these GFLOPs per image at the scaled resolution"
    )
    parser.add_argument(
        "--alpha", type=float, default=EFFICIENTNET_COEFFICIENTS[0], help="efficientnet depth coefficient"
    )
    parser.add_argument(
        "--beta", type=float, default=EFFICIENTNET_COEFFICIENTS[1], help="efficientnet width coefficient"
    )
    parser.add_argument(
        "--gamma", type=float, default=EFFICIENTNET_COEFFICIENTS[2], help="efficientnet resolution coefficient"
    )
    parser.add_argument(
        "--exponents",
        type=float,
        nargs=3,
        default=FAST_SCALING_EXPONENTS,
        metavar=("DEPTH", "WIDTH", "RESOLUTION"),
        help="dWr shares of the FLOPs growth, summing to 1 (default 0.1 0.8 0.1)",
    )
    parser.add_argument("--width", type=float, help="explicit width multiplier")
    parser.add_argument("--depth", type=float, help="explicit depth multiplier")
    parser.add_argument("--resolution", type=float, help="explicit resolution multiplier")
    parser.add_argument(
        "--image-size", type=int_at_least(1), help="explicit input size (e.g. EfficientNet's official table)"
    )
    parser.add_argument(
        "--base-image-size", type=int_at_least(1), default=224, help="the base model's input size (default 224)"
    )
    parser.add_argument(
        "--json", type=Path, metavar="F", help="write overrides, image size and a training-config snippet"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.json is not None:
        check_output_file("--json", args.json, (".json",))  # before any work: a folder or p.txt is one line
    explicit_given = any(v is not None for v in (args.width, args.depth, args.resolution, args.image_size))
    strategy = args.strategy or ("explicit" if explicit_given else "efficientnet")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    if strategy != "explicit" and args.phi is None and args.target_gflops is None:
        raise ValueError(f"strategy {strategy!r} needs --phi or --target-gflops")
    scaled = scale_model(
        args.name,
        strategy=strategy,
        phi=args.phi,
        target_gflops=args.target_gflops,
        depth=args.depth,
        width=args.width,
        resolution=args.resolution,
        image_size=args.image_size,
        base_image_size=args.base_image_size,
        coefficients=(args.alpha, args.beta, args.gamma),
        exponents=tuple(args.exponents),
    )
    base = model_info(args.name, image_size=args.base_image_size)
    info = scaled.info()
    m = scaled.multipliers
    print(
        f"{args.name} scaled by {strategy}"
        + (f" (phi {scaled.phi:.3f})" if scaled.phi is not None else "")
        + f": depth x{m.depth:.3f}, width x{m.width:.3f}, resolution x{m.resolution:.3f}"
    )
    print(f"  overrides : {json_text(scaled.overrides, indent=None).strip()}")
    print(f"  image size: {scaled.image_size} (base {args.base_image_size})")
    print(f"  params    : {info['params'] / 1e6:.2f} M (base {base['params'] / 1e6:.2f} M)")
    print(
        f"  GFLOPs    : {info['flops'] / 1e9:.3f} (base {base['flops'] / 1e9:.3f}, x{info['flops'] / base['flops']:.2f})"
        + (
            f"; target {args.target_gflops:g} ({100 * (info['flops'] / 1e9 / args.target_gflops - 1):+.1f} %)"
            if args.target_gflops
            else ""
        )
    )
    print(f"  build     : create_model({args.name!r}, **overrides), inputs {scaled.image_size}x{scaled.image_size}")
    if args.json:
        print(f"wrote {write_json(args.json, {**scaled.to_json(), 'params': info['params'], 'flops': info['flops']})}")
    return 0
