"""Every page names a model's quality figure the same way: accuracy, perplexity or paraphrase accuracy."""

from __future__ import annotations

from sample_models import load_sample
from workbench import quality


def test_each_kind_of_model_is_judged_by_its_own_figure() -> None:
    assert quality.expected_metric(load_sample("digits_mlp")) is quality.ACCURACY
    assert quality.expected_metric(load_sample("tiny_gpt")) is quality.PERPLEXITY
    assert quality.expected_metric(load_sample("minilm")) is quality.PARAPHRASE


def test_the_headline_figure_is_read_from_an_evaluation() -> None:
    assert quality.headline_metric({"accuracy": 0.9, "loss": 0.3}) is quality.ACCURACY
    assert quality.headline_metric({"perplexity": 6.9, "loss": 1.9}) is quality.PERPLEXITY
    assert quality.headline_metric({"agreement": 1.0, "cosine": 1.0}) is None
    assert quality.PERPLEXITY.show(6.9258) == "6.93"
    assert quality.ACCURACY.show(0.9833) == "98.3 %"
