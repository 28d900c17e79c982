"""Which figure says how good a model is: accuracy for a classifier, perplexity for a language model,
paraphrase accuracy for a sentence encoder; named once, so every page calls it the same."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import prune_engine as pe
from prune_engine.language import is_language_model
from workbench import fmt


@dataclass(frozen=True)
class QualityMetric:
    """One headline quality figure: its key in `prune_engine.evaluate`'s result and how to show it."""

    key: str
    label: str
    help: str
    lower_is_better: bool
    share: bool
    """A share shown in percent (its changes in points), else a plain number."""

    def show(self, value: float | None) -> str:
        if self.share:
            return fmt.percent(value)
        return fmt.MISSING if value is None else f"{value:.2f}"


ACCURACY = QualityMetric("accuracy", "Accuracy", "Share of test examples classified correctly.", False, True)
PERPLEXITY = QualityMetric(
    "perplexity",
    "Perplexity",
    "How many next tokens, on average, the model hesitates between on held-out text: lower is better.",
    True,
    False,
)
PARAPHRASE = QualityMetric(
    "paraphrase_accuracy",
    "Paraphrase found first",
    "Share of sentences with a paraphrase in the set whose most similar sentence is one of its paraphrases.",
    False,
    True,
)
METRICS = (PERPLEXITY, PARAPHRASE, ACCURACY)
AGREEMENT = QualityMetric(
    "agreement",
    "Same prediction as the original",
    "Share of test examples with the original's top-1 prediction (for models without labels).",
    False,
    True,
)
HISTORY_METRICS = (*METRICS, AGREEMENT)
"""What the experiment history ranks runs by, the first a run has: the task's own figure, else agreement."""
RETRIEVAL = QualityMetric(
    "retrieval_agreement",
    "Nearest neighbours kept",
    "Share of sentences whose most similar sentence is the same one the original finds.",
    False,
    True,
)
COSINE = QualityMetric("cosine", "Cosine similarity with the original", "Of the outputs, 1 = the same.", False, False)


def named(key: str) -> QualityMetric:
    """The quality figure an engine result calls `key` (`training.recovery_metric`'s names included)."""
    known = (*HISTORY_METRICS, RETRIEVAL, COSINE)
    return next(
        (metric for metric in known if metric.key == key),
        QualityMetric(key, key.replace("_", " ").capitalize(), "", False, False),
    )


def headline_metric(evaluation: Mapping[str, float]) -> QualityMetric | None:
    """The figure `evaluation` (from `prune_engine.evaluate`) leads with; None when it has none (no labels)."""
    return next((metric for metric in METRICS if metric.key in evaluation), None)


def history_metric(measured: Iterable[str]) -> QualityMetric | None:
    """The figure to rank stored runs by, given the metric keys some of them have measured."""
    keys = set(measured)
    return next((metric for metric in HISTORY_METRICS if metric.key in keys), None)


def expected_metric(bundle: pe.ModelBundle) -> QualityMetric | None:
    """The figure a model will be judged by, known without evaluating it (for captions)."""
    data = bundle.eval_data
    if data is None:
        return None
    if is_language_model(bundle.model):
        return PERPLEXITY
    if pe.is_embedding_model(bundle.model):
        return PARAPHRASE if data.labels is not None else None
    return ACCURACY if data.labels is not None and not data.labels.dtype.is_floating_point else None
