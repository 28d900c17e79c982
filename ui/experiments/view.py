"""The experiment history in the app: each pruning result saved once with what it measured, and the
Experiments page's parts (runs table, Pareto charts, plan diff, rename and delete, reload, CSV export).

A result is saved when it is applied (Prune page) with the figures that are cheap there (sizes,
FLOPs, accuracy for small models); the Compare page adds what it measures (accuracy or fidelity,
latency) to the same run. Reruns and going back to an earlier plan save nothing twice (`ui.state`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import prune_engine as pe
from sample_models import list_samples
from ui.shared import caches, charts, keys, navigation, state
from workbench import fmt, quality
from workbench.plans import batchnorm_policy, describe_stored_plan, stored_plan
from workbench.session import LoadedModel

PARETO_ABOUT = """
Pruning trades quality for size and speed: each run is one trade. On each chart every dot is a run,
**up** is better (for perplexity, where lower is better, the axis runs downwards) and **left** is smaller or
faster.

A run is on the **Pareto front** (the blue staircase) when no other run beats it on both at once: every
run that is more accurate is also bigger or slower, and every run that is smaller or faster is also less
accurate. The grey dots are *dominated*: some run on the front is at least as good on both counts, so there
is no reason to pick them. Which run on the front is best depends on what you can afford: a phone app may
take the smallest model that still reaches 95 %, a server the most accurate one under a latency budget.

Latency is only comparable when measured the same way, so that chart shows runs timed at one batch size
and thread count (the Compare page measures it). The grey star is the original model.
"""

_TABLE_COLUMNS = {
    "id": st.column_config.NumberColumn("Run", format="#%d", pinned=True, help="The run's number."),
    "name": st.column_config.TextColumn("Name", help="Your name for the run (rename it below)."),
    "plan": st.column_config.TextColumn("Plan", width="large", help="Granularity · criterion · scope · ratio."),
    "model_name": st.column_config.TextColumn("Model"),
    "batchnorm": st.column_config.TextColumn(
        "BatchNorm",
        help="Whether the plan re-estimated BatchNorm statistics after pruning (a model without "
        "BatchNorm has none to re-estimate).",
    ),
    "accuracy": st.column_config.NumberColumn("Accuracy", format="%.1f %%"),
    "perplexity": st.column_config.NumberColumn("Perplexity", format="%.2f", help=quality.PERPLEXITY.help),
    "paraphrase_accuracy": st.column_config.NumberColumn(
        "Paraphrase found first", format="%.1f %%", help=quality.PARAPHRASE.help
    ),
    "agreement": st.column_config.NumberColumn(
        "Same prediction", format="%.1f %%", help="Share of test examples with the original's top-1 prediction."
    ),
    "params": st.column_config.NumberColumn("Parameters", format="compact"),
    "nonzero_params": st.column_config.NumberColumn("Non-zeros", format="compact"),
    "flops": st.column_config.NumberColumn("FLOPs", format="compact", help="Per example, dense."),
    "size_bytes": st.column_config.NumberColumn(
        "Size (KB)", format="%.1f", help="Saved weights, dense, in KB of 1,024 bytes as on the other pages."
    ),
    "latency_median_ms": st.column_config.NumberColumn("Latency (ms)", format="%.3f", help="Median per batch."),
    "latency_iqr_ms": st.column_config.NumberColumn("IQR (ms)", format="%.3f"),
    "batch_size": st.column_config.NumberColumn("Batch"),
    "threads": st.column_config.NumberColumn("Threads"),
    "created_at": st.column_config.DatetimeColumn("Saved (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "notes": st.column_config.TextColumn("Notes"),
}


# --- recording ---------------------------------------------------------------------------


# --- the runs table ----------------------------------------------------------------------


def show_notice() -> None:
    """The outcome of the last rename or delete (they happen in callbacks, before this run)."""
    notice = st.session_state.pop(keys.EXPERIMENTS_NOTICE, None)
    if notice is not None:
        kind, text = notice
        (st.success if kind == "success" else st.error)(text)


def history(loaded: LoadedModel) -> pd.DataFrame | None:
    """The runs to show: the current model's, or every model's when the toggle says so; None if the store fails."""
    if keys.EXPERIMENTS_ALL_MODELS not in st.session_state:  # back from another page, e.g. after a model switch
        st.session_state[keys.EXPERIMENTS_ALL_MODELS] = st.session_state.get(keys.EXPERIMENTS_ALL_MODELS_CHOSEN, False)
    all_models = st.toggle(
        "All models",
        key=keys.EXPERIMENTS_ALL_MODELS,
        on_change=_on_all_models,
        help="Show the runs of every model in the history, not only those of the current model.",
    )
    try:
        runs = caches.experiments().list(model_fingerprint=None if all_models else loaded.identity)
    except pe.PruneScopeError as error:
        st.error(f"The experiment history cannot be read: {fmt.literal(str(error))}", icon=":material/error:")
        return None
    plans = [stored_plan(text) for text in runs["plan_json"]]
    runs["plan"] = [describe_stored_plan(text) for text in runs["plan_json"]]
    runs["batchnorm"] = [batchnorm_policy(plan) for plan in plans]
    return runs


def filtered(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs matching the search text (name, notes, plan, model) and the chosen granularities."""
    search_column, granularity_column = st.columns([2, 1])
    text = search_column.text_input(
        "Search",
        key=keys.EXPERIMENTS_SEARCH,
        on_change=_new_table,
        placeholder="name, notes, plan or model",
        help="Shows the runs containing this text.",
    )
    granularities = sorted(runs["granularity"].dropna().unique())
    chosen = granularity_column.multiselect(
        "Granularity",
        granularities,
        key=keys.EXPERIMENTS_GRANULARITY,
        on_change=_new_table,
        placeholder="all",
        help="Shows only these granularities.",
    )
    keep = pd.Series(True, index=runs.index)
    if text.strip():
        haystack = runs[["name", "notes", "plan", "model_name"]].fillna("").astype(str).agg(" ".join, axis=1)
        keep &= haystack.str.contains(text.strip(), case=False, regex=False)
    if chosen:
        keep &= runs["granularity"].isin(chosen)
    return runs[keep].reset_index(drop=True)


