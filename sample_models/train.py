"""Train the sample models from scratch, deterministically, and record their figures.

    python -m sample_models.train                 # all samples
    python -m sample_models.train --only digits_cnn --epochs 5
    python -m sample_models.train --only tiny_gpt # the language model, ~3 minutes on one core

Same seed, same thread count, same weights: initialisation and shuffling come from the
seed, torch runs its deterministic algorithms on a fixed number of threads. The weight
files and `weights/registry.json` (test accuracy or perplexity, params) are rewritten;
`tiny_gpt` also writes its held-out evaluation sequences. Its text comes from the running
Python's `pydoc_data.topics`, so equal weights need the same Python version too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from prune_engine import EvalData, evaluate

from .architectures import ARCHITECTURES
from .digits import digits_data
from .registry import REGISTRY_PATH, WEIGHTS_DIR, list_samples, weights_path
from .tiny_gpt import CONTEXT, TinyGPT, corpus, eval_data, language_model_loss, save_eval_data

SEED = 0
TRAIN_THREADS = 2


@dataclass(frozen=True)
class Recipe:
    """How one sample is trained: AdamW with a one-cycle learning-rate schedule."""

    epochs: int
    max_lr: float
    weight_decay: float
    batch_size: int = 64


RECIPES: dict[str, Recipe] = {
    "digits_mlp": Recipe(epochs=30, max_lr=1e-2, weight_decay=1e-2),
    "digits_cnn": Recipe(epochs=20, max_lr=1e-2, weight_decay=1e-2),
    "digits_resnet": Recipe(epochs=20, max_lr=3e-3, weight_decay=1e-2),
}


@dataclass(frozen=True)
class LanguageRecipe:
    """How `tiny_gpt` is trained: AdamW with a one-cycle schedule on random windows of the training text."""

    steps: int = 240
    max_lr: float = 2e-3
    weight_decay: float = 0.1
    batch_size: int = 32
    threads: int = 1


LANGUAGE_RECIPE = LanguageRecipe()


@contextlib.contextmanager
def deterministic(seed: int, threads: int) -> Iterator[None]:
    """Seed torch and run deterministic algorithms on `threads` threads; restore all afterwards."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_deterministic)
            torch.set_num_threads(previous_threads)


def train_model(name: str, epochs: int | None = None, seed: int = SEED, threads: int = TRAIN_THREADS) -> nn.Module:
    """A freshly initialised `name` trained on the digits train split; returned in eval mode.

    `epochs` overrides the recipe's. Equal arguments give equal weights.
    """
    recipe = RECIPES[name]
    epochs = recipe.epochs if epochs is None else epochs
    train_data, _ = digits_data()
    with deterministic(seed, threads):
        model = ARCHITECTURES[name]()
        shuffle = torch.Generator().manual_seed(seed)
        steps_per_epoch = -(-len(train_data) // recipe.batch_size)
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.max_lr, weight_decay=recipe.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.max_lr, total_steps=epochs * steps_per_epoch
        )
        model.train()
        for _ in range(epochs):
            for inputs, labels in _shuffled_batches(train_data, recipe.batch_size, shuffle):
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(inputs), labels).backward()
                optimizer.step()
                schedule.step()
    return model.eval()


def train_language_model(
    steps: int | None = None, seed: int = SEED, recipe: LanguageRecipe = LANGUAGE_RECIPE
) -> nn.Module:
    """A freshly initialised `tiny_gpt` trained for `steps` (default: the recipe's) on random
    windows of the training text; returned in eval mode. Equal arguments give equal weights."""
    steps = recipe.steps if steps is None else steps
    train, _ = corpus()
    with deterministic(seed, recipe.threads):
        model = TinyGPT()
        windows = torch.Generator().manual_seed(seed)
        decay = [p for name, p in model.named_parameters() if p.dim() > 1 and "embedding" not in name]
        rest = [p for p in model.parameters() if all(p is not q for q in decay)]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": rest, "weight_decay": 0.0}],
            lr=recipe.max_lr,
        )
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.max_lr, total_steps=max(steps, 1))
        model.train()
        for _ in range(steps):
            starts = torch.randint(0, len(train) - CONTEXT - 1, (recipe.batch_size,), generator=windows)
            batch = torch.stack([train[start : start + CONTEXT + 1] for start in starts.tolist()])
            optimizer.zero_grad(set_to_none=True)
            language_model_loss(model, batch).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
    return model.eval()


def _shuffled_batches(
    data: EvalData, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    order = torch.randperm(len(data), generator=generator)
    for start in range(0, len(data), batch_size):
        index = order[start : start + batch_size]
        yield data.inputs[index], data.labels[index]


def main(argv: Sequence[str] | None = None) -> None:
    """Train the chosen samples, write their weights and figures, print a summary table."""
    parser = argparse.ArgumentParser(prog="python -m sample_models.train", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=[*RECIPES, "tiny_gpt"], help="train this sample only")
    parser.add_argument("--epochs", type=int, help="override every recipe's number of epochs")
    args = parser.parse_args(argv)

    _, test_data = digits_data()
    figures = json.loads(REGISTRY_PATH.read_text()) if REGISTRY_PATH.is_file() else {}
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    print(f"{'sample':<15}{'params':>10}{'test figure':>22}{'seconds':>9}")
    for name in [args.only] if args.only else [*RECIPES, "tiny_gpt"]:
        start = time.perf_counter()
        if name == "tiny_gpt":
            model = train_language_model()
            save_eval_data()
            metric, value = "perplexity", evaluate(model, eval_data())["perplexity"]
            shown = f"perplexity {value:.3f}"
        else:
            model = train_model(name, epochs=args.epochs)
            metric, value = "accuracy", evaluate(model, test_data)["accuracy"]
            shown = f"accuracy {value:.2%}"
        seconds = time.perf_counter() - start
        params = sum(parameter.numel() for parameter in model.parameters())
        save_file(model.state_dict(), weights_path(name))
        figures[name] = {metric: round(value, 6), "params": params}
        print(f"{name:<15}{params:>10,}{shown:>22}{seconds:>9.1f}")
    ordered = {name: figures[name] for name in list_samples() if name in figures}
    REGISTRY_PATH.write_text(json.dumps(ordered, indent=2) + "\n")


if __name__ == "__main__":
    main()
