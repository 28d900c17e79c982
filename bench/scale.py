"""Time and peak memory of every step that touches all weights, on the large samples.

Run: `python -m bench.scale [--models gpt2_shaped mlp_100m minilm hf_gpt2] [--threads 2] [--rounds 3]`.

`hf_gpt2` is transformers' GPT-2 small (124 M parameters, default `GPT2Config`, seeded random
weights) written with `save_pretrained` into a temporary folder before any step is timed, and
loaded from that folder with `pe.load_model(folder)` (the path a user's own model takes).

Each (model, step) runs in a fresh Python process that loads the model and then does the
step, so each row's peak RSS is that process's honest high-water mark (imports + model +
the step), never a leftover of an earlier step. `time_s` is the step's wall time alone (for
"load", building the model, imports excluded); `cpu_s` its CPU time, which a busy shared
machine inflates less. The target on 2 cores / 24 GiB: every step of the 124 M model within
30 s, and peak RSS within 3 × the model's weight bytes + 1 GiB.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

import prune_engine as pe
from bench.common import peak_rss_mb, print_table, stopwatch
from prune_engine.heads import attention_layers
from prune_engine.pruning import PRUNERS
from sample_models import list_samples, load_sample

STEPS = ("load", "stats", "summary", "unstructured", "head", "latency")
LATENCY_BATCH = 8
"""Latency is timed on 8 examples (for the transformers: 8 sequences of their example length, 128 tokens)."""
TARGET_SECONDS = 30.0
HEAD_RATIO = 0.25
UNSTRUCTURED = pe.PruningPlan(granularity="unstructured", scope="global", global_ratio=0.5)
HF_MODEL = "hf_gpt2"
"""A transformers GPT-2 small loaded from a model folder (written before timing starts)."""
HF_FOLDER_ENV = "PRUNESCOPE_BENCH_HF_FOLDER"
HF_EXAMPLE_TOKENS = 128
HF_EVAL_SEQUENCES, HF_EVAL_TOKENS = 8, 32


def write_hf_folder(folder: Path) -> Path:
    """transformers' GPT-2 small with seeded random weights, saved with save_pretrained (no tokenizer)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).save_pretrained(str(folder))
    return folder


def load_bench_model(name: str) -> pe.ModelBundle:
    """A sample, or `hf_gpt2` from its folder with random token ids as example and evaluation data."""
    if name != HF_MODEL:
        return load_sample(name)
    model = pe.load_model(os.environ[HF_FOLDER_ENV])
    example = pe.loading.random_token_data(model, count=1, tokens=HF_EXAMPLE_TOKENS).inputs
    data = pe.loading.random_token_data(model, count=HF_EVAL_SEQUENCES, tokens=HF_EVAL_TOKENS)
    return pe.ModelBundle(name=name, model=model, example_input=example, eval_data=data, task="language_model")


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of the model's parameters and buffers, each shared tensor counted once."""
    seen, total = set(), 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()
    return total


def supports_heads(model: torch.nn.Module) -> bool:
    """Whether the engine has a `head` granularity and the model has attention it can prune."""
    return "head" in PRUNERS and bool(attention_layers(model))


def head_plan() -> pe.PruningPlan:
    return pe.PruningPlan(granularity="head", global_ratio=HEAD_RATIO)


