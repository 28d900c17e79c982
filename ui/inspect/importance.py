"""The Inspect page's importance views: which channels matter under each criterion, and do criteria agree?

A criterion picker drives two views of the whole model (where each layer's channels rank,
and a layers × channels heatmap) and a scatter that compares it with a second criterion on
one layer. Scores are channel-level `prune_engine.importance` results, kept on a shelf shared
by every session (`st.cache_resource`) and keyed by (model fingerprint, criterion, data
fingerprint, examples). A shelf and not `st.cache_data`: criteria that run the model show a
progress bar while they work, and Streamlit replays what a cached function draws, which a
progress bar must not be. Shelved entries are frozen, their arrays read-only.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

import prune_engine as pe
from ui.shared import caches, charts, explain, importance, keys, navigation
from workbench import capabilities, fmt
from workbench import importance_data as data
from workbench.importance_data import CriterionScores
from workbench.plans import layer_groups
from workbench.session import LoadedModel

EXAMPLE_CHOICES = (32, 64, 128, importance.DEFAULT_EXAMPLES)
"""How many evaluation examples data-driven criteria may look at; the engine's default is the largest."""
GROUP_ABOVE = 8
"""Models with more prunable layers than this can show one block of layers at a time."""
GROUP_SIZE = 12
"""Blocks are cut at the shallowest module-path depth that keeps each within this many layers."""
ALL_LAYERS = "All layers"
LOWEST_SHARE = 0.3
"""The share of a layer's channels the agreement check imagines pruning: a typical first ratio."""

KINDS = {
    "magnitude": "looks only at the weights (or BatchNorm scales): needs no data, instant",
    "data": "runs the model on evaluation examples and watches its activations or gradients",
    "attribution": "Captum attribution: how much of the model's answer flows through each channel",
    "baseline": "random scores, the floor any real criterion must beat",
}
"""`Criterion.kind` → what it means, in plain words."""

COSTS = {
    "l1": "instant: reads the weights",
    "l2": "instant: reads the weights",
    "random": "instant",
    "bn_scale": "instant: reads the BatchNorm scales",
    "taylor": "a forward and backward pass per example",
    "activation": "one forward pass over the examples",
    "apoz": "one forward pass over the examples",
    "grad_x_activation": "one forward and backward pass per batch",
    "conductance": "17 forward and backward passes per batch: the slowest",
    "deeplift": "a forward and backward pass per layer",
}
"""Criterion name → what computing it costs, for the criteria table."""

CONDUCTANCE = """
**What Captum's conductance measures.** Imagine fading the picture in, from a blank (all-zero)
input to the real one, in 16 small steps. At every step Captum asks how fast the score of the
right class rises, and how much of that rise passes through each channel. Added up along the
whole path, this is the channel's *conductance*: the part of the class score that flowed
through it. A channel with almost no conductance carries little of the answer, so it is a
candidate for pruning. Because it follows the whole path rather than looking at the real
input only, a channel still gets credit when it is saturated (switched fully on, so that a
small change no longer moves the score), which fools gradient × activation.
"""

READING = """
**Where each layer's channels rank.** All channels of the model are put in one ranking,
from the least important (0 %) to the most important (100 %). Each layer gets a violin: wide
where many of its channels sit. A layer whose violin sits low holds many of the model's weakest
channels, and would lose most under a global ranking. Criteria whose scores differ in scale
from layer to layer (activation sizes, BatchNorm scales) mostly show that scale here.

**Every layer's channels, sorted.** One row per layer, its channels sorted from least to most
important and stretched to the same width, coloured by that model-wide rank. Reading down the
column at 30 % shows how important the channel is that pruning 30 % of each layer would reach.

**Do two criteria agree?** One dot per channel of one layer: its rank within the layer under
one criterion (across) and under the other (up). On the dashed diagonal both agree. Spearman's
rank correlation sums this up: +1 is the same order, 0 no relation, −1 the reverse order.
"""


