"""Every `st.session_state` key of the app, defined once.

Pages and tests import these names; no key is written as a literal anywhere else.
Widget keys double as session keys (Streamlit stores a keyed widget's value under its key).
"""

from __future__ import annotations

from collections.abc import Callable

# --- Session ---------------------------------------------------------------------------------------

CURRENT_MODEL = "current_model"
"""The `LoadedModel` every page works on."""
PLAN = "plan"
"""The `PruningPlan` the Prune page's controls describe (None until the page has run)."""
INCOMING_PLAN = "incoming_plan"
"""A plan sent to the Prune page from elsewhere (an upload, a suggestion, a past run),
waiting to be loaded into its sliders the next time that page runs."""
PRUNED = "pruned"
"""The `PrunedModel` made from the current model by the last applied plan."""
SAVED_RUNS = "saved_runs"
"""{(original fingerprint, pruned fingerprint, plan JSON): run id, or None once deleted}: the results this
session has saved to the experiment history, so that reruns and going back to an earlier plan save nothing twice."""
MEASURED = "measured_runs"
"""{run id: the metrics last written to it from the Compare page}, so that a rerun writes nothing unchanged."""

# --- Sidebar ---------------------------------------------------------------------------------------

DEVICE = "device"
"""The device picker in the sidebar: where the working copies of the current model run ("cpu", "cuda", "mps")."""

# --- Model page ------------------------------------------------------------------------------------

MODEL_SAMPLE_PICKER = "model_sample_picker"
MODEL_SHOW_LARGE = "model_show_large"
UPLOAD_MODEL_FILE = "upload_model_file"
UPLOAD_ARCHITECTURE = "upload_architecture"
UPLOAD_SIDECAR_FILE = "upload_sidecar_file"
UPLOAD_DATA_SOURCE = "upload_data_source"
UPLOAD_DATA_FILE = "upload_data_file"
UPLOAD_LABEL_COLUMN = "upload_label_column"
UPLOAD_INPUT_SHAPE = "upload_input_shape"
UPLOAD_LOAD = "upload_load"
UPLOAD_LOADED_MESSAGE = "upload_loaded_message"
UPLOAD_REMEMBERED = "upload_remembered"
"""{widget key: value} of the upload form, files included: Streamlit forgets a widget's value when its page is
left, so the form puts these back when the user returns."""
UPLOAD_TRAIN_SOURCE = "upload_train_source"
UPLOAD_TRAIN_FILE = "upload_train_file"
MODEL_GUIDE_HINT_HIDDEN = "model_guide_hint_hidden"
"""Session key: True once this browser session dismissed the Model page's hint pointing to the guide."""
MODEL_GUIDE_HINT_DISMISS = "model_guide_hint_dismiss"
"""The button that dismisses that hint."""

# --- Inspect page ----------------------------------------------------------------------------------

INSPECT_CRITERION = "inspect_criterion"
INSPECT_EXAMPLES = "inspect_examples"
INSPECT_BLOCK = "inspect_block"
INSPECT_COMPARE_LAYER = "inspect_compare_layer"
INSPECT_COMPARE_WITH = "inspect_compare_with"
INSPECT_SCORE = "inspect_score"
INSPECT_PROFILE = "inspect_profile"
"""Whether the Inspect page measures each layer's time."""
INSPECT_SCORE_OTHER = "inspect_score_other"
"""The button that scores the criterion it is compared with."""
INSPECT_LAYER_PICKER = "inspect_layer"
INSPECT_SORT_CHANNELS = "inspect_sort_channels"
INSPECT_VIEW = "inspect_view"
"""The open tab: only its content runs, so scoring waits until someone asks for it."""
INSPECT_OPEN_VIEW = "inspect_open_view"
"""The last tab opened, so that coming back to the page reopens it."""

# --- Prune page ------------------------------------------------------------------------------------

PRUNE_GRANULARITY = "prune_granularity"
PRUNE_CRITERION = "prune_criterion"
PRUNE_SCOPE = "prune_scope"
PRUNE_GLOBAL = "prune_global"
PRUNE_BOUNDS = "prune_bounds"
PRUNE_N = "prune_n"
PRUNE_M = "prune_m"
PRUNE_RECALIBRATE = "prune_recalibrate_bn"
PRUNE_UPLOAD = "prune_upload"
PRUNE_ERROR = "prune_error"
PRUNE_UPLOAD_MESSAGE = "prune_upload_message"
PRUNE_FILTER = "prune_filter"
PRUNE_RESET = "prune_reset"
PRUNE_ROUND_TO = "prune_round_to"
PRUNE_PREDICT = "prune_predict"
PRUNE_SCORE = "prune_score"
"""The button that starts a slow data criterion on the Prune page."""
PRUNE_SCORED = "prune_scored"
"""{(fingerprint, criterion)}: the slow criteria this session asked the Prune page to run."""
PRUNE_GENERATION = "prune_generation"
"""How many times the plan changed in form under the per-layer widgets (see `_per_layer`)."""
PRUNE_SHOWN = "prune_shown"
"""Per Prune control key, the value the page shows and the ones it showed before, oldest first
(`ui.prune.controls.seed`)."""
PRUNE_LAYER_PAGE = "prune_layer_page"
PRUNE_HEAD_LAYER_PICKER = "prune_head_layer"
PRUNE_PREVIEW_LAYER_PICKER = "prune_preview_layer"
PRUNE_PREVIEW_OPEN = "prune_preview_open"
PRUNE_APPLY = "prune_apply"
PRUNE_DOWNLOAD = "prune_download"
PRUNE_SAVE = "prune_save"

