"""The Sensitivity page under AppTest: a scan equal to the engine's, its suggestion in the Prune sliders,
iterative pruning that becomes the session's pruned model, sparsity training, and a scan cancelled mid-way."""

from __future__ import annotations

import base64
import dataclasses
import threading

import numpy as np
import pandas as pd
import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetStates
from streamlit.runtime.scriptrunner import get_script_run_ctx
from streamlit.runtime.scriptrunner_utils.script_requests import RerunData
from streamlit.testing.v1 import AppTest

import prune_engine as pe
from prune_engine.report import REPORT_COLUMNS
from prune_engine.sensitivity import RAY_ADDRESS_ENV, SerialExecutor, clear_scan_cache
from sample_models import load_sample
from tests.app.helpers import chart_spec, chart_titles, layer_key
from ui.sensitivity import scan as sensitivity_scan_view
from ui.shared import caches, keys
from ui.shared.navigation import COMPARE_PAGE, SENSITIVITY_PAGE
from workbench import fmt, plans, tasks
from workbench.session import LoadedModel

RATIOS_PCT = [30, 60, 90]
LAYERS = ["fc1", "fc2"]
HEATMAP = "Drop in accuracy when one layer is pruned alone"
COMPARED = ["layer", "group", "ratio", "metric", "baseline", "drop", "params_saved", "flops_saved", "note"]


def open_sensitivity(app: AppTest) -> AppTest:
    """The Sensitivity page on digits_mlp, scanning fc1 and fc2 at 30/60/90 % in this process."""
    app.selectbox(key=keys.MODEL_SAMPLE_PICKER).select("digits_mlp").run()
    at = app.switch_page(SENSITIVITY_PAGE).run()
    at.selectbox(key=keys.SENS_EXECUTOR).set_value("serial")
    at.multiselect(key=keys.SENS_RATIOS).set_value(RATIOS_PCT)
    at.multiselect(key=keys.SENS_LAYERS).set_value(LAYERS)
    return at


def run_scan(at: AppTest) -> AppTest:
    at.button(key=keys.SENS_RUN).click().run()
    assert not at.exception
    return at


def table_with(at: AppTest, column: str) -> pd.DataFrame:
    """The first table on the page that has `column`."""
    for table in at.dataframe:
        if column in table.value.columns:
            return table.value
    raise AssertionError(f"No table has a {column!r} column")


def values(data: list | dict) -> np.ndarray:
    """The numbers of a plotly array, which plotly writes as a list or as a base64 typed array."""
    if isinstance(data, dict):
        array = np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"]))
        shape = data.get("shape")
        return array.reshape([int(size) for size in shape.split(",")]) if shape else array
    return np.asarray(data, dtype=float)


def warnings(at: AppTest) -> str:
    return " ".join(warning.value for warning in at.warning)


def test_a_scan_draws_the_heatmap_and_a_table_equal_to_the_engine_scan(app: AppTest) -> None:
    at = run_scan(open_sensitivity(app))

    clear_scan_cache()
    bundle = load_sample("digits_mlp")
    direct = pe.sensitivity_scan(
        bundle.model, bundle.eval_data, (0.3, 0.6, 0.9), layers=LAYERS, executor=SerialExecutor()
    )
    shown = table_with(at, "params_saved")
    pd.testing.assert_frame_equal(
        shown[["layer", "ratio", "metric", "drop", "params_saved", "flops_saved", "note"]].reset_index(drop=True),
        direct[["layer", "ratio", "metric", "drop", "params_saved", "flops_saved", "note"]].assign(
            drop=direct["drop"] * 100, metric=direct["metric"] * 100
        ),
        check_dtype=False,
    )
    stored = at.session_state[keys.SENS_SCAN].table
    pd.testing.assert_frame_equal(stored[COMPARED], direct[COMPARED])

    heatmap = chart_spec(at, HEATMAP)["data"][0]
    assert heatmap["y"] == LAYERS and heatmap["x"] == ["30%", "60%", "90%"]
    expected = direct.pivot(index="layer", columns="ratio", values="drop").loc[LAYERS] * 100
    np.testing.assert_allclose(values(heatmap["z"]), expected.to_numpy())
    assert "Accuracy with one layer pruned" in chart_titles(at)


