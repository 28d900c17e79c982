"""The catalogue of sample models: what each one is, and how to load it trained.

Descriptions live here; the figures measured at training time (test accuracy, params)
live in `weights/registry.json`, written by `python -m sample_models.train` next to
the weight files it writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file

from prune_engine import ModelBundle
from prune_engine.errors import ModelLoadError, UnknownSampleError
from prune_engine.language import LANGUAGE_MODEL_TASK

from .architectures import ARCHITECTURES, CLASSES, IMAGE_SIZE
from .digits import digits_data
from .large import LARGE_SAMPLES, large_sample_params, load_large_sample
from .minilm import ARCHITECTURE as MINILM_ARCHITECTURE
from .minilm import DESCRIPTION as MINILM_DESCRIPTION
from .minilm import MINILM_PARAMS, load_minilm_sample
from .tiny_gpt import DESCRIPTION as TINY_GPT_DESCRIPTION
from .tiny_gpt import load_tiny_gpt_sample

WEIGHTS_DIR = Path(__file__).parent / "weights"
REGISTRY_PATH = WEIGHTS_DIR / "registry.json"

DESCRIPTIONS: dict[str, str] = {
    "digits_mlp": (
        "A small fully connected network (64 → 256 → 128 → 10 neurons) that reads 8×8 images of "
        "handwritten digits. Its layers are plain weight matrices, so it is the clearest place to "
        "see what removing single weights or whole neurons does to accuracy."
    ),
    "digits_cnn": (
        "A small convolutional network (three conv + batch-norm + ReLU blocks and a linear head) "
        "for 8×8 handwritten digits. Good for comparing criteria per filter and for a first look "
        "at channel pruning."
    ),
    "digits_resnet": (
        "A small residual network (two stages of basic blocks, 64 and 128 channels) for 8×8 "
        "handwritten digits. Its channels are wide enough that removing half of them makes it "
        "several times faster on a CPU, which shows what structured pruning buys."
    ),
    "tiny_gpt": TINY_GPT_DESCRIPTION,
    "minilm": MINILM_DESCRIPTION,
}
"""Sample name → one or two plain sentences a teacher could read out; also sets the order."""

TASK = "classification"


@dataclass(frozen=True)
class SampleInfo:
    """What a sample is: its description, task, recorded test accuracy and size.

    A sample without a test accuracy (an embedding or language model, a large sample) has NaN;
    `tiny_gpt`'s recorded perplexity is in its bundle's metadata.

    `architecture` is the key of its factory in `sample_models.architectures.ARCHITECTURES`.
    """

    name: str
    description: str
    task: str
    accuracy: float
    params: int
    architecture: str


def list_samples(include_large: bool = False) -> list[str]:
    """Names of the samples, smallest model first.

    `include_large` adds the large scale-test models (random weights, 100 M+ parameters),
    which take seconds and gigabytes to load and prune.
    """
    return list(DESCRIPTIONS) + (list(LARGE_SAMPLES) if include_large else [])


def sample_info(name: str) -> SampleInfo:
    """The registry entry of sample `name`, with the figures recorded when it was trained
    (a large sample is untrained: its accuracy is NaN)."""
    if name in LARGE_SAMPLES:
        sample = LARGE_SAMPLES[name]
        architecture = str(sample.metadata["architecture"])
        return SampleInfo(name, sample.description, TASK, float("nan"), large_sample_params(name), architecture)
    if name == "minilm":
        return SampleInfo(name, MINILM_DESCRIPTION, "embedding", float("nan"), MINILM_PARAMS, MINILM_ARCHITECTURE)
    _check_name(name)
    figures = _recorded_figures().get(name)
    if figures is None:
        raise ModelLoadError(f"Sample {name!r} has no recorded figures; run `python -m sample_models.train`.")
    if name == "tiny_gpt":
        return SampleInfo(name, DESCRIPTIONS[name], LANGUAGE_MODEL_TASK, float("nan"), int(figures["params"]), name)
    return SampleInfo(
        name=name,
        description=DESCRIPTIONS[name],
        task=TASK,
        accuracy=float(figures["accuracy"]),
        params=int(figures["params"]),
        architecture=name,
    )


def load_sample(name: str) -> ModelBundle:
    """Sample `name` trained, in eval mode, with its test split (`eval_data`) and train split.

    Every call builds a new model from the weight file, so callers may change it freely;
    the data tensors are shared between calls and must be treated as read-only.
    """
    if name in LARGE_SAMPLES:
        return load_large_sample(name)
    if name == "minilm":
        return load_minilm_sample(name)
    if name == "tiny_gpt":
        return load_tiny_gpt_sample(weights_path(name), _recorded_figures().get(name))
    info = sample_info(name)
    path = weights_path(name)
    if not path.is_file():
        raise ModelLoadError(f"The weights of sample {name!r} are missing; run `python -m sample_models.train`.")
    model = ARCHITECTURES[info.architecture]()
    model.load_state_dict(load_file(path), strict=True)
    model.eval()
    train_data, test_data = digits_data()
    return ModelBundle(
        name=name,
        model=model,
        example_input=test_data.inputs[:1].clone(),
        eval_data=test_data,
        train_data=train_data,
        task=info.task,
        description=info.description,
        metadata={
            "accuracy": info.accuracy,
            "params": info.params,
            "architecture": info.architecture,
            "input_shape": [1, IMAGE_SIZE, IMAGE_SIZE],
            "classes": CLASSES,
            "dataset": "scikit-learn digits (test split)",
        },
    )


def weights_path(name: str) -> Path:
    """Where the trained weights of sample `name` are stored (safetensors)."""
    return WEIGHTS_DIR / f"{name}.safetensors"


def _check_name(name: str) -> None:
    if name not in DESCRIPTIONS:
        raise UnknownSampleError(f"There is no sample called {name!r}; choose one of {', '.join(DESCRIPTIONS)}.")


def _recorded_figures() -> dict[str, dict[str, float]]:
    if not REGISTRY_PATH.is_file():
        return {}
    return json.loads(REGISTRY_PATH.read_text())
