"""PruneScope's engine: inspect, score, prune and measure PyTorch models.

A plain library (no UI imports), usable from the app, a script or a notebook::

    import prune_engine as pe
    from sample_models import load_sample

    bundle = load_sample("digits_cnn")
    plan = pe.PruningPlan(granularity="channel", global_ratio=0.3)
    result = pe.apply_plan(bundle.model, plan, bundle.example_input)
    pe.evaluate(result.model, bundle.eval_data)
"""

from .architectures import build_architecture, list_architectures, register_architecture
from .calibration import has_batchnorm, recalibrate_batchnorm
from .data import EvalData, ModelBundle, model_fingerprint
from .embedding import (
    embedding_fidelity,
    embedding_metrics,
    is_embedding_model,
    mean_cosine,
    nearest_neighbours,
    paraphrase_accuracy,
    retrieval_agreement,
)
from .errors import (
    CriterionError,
    DataError,
    InvalidPlanError,
    ModelLoadError,
    PruneScopeError,
    UnknownLayerError,
    UnknownSampleError,
    UnsupportedModelError,
)
from .experiments import ExperimentRun, ExperimentStore, ExperimentStoreError, default_db_path, pareto_front, plan_diff
from .export import EXPORT_FORMATS, ExportError, architecture_sidecar, export_bundle, export_model, rebuild_from_sidecar
from .heads import HEAD_LEVEL_CRITERIA, AttentionLayer, ablation_scores, attention_layers, remove_heads
from .importance import (
    CRITERIA,
    Criterion,
    ImportanceCacheInfo,
    ScoringContext,
    clear_importance_cache,
    get_criterion,
    importance,
    importance_cache_info,
    register_criterion,
)
from .layers import LayerInfo, channel_norms, get_layer, layer_stats, prunable_layers, weight_histogram
from .loading import (
    StateDictMismatchError,
    check_data_fits,
    code_loading_allowed,
    csv_columns,
    detect_format,
    load_eval_data,
    load_model,
    random_eval_data,
)
from .metrics import (
    LatencyResult,
    available_devices,
    compare_latency,
    count_flops,
    evaluate,
    fidelity,
    measure_latency,
    model_outputs,
    model_summary,
)
from .plan import GRANULARITIES, SCOPES, PruningPlan
from .pruning import PlanPreview, PruneResult, apply_plan, preview_plan
from .sensitivity import (
    DEFAULT_RATIOS,
    RAY_ADDRESS_ENV,
    SCAN_COLUMNS,
    ExecutorError,
    ProcessExecutor,
    RayExecutor,
    ScanCancelled,
    ScanExecutor,
    SerialExecutor,
    TargetUnreachableError,
    clear_scan_cache,
    default_executor,
    sensitivity_scan,
    suggest_ratios,
)
from .training import SCHEDULES, fine_tune, iterative_prune, schedule_fractions, train_sparse

__all__ = [
    "CRITERIA",
    "DEFAULT_RATIOS",
    "EXPORT_FORMATS",
    "GRANULARITIES",
    "HEAD_LEVEL_CRITERIA",
    "RAY_ADDRESS_ENV",
    "SCAN_COLUMNS",
    "SCHEDULES",
    "SCOPES",
    "AttentionLayer",
    "Criterion",
    "CriterionError",
    "DataError",
    "EvalData",
    "ExecutorError",
    "ExperimentRun",
    "ExperimentStore",
    "ExperimentStoreError",
    "ExportError",
    "ImportanceCacheInfo",
    "InvalidPlanError",
    "LatencyResult",
    "LayerInfo",
    "ModelBundle",
    "ModelLoadError",
    "PlanPreview",
    "ProcessExecutor",
    "PruneResult",
    "PruneScopeError",
    "PruningPlan",
    "RayExecutor",
    "ScanCancelled",
    "ScanExecutor",
    "ScoringContext",
    "SerialExecutor",
    "StateDictMismatchError",
    "TargetUnreachableError",
    "UnknownLayerError",
    "UnknownSampleError",
    "UnsupportedModelError",
    "ablation_scores",
    "apply_plan",
    "architecture_sidecar",
    "attention_layers",
    "available_devices",
    "build_architecture",
    "channel_norms",
    "check_data_fits",
    "clear_importance_cache",
    "clear_scan_cache",
    "code_loading_allowed",
    "compare_latency",
    "count_flops",
    "csv_columns",
    "default_db_path",
    "default_executor",
    "detect_format",
    "embedding_fidelity",
    "embedding_metrics",
    "evaluate",
    "export_bundle",
    "export_model",
    "fidelity",
    "fine_tune",
    "get_criterion",
    "get_layer",
    "has_batchnorm",
    "importance",
    "importance_cache_info",
    "is_embedding_model",
    "iterative_prune",
    "layer_stats",
    "list_architectures",
    "load_eval_data",
    "load_model",
    "mean_cosine",
    "measure_latency",
    "model_fingerprint",
    "model_outputs",
    "model_summary",
    "nearest_neighbours",
    "paraphrase_accuracy",
    "pareto_front",
    "plan_diff",
    "preview_plan",
    "prunable_layers",
    "random_eval_data",
    "rebuild_from_sidecar",
    "recalibrate_batchnorm",
    "register_architecture",
    "register_criterion",
    "remove_heads",
    "retrieval_agreement",
    "schedule_fractions",
    "sensitivity_scan",
    "suggest_ratios",
    "train_sparse",
    "weight_histogram",
]