def test_a_channel_scan_leaves_the_output_layer_blank_and_says_why(app: AppTest) -> None:
    app.selectbox(key=keys.MODEL_SAMPLE_PICKER).select("digits_cnn").run()
    at = app.switch_page(SENSITIVITY_PAGE).run()
    at.selectbox(key=keys.SENS_EXECUTOR).set_value("serial")
    at.radio(key=keys.SENS_GRANULARITY).set_value("channel")
    at.multiselect(key=keys.SENS_RATIOS).set_value([50])
    at = run_scan(at)
    heatmap = chart_spec(at, HEATMAP)["data"][0]
    drops = dict(zip(heatmap["y"], values(heatmap["z"]).ravel(), strict=True))
    assert np.isnan(drops["fc"]) and not np.isnan(drops["conv2"])
    captions = " ".join(caption.value for caption in at.caption).replace("\\", "")
    assert "Blank cells were not measured (fc: cannot lose channels: 'fc' produces the model's output)." in captions


def test_a_scan_run_again_with_the_same_settings_comes_from_the_cache(
    app: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple] = []
    real_scan = pe.sensitivity_scan

    def counted_scan(*args, **kwargs):
        calls.append(args[2:])
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(pe, "sensitivity_scan", counted_scan)
    at = open_sensitivity(app)
    at.multiselect(key=keys.SENS_RATIOS).set_value([20, 40])
    first = run_scan(at).session_state[keys.SENS_SCAN].table
    again = run_scan(at).session_state[keys.SENS_SCAN].table
    assert len(calls) == 1
    pd.testing.assert_frame_equal(first, again)
    at.multiselect(key=keys.SENS_RATIOS).set_value([20, 40, 60])
    run_scan(at)
    assert calls == [
        ((0.2, 0.4), "unstructured", "l1", ["fc1", "fc2"]),
        ((0.2, 0.4, 0.6), "unstructured", "l1", ["fc1", "fc2"]),
    ]


def test_a_suggestion_sent_to_the_sliders_becomes_the_prune_pages_plan(app: AppTest) -> None:
    at = run_scan(open_sensitivity(app))
    at.slider(key=keys.SENS_TARGET).set_value(40).run()
    suggestion = at.session_state[keys.SENS_SUGGESTION]
    assert suggestion.ratios, "a 40 % target needs some layer pruned"
    shown = table_with(at, "predicted_drop").set_index("layer")["ratio"]
    assert shown.to_dict() == {layer: suggestion.ratios.get(layer, 0.0) for layer in LAYERS}

    at.button(key=keys.SENS_SEND).click().run()
    assert not at.exception
    assert at.title[0].value == "Prune"
    assert at.session_state[keys.PLAN] == suggestion
    for layer in LAYERS:
        assert at.slider(key=layer_key(at, keys.prune_layer_ratio, layer)).value == round(
            suggestion.ratios.get(layer, 0.0) * 100
        )


def test_pruning_in_steps_charts_each_step_and_becomes_the_sessions_pruned_model(app: AppTest) -> None:
    at = open_sensitivity(app)
    at.number_input(key=keys.SENS_STEPS).set_value(2)
    at.button(key=keys.SENS_RUN_ITERATIVE).click().run()
    assert not at.exception
    result = at.session_state[keys.SENS_ITERATIVE].result
    assert result.history["step"].tolist() == [0, 1, 2]
    steps = chart_spec(at, "Accuracy at each step")["data"]
    markers = {trace["name"]: values(trace["y"]) for trace in steps if trace.get("name")}
    assert list(markers) == ["original", "after pruning", "after fine-tuning"]
    np.testing.assert_allclose(markers["after fine-tuning"], result.history["accuracy"][1:] * 100)
    np.testing.assert_allclose(markers["after pruning"], result.history["pruned_accuracy"][1:] * 100)

    at.button(key=keys.SENS_USE_PRUNED).click().run()
    assert not at.exception
    pruned = at.session_state[keys.PRUNED]
    assert pruned.result is result
    assert pruned.plan == pe.PruningPlan(global_ratio=0.3), "the Prune page's starting plan, reached in steps"
    assert any("now the session's pruned model" in success.value for success in at.success)


