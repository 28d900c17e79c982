"""The Prune page under AppTest: sliders build the plan, locks hold, plans round-trip as files."""

from __future__ import annotations

import json

import pytest
import torch
from streamlit.testing.v1 import AppTest

import prune_engine as pe
from prune_engine.importance import PER_CLASS_AVERAGES
from sample_models import load_sample
from tests.app.helpers import chart_titles, layer_key
from ui.prune import controls as prune_controls
from ui.prune import preview as plan_preview
from ui.prune import result as prune_result
from ui.shared import caches, keys
from ui.shared.navigation import COMPARE_PAGE, MODEL_PAGE, PRUNE_PAGE
from workbench import fmt, plans
from workbench.session import LoadedModel


def open_prune(app: AppTest, sample: str | None = None) -> AppTest:
    if sample is not None:
        app.selectbox(key=keys.MODEL_SAMPLE_PICKER).select(sample).run()
    return app.switch_page(PRUNE_PAGE).run()


def plan_of(at: AppTest) -> pe.PruningPlan:
    return at.session_state[keys.PLAN]


def report_of(at: AppTest):
    """The per-layer report of the pruned model in the session, indexed by layer."""
    return at.session_state[keys.PRUNED].result.report.set_index("layer")


def nonzero(at: AppTest) -> int:
    return int(report_of(at)["nonzero_after"].sum())


def layer_slider(at: AppTest, layer: str):
    return at.slider(key=layer_key(at, keys.prune_layer_ratio, layer))


def captions(at: AppTest) -> str:
    return " ".join(caption.value for caption in at.caption)


def errors(at: AppTest) -> str:
    return " ".join(error.value for error in at.error)


def download_content(at: AppTest, downloads: dict[str, bytes]) -> bytes:
    url = at.get("download_button")[0].proto.url
    return downloads[url.rsplit("/", 1)[-1].split(".")[0]]


def test_the_page_starts_on_a_default_plan_and_prunes_the_sample_live(app: AppTest) -> None:
    at = open_prune(app)
    assert not at.exception
    assert plan_of(at) == pe.PruningPlan(global_ratio=0.3)
    assert at.slider(key=keys.PRUNE_GLOBAL).value == 30
    assert nonzero(at) < int(report_of(at)["nonzero_before"].sum())
    assert [metric.label for metric in at.metric][:2] == ["Parameters", "Non-zero parameters"]


def test_the_preview_charts_are_drawn_only_once_opened(app: AppTest) -> None:
    at = open_prune(app)
    assert plan_preview.PREVIEW_TITLE in [expander.label for expander in at.expander]
    assert chart_titles(at) == []
    at.session_state[keys.PRUNE_PREVIEW_OPEN] = True
    at.run()
    assert chart_titles(at) == ["What each layer will lose", "Weight importance of fc1"]
    at.slider(key=keys.PRUNE_GLOBAL).set_value(60).run()
    assert chart_titles(at) == ["What each layer will lose", "Weight importance of fc1"], "it stays open"


def test_the_global_slider_changes_the_plan_and_the_pruned_model(app: AppTest) -> None:
    at = open_prune(app)
    before = nonzero(at)
    at.slider(key=keys.PRUNE_GLOBAL).set_value(60).run()
    assert not at.exception
    assert plan_of(at).global_ratio == pytest.approx(0.6)
    assert nonzero(at) < before
    assert layer_slider(at, "fc2").value == 60


def test_a_layer_slider_locks_its_layer_at_its_value(app: AppTest) -> None:
    at = open_prune(app)
    layer_slider(at, "fc2").set_value(80).run()
    assert plan_of(at).ratios == {"fc2": pytest.approx(0.8)}
    assert at.checkbox(key=layer_key(at, keys.prune_layer_lock, "fc2")).value
    report = report_of(at)
    assert report.loc["fc2", "nonzero_after"] == round(0.2 * report.loc["fc2", "weights_before"])
    assert report.loc["fc1", "nonzero_after"] == round(0.7 * report.loc["fc1", "weights_before"])


