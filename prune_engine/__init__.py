"""PruneScope's engine: inspect, score, prune and measure PyTorch models.

A plain library (no UI imports), usable from the app, a script or a notebook::

    import prune_engine as pe
    from sample_models import load_sample

    bundle = load_sample("digits_cnn")
    plan = pe.PruningPlan(granularity="channel", global_ratio=0.3)
    result = pe.apply_plan(bundle.model, plan, bundle.example_input)
    pe.evaluate(result.model, bundle.eval_data)
    result.report[["layer", "status", "blocked_by", "note"]]

`__all__` holds what a script or notebook calls. App plumbing (caches, executors, format
detection, upload helpers) is imported from its module, e.g.
`from prune_engine.sensitivity import SerialExecutor`.
"""

from .architectures import build_architecture, list_architectures, register_architecture
from .blocks import BLOCK_CRITERIA, find_blocks
from .calibration import recalibrate_batchnorm
from .data import EvalData, ModelBundle
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
    SparseRuntimeError,
    UnknownLayerError,
    UnknownSampleError,
    UnsupportedModelError,
)
from .experiments import ExperimentRun, ExperimentStore, ExperimentStoreError, pareto_front, plan_diff
from .export import EXPORT_FORMATS, ExportError, export_bundle, export_formats, export_model
from .graph import CoupledGroup, GraphNode, ModelGraph, RepeatedBlock, model_graph
from .heads import AttentionLayer, attention_layers, remove_heads
from .importance import CRITERIA, Criterion, ScoringContext, get_criterion, importance, register_criterion
from .language import generate, is_language_model, language_model_metrics
from .latency import latency_profile, predict_latency
from .layers import LayerInfo, channel_norms, get_layer, layer_stats, prunable_layers, weight_histogram
from .loading import (
    StateDictMismatchError,
    TransformersModel,
    is_transformers_model,
    load_eval_data,
    load_model,
    load_text_data,
)
from .metrics import (
    MEASURABLE_CHANGE,
    LatencyResult,
    SpeedupInterval,
    available_devices,
    compare_latency,
    count_flops,
    evaluate,
    fidelity,
    measure_latency,
    model_outputs,
    model_summary,
    speedup_interval,
)
from .plan import GRANULARITIES, SCOPES, PruningPlan
from .pruning import PlanPreview, PruneResult, apply_plan, finish_batchnorm, preview_plan
from .report import layer_report
from .sensitivity import (
    DEFAULT_RATIOS,
    ExecutorError,
    ScanCancelled,
    TargetUnreachableError,
    sensitivity_scan,
    suggest_ratios,
)
from .sparse_runtime import (
    KeptDense,
    SparseDecision,
    SparseLinear,
    sparse_decisions,
    sparse_runtime,
    sparse_runtime_report,
)
from .status import BlockedBy, LayerStatus
from .training import (
    RECOVERIES,
    SCHEDULES,
    distill,
    fine_tune,
    iterative_prune,
    recovery_metric,
    schedule_fractions,
    train_sparse,
)

__all__ = [
    "BLOCK_CRITERIA",
    "CRITERIA",
    "DEFAULT_RATIOS",
    "EXPORT_FORMATS",
    "GRANULARITIES",
    "MEASURABLE_CHANGE",
    "RECOVERIES",
    "SCHEDULES",
    "SCOPES",
    "AttentionLayer",
    "BlockedBy",
    "CoupledGroup",
    "Criterion",
    "CriterionError",
    "DataError",
    "EvalData",
    "ExecutorError",
    "ExperimentRun",
    "ExperimentStore",
    "ExperimentStoreError",
    "ExportError",
    "GraphNode",
    "InvalidPlanError",
    "KeptDense",
    "LatencyResult",
    "LayerInfo",
    "LayerStatus",
    "ModelBundle",
    "ModelGraph",
    "ModelLoadError",
    "PlanPreview",
    "PruneResult",
    "PruneScopeError",
    "PruningPlan",
    "RepeatedBlock",
    "ScanCancelled",
    "ScoringContext",
    "SparseDecision",
    "SparseLinear",
    "SparseRuntimeError",
    "SpeedupInterval",
    "StateDictMismatchError",
    "TargetUnreachableError",
    "TransformersModel",
    "UnknownLayerError",
    "UnknownSampleError",
    "UnsupportedModelError",
    "apply_plan",
    "attention_layers",
    "available_devices",
    "build_architecture",
    "channel_norms",
    "compare_latency",
    "count_flops",
    "distill",
    "embedding_fidelity",
    "embedding_metrics",
    "evaluate",
    "export_bundle",
    "export_formats",
    "export_model",
    "fidelity",
    "find_blocks",
    "fine_tune",
    "finish_batchnorm",
    "generate",
    "get_criterion",
    "get_layer",
    "importance",
    "is_embedding_model",
    "is_language_model",
    "is_transformers_model",
    "iterative_prune",
    "language_model_metrics",
    "latency_profile",
    "layer_report",
    "layer_stats",
    "list_architectures",
    "load_eval_data",
    "load_model",
    "load_text_data",
    "mean_cosine",
    "measure_latency",
    "model_graph",
    "model_outputs",
    "model_summary",
    "nearest_neighbours",
    "paraphrase_accuracy",
    "pareto_front",
    "plan_diff",
    "predict_latency",
    "preview_plan",
    "prunable_layers",
    "recalibrate_batchnorm",
    "recovery_metric",
    "register_architecture",
    "register_criterion",
    "remove_heads",
    "retrieval_agreement",
    "schedule_fractions",
    "sensitivity_scan",
    "sparse_decisions",
    "sparse_runtime",
    "sparse_runtime_report",
    "speedup_interval",
    "suggest_ratios",
    "train_sparse",
    "weight_histogram",
]