SHARE_COLUMNS = ("accuracy", "paraphrase_accuracy", "agreement")
"""Shares the table shows in percent with one decimal, as every other page does."""
QUALITY_KEYS = {metric.key for metric in quality.HISTORY_METRICS}
"""Quality columns, shown only when some listed run has the figure (a language model's runs have no accuracy)."""


def runs_table(runs: pd.DataFrame, all_models: bool) -> list[int]:
    """The runs as a sortable table whose rows can be selected; returns the selected run ids."""
    columns = [column for column in _TABLE_COLUMNS if column in runs and (all_models or column != "model_name")]
    columns = [column for column in columns if column not in QUALITY_KEYS or runs[column].notna().any()]
    version = st.session_state.get(keys.EXPERIMENTS_TABLE_VERSION, 0)
    view = runs[columns].assign(name=runs["name"].fillna(""), notes=runs["notes"].fillna(""))
    view = view.assign(**{column: view[column] * 100 for column in SHARE_COLUMNS if column in view})
    if "size_bytes" in view:
        view["size_bytes"] = view["size_bytes"] / 1024
    event = st.dataframe(
        view,
        column_config=_TABLE_COLUMNS,
        hide_index=True,
        on_select="rerun",
        selection_mode="multi-row",
        placeholder=fmt.MISSING,
        key=f"{keys.EXPERIMENTS_TABLE}-{version}",
    )
    st.caption(
        "Click a column header to sort. Select one run to rename, delete or re-load it; select two to see how "
        "their plans differ."
    )
    return [int(runs["id"].iloc[row]) for row in event.selection.rows if row < len(runs)]


def export(run_ids: Sequence[int]) -> None:
    """A download of the listed runs, every column, as CSV."""
    try:
        text = caches.experiments().to_csv(run_ids)
    except pe.PruneScopeError as error:
        st.error(fmt.literal(str(error)), icon=":material/error:")
        return
    st.download_button(
        f"Download {'this run' if len(run_ids) == 1 else f'these {len(run_ids)} runs'} (CSV)",
        data=text,
        file_name="prunescope-runs.csv",
        mime="text/csv",
        key=keys.EXPERIMENTS_EXPORT,
        on_click="ignore",
        icon=":material/download:",
        help="Every column of the listed runs, plans as JSON, for a spreadsheet or a notebook.",
    )


# --- Pareto charts -----------------------------------------------------------------------