def test_a_locked_layer_keeps_its_value_when_the_global_slider_moves(app: AppTest) -> None:
    at = open_prune(app)
    layer_slider(at, "fc2").set_value(80).run()
    at.slider(key=keys.PRUNE_GLOBAL).set_value(10).run()
    assert layer_slider(at, "fc2").value == 80
    assert layer_slider(at, "fc1").value == 10
    assert plan_of(at).ratios == {"fc2": pytest.approx(0.8)}

    at.checkbox(key=layer_key(at, keys.prune_layer_lock, "fc2")).uncheck().run()
    assert plan_of(at).ratios == {}
    assert layer_slider(at, "fc2").value == 10


def test_reset_unlocks_every_layer_and_restores_the_global_ratio(app: AppTest) -> None:
    at = open_prune(app)
    layer_slider(at, "fc1").set_value(90).run()
    at.slider(key=keys.PRUNE_GLOBAL).set_value(70).run()
    at.button(key="prune_reset").click().run()
    assert plan_of(at).ratios == {}
    assert plan_of(at).global_ratio == pytest.approx(0.3)
    assert layer_slider(at, "fc1").value == 30


def test_global_scope_shows_what_the_ranking_gives_each_unlocked_layer(app: AppTest) -> None:
    at = open_prune(app)
    at.radio(key=keys.PRUNE_SCOPE).set_value("global").run()
    assert not at.exception
    bundle = load_sample("digits_mlp")
    preview = pe.preview_plan(bundle.model, plan_of(at), bundle.example_input)
    assignment = preview.table.set_index("layer")["assigned_ratio"]
    shown = {layer: layer_slider(at, layer).value for layer in assignment.index}
    assert shown == {layer: round(ratio * 100) for layer, ratio in assignment.items()}
    assert len(set(shown.values())) > 1
    at.slider(key=keys.PRUNE_BOUNDS).set_value((20, 40)).run()
    assert (plan_of(at).min_ratio, plan_of(at).max_ratio) == (pytest.approx(0.2), pytest.approx(0.4))
    assert all(20 <= layer_slider(at, layer).value <= 40 for layer in assignment.index)


def test_channel_pruning_disables_the_output_layer_and_sets_coupled_layers_together(app: AppTest) -> None:
    at = open_prune(app, "digits_resnet")
    at.radio(key=keys.PRUNE_GRANULARITY).set_value("channel").run()
    assert not at.exception
    assert layer_slider(at, "fc").disabled
    assert "produces the model's output" in captions(at)
    params_before = int(at.session_state[keys.PRUNED].result.report["params_after"].sum())

    at.text_input(key=keys.PRUNE_FILTER).input("layer1").run()
    assert "coupled with" in captions(at)
    assert "removes 19 of its 64 channels and 18,639 of its 36,864 weights" in captions(at)
    layer_slider(at, "layer1.0.conv2").set_value(50).run()
    assert plan_of(at).ratios == {layer: pytest.approx(0.5) for layer in ("layer1.0.conv2", "conv1", "layer1.1.conv2")}
    at.text_input(key=keys.PRUNE_FILTER).input("").run()
    assert layer_slider(at, "conv1").value == 50
    report = report_of(at)
    assert report.loc["conv1", "channels_after"] == 32
    assert int(report["params_after"].sum()) < params_before


def test_a_deep_model_shows_its_blocks_closed_and_builds_their_sliders_when_opened(app: AppTest) -> None:
    at = open_prune(app, "digits_resnet")
    assert [expander.label for expander in at.expander if "layers" in expander.label] == [
        "layer1 · 4 layers",
        "layer2 · 5 layers",
    ]
    assert [slider.key for slider in at.slider] == [
        keys.PRUNE_GLOBAL,
        layer_key(at, keys.prune_layer_ratio, "conv1"),
        layer_key(at, keys.prune_layer_ratio, "fc"),
    ]
    at.session_state[keys.prune_group("layer2")] = True
    at.run()
    assert layer_slider(at, "layer2.0.downsample.0").value == 30
    layer_slider(at, "layer2.0.downsample.0").set_value(60).run()
    assert "layer2 · 5 layers" in [expander.label for expander in at.expander]
    assert layer_slider(at, "layer2.0.downsample.0").value == 60, "the block stays open when a layer in it locks"
    assert at.checkbox(key=layer_key(at, keys.prune_layer_lock, "layer2.0.downsample.0")).value


