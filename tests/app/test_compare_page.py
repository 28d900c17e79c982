"""The Compare page under AppTest: both models side by side, latency measured on demand, what changed."""

from __future__ import annotations

import dataclasses

import pytest
from streamlit.testing.v1 import AppTest

import prune_engine as pe
from sample_models import load_sample
from tests.app.helpers import chart_titles, sidebar_text
from ui.shared import caches, keys
from ui.shared.navigation import COMPARE_PAGE, PRUNE_PAGE
from workbench.session import LoadedModel

HEADLINE = [
    "Accuracy",
    "Loss",
    "Same prediction as original",
    "Latency (median)",
    "Parameters",
    "Non-zero parameters",
    "Sparsity",
    "FLOPs per example",
    "Dense size",
    "Sparse size",
]


def prune_then_compare(app: AppTest, sample: str | None = None, granularity: str | None = None) -> AppTest:
    """Prune the sample on the Prune page (it applies live), then open Compare."""
    if sample is not None:
        app.selectbox(key=keys.MODEL_SAMPLE_PICKER).select(sample).run()
    app.switch_page(PRUNE_PAGE).run()
    if granularity is not None:
        app.radio(key=keys.PRUNE_GRANULARITY).set_value(granularity).run()
    return app.switch_page(COMPARE_PAGE).run()


def sides(at: AppTest) -> tuple[dict, dict]:
    """The headline metrics, label → (value, delta), of the original and of the pruned model."""
    metrics = [(metric.label, metric.value, metric.proto.delta) for metric in at.metric]
    count = len(metrics) // 2
    original, pruned = metrics[:count], metrics[count:]
    return {label: (value, delta) for label, value, delta in original}, {
        label: (value, delta) for label, value, delta in pruned
    }


def test_without_a_pruned_model_compare_points_to_prune(app: AppTest) -> None:
    at = app.switch_page(COMPARE_PAGE).run()
    assert not at.exception
    assert any("Nothing has been pruned" in info.value for info in at.info)
    assert "Current model" in sidebar_text(at)


def test_compare_shows_both_models_side_by_side_and_a_latency_table(app: AppTest) -> None:
    at = prune_then_compare(app)
    assert not at.exception
    original, pruned = sides(at)
    assert list(original) == HEADLINE
    assert list(pruned) == HEADLINE
    assert all(delta == "" for _, delta in original.values())
    assert original["Non-zero parameters"][0] != pruned["Non-zero parameters"][0]
    assert pruned["Non-zero parameters"][1].startswith("-")
    assert pruned["Parameters"][1] == "no change"
    assert original["Latency (median)"][0].endswith((" µs", " ms", " s"))

    latency = at.dataframe[0].value
    assert latency["model"].tolist() == ["original", "pruned"]
    assert {"median", "iqr", "batch_size", "threads", "device"} <= set(latency.columns)
    assert latency["median"].iloc[0] == original["Latency (median)"][0], "the table says it as the headline does"
    assert latency["threads"].tolist() == [1, 1]
    assert "Latency of every timed block" in chart_titles(at)


def test_a_rerun_does_not_measure_again_but_the_button_does(app: AppTest) -> None:
    at = prune_then_compare(app)
    measured = dict(at.session_state[keys.COMPARE_LATENCY_RESULTS])
    at.run()
    assert dict(at.session_state[keys.COMPARE_LATENCY_RESULTS]) == measured
    at.button(key=keys.COMPARE_MEASURE).click().run()
    again = at.session_state[keys.COMPARE_LATENCY_RESULTS]
    assert again.keys() == measured.keys()
    assert all(again[key] is not measured[key] for key in measured)


def test_another_batch_size_is_measured_and_shown(app: AppTest) -> None:
    at = prune_then_compare(app)
    at.selectbox(key=keys.COMPARE_BATCH).select(8).run()
    assert not at.exception
    assert at.dataframe[0].value["batch_size"].tolist() == [8, 8]
    assert len(at.session_state[keys.COMPARE_LATENCY_RESULTS]) == 2


def test_an_unstructured_result_says_zeros_do_not_speed_up_dense_kernels(app: AppTest) -> None:
    at = prune_then_compare(app)
    assert any("Dense kernels multiply zeros" in info.value for info in at.info)