# --- Compare page ----------------------------------------------------------------------------------

COMPARE_LATENCY_RESULTS = "compare_latency"
"""Session key: {(original fp, pruned fp, batch, threads, device): LatencyResult}, so a rerun never re-measures."""
COMPARE_BATCH = "compare_batch"
COMPARE_THREADS = "compare_threads"
COMPARE_DEVICE = "compare_device"
COMPARE_MEASURE = "compare_measure"
COMPARE_PRECISION = "compare_precision"
COMPARE_SPARSE = "compare_sparse"
COMPARE_HISTOGRAM_LAYER = "compare_histogram_layer"
EXPORT_PREPARED = "export_prepared"
"""Session key: {file kind: Prepared} for the pruned model whose fingerprint each entry carries."""

# --- Sensitivity page ------------------------------------------------------------------------------

SENS_GRANULARITY = "sens_granularity"
SENS_CRITERION = "sens_criterion"
SENS_RATIOS = "sens_ratios"
SENS_LAYERS = "sens_layers"
SENS_LAYERS_MODEL = "sens_layers_model"
"""Session key: the fingerprint of the model whose layers the layer picker offers."""
SENS_EXECUTOR = "sens_executor"
SENS_RUN = "sens_run"
SENS_CANCEL = "sens_cancel"
SENS_SCAN = "sens_scan"
"""Session key: the `ScanOutcome` last shown."""
SENS_TARGET = "sens_target"
SENS_BUDGET = "sens_budget"
SENS_LIMIT = "sens_limit"
SENS_MAX_DROP = "sens_max_drop"
SENS_SEND = "sens_send"
SENS_SUGGESTION = "sens_suggestion"
"""Session key: the suggested plan of the current scan and target, for the iterative panel."""
SENS_PLAN_SOURCE = "sens_plan_source"
SENS_STEPS = "sens_steps"
SENS_SCHEDULE = "sens_schedule"
SENS_EPOCHS = "sens_epochs"
SENS_LEARNING_RATE = "sens_lr"
SENS_RUN_ITERATIVE = "sens_run_iterative"
SENS_CANCEL_ITERATIVE = "sens_cancel_iterative"
SENS_ITERATIVE = "sens_iterative"
"""Session key: the `IterativeOutcome` last shown."""
SENS_USE_PRUNED = "sens_use_pruned"
SENS_SPARSE_TARGET = "sens_l1_target"
SENS_L1_EPOCHS = "sens_l1_epochs"
SENS_L1_LAYER = "sens_l1_layer"
SENS_RUN_SPARSE = "sens_run_sparse"
SENS_CANCEL_SPARSE = "sens_cancel_sparse"
SENS_SPARSE = "sens_sparse"
"""Session key: the `SparseOutcome` last shown."""
SENS_METHODS_FORM = "sens_methods_form"
SENS_METHODS_GRANULARITY = "sens_methods_granularity"
SENS_METHODS_CRITERIA = "sens_methods_criteria"
SENS_METHODS_RATIOS = "sens_methods_ratios"
SENS_METHODS_RECOVERY = "sens_methods_recovery"
SENS_METHODS_CHART = "sens_methods_chart"
SENS_METHODS = "sens_methods"
"""Session key: (model fingerprint, runs) of the methods comparison last shown."""
SENS_REFINE_STEPS = "sens_refine_steps"
"""The button that makes the suggestion the plan to prune in steps when its measured drop exceeds the prediction."""
SENS_USE_SPARSE = "sens_use_sparse"
"""The button that makes the pruned L1-trained model the session's pruned model."""
SENS_RECOVERY = "sens_recovery"
"""How prune-in-steps wins accuracy back: fine-tuning or distillation."""

# --- Experiments page ------------------------------------------------------------------------------