def test_the_filter_finds_layers_by_name(app: AppTest) -> None:
    at = open_prune(app, "digits_resnet")
    at.text_input(key=keys.PRUNE_FILTER).input("downsample").run()
    assert [slider.key for slider in at.slider][1:] == [layer_key(at, keys.prune_layer_ratio, "layer2.0.downsample.0")]
    at.text_input(key=keys.PRUNE_FILTER).input("nothing like this").run()
    assert "No layer name contains" in captions(at)


def test_n_m_selects_layers_and_keeps_n_of_every_m(app: AppTest) -> None:
    at = open_prune(app)
    at.radio(key=keys.PRUNE_GRANULARITY).set_value("n:m").run()
    at.number_input(key=keys.PRUNE_N).set_value(1).run()
    assert (plan_of(at).n, plan_of(at).m) == (1, 4)
    at.toggle(key=layer_key(at, keys.prune_layer_nm, "fc3")).set_value(False).run()
    assert not at.exception
    assert plan_of(at).target_ratio("fc3") == 0
    report = report_of(at)
    assert report.loc["fc1", "nonzero_after"] == report.loc["fc1", "weights_before"] // 4
    assert report.loc["fc3", "nonzero_after"] == report.loc["fc3", "weights_before"]


def test_a_downloaded_plan_uploads_back_into_the_sliders(app: AppTest, downloads: dict[str, bytes]) -> None:
    at = open_prune(app)
    at.slider(key=keys.PRUNE_GLOBAL).set_value(45).run()
    layer_slider(at, "fc1").set_value(70).run()
    saved = plan_of(at)
    content = download_content(at, downloads)
    assert pe.PruningPlan.from_json(content) == saved

    at.button(key="prune_reset").click().run()
    assert plan_of(at) != saved
    at.file_uploader(key=keys.PRUNE_UPLOAD).set_value(("plan.json", content, "application/json")).run()
    assert not at.exception
    assert plan_of(at) == saved
    assert at.slider(key=keys.PRUNE_GLOBAL).value == 45
    assert layer_slider(at, "fc1").value == 70
    assert at.checkbox(key=layer_key(at, keys.prune_layer_lock, "fc1")).value


@pytest.mark.parametrize(
    ("content", "sentence"),
    [
        (b"{not json", "not valid JSON"),
        (json.dumps({"global_ratio": 0.3, "ratios": {"encoder.9": 0.5}}).encode(), "does not have"),
        (json.dumps({"global_ratio": 1.5}).encode(), "must be at least 0 and below 1"),
    ],
)
def test_an_invalid_plan_file_shows_the_engines_sentence_and_keeps_the_plan(
    app: AppTest, content: bytes, sentence: str
) -> None:
    at = open_prune(app)
    at.slider(key=keys.PRUNE_GLOBAL).set_value(55).run()
    kept = plan_of(at)
    at.file_uploader(key=keys.PRUNE_UPLOAD).set_value(("broken.json", content, "application/json")).run()
    assert not at.exception
    assert sentence in errors(at)
    assert plan_of(at) == kept
    assert at.slider(key=keys.PRUNE_GLOBAL).value == 55


def test_read_plan_file_names_an_unknown_layer() -> None:
    loaded = LoadedModel.from_bundle(load_sample("digits_mlp"))
    with pytest.raises(pe.InvalidPlanError, match="'conv9'"):
        prune_controls.read_plan_file(b'{"ratios": {"conv9": 0.2}}', loaded)
    plan = pe.PruningPlan(granularity="channel", ratios={"fc1": 0.25})
    assert prune_controls.read_plan_file(plan.to_json().encode(), loaded) == plan