def test_a_channel_result_shrinks_the_model_and_shows_what_changed(app: AppTest) -> None:
    at = prune_then_compare(app, "digits_cnn", granularity="channel")
    assert not at.exception
    original, pruned = sides(at)
    assert pruned["Parameters"][1].startswith("-")
    assert pruned["FLOPs per example"][1].startswith("-")
    assert original["Parameters"][0] != pruned["Parameters"][0]
    assert not any("Dense kernels" in info.value for info in at.info)
    titles = chart_titles(at)
    assert "Parameters per layer, before and after" in titles
    assert "Confusion matrix: pruned minus original" in titles
    assert any("test examples get another prediction" in markdown.value for markdown in at.markdown)


def test_without_labels_compare_measures_agreement_with_the_original(app: AppTest) -> None:
    bundle = load_sample("digits_mlp")
    unlabelled = dataclasses.replace(bundle, eval_data=pe.EvalData(bundle.eval_data.inputs))
    app.session_state[keys.CURRENT_MODEL] = LoadedModel.from_bundle(unlabelled)
    at = prune_then_compare(app)
    assert not at.exception
    original, pruned = sides(at)
    assert list(original)[:2] == ["Same prediction as original", "Output cosine similarity"]
    assert original["Same prediction as original"][0] == "100.0 %"
    assert pruned["Output cosine similarity"][0] != "1.000"
    assert "no labels" in " ".join(caption.value for caption in at.caption)
    assert "Needs labelled classification data" in " ".join(caption.value for caption in at.caption)


@pytest.mark.parametrize("page", [PRUNE_PAGE, COMPARE_PAGE])
def test_the_frame_stays_on_reruns(app: AppTest, page: str) -> None:
    app.switch_page(page).run()
    app.run()
    assert not app.exception
    assert "Current model" in sidebar_text(app)


def test_the_pruned_layers_weights_are_shown_before_and_after_on_the_same_bins(app: AppTest) -> None:
    at = prune_then_compare(app)
    assert not at.exception
    report = at.session_state[keys.PRUNED].result.report
    largest = report.sort_values("weights_before", ascending=False)["layer"].iloc[0]
    assert at.selectbox(key=keys.COMPARE_HISTOGRAM_LAYER).value == largest, "the largest pruned layer first"
    assert f"Weight values of {largest} before and after pruning" in chart_titles(at)
    assert any("now exactly zero" in caption.value for caption in at.caption)


def test_the_measured_speed_up_stands_beside_the_one_predicted_before_pruning(app: AppTest) -> None:
    at = prune_then_compare(app, "digits_cnn", "channel")
    assert not at.exception
    said = " ".join(markdown.value for markdown in at.markdown)
    assert "**Predicted before pruning:**" in said and "**measured:**" in said


def test_single_weights_predict_no_change_without_profiling_the_model(app: AppTest, monkeypatch) -> None:
    """Zeros leave every layer its shape, so the prediction is "no change" and costs no timing of the model."""
    at = prune_then_compare(app)

    def profiled(*args, **kwargs):
        raise AssertionError("single weights need no latency profile to predict no change")

    monkeypatch.setattr(caches, "predicted_speedup", profiled)
    at.button(key=keys.COMPARE_MEASURE).click().run()
    assert not at.exception
    said = " ".join(markdown.value for markdown in at.markdown)
    assert "**Predicted before pruning:** no change (no layer changes shape)" in said


def test_sparse_kernels_are_timed_in_the_same_run_for_unstructured_results(app: AppTest) -> None:
    at = prune_then_compare(app)
    at.toggle(key=keys.COMPARE_SPARSE).set_value(True).run()
    assert not at.exception
    latency = next(frame.value for frame in at.dataframe if "verdict" in frame.value)
    assert latency["model"].tolist() == ["original", "pruned", "pruned, sparse kernels"]


def test_a_language_model_is_compared_by_perplexity_and_its_continuations(app: AppTest) -> None:
    at = prune_then_compare(app, "tiny_gpt")
    assert not at.exception
    original, pruned = sides(at)
    assert list(original)[:2] == ["Perplexity", "Same next token"]
    assert float(pruned["Perplexity"][0]) > 0
    said = " ".join(markdown.value for markdown in at.markdown)
    assert "*Original continues:*" in said and "*Pruned continues:*" in said