def importance_section(loaded: LoadedModel, layers: list[str]) -> None:
    """The criterion picker, the model-wide views of its scores, and the agreement check on one layer."""
    st.markdown(
        "Which channels matter? A **criterion** gives every output channel (a filter of a convolution, a neuron "
        "of a linear layer) a score; pruning removes the lowest scores first. Pick one to see how its scores "
        "spread over the layers, then check below whether two criteria agree."
    )
    about_criteria()
    criterion, examples, shown = _controls(loaded, layers)
    result = _scores_or_message(loaded, criterion, examples, keys.INSPECT_SCORE)
    if result is None:
        return
    _model_views(result, [name for name in shown if name in result.scores])
    _agreement(loaded, layers, result, examples)


def about_criteria() -> None:
    """Every registered criterion in plain words: what it measures, what data it needs, what it costs."""
    with st.expander("About the criteria", icon=":material/school:"):
        st.markdown(
            "Criteria come in four kinds:\n\n"
            + "\n".join(f"- **{kind}**: {meaning}" for kind, meaning in KINDS.items())
        )
        st.dataframe(
            [
                {
                    "criterion": criterion.label,
                    "kind": criterion.kind,
                    "needs data": "yes" if criterion.needs_data else "no",
                    "cost": COSTS.get(name, "see below"),
                }
                for name, criterion in pe.CRITERIA.items()
            ],
            hide_index=True,
            height="content",
        )
        st.markdown(
            "Data-driven and attribution criteria look at the model's evaluation examples (at most the number "
            "chosen beside the picker, spread over the whole set). Captum's attributions explain the score of the "
            "true class (of the predicted class where there are no labels)."
        )
        explain.criteria_explained(with_kind=True)
        st.markdown(CONDUCTANCE)
        st.markdown(READING)


def _label(name: str) -> str:
    criterion = pe.CRITERIA[name]
    return f"{criterion.label} · {criterion.kind}"


def _controls(loaded: LoadedModel, layers: list[str]) -> tuple[str, int, list[str]]:
    """The criterion, the number of examples data-driven criteria look at, and the layers to show."""
    eval_data = loaded.bundle.eval_data
    if st.session_state.get(keys.INSPECT_CRITERION) not in capabilities.inspectable_criteria(loaded):
        st.session_state[keys.INSPECT_CRITERION] = "l1"
    columns = st.columns([3, 2, 2], vertical_alignment="bottom")
    criterion = columns[0].selectbox(
        "Criterion",
        capabilities.inspectable_criteria(loaded),
        key=keys.INSPECT_CRITERION,
        format_func=_label,
        persist_state="session",
        on_change=lambda: st.session_state.pop(keys.INSPECT_COMPARE_WITH, None),
    )
    examples = max(EXAMPLE_CHOICES)
    if eval_data is not None:
        choices = sorted({min(choice, len(eval_data)) for choice in EXAMPLE_CHOICES})
        if st.session_state.get(keys.INSPECT_EXAMPLES) not in choices:
            st.session_state[keys.INSPECT_EXAMPLES] = choices[-1]
        examples = columns[1].select_slider(
            "Examples for data criteria",
            choices,
            key=keys.INSPECT_EXAMPLES,
            persist_state="session",
            help="How many evaluation examples data-driven and attribution criteria look at: more gives steadier "
            "scores and takes longer.",
        )
    shown = layers
    if len(layers) > GROUP_ABOVE:
        groups = dict(layer_groups(layers, GROUP_SIZE))
        options = [ALL_LAYERS, *groups]
        if st.session_state.get(keys.INSPECT_BLOCK) not in options:
            st.session_state[keys.INSPECT_BLOCK] = ALL_LAYERS
        block = columns[2].selectbox(
            "Layers shown",
            options,
            key=keys.INSPECT_BLOCK,
            persist_state="session",
            format_func=lambda label: f"{label} ({len(layers if label == ALL_LAYERS else groups[label])})",
            help="Show one block of layers at a time; ranks stay model-wide.",
        )
        shown = layers if block == ALL_LAYERS else groups[block]
    st.caption(f"{pe.CRITERIA[criterion].label}: {KINDS[pe.CRITERIA[criterion].kind]}.")
    return criterion, examples, shown