def test_a_plan_sent_from_another_page_loads_into_the_controls(app: AppTest) -> None:
    at = open_prune(app)
    at.switch_page(MODEL_PAGE).run()
    at.session_state[keys.INCOMING_PLAN] = pe.PruningPlan(granularity="channel", global_ratio=0.5, ratios={"fc1": 0.2})
    at.switch_page(PRUNE_PAGE).run()
    assert not at.exception
    assert at.radio(key=keys.PRUNE_GRANULARITY).value == "channel"
    assert at.slider(key=keys.PRUNE_GLOBAL).value == 50
    assert layer_slider(at, "fc1").value == 20
    assert at.checkbox(key=layer_key(at, keys.prune_layer_lock, "fc1")).value
    assert report_of(at).loc["fc1", "channels_after"] == 205


def test_a_criterion_that_cannot_apply_shows_why_and_keeps_the_last_result(app: AppTest) -> None:
    at = open_prune(app)
    kept = at.session_state[keys.PRUNED]
    at.selectbox(key=keys.PRUNE_CRITERION).select("bn_scale").run()
    assert not at.exception
    assert "BatchNorm" in errors(at)
    assert at.session_state[keys.PRUNED] is kept


def test_a_suggested_plan_that_locks_every_layer_says_the_global_slider_moves_none(app: AppTest) -> None:
    at = open_prune(app, "digits_cnn")
    at.switch_page(MODEL_PAGE).run()
    locked = {"conv1": 0.2, "conv2": 0.5, "conv3": 0.1}
    at.session_state[keys.INCOMING_PLAN] = pe.PruningPlan(granularity="channel", global_ratio=0.0, ratios=locked)
    at.switch_page(PRUNE_PAGE).run()
    assert not at.exception
    assert "Every layer that can lose channels is locked at its own ratio" in captions(at)
    assert "0 % of the channels of each unlocked layer" not in captions(at)
    layer_slider(at, "conv1").set_value(0).run()
    at.checkbox(key=layer_key(at, keys.prune_layer_lock, "conv1")).uncheck().run()
    assert "of the channels of each unlocked layer are removed" in captions(at)


def test_criteria_come_from_the_engines_registry_as_far_as_they_apply(app: AppTest) -> None:
    at = open_prune(app)
    offered = [name for name in pe.CRITERIA if name not in ("ablation", "block_influence")]
    assert at.selectbox(key=keys.PRUNE_CRITERION).options == [pe.CRITERIA[name].label for name in offered]
    explained = " ".join(markdown.value for markdown in at.markdown)
    assert all(criterion.explanation in explained for criterion in pe.CRITERIA.values())


def test_a_large_model_waits_for_the_apply_button(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prune_result, "AUTO_APPLY_MAX_PARAMS", 1_000)
    at = open_prune(app)
    assert keys.PRUNED not in at.session_state
    assert any("Nothing has been pruned yet" in info.value for info in at.info)
    at.slider(key=keys.PRUNE_GLOBAL).set_value(50).run()
    assert keys.PRUNED not in at.session_state

    at.button(key=keys.PRUNE_APPLY).click().run()
    assert not at.exception
    assert at.session_state[keys.PRUNED].plan == plan_of(at)
    assert nonzero(at) < int(report_of(at)["nonzero_before"].sum())
    at.slider(key=keys.PRUNE_GLOBAL).set_value(60).run()
    assert any("earlier plan" in warning.value for warning in at.warning)