EXPERIMENTS_ALL_MODELS = "experiments_all_models"
EXPERIMENTS_ALL_MODELS_CHOSEN = "experiments_all_models_chosen"
"""What the user last chose in the "All models" toggle: Streamlit forgets a widget's value when its page is left."""
EXPERIMENTS_SEARCH = "experiments_search"
EXPERIMENTS_GRANULARITY = "experiments_granularity"
EXPERIMENTS_TABLE = "experiments_runs"
EXPERIMENTS_TABLE_VERSION = "experiments_table_version"
"""Bumped when a run is deleted or the filters change: a new table key clears a row selection (kept as row
positions) that would now point at other runs."""
EXPERIMENTS_LATENCY_SETTING = "experiments_latency_setting"
EXPERIMENTS_NOTICE = "experiments_notice"
EXPERIMENTS_RELOAD = "experiments_reload"
EXPERIMENTS_DELETE = "experiments_delete"
EXPERIMENTS_EXPORT = "experiments_export"

# --- Graph view (Inspect and Prune pages) ----------------------------------------------------------

GRAPH_OPEN = "graph_open"
"""The expander holding the graph: the graph is traced and drawn only while it is open."""
GRAPH_OVERLAY = "graph_overlay"
GRAPH_COLLAPSE = "graph_collapse"
GRAPH_LAYER = "graph_layer"
"""The layer picked on the graph, whose channel group is outlined."""
GRAPH_CRITERION = "graph_criterion"
GRAPH_SCORE = "graph_score"
"""The button that scores a data criterion for the importance overlay."""
GRAPH_RATIO = "graph_ratio"
"""The scanned ratio whose drop the sensitivity overlay shows."""
GRAPH_MEASURE = "graph_measure"
"""The button that times each layer for the latency overlay."""
GRAPH_MEASURED = "graph_measured"
"""{(fingerprint, criterion or "latency")}: what this session has asked the graph to measure or score."""
GRAPH_DOT = "graph_dot"
GRAPH_SVG = "graph_svg"
GRAPH_GROUP_RATIO = "graph_group_ratio"
"""The picked group's ratio slider (Prune page plan)."""
GRAPH_GROUP_CHANGED = "graph_group_changed"
"""Set by the group slider's callback: the whole page reruns, so the Prune page's sliders show the new plan."""


# --- Keys made per layer, per run or per task --------------------------------------------------


def _keyed(prefix: str) -> Callable[[str], str]:
    """A maker of keys for widgets drawn once per layer (or block, or task): `prefix:name`."""
    return lambda name: f"{prefix}:{name}"


prune_group = _keyed("prune_group")
"""Whether a block of layer sliders is open on the Prune page."""
export_prepare = _keyed("export_prepare")
"""The Prepare button of one export format (or of the summary) on the Compare page."""
export_download = _keyed("export_download")
"""The download button of one prepared export on the Compare page."""
experiments_name = _keyed("experiments_name")
"""The Name field of one run on the Experiments page."""
experiments_notes = _keyed("experiments_notes")
"""The Notes field of one run on the Experiments page."""
experiments_save = _keyed("experiments_save")
"""The Save button of one run's name and notes on the Experiments page."""
sens_l1_lambda = _keyed("sens_l1_lambda")
"""The L1 strength slider of one sparsity target on the Sensitivity page."""
sens_l1_ratio = _keyed("sens_l1_ratio")
"""The pruning ratio slider of one sparsity target on the Sensitivity page."""
notice = _keyed("notice")
"""The message left for the next run when the background task under this key was cancelled or stopped."""
sens_recalibrate = _keyed("sens_recalibrate_bn")
"""The scan's BatchNorm toggle, one per granularity (its default follows the Prune page's policy for it)."""
upload_forget = _keyed("upload_forget")
"""The "Choose another file" button beside a file remembered from an earlier visit."""


def _per_layer(prefix: str) -> Callable[[str, int], str]:
    """A maker of keys for the Prune page's per-layer widgets, in one generation of the controls.

    The generation (`PRUNE_GENERATION`) changes whenever the plan changes in form under those widgets
    (granularity, a loaded plan, Reset), not when the global slider moves them. A value the browser
    still sends for an older generation's widget, while a rerun is under way, is a stale echo:
    Streamlit still runs that widget's callback, which `ui.prune.controls.update_plan` then ignores,
    so it is never taken for the user moving that layer (within a generation, `is_stale_echo` tells).
    """
    return lambda layer, generation: f"{prefix}:{generation}:{layer}"


prune_layer_ratio = _per_layer("prune_ratio")
"""A layer's ratio slider on the Prune page."""
prune_layer_lock = _per_layer("prune_lock")
"""A layer's Lock checkbox on the Prune page."""
prune_layer_nm = _per_layer("prune_nm")
"""A layer's N:M on/off toggle on the Prune page."""
prune_head_ratio = _per_layer("prune_heads")
"""An attention layer's heads slider on the Prune page."""
prune_head_lock = _per_layer("prune_heads_lock")
"""An attention layer's Lock checkbox on the Prune page."""
prune_global_number = _per_layer("prune_global_number")
"""The number field beside the global slider (its "layer" is the empty string): seeded from the plan like the
per-layer widgets, so it belongs to a generation too."""
prune_preset = _per_layer("prune_preset")
"""The global ratio's preset buttons (layer ""), in a generation of the controls for the same reason."""
