"""The `prunescope` command: apply a plan made in the app inside a pipeline, or inspect a model.

    prunescope apply --model FILE [--architecture NAME] --plan plan.json --out pruned.onnx
    prunescope inspect --model FILE [--architecture NAME]

Exit status: 0 on success, 1 when PruneScope refuses the input (the message says why),
2 for a malformed command line, 3 for an unexpected failure (a bug to report). Each failure
prints one `prunescope: error: …` line, and `apply` writes its files only once everything
has succeeded (each to a temporary file, renamed at the end), so a failure leaves no partial output.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pandas as pd
import torch
from torch import nn

from .calibration import has_batchnorm
from .data import EvalData
from .errors import ModelLoadError, PruneScopeError
from .export import architecture_sidecar, export_model
from .jsontext import loads
from .layers import layer_stats
from .loading import load_eval_data, load_model, random_eval_data
from .metrics import evaluate, model_summary
from .plan import PruningPlan
from .pruning import apply_plan

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_FAILED = 3
OUTPUT_FORMATS = {
    ".torchscript.pt": "torchscript",
    ".ts": "torchscript",
    ".onnx": "onnx",
    ".safetensors": "safetensors",
    ".pt": "state_dict",
    ".pth": "state_dict",
}
"""Output file endings → export format (longest ending first)."""
MAX_SHAPE_DIMS = 8
"""Most dimensions `--input-shape` takes."""
FIGURES = ("accuracy", "loss", "agreement", "cosine", "params", "nonzero_params", "flops", "size_bytes", "sparse_bytes")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (also used by `python -m prune_engine`)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as error:
        _say(f"{error} (see prunescope --help)")
        return EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, format="prunescope: %(message)s")
    warnings.filterwarnings("ignore")
    try:
        return args.run(args)
    except PruneScopeError as error:
        _say(str(error))
        return EXIT_REFUSED
    except OSError as error:
        _say(f"{error.strerror or error}: {error.filename or ''}".rstrip(": "))
        return EXIT_REFUSED
    except MemoryError:
        _say("this machine ran out of memory; use a smaller model, data set or --input-shape")
        return EXIT_REFUSED
    except Exception as error:  # a bug: one line for the pipeline's log, the traceback for a developer
        logging.getLogger(__name__).debug("unexpected failure", exc_info=True)
        _say(f"unexpected failure ({type(error).__name__}: {' '.join(str(error).split())[:300]}); please report it")
        return EXIT_FAILED


def _say(message: str) -> None:
    """One `prunescope: error:` line on stderr (a message's line breaks become spaces)."""
    print(f"prunescope: error: {' '.join(message.split())}", file=sys.stderr)


class _UsageError(Exception):
    """A malformed command line (argparse's message)."""


class _Parser(argparse.ArgumentParser):
    """An argument parser that reports a malformed command line in one line, not usage plus a message."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="prunescope", description="Prune PyTorch models from a plan made in PruneScope.")
    commands = parser.add_subparsers(dest="command", required=True)

    apply = commands.add_parser("apply", help="apply a pruning plan to a model and write the pruned model")
    _model_arguments(apply)
    apply.add_argument("--plan", required=True, type=Path, help="plan JSON (downloaded from the app)")
    apply.add_argument("--out", required=True, type=Path, help="output file: .onnx, .safetensors, .pt or .ts")
    apply.add_argument("--data", type=Path, help="evaluation data (.csv, .npz, .safetensors, .pt)")
    apply.add_argument("--label-column", help="CSV column holding the labels")
    apply.add_argument(
        "--calibration-data",
        type=Path,
        help="training examples (no labels needed) that re-estimate BatchNorm statistics when the plan asks for "
        "it (recalibrate_bn); never the evaluation data, which would tune the model on the examples it is judged on",
    )
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
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a shape like 1,8,8") from None
    if not shape or min(shape) < 1 or len(shape) > MAX_SHAPE_DIMS:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a shape like 1,8,8")
    return shape


def _load(args: argparse.Namespace) -> nn.Module:
    sidecar = (
        loads(args.sidecar.read_bytes(), "architecture.json (--sidecar)", ModelLoadError) if args.sidecar else None
    )
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
    plan = PruningPlan.from_json(args.plan.read_bytes())
    data = _data(args)
    example = data.inputs[:1]
    calibration = _calibration_data(args, plan, model)
    result = apply_plan(model, plan, example, data=data if data.has_labels else None, calibration_data=calibration)
    outputs = {args.out: export_model(result.model, fmt, example)}
    if fmt in ("state_dict", "safetensors"):
        sidecar_path = args.out.with_name(args.out.stem + ".architecture.json")
        outputs[sidecar_path] = json.dumps(architecture_sidecar(result.model), indent=2).encode()
    figures = _figures(model, result.model, example, data)
    _write_all(outputs)
    written = [str(path) for path in outputs]
    if args.json:
        print(json.dumps({"figures": figures.to_dict(orient="records"), "written": written}, indent=2))
    else:
        print(figures.to_string(index=False, float_format=lambda value: f"{value:.4g}"))
        print("\nwrote " + ", ".join(written))
    return 0


def _write_all(outputs: dict[Path, bytes]) -> None:
    """Write every file to a temporary file beside it, then rename them all: none is left half-written."""
    temporary: dict[Path, Path] = {}
    umask = os.umask(0)
    os.umask(umask)
    try:
        for path, content in outputs.items():
            handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temporary[path] = Path(name)
            with os.fdopen(handle, "wb") as file:
                file.write(content)
            os.chmod(name, 0o666 & ~umask)  # what a plain open() would have given, not mkstemp's 0600
        for path, written in temporary.items():
            os.replace(written, path)
    finally:
        for written in temporary.values():
            written.unlink(missing_ok=True)


def _data(args: argparse.Namespace) -> EvalData:
    if args.data is not None:
        return load_eval_data(args.data, label_column=args.label_column, input_shape=args.input_shape)
    if args.input_shape is None:
        raise PruneScopeError("Give evaluation data (--data) or the shape of one example (--input-shape 1,8,8).")
    logging.warning("no --data: comparing with the original on random inputs (fidelity only)")
    return random_eval_data(args.input_shape)


def _calibration_data(args: argparse.Namespace, plan: PruningPlan, model: nn.Module) -> EvalData | None:
    """The examples that re-estimate BatchNorm statistics, required when the plan asks for it on a model with
    BatchNorm: falling back to the evaluation data would report an accuracy tuned on its own test set."""
    if args.calibration_data is not None:
        return load_eval_data(args.calibration_data, input_shape=args.input_shape)
    if plan.recalibrate_bn and has_batchnorm(model):
        raise PruneScopeError(
            "The plan re-estimates BatchNorm statistics after pruning (recalibrate_bn), which needs training "
            'examples: give them with --calibration-data FILE (labels not needed), or set "recalibrate_bn": false '
            "in the plan. The evaluation data is not used for it: that would tune the model on the examples it is "
            "judged on."
        )
    return None


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