def test_batchnorm_is_re_estimated_when_a_result_leaves_a_page_that_shows_no_accuracy_for_it(app: AppTest) -> None:
    at = open_prune(app, "digits_resnet")
    at.radio(key=keys.PRUNE_GRANULARITY).set_value("channel").run()
    plan = plan_of(at)
    draft = at.session_state[keys.PRUNED]
    assert plan.recalibrate_bn and draft.result.batchnorm_pending
    assert "Accuracy" not in [metric.label for metric in at.metric]

    at.button(key=keys.PRUNE_SAVE).click().run()
    saved = at.session_state[keys.PRUNED]
    assert not saved.result.batchnorm_pending and saved.draft_fingerprint == draft.fingerprint
    bundle = load_sample("digits_resnet")
    calibration = bundle.train_data.subset(caches.CALIBRATION_EXAMPLES)
    at_once = pe.apply_plan(bundle.model, plan, bundle.example_input, bundle.eval_data, calibration_data=calibration)
    for name, tensor in at_once.model.state_dict().items():
        assert torch.equal(saved.model.state_dict()[name], tensor), name
    assert any("Saved in the history as run #1" in caption.value for caption in at.caption)
    at.slider(key=keys.PRUNE_GLOBAL).set_value(30).run()
    assert at.session_state[keys.PRUNED] is saved, "the live step keeps the finished form of its draft"

    at.slider(key=keys.PRUNE_GLOBAL).set_value(40).run()
    assert at.session_state[keys.PRUNED].result.batchnorm_pending
    assert not any("Saved in the history" in caption.value for caption in at.caption)
    at.slider(key=keys.PRUNE_GLOBAL).set_value(30).run()
    assert at.session_state[keys.PRUNED].result.batchnorm_pending, "the draft of the saved plan, again"
    assert any("Saved in the history as run #1" in caption.value for caption in at.caption)
    at.slider(key=keys.PRUNE_GLOBAL).set_value(40).run()
    at.switch_page(COMPARE_PAGE).run()
    assert not at.exception
    compared = at.session_state[keys.PRUNED]
    assert not compared.result.batchnorm_pending and compared.plan.global_ratio == pytest.approx(0.4)
    accuracy = pe.evaluate(compared.model, bundle.eval_data)["accuracy"]
    assert fmt.percent(accuracy) in [metric.value for metric in at.metric]


def test_deep_models_are_grouped_at_the_shallowest_depth_that_keeps_blocks_small() -> None:
    encoder = [f"encoder.layer.{block}.{part}" for block in range(3) for part in ("query", "key", "value", "output")]
    groups = plans.layer_groups([*encoder, "pooler.dense"], size=6)
    assert [(label, len(members)) for label, members in groups] == [
        ("encoder.layer.0", 4),
        ("encoder.layer.1", 4),
        ("encoder.layer.2", 4),
        ("pooler.dense", 1),
    ]


def test_switching_granularity_drops_per_layer_ratios_and_n_m_keeps_its_pattern() -> None:
    plan = plans.with_layers(pe.PruningPlan(global_ratio=0.4), ["fc1"], 0.7)
    as_nm = plans.with_granularity(plan, "n:m", recalibrate=False)
    assert (as_nm.ratios, as_nm.global_ratio) == ({}, 0.5)
    one_of_four = plans.with_pattern(as_nm, n=1, m=4, layers=["fc1", "fc2"])
    assert (one_of_four.n, one_of_four.m, one_of_four.global_ratio) == (1, 4, 0.75)
    back = plans.with_granularity(one_of_four, "channel", recalibrate=True)
    assert (back.global_ratio, back.recalibrate_bn) == (plans.DEFAULT_RATIO, True)
    assert plans.with_bounds(back, 0.0, 0.99, top=0.99).max_ratio is None


def test_a_channel_layers_caption_counts_the_weights_the_engine_removed(app: AppTest) -> None:
    at = open_prune(app, "digits_cnn")
    at.radio(key=keys.PRUNE_GRANULARITY).set_value("channel").run()
    at.slider(key=keys.PRUNE_GLOBAL).set_value(50).run()
    report = report_of(at)
    assert (report.loc["conv1", "weights_before"], report.loc["conv1", "weights_after"]) == (288, 144)
    shown = captions(at)
    conv1 = fmt.literal("removes 16 of its 32 channels and 144 of its 288 weights (50 %)")
    assert conv1 in shown, "conv1's inputs are the image: it loses as many weights as channels"
    assert fmt.literal("removes 32 of its 64 channels and 13,824 of its 18,432 weights (75 %)") in shown
    assert "42,896 of the 58,144 weights of the prunable layers go (74 %)" in shown
    assert "≈" not in shown, "no estimate where the engine has the count"