def cpu_seconds() -> float:
    """User + system CPU time of this process so far: less sensitive than wall time to other
    processes on a shared machine (with 2 torch threads it is up to 2 × the wall time)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_step(name: str, step: str, rounds: int) -> dict[str, object]:
    """Load `name`, do `step`, and say how long the step took and what it found."""
    cpu_before = cpu_seconds()
    with stopwatch() as elapsed:
        bundle = load_bench_model(name)
    load_s, load_cpu_s = elapsed(), cpu_seconds() - cpu_before
    model, example = bundle.model, bundle.example_input
    result: dict[str, object] = {"weight_mb": weight_bytes(model) / 2**20, "rss_after_load_mb": peak_rss_mb()}
    steps: dict[str, Callable[[], object]] = {
        "stats": lambda: _stats(model),
        "summary": lambda: f"{pe.model_summary(model, example)['flops'] / 1e9:.1f} GFLOPs on {tuple(example.shape)}",
        "unstructured": lambda: _sparsity(pe.apply_plan(model, UNSTRUCTURED, example).model),
        "head": lambda: _heads(pe.apply_plan(model, head_plan(), example, bundle.eval_data).model),
    }
    step_cpu_s = cpu_seconds()
    if step == "load":
        result.update(
            time_s=load_s, cpu_s=load_cpu_s, detail=f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M params"
        )
    elif step == "latency":
        plan = head_plan() if supports_heads(model) else UNSTRUCTURED
        pruned = pe.apply_plan(model, plan, example, bundle.eval_data).model
        gc.collect()
        step_cpu_s = cpu_seconds()
        with stopwatch() as elapsed:
            latency = pe.measure_latency(
                {"original": model, "pruned": pruned},
                example,
                batch_size=LATENCY_BATCH,
                threads=torch.get_num_threads(),
                rounds=rounds,
            )
        table = latency.table.set_index("model")
        result.update(
            time_s=elapsed(),
            detail=(
                f"{plan.granularity} pruned: {table.loc['pruned', 'median_ms']:.0f} ms vs "
                f"{table.loc['original', 'median_ms']:.0f} ms (speed-up {table.loc['pruned', 'speedup']:.2f}×, "
                f"{int(table.loc['pruned', 'rounds'])} rounds, batch {tuple(latency_input_shape(example))})"
            ),
        )
    else:
        with stopwatch() as elapsed:
            detail = steps[step]()
        result.update(time_s=elapsed(), detail=str(detail))
    if step != "load":
        result["cpu_s"] = cpu_seconds() - step_cpu_s
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def latency_input_shape(example: torch.Tensor) -> list[int]:
    return [LATENCY_BATCH, *example.shape[1:]]


def _stats(model: torch.nn.Module) -> str:
    stats = pe.layer_stats(model)
    for layer in stats["name"]:
        pe.weight_histogram(model, layer, bins=100)
    return f"{len(stats)} layers + histograms"


def _sparsity(model: torch.nn.Module) -> str:
    stats = pe.layer_stats(model)
    return f"sparsity {stats['weights'].dot(stats['sparsity']) / stats['weights'].sum():.3f} of prunable weights"


def _heads(model: torch.nn.Module) -> str:
    layers = attention_layers(model)
    return f"{sum(layer.heads for layer in layers)} heads left in {len(layers)} attention layers"


def measure(name: str, step: str, threads: int, rounds: int) -> dict[str, object]:
    """Run one step of one model in a fresh interpreter and return its row."""
    command = [sys.executable, "-m", "bench.scale", "--worker", name, step, "--threads", str(threads)]
    command += ["--rounds", str(rounds)]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        return {"time_s": float("nan"), "detail": f"failed: {finished.stderr.strip().splitlines()[-1]}"}
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    available = list_samples(include_large=True)
    default = [name for name in ("minilm", "mlp_100m", "gpt2_shaped") if name in available]
    parser.add_argument("--models", nargs="+", default=[*default, HF_MODEL], choices=[*available, HF_MODEL])
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--rounds", type=int, default=15, help="interleaved latency rounds at most (the engine cuts them to ~20 s)"
    )
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "STEP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(run_step(*args.worker, rounds=args.rounds)))
        return
    with tempfile.TemporaryDirectory(prefix="prunescope-bench-") as directory:
        if HF_MODEL in args.models:
            os.environ[HF_FOLDER_ENV] = str(write_hf_folder(Path(directory) / HF_MODEL))
        rows = _measure_all(args)
    columns = ["model", "step", "time_s", "cpu_s", "peak_rss_mb", "rss_limit_mb", "weight_mb", "ok", "detail"]
    print_table(
        f"Scale: each step in a fresh process ({args.threads} torch threads; target ≤ {TARGET_SECONDS:g} s, "
        "peak RSS ≤ 3 × weights + 1 GiB)",
        [{column: row.get(column) for column in columns} for row in rows],
        float_format="{:.1f}",
    )


def _measure_all(args: argparse.Namespace) -> list[dict[str, object]]:
    rows = []
    for name in args.models:
        for step in args.steps:
            if step == "head" and not supports_heads(_meta_model(name)):
                continue
            row = {"model": name, "step": step, **measure(name, step, args.threads, args.rounds)}
            limit = 3 * row.get("weight_mb", float("nan")) + 1024
            row["rss_limit_mb"] = limit
            row["ok"] = row["time_s"] <= TARGET_SECONDS and row.get("peak_rss_mb", float("inf")) <= limit
            rows.append(row)
            print(f"{name} {step}: {row['time_s']:.1f} s, {row.get('peak_rss_mb', float('nan')):.0f} MiB", flush=True)
    return rows


def _meta_model(name: str) -> torch.nn.Module:
    """The model's layout (a large sample's without its weights), to decide which steps apply."""
    from sample_models.large import LARGE_SAMPLES

    if name == HF_MODEL:
        return pe.load_model(os.environ[HF_FOLDER_ENV])
    if name in LARGE_SAMPLES:
        with torch.device("meta"):
            return LARGE_SAMPLES[name].build()
    return load_sample(name).model


if __name__ == "__main__":
    main()