def pareto_charts(runs: pd.DataFrame, loaded: LoadedModel, selected: Sequence[int]) -> None:
    """Quality against latency, parameters and FLOPs, each with its Pareto front."""
    metric = quality.history_metric(key for key in QUALITY_KEYS if key in runs and runs[key].notna().any())
    if metric is None:
        st.info(
            "No run has a quality figure yet: open the Compare page on a result to measure it.",
            icon=":material/info:",
        )
        return
    original = _original_point(loaded, metric)
    latency_tab, params_tab, flops_tab = st.tabs(["vs latency", "vs non-zero parameters", "vs FLOPs"])
    with latency_tab:
        timed = _one_latency_setting(runs)
        if timed.empty:
            st.caption("No run has a latency yet: the Compare page measures it.")
        else:
            reference = timed["original_latency_median_ms"].median() if "original_latency_median_ms" in timed else None
            point = None if original is None or pd.isna(reference) else {**original, "latency_median_ms": reference}
            figure = pareto_figure(timed, "latency_median_ms", metric, "latency per batch (ms)", selected, point)
            st.plotly_chart(figure)
    with params_tab:
        st.plotly_chart(pareto_figure(runs, "nonzero_params", metric, "non-zero parameters", selected, original))
    with flops_tab:
        st.plotly_chart(pareto_figure(runs, "flops", metric, "FLOPs per example", selected, original))
    missing = int(runs[metric.key].isna().sum())
    if missing:
        st.caption(
            f"{missing} run(s) have no {metric.label.lower()} yet and are not drawn: open Compare on them to "
            "measure it."
        )


def pareto_figure(
    runs: pd.DataFrame,
    x: str,
    metric: quality.QualityMetric,
    x_label: str,
    selected: Sequence[int] = (),
    original: dict[str, float] | None = None,
) -> go.Figure:
    """One dot per run, the Pareto front (lower x, better `metric`) as a blue staircase, selected runs ringed.

    A share is drawn in percent; a figure where lower is better (perplexity) on a reversed axis, so that up
    is better on every chart."""
    y = metric.key
    runs = runs[runs[x].notna() & runs[y].notna()]
    front = pe.pareto_front(runs, x, y, maximize_y=not metric.lower_is_better)
    scale = 100 if metric.share else 1
    figure = go.Figure(_run_trace(runs[~front], x, metric, "dominated", charts.BLOCKED_COLOR, 9, "markers"))
    figure.add_trace(
        _run_trace(runs[front].sort_values(x), x, metric, "Pareto front", charts.PARAMS_COLOR, 11, "lines+markers")
    )
    chosen = runs[runs["id"].isin(list(selected))]
    if not chosen.empty:
        figure.add_trace(
            go.Scatter(
                x=chosen[x],
                y=chosen[y] * scale,
                mode="markers",
                name="selected",
                marker={"size": 20, "color": "rgba(0,0,0,0)", "line": {"color": charts.REMOVED_COLOR, "width": 2}},
                hoverinfo="skip",
            )
        )
    if original is not None and original.get(x) is not None and original.get(y) is not None:
        figure.add_trace(
            go.Scatter(
                x=[original[x]],
                y=[original[y] * scale],
                mode="markers",
                name="original",
                marker={"symbol": "star", "size": 16, "color": charts.ORIGINAL_COLOR},
                hovertemplate=f"the original model<br>%{{x:.4g}} {x_label}<br>{_y_format(metric)}<extra></extra>",
            )
        )
    figure.update_xaxes(title_text=x_label)
    y_label = metric.label.lower() + (" (%)" if metric.share else " (lower is better)")
    figure.update_yaxes(
        title_text=y_label,
        ticksuffix=" %" if metric.share else "",
        autorange="reversed" if metric.lower_is_better else True,
    )
    on_front = "one run so far" if len(runs) == 1 else f"{int(front.sum())} of {len(runs)} runs on the front"
    figure.update_layout(
        title={"text": f"{metric.label} vs {x_label}: {on_front}"},
        height=charts.CHART_HEIGHT + 40,
        margin={"l": 10, "r": 10, "t": 95, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0.0},
    )
    return figure


def _y_format(metric: quality.QualityMetric) -> str:
    return "%{y:.1f} %" if metric.share else "%{y:.2f}"