def test_presets_and_a_number_field_set_the_global_ratio(app: AppTest) -> None:
    at = open_prune(app)
    at.segmented_control(key=layer_key(at, keys.prune_preset, "")).set_value(90).run()
    assert plan_of(at).global_ratio == pytest.approx(0.9)
    assert at.slider(key=keys.PRUNE_GLOBAL).value == 90
    at.number_input(key=layer_key(at, keys.prune_global_number, "")).set_value(42).run()
    assert plan_of(at).global_ratio == pytest.approx(0.42)
    assert at.slider(key=keys.PRUNE_GLOBAL).value == 42


def test_a_channel_plan_shows_its_predicted_speed_up_and_rounding_changes_it(app: AppTest) -> None:
    at = open_prune(app, "digits_cnn")
    at.radio(key=keys.PRUNE_GRANULARITY).set_value("channel").run()
    at.slider(key=keys.PRUNE_GLOBAL).set_value(50).run()
    shown = {metric.label: metric.value for metric in at.metric}
    assert shown["Predicted speed-up"].endswith("×") and float(shown["Predicted speed-up"][:-1]) > 0
    at.segmented_control(key=keys.PRUNE_ROUND_TO).set_value(16).run()
    assert not at.exception
    assert plan_of(at).round_to == 16
    assert report_of(at).loc["conv2", "channels_after"] % 16 == 0


def test_the_sentence_on_per_class_averages_is_said_once(app: AppTest) -> None:
    at = open_prune(app)
    said = " ".join(markdown.value for markdown in at.markdown)
    assert said.count(PER_CLASS_AVERAGES) == 1


def test_a_slow_data_criterion_starts_on_a_button_with_its_estimated_time(
    app: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prune_result, "LIVE_SCORING_MAX_S", 0.0)
    at = open_prune(app)
    kept = at.session_state[keys.PRUNED]
    at.selectbox(key=keys.PRUNE_CRITERION).select("activation").run()
    assert not at.exception
    assert any("Activation size runs the model" in info.value for info in at.info)
    assert at.session_state[keys.PRUNED] is kept, "nothing is scored before the button"
    at.button(key=keys.PRUNE_SCORE).click().run()
    assert not at.exception
    assert at.session_state[keys.PRUNED].plan.criterion == "activation"


def test_the_graphs_group_slider_sets_every_layer_of_the_picked_group(app: AppTest) -> None:
    at = open_prune(app, "digits_resnet")
    at.radio(key=keys.PRUNE_GRANULARITY).set_value("channel").run()
    at.session_state[keys.GRAPH_OPEN] = True
    at.run()
    at.selectbox(key=keys.GRAPH_LAYER).select("layer1.0.conv2").run()
    at.slider(key=keys.GRAPH_GROUP_RATIO).set_value(50).run()
    assert not at.exception
    group = {"conv1", "layer1.0.conv2", "layer1.1.conv2"}
    assert plan_of(at).ratios == {layer: pytest.approx(0.5) for layer in group}
    assert layer_slider(at, "conv1").value == 50, "the Prune page's sliders show the new plan"


def _stale_echo_script() -> None:
    """Moves the plan to 40 % from the current generation, then echoes 30 % from the generation before."""
    import dataclasses

    import streamlit as st

    from ui.prune import controls
    from ui.shared import state
    from workbench import plans

    state.set_plan(plans.default_plan())
    state.resync_layer_controls()
    current = state.controls_generation()

    def to(ratio: float):
        return lambda plan: dataclasses.replace(plan, global_ratio=ratio)

    controls.update_plan(to(0.4), widget_generation=current)
    after_move = state.controls_generation()
    controls.update_plan(to(0.3), widget_generation=current)
    st.write(f"ratio {state.current_plan().global_ratio} generations {current} {after_move}")