def test_sparsity_training_shows_both_histograms_and_pruning_with_and_without_it(app: AppTest) -> None:
    at = open_sensitivity(app)
    at.number_input(key=keys.SENS_L1_EPOCHS).set_value(1)
    at.button(key=keys.SENS_RUN_SPARSE).click().run()
    assert not at.exception

    histograms = chart_spec(at, "Weight values of fc1 before and after L1 training")["data"]
    assert [trace["name"] for trace in histograms] == ["before", "after L1 training"]
    bundle = load_sample("digits_mlp")
    before_counts, _ = pe.weight_histogram(bundle.model, "fc1", bins=caches.HISTOGRAM_BINS)
    np.testing.assert_array_equal(values(histograms[0]["y"]), before_counts)
    assert values(histograms[1]["y"]).sum() == before_counts.sum(), "the same weights, counted after training"

    table = table_with(at, "trained_accuracy")
    assert table["training"].tolist() == ["original", "+1 epoch, no L1", "+1 epoch, L1 λ=0.001"]
    assert table.loc[0, "trained_accuracy"] == pytest.approx(pe.evaluate(bundle.model, bundle.eval_data)["accuracy"])
    bars = chart_spec(at, "Accuracy with and without L1 training, pruned alike")["data"]
    np.testing.assert_allclose(values(bars[1]["y"]), table["pruned_accuracy"] * 100)