def _run_trace(
    runs: pd.DataFrame, x: str, metric: quality.QualityMetric, name: str, color: str, size: int, mode: str
) -> go.Scatter:
    labels = [charts.plain(_label(run)) for _, run in runs.iterrows()]
    return go.Scatter(
        x=runs[x],
        y=runs[metric.key] * (100 if metric.share else 1),
        mode=mode,
        name=name,
        text=labels,
        line={"shape": "hv", "color": color, "width": 2},
        marker={"size": size, "color": color},
        hovertemplate=f"%{{text}}<br>%{{x:.4g}}<br>{_y_format(metric)}<extra></extra>",
    )


def _one_latency_setting(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs timed at one batch size and thread count (a choice when there are several)."""
    timed = runs[runs["latency_median_ms"].notna()]
    if timed.empty:
        return timed
    settings = timed.groupby(["batch_size", "threads"]).size().sort_values(ascending=False)
    labels = {f"batch {batch} · {threads} thread(s)": (batch, threads) for batch, threads in settings.index}
    choice = next(iter(labels))
    if len(labels) > 1:
        choice = st.selectbox(
            "Latency measured at",
            list(labels),
            key=keys.EXPERIMENTS_LATENCY_SETTING,
            help="Timings at other batch sizes or thread counts are not comparable, so one setting is drawn.",
        )
    batch, threads = labels.get(choice, next(iter(labels.values())))
    return timed[(timed["batch_size"] == batch) & (timed["threads"] == threads)]


def _original_point(loaded: LoadedModel, metric: quality.QualityMetric) -> dict[str, float] | None:
    summary = caches.model_summary(loaded)
    try:
        evaluation = caches.model_evaluation(loaded) or {}
    except pe.PruneScopeError:
        evaluation = {}
    value = 1.0 if metric is quality.AGREEMENT else evaluation.get(metric.key)
    if value is None:
        return None
    return {"nonzero_params": summary["nonzero_params"], "flops": summary["flops"], metric.key: value}


# --- one or two selected runs ------------------------------------------------------------


def run_actions(run: pd.Series, loaded: LoadedModel) -> None:
    """Rename and annotate, re-load into the sliders, or delete the one selected run."""
    run_id = int(run["id"])
    st.markdown(f"**Run #{run_id}** · {fmt.literal(run['plan'])} · {fmt.literal(run['model_name'])}")
    edit, act = st.columns([2, 1], gap="large")
    with edit.form(f"experiments_edit_{run_id}", border=False):
        st.text_input("Name", value=_text(run["name"]), key=keys.experiments_name(str(run_id)), max_chars=200)
        st.text_area("Notes", value=_text(run["notes"]), key=keys.experiments_notes(str(run_id)), height=80)
        st.form_submit_button(
            "Save name and notes",
            key=keys.experiments_save(str(run_id)),
            on_click=_on_save,
            args=(run_id,),
            icon=":material/save:",
        )
    with act:
        same_model = run["model_fingerprint"] == loaded.identity
        label = "Load into the Prune sliders" if same_model else f"Switch to {run['model_name']} and load the plan"
        if st.button(label, key=keys.EXPERIMENTS_RELOAD, type="primary", icon=":material/tune:"):
            _reload(run, loaded)
        with st.popover("Delete…", icon=":material/delete:"):
            st.markdown(f"Delete run #{run_id} from the history for good?")
            st.button(
                f"Delete run #{run_id}",
                key=keys.EXPERIMENTS_DELETE,
                on_click=_on_delete,
                args=(run_id,),
                type="primary",
            )


def _reload(run: pd.Series, loaded: LoadedModel) -> None:
    """Send the run's plan to the Prune page (switching to its sample model if need be) and go there."""
    try:
        plan = pe.PruningPlan.from_json(run["plan_json"])
        if run["model_fingerprint"] != loaded.identity:
            state.set_current_model(_sample_of(run))
    except pe.PruneScopeError as error:
        st.error(fmt.literal(str(error)), icon=":material/error:")
        return
    state.send_plan_to_sliders(plan)
    st.switch_page(navigation.PRUNE_PAGE)


def _sample_of(run: pd.Series) -> LoadedModel:
    name = str(run["model_name"])
    if name in list_samples():
        sample = caches.load_sample_model(name)
        if sample.fingerprint == run["model_fingerprint"]:
            return sample
    raise pe.ExperimentStoreError(
        f"Run #{int(run['id'])} was made on the model {name!r}, which is not a sample this app ships: "
        "load that model on the Model page first."
    )


def _on_save(run_id: int) -> None:
    name = st.session_state.get(keys.experiments_name(str(run_id)), "").strip() or None
    notes = st.session_state.get(keys.experiments_notes(str(run_id)), "").strip() or None
    try:
        store = caches.experiments()
        store.rename(run_id, name)
        store.set_notes(run_id, notes)
    except pe.PruneScopeError as error:
        st.session_state[keys.EXPERIMENTS_NOTICE] = ("error", fmt.literal(str(error)))
    else:
        st.session_state[keys.EXPERIMENTS_NOTICE] = ("success", f"Saved the name and notes of run #{run_id}.")


def _on_delete(run_id: int) -> None:
    try:
        caches.experiments().delete(run_id)
    except pe.PruneScopeError as error:
        st.session_state[keys.EXPERIMENTS_NOTICE] = ("error", fmt.literal(str(error)))
        return
    state.forget_run(run_id)
    _new_table()
    st.session_state[keys.EXPERIMENTS_NOTICE] = ("success", f"Deleted run #{run_id}.")


def _on_all_models() -> None:
    st.session_state[keys.EXPERIMENTS_ALL_MODELS_CHOSEN] = st.session_state[keys.EXPERIMENTS_ALL_MODELS]
    _new_table()


def _new_table() -> None:
    st.session_state[keys.EXPERIMENTS_TABLE_VERSION] = st.session_state.get(keys.EXPERIMENTS_TABLE_VERSION, 0) + 1


def plan_differences(first: pd.Series, second: pd.Series, loaded: LoadedModel) -> None:
    """How two runs' plans differ: the settings, then the share each layer loses under each."""
    a, b = f"#{int(first['id'])}", f"#{int(second['id'])}"
    st.markdown(f"**Run {a}** · {fmt.literal(first['plan'])}  \n**Run {b}** · {fmt.literal(second['plan'])}")
    try:
        diff = pe.plan_diff(first["plan_json"], second["plan_json"])
        layers = _layer_ratios(first, second, loaded)
    except pe.PruneScopeError as error:
        st.error(fmt.literal(str(error)), icon=":material/error:")
        return
    settings = diff[~diff["setting"].str.startswith("ratios[") & diff["changed"]]
    left, right = st.columns([1, 1.4], gap="large")
    with left:
        st.markdown("**Settings that differ**")
        if settings.empty:
            st.caption("None: both plans use the same settings; only layer ratios set by hand can differ.")
        else:
            view = {"setting": settings["setting"], a: settings["a"], b: settings["b"]}
            st.dataframe(pd.DataFrame(view).map(_setting_text), hide_index=True)
    with right:
        st.markdown("**Share removed, layer by layer**")
        if layers is None:
            ratio_rows = diff[diff["setting"].str.startswith("ratios[")]
            st.caption("These runs are not of the current model: only the ratios their plans set by hand are shown.")
            layers = pd.DataFrame(
                {"layer": ratio_rows["setting"].str[len("ratios[") : -1], a: ratio_rows["a"], b: ratio_rows["b"]}
            )
        layers = layers.assign(change=pd.to_numeric(layers[b]) - pd.to_numeric(layers[a]))
        percent = st.column_config.NumberColumn(format="percent")
        st.dataframe(
            layers,
            hide_index=True,
            column_config={a: percent, b: percent, "change": percent},
        )
    st.caption(
        "A layer's share is what the plan removes from it: weights for single weights and N:M, output channels "
        "for channels. Under a global ranking it is the share the ranking gives the layer."
    )


def _layer_ratios(first: pd.Series, second: pd.Series, loaded: LoadedModel) -> pd.DataFrame | None:
    """Each layer's share under both plans (as a global ranking assigns it), or None for another model's runs."""
    if {first["model_fingerprint"], second["model_fingerprint"]} != {loaded.identity}:
        return None
    tables = [
        caches.preview(loaded, pe.PruningPlan.from_json(run["plan_json"])).table.set_index("layer")["assigned_ratio"]
        for run in (first, second)
    ]
    return pd.DataFrame(
        {
            "layer": tables[0].index,
            f"#{int(first['id'])}": tables[0].values,
            f"#{int(second['id'])}": tables[1].reindex(tables[0].index).values,
        }
    )


def _label(run: pd.Series) -> str:
    name = _text(run["name"])
    return f"#{int(run['id'])} {name} · {run['plan']}" if name else f"#{int(run['id'])} · {run['plan']}"


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def _setting_text(value: object) -> str:
    return "—" if value is None else str(value)