def test_a_widget_of_an_older_generation_changes_nothing() -> None:
    """Streamlit runs the callbacks of widgets the page no longer shows, with the value the browser still
    had: that echo must not undo the move that started the new generation."""
    at = AppTest.from_function(_stale_echo_script).run()
    assert not at.exception
    ratio, generations = at.markdown[0].value.removeprefix("ratio ").split(" generations ")
    before, after = map(int, generations.split())
    assert float(ratio) == 0.4
    assert after == before + 1


@pytest.mark.parametrize("shown_since", [(31,), (31, 32)], ids=["one step back", "several steps back"])
def test_stale_values_sent_with_a_global_press_lock_nothing(app: AppTest, shown_since: tuple[int, ...]) -> None:
    """A browser that has not drawn the last steps yet sends a layer's and the number field's old value (30 %)
    along with the next press of the global slider; Streamlit takes them for moves of those controls. After
    quick presses the browser can be several steps behind."""
    at = open_prune(app)
    for ratio in shown_since:
        at.slider(key=keys.PRUNE_GLOBAL).set_value(ratio).run()
    assert layer_slider(at, "fc1").value == shown_since[-1]
    pressed = shown_since[-1] + 1
    at.slider(key=keys.PRUNE_GLOBAL).set_value(pressed)
    layer_slider(at, "fc1").set_value(30)
    at.number_input(key=layer_key(at, keys.prune_global_number, "")).set_value(30)
    at.run()
    assert not at.exception
    assert plan_of(at).global_ratio == pytest.approx(pressed / 100)
    assert plan_of(at).ratios == {}
    assert layer_slider(at, "fc1").value == pressed, "the page shows the plan again"
    assert not at.checkbox(key=layer_key(at, keys.prune_layer_lock, "fc1")).value


def test_a_layer_moved_back_to_its_previous_value_locks_there(app: AppTest) -> None:
    """Moved alone, a layer slider is the user's move, even to the value it had before the global step."""
    at = open_prune(app)
    at.slider(key=keys.PRUNE_GLOBAL).set_value(31).run()
    layer_slider(at, "fc1").set_value(30).run()
    assert plan_of(at).ratios == {"fc1": pytest.approx(0.3)}
    assert plan_of(at).global_ratio == pytest.approx(0.31)


def test_the_global_slider_keeps_the_per_layer_widgets(app: AppTest) -> None:
    """Moving the global slider shows the layers their new values in the same widgets: drawing new ones at
    every step made a key press slow."""
    at = open_prune(app)
    generation = at.session_state.get(keys.PRUNE_GENERATION, 0)
    at.slider(key=keys.PRUNE_GLOBAL).set_value(45).run()
    assert at.session_state.get(keys.PRUNE_GENERATION, 0) == generation
    assert layer_slider(at, "fc2").value == 45
    assert at.segmented_control(key=layer_key(at, keys.prune_preset, "")).value is None
    at.slider(key=keys.PRUNE_GLOBAL).set_value(50).run()
    assert at.segmented_control(key=layer_key(at, keys.prune_preset, "")).value == 50, "the preset it is at"


def test_head_sliders_follow_the_global_slider_and_ignore_a_stale_echo(app: AppTest) -> None:
    at = open_prune(app, "tiny_gpt")
    at.radio(key=keys.PRUNE_GRANULARITY).set_value("head").run()
    layer = "blocks.0.attn"

    def heads_slider():
        return at.slider(key=layer_key(at, keys.prune_head_ratio, layer))

    at.slider(key=keys.PRUNE_GLOBAL).set_value(50).run()
    assert heads_slider().value == 2, "half of 4 heads"
    at.slider(key=keys.PRUNE_GLOBAL).set_value(75)
    heads_slider().set_value(1)
    at.run()
    assert not at.exception
    assert plan_of(at).ratios == {}, "the 1 head the browser still showed is not a move"
    assert heads_slider().value == 3
    heads_slider().set_value(1).run()
    assert plan_of(at).ratios == {layer: pytest.approx(0.25)}