@pytest.fixture
def cancel_after_first_job(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Click Cancel the way a browser does while the scan runs: after the first finished job, ask the
    script run for a rerun carrying the Cancel button's trigger; the scan's next job waits until the
    page has answered the click. Records how the scan ended."""
    real_scan = pe.sensitivity_scan
    record: dict[str, object] = {"jobs": 0}

    def scan(*args, progress, cancel: threading.Event, **kwargs):
        context = get_script_run_ctx()
        assert context is not None, "the scan's thread carries the script run's context"

        def progress_then_click(done: float, message: str) -> None:
            record["jobs"] = int(record["jobs"]) + 1
            if record["jobs"] == 1:
                context.script_requests.request_rerun(
                    RerunData(widget_states=_cancel_click(context), page_script_hash=context.page_script_hash)
                )
                assert cancel.wait(timeout=10), "the interrupted page run sets the scan's cancel event"
            progress(done, message)

        try:
            return real_scan(*args, progress=progress_then_click, cancel=cancel, **kwargs)
        except BaseException as error:
            record["ended_with"] = type(error).__name__
            raise

    monkeypatch.setattr(pe, "sensitivity_scan", scan)
    return record


def _cancel_click(context) -> WidgetStates:
    """The page's widget values, with no trigger set but the Cancel button's."""
    states = WidgetStates()
    for widget in context.session_state.get_widget_states():
        if widget.WhichOneof("value") == "trigger_value":
            widget.trigger_value = widget.id.endswith(f"-{keys.SENS_CANCEL}")
        states.widgets.append(widget)
    return states


def test_cancel_stops_a_scan_mid_way_and_keeps_nothing(app: AppTest, cancel_after_first_job: dict) -> None:
    at = open_sensitivity(app)
    at.multiselect(key=keys.SENS_RATIOS).set_value([10, 20, 30, 40, 50])
    at.button(key=keys.SENS_RUN).click().run()
    assert not at.exception
    assert cancel_after_first_job["ended_with"] in {"WorkCancelled", "ScanCancelled"}
    assert cancel_after_first_job["jobs"] == 1, "no job was reported after the cancel"
    assert "The scan was cancelled; nothing from it was kept." in warnings(at)
    assert keys.SENS_SCAN not in at.session_state
    assert HEATMAP not in chart_titles(at)
    assert "Run a scan first" in " ".join(info.value for info in at.info)


def test_the_page_says_a_scan_runs_on_the_ray_cluster_configured(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RAY_ADDRESS_ENV, "ray://head:10001")
    at = app.switch_page(SENSITIVITY_PAGE).run()
    captions = " ".join(caption.value for caption in at.caption).replace("\\", "")
    assert "27 job(s), one per layer and ratio · runs on the Ray cluster at ray://head:10001." in captions
    at.selectbox(key=keys.SENS_EXECUTOR).set_value("processes").run()
    captions = " ".join(caption.value for caption in at.caption)
    assert "runs on a local pool of" in captions


def test_a_model_without_training_examples_is_scanned_but_not_trained(app: AppTest) -> None:
    bundle = load_sample("digits_mlp")
    app.session_state[keys.CURRENT_MODEL] = LoadedModel.from_bundle(dataclasses.replace(bundle, train_data=None))
    at = app.switch_page(SENSITIVITY_PAGE).run()
    assert not at.exception
    infos = [info.value for info in at.info]
    assert infos.count(tasks.training_problem(at.session_state[keys.CURRENT_MODEL])) == 2
    assert "Training needs training examples, and this model has none" in infos[-1]
    assert not at.button(key=keys.SENS_RUN).disabled


def assert_compare_renders_every_section(at: AppTest, result: pe.PruneResult) -> None:
    """Compare after a Sensitivity result: no exception, and every section down to Export is drawn with it."""
    at = at.switch_page(COMPARE_PAGE).run()
    assert not at.exception, [exception.value for exception in at.exception]
    assert [header.value for header in at.subheader] == [
        "Latency",
        "Layer by layer",
        "Predictions that changed",
        "Export",
    ]
    assert at.session_state[keys.PRUNED].result is result
    assert list(result.report.columns) == list(REPORT_COLUMNS)


def test_pruning_in_steps_reaches_compare_with_its_layer_table_and_export(app: AppTest) -> None:
    """digits_cnn, channels 50 % → Prune in steps → Use this model → Compare raised KeyError: 'params_before'."""
    app.selectbox(key=keys.MODEL_SAMPLE_PICKER).select("digits_cnn").run()
    app.session_state[keys.PLAN] = pe.PruningPlan(granularity="channel", global_ratio=0.5, recalibrate_bn=True)
    at = app.switch_page(SENSITIVITY_PAGE).run()
    at.number_input(key=keys.SENS_STEPS).set_value(2)
    at.button(key=keys.SENS_RUN_ITERATIVE).click().run()
    at.button(key=keys.SENS_USE_PRUNED).click().run()
    assert not at.exception

    assert_compare_renders_every_section(at, at.session_state[keys.SENS_ITERATIVE].result)


def test_the_l1_trained_model_pruned_becomes_the_pruned_model_and_reaches_compare(app: AppTest) -> None:
    at = open_sensitivity(app)
    at.number_input(key=keys.SENS_L1_EPOCHS).set_value(1)
    at.button(key=keys.SENS_RUN_SPARSE).click().run()
    assert any("Estimated time" in caption.value for caption in at.caption)
    at.button(key=keys.SENS_USE_SPARSE).click().run()
    assert not at.exception
    pruned = at.session_state[keys.PRUNED]
    run = at.session_state[keys.SENS_SPARSE].run
    assert pruned.plan == tasks.slimming_plan("weights", 0.9)
    bundle = load_sample("digits_mlp")
    shown = table_with(at, "pruned_accuracy").set_index("training")["pruned_accuracy"]
    assert pe.evaluate(pruned.model, bundle.eval_data)["accuracy"] == pytest.approx(shown.iloc[2])
    assert pruned.model is not run.sparse, "the L1-trained model is pruned on a copy"
    report = pruned.result.report.set_index("layer")
    assert report.loc["fc1", "params_before"] == bundle.model.fc1.weight.numel() + bundle.model.fc1.bias.numel()
    assert any("now the session's pruned model" in success.value for success in at.success)

    assert_compare_renders_every_section(at, pruned.result)


def test_a_channel_scan_follows_the_prune_pages_batchnorm_policy_and_sends_it(app: AppTest) -> None:
    app.selectbox(key=keys.MODEL_SAMPLE_PICKER).select("digits_cnn").run()
    at = app.switch_page(SENSITIVITY_PAGE).run()
    at.selectbox(key=keys.SENS_EXECUTOR).set_value("serial")
    at.radio(key=keys.SENS_GRANULARITY).set_value("channel").run()
    assert at.toggle(key=keys.sens_recalibrate("channel")).value, "on for channels, as on the Prune page"
    at.multiselect(key=keys.SENS_RATIOS).set_value([25, 50, 75])
    at = run_scan(at)
    outcome = at.session_state[keys.SENS_SCAN]
    assert outcome.request.recalibrate_bn and outcome.table["recalibrate_bn"].all()
    shown = " ".join(markdown.value for markdown in at.markdown).replace("\\", "")
    assert "Last scan: whole channels · Magnitude (L1) · BatchNorm re-estimated" in shown.replace("**", "")
    assert outcome.table.dropna(subset=["metric"])["latency_ms"].gt(0).all()

    at.slider(key=keys.SENS_TARGET).set_value(20)
    at.radio(key=keys.SENS_BUDGET).set_value("latency").run()
    assert not at.exception
    assert keys.SENS_SUGGESTION in at.session_state, warnings(at)
    suggestion = at.session_state[keys.SENS_SUGGESTION]
    assert suggestion.recalibrate_bn
    at.button(key=keys.SENS_SEND).click().run()
    assert at.session_state[keys.PLAN].recalibrate_bn and at.session_state[keys.PLAN].ratios == suggestion.ratios


def test_a_measured_drop_far_above_the_prediction_is_called_out_with_a_refinement(app: AppTest) -> None:
    at = run_scan(open_sensitivity(app))
    outcome = at.session_state[keys.SENS_SCAN]
    optimistic = outcome.table.assign(drop=0.0, loss_increase=0.0)
    at.session_state[keys.SENS_SCAN] = dataclasses.replace(outcome, table=optimistic)
    at.slider(key=keys.SENS_TARGET).set_value(85).run()
    assert "more than predicted" in warnings(at)

    at.button(key=keys.SENS_REFINE_STEPS).click().run()
    assert not at.exception
    assert at.radio(key=keys.SENS_PLAN_SOURCE).value == "suggestion"
    described = fmt.literal(plans.describe_plan(at.session_state[keys.SENS_SUGGESTION]))
    assert f"**Plan:** {described}" in [markdown.value for markdown in at.markdown]


def test_the_curves_legend_sits_beside_the_plot_not_over_the_title(app: AppTest) -> None:
    at = run_scan(open_sensitivity(app))
    layout = chart_spec(at, "Accuracy with one layer pruned")["layout"]
    assert layout["legend"]["orientation"] == "v" and layout["legend"]["x"] > 1


def test_a_measured_rise_is_said_as_one_not_as_a_negative_drop() -> None:
    assert sensitivity_scan_view.measured_words(0.0028) == "0.28 pts"
    assert sensitivity_scan_view.measured_words(-0.0028) == "none: +0.28 pts"
    assert sensitivity_scan_view.measured_words(0.00001) == "no change"