def _scores_or_message(loaded: LoadedModel, criterion: str, examples: int, button_key: str) -> CriterionScores | None:
    """The criterion's scores, or None after telling the user why there are none.

    A criterion that runs the model is scored on a button that says about how long it takes, never just
    because it was picked in a list; once scored, it is kept and shown at once.
    """
    if importance.needs_missing_data(loaded, criterion):
        _data_hint(criterion)
        return None
    chosen = pe.CRITERIA[criterion]
    if chosen.needs_data and caches.importance_shelf().get(importance.shelf_key(loaded, criterion, examples)) is None:
        used = min(examples, len(loaded.bundle.eval_data))
        estimate = fmt.rough_duration(importance.estimated_seconds(loaded, criterion, used))
        st.caption(f"{chosen.label} runs the model on {used} examples: {estimate} on this server.")
        if not st.button(f"Score with {chosen.label}", key=button_key, icon=":material/play_arrow:"):
            return None
    try:
        return importance.criterion_scores(loaded, criterion, examples)
    except pe.PruneScopeError as error:
        st.warning(f"{pe.CRITERIA[criterion].label} cannot score this model: {fmt.literal(str(error))}")
        return None


def _data_hint(criterion: str) -> None:
    st.warning(
        f"{pe.CRITERIA[criterion].label} needs data: it runs the model on examples to see what matters, and this "
        "model came without evaluation data. Upload inputs (and labels, if you have them) with the model on the "
        "Model page, or choose a criterion that needs none (magnitude or BatchNorm scale).",
        icon=":material/dataset:",
    )
    st.page_link(navigation.MODEL_PAGE, label="Add evaluation data on the Model page", icon=":material/arrow_forward:")


def _model_views(result: CriterionScores, shown: list[str]) -> None:
    """Where each shown layer's channels rank in the whole model, as violins and as a sorted heatmap."""
    label = pe.CRITERIA[result.criterion].label
    if result.examples is not None:
        st.caption(
            f"Scores from {result.examples} evaluation examples (computed once in {result.seconds:.1f} s, then kept)."
        )
    if result.unscored:
        st.info(f"No {label} score for {_some(result.unscored)}: {fmt.literal(result.why)}", icon=":material/info:")
    if not shown:
        st.caption(f"{label} scores none of the layers shown.")
        return
    places = data.model_percentiles(result.scores)
    densities = [data.rank_density(places[name]) for name in shown]
    quartiles = np.stack([np.quantile(places[name], [0.25, 0.5, 0.75]) for name in shown])
    channels = [len(places[name]) for name in shown]
    st.plotly_chart(charts.importance_distribution(shown, densities, quartiles, channels, label))
    st.caption(
        "0 % is the least important channel of the whole model, 100 % the most important. A layer that sits low "
        "holds many of the model's weakest channels."
    )
    rows = np.stack([data.sorted_row(places[name]) for name in shown])
    bounds = [data.column_bounds(len(places[name])) for name in shown]
    st.plotly_chart(charts.importance_heatmap(shown, rows, bounds, label))
    st.caption(
        "Each row is one layer, its channels sorted from least to most important and stretched to the same width; "
        "dark cells are channels near the bottom of the model-wide ranking. The column at 30 % shows the channel "
        "that pruning 30 % of each layer would reach."
    )


def _some(layers: tuple[str, ...], shown: int = 6) -> str:
    """`layers` named, the first `shown` of them when there are more."""
    names = ", ".join(fmt.literal(name) for name in layers[:shown])
    return names if len(layers) <= shown else f"{names} and {len(layers) - shown} more layers"


