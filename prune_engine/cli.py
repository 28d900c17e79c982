"""The `prunescope` command: apply a plan made in the app inside a pipeline, or inspect a model.

    prunescope apply --model FILE [--architecture NAME] --plan plan.json --out pruned.onnx
    prunescope inspect --model FILE [--architecture NAME]

Exit status: 0 on success, 1 when PruneScope refuses the input (the message says why),
2 for a malformed command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from .data import EvalData
from .errors import PruneScopeError
from .export import architecture_sidecar, export_model
from .layers import layer_stats
from .loading import load_eval_data, load_model, random_eval_data
from .metrics import evaluate, model_summary
from .plan import PruningPlan
from .pruning import apply_plan

EXIT_REFUSED = 1
OUTPUT_FORMATS = {
    ".torchscript.pt": "torchscript",
    ".ts": "torchscript",
    ".onnx": "onnx",
    ".safetensors": "safetensors",
    ".pt": "state_dict",
    ".pth": "state_dict",
}
"""Output file endings → export format (longest ending first)."""
FIGURES = ("accuracy", "loss", "agreement", "cosine", "params", "nonzero_params", "flops", "size_bytes", "sparse_bytes")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (also used by `python -m prune_engine`)."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="prunescope: %(message)s")
    warnings.filterwarnings("ignore")
    try:
        return args.run(args)
    except PruneScopeError as error:
        print(f"prunescope: error: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as error:
        print(f"prunescope: error: {error.strerror or error}: {error.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_REFUSED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prunescope", description="Prune PyTorch models from a plan made in PruneScope."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    apply = commands.add_parser("apply", help="apply a pruning plan to a model and write the pruned model")
    _model_arguments(apply)
    apply.add_argument("--plan", required=True, type=Path, help="plan JSON (downloaded from the app)")
    apply.add_argument("--out", required=True, type=Path, help="output file: .onnx, .safetensors, .pt or .ts")
    apply.add_argument("--data", type=Path, help="evaluation data (.csv, .npz, .safetensors, .pt)")
    apply.add_argument("--label-column", help="CSV column holding the labels")
    apply.add_argument("--json", action="store_true", help="print the figures as JSON")
    apply.set_defaults(run=_run_apply)

    inspect = commands.add_parser("inspect", help="print a model's prunable layers and their statistics")
    _model_arguments(inspect)
    inspect.add_argument("--json", action="store_true", help="print the layer table as JSON")
    inspect.set_defaults(run=_run_inspect)
    return parser


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="model file (safetensors, state_dict, ...)")
    parser.add_argument("--architecture", help="registered architecture for weights-only files")
    parser.add_argument("--sidecar", type=Path, help="architecture.json of a channel-pruned model")
    parser.add_argument("--input-shape", type=_shape, help="shape of one example, e.g. 1,8,8")
    parser.add_argument(
        "--allow-code", action="store_true", help="allow TorchScript/pickled models (trusted files only)"
    )


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 1,8,8") from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 1,8,8")
    return shape


def _load(args: argparse.Namespace) -> nn.Module:
    sidecar = json.loads(args.sidecar.read_text()) if args.sidecar else None
    return load_model(args.model, architecture=args.architecture, allow_code=args.allow_code, sidecar=sidecar)


def _run_inspect(args: argparse.Namespace) -> int:
    table = layer_stats(_load(args))
    if args.json:
        print(table.to_json(orient="records", indent=2))
    else:
        print(table.to_string(index=False, float_format=lambda value: f"{value:.4g}"))
    return 0


def _run_apply(args: argparse.Namespace) -> int:
    fmt = next((fmt for ending, fmt in OUTPUT_FORMATS.items() if args.out.name.lower().endswith(ending)), None)
    if fmt is None:
        endings = ", ".join(OUTPUT_FORMATS)
        raise PruneScopeError(f"Cannot tell the output format from {args.out.name!r}; end it in {endings}.")
    model = _load(args)
    plan = PruningPlan.from_json(args.plan.read_text())
    data = _data(args)
    example = data.inputs[:1]
    result = apply_plan(model, plan, example, data=data if data.has_labels else None)
    args.out.write_bytes(export_model(result.model, fmt, example))
    written = [str(args.out)]
    if fmt in ("state_dict", "safetensors"):
        sidecar_path = args.out.with_name(args.out.stem + ".architecture.json")
        sidecar_path.write_text(json.dumps(architecture_sidecar(result.model), indent=2))
        written.append(str(sidecar_path))
    figures = _figures(model, result.model, example, data)
    if args.json:
        print(json.dumps({"figures": figures.to_dict(orient="records"), "written": written}, indent=2))
    else:
        print(figures.to_string(index=False, float_format=lambda value: f"{value:.4g}"))
        print("\nwrote " + ", ".join(written))
    return 0


def _data(args: argparse.Namespace) -> EvalData:
    if args.data is not None:
        return load_eval_data(args.data, label_column=args.label_column, input_shape=args.input_shape)
    if args.input_shape is None:
        raise PruneScopeError("Give evaluation data (--data) or the shape of one example (--input-shape 1,8,8).")
    logging.warning("no --data: comparing with the original on random inputs (fidelity only)")
    return random_eval_data(args.input_shape)


def _figures(original: nn.Module, pruned: nn.Module, example: torch.Tensor, data: EvalData) -> pd.DataFrame:
    before, after = model_summary(original, example), model_summary(pruned, example)
    before.update(evaluate(original, data, reference=original))
    after.update(evaluate(pruned, data, reference=original))
    rows = []
    for key in FIGURES:
        if key in before or key in after:
            rows.append({"figure": key, "before": before.get(key), "after": after.get(key)})
    table = pd.DataFrame(rows)
    table["change"] = table["after"] - table["before"]
    return table