def _agreement(loaded: LoadedModel, layers: list[str], chosen: CriterionScores, examples: int) -> None:
    """A scatter of the chosen criterion against another on one layer, their Spearman correlation and its meaning."""
    st.subheader("Do two criteria agree?")
    criterion = chosen.criterion
    others = [name for name in capabilities.inspectable_criteria(loaded) if name != criterion]
    fallback = "l1" if criterion != "l1" else "l2"  # a new criterion is compared with magnitude first
    if st.session_state.get(keys.INSPECT_COMPARE_WITH) not in others:
        st.session_state[keys.INSPECT_COMPARE_WITH] = fallback
    if st.session_state.get(keys.INSPECT_COMPARE_LAYER) not in layers:
        st.session_state[keys.INSPECT_COMPARE_LAYER] = layers[0]
    left, right = st.columns(2)
    layer = left.selectbox("Layer to compare on", layers, key=keys.INSPECT_COMPARE_LAYER, persist_state="session")
    other = right.selectbox(
        f"Compare {pe.CRITERIA[criterion].label} with",
        others,
        key=keys.INSPECT_COMPARE_WITH,
        format_func=_label,
        persist_state="session",
    )
    compared = _scores_or_message(loaded, other, examples, keys.INSPECT_SCORE_OTHER)
    if compared is None:
        return
    pair = (other, criterion)
    found = []
    for name, result in zip(pair, (compared, chosen), strict=True):
        if layer not in result.scores:
            reason = result.why
            st.info(
                f"{pe.CRITERIA[name].label} gives no score for {fmt.literal(layer)}, so there is nothing to compare "
                f"there: {fmt.literal(reason)} Pick another layer or criterion.",
                icon=":material/info:",
            )
            return
        found.append(result.scores[layer])
    _agreement_views(layer, pair, (found[0], found[1]))


def _agreement_views(layer: str, pair: tuple[str, str], scores: tuple[np.ndarray, np.ndarray]) -> None:
    labels = tuple(pe.CRITERIA[name].label for name in pair)
    rho = data.spearman(*scores)
    chart, words = st.columns([3, 2])
    places = (data.percentiles(scores[0]), data.percentiles(scores[1]))
    if len(places[0]) > data.SCATTER_LIMIT:
        chart.plotly_chart(charts.criteria_grid(data.rank_grid(*places), labels, layer))
        chart.caption(f"{len(places[0]):,} channels: each cell counts the channels whose ranks fall in it.")
    else:
        chart.plotly_chart(charts.criteria_scatter(places, scores, labels, layer))
    if rho is None:
        constant = labels[0] if np.ptp(scores[0]) == 0 else labels[1]
        words.info(
            f"{constant} gives every channel of {fmt.literal(layer)} the same score, so it ranks none of them above "
            "another and there is no order to compare.",
            icon=":material/info:",
        )
        return
    shared, count = data.lowest_overlap(*scores, LOWEST_SHARE)
    words.metric("Spearman rank correlation", f"{rho:+.2f}", help="+1: the same order; 0: no relation; −1: reversed.")
    words.metric(
        f"Same channels among the lowest {fmt.percent(LOWEST_SHARE, 0)}",
        f"{shared} of {count}",
        help="How many of the channels each criterion would prune first are the same channels.",
    )
    words.markdown(agreement_sentence(rho, labels, layer, pair, shared, count))


def agreement_sentence(
    rho: float, labels: tuple[str, str], layer: str, pair: tuple[str, str], shared: int, count: int
) -> str:
    """What a rank correlation of `rho` between two criteria on one layer means, for a teacher."""
    first, second = labels
    if rho >= 0.7:
        verdict = (
            "agree strongly: they put the channels in much the same order, so pruning by either removes "
            "mostly the same ones"
        )
    elif rho >= 0.4:
        verdict = "partly agree: channels that one ranks low tend to rank low under the other too, but many swap places"
    elif rho >= 0.1:
        verdict = (
            "agree only weakly: the orders are related, but pruning by one would remove many channels the other keeps"
        )
    elif rho > -0.1:
        verdict = "do not agree: a channel's rank under one says almost nothing about its rank under the other"
    else:
        verdict = "disagree: channels that one ranks low, the other tends to rank high"
    text = (
        f"On {fmt.literal(layer)}, **{first}** and **{second}** {verdict} (Spearman's ρ = {rho:+.2f}; +1 would be "
        f"the same order, 0 no relation, −1 the reverse). Pruning {fmt.percent(LOWEST_SHARE, 0)} of the layer, "
        f"they would pick {shared} of the same {count} channels; chance alone would give about "
        f"{count * LOWEST_SHARE:.0f}."
    )
    kinds = {pe.CRITERIA[name].kind for name in pair}
    if "magnitude" in kinds and kinds & {"data", "attribution"}:
        how_much = "a lot" if rho >= 0.7 else "something" if rho >= 0.4 else "little"
        text += (
            f" So on this layer, how large a channel's weights are tells {how_much} about how much the model's "
            "answers actually depend on it."
        )
    return text
