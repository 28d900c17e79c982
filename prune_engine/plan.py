"""Pruning plans: what to prune, how much, and by which criterion.

A plan is plain data (no tensors, no modules), names layers by module path, and
round-trips exactly through JSON, so a plan made with the app's sliders can be saved,
uploaded again, stored with an experiment, or applied by a script.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields

from .errors import InvalidPlanError
from .jsontext import loads

GRANULARITIES = ("unstructured", "channel", "n:m", "head", "block")
"""unstructured: single weights are zeroed; channel: whole output channels are removed
(the model shrinks); n:m: in every m consecutive input weights only n are kept; head:
whole attention heads are removed from transformer attention layers (see `heads.py`); block:
whole residual blocks or transformer layers become the identity (see `blocks.py`)."""

SCOPES = ("layer", "global")
"""layer: each layer is ranked on its own; global: layers without their own ratio are
ranked together against one global ratio."""

PLAN_FORMAT_VERSION = 1

MAX_M = 1024
"""Largest group size m of an N:M plan."""
MIN_SEED, MAX_SEED = -(2**63), 2**64 - 1
"""The seeds `torch.manual_seed` takes."""

NAME_SHOWN = 80
"""Longest layer or setting name quoted in full in an error message; longer ones are cut."""


@dataclass
class PruningPlan:
    """A reproducible description of one pruning.

    `ratios` maps module paths to the fraction to remove from that layer (weights for
    unstructured, output channels for channel; for head, attention layers — the module
    paths `heads.attention_layers` names — and the fraction of their heads; for block, the
    global ratio is the share of blocks removed and a block named with a ratio above 0 is
    removed whatever its score). `global_ratio` applies to every prunable
    layer without its own entry; under `scope="global"` those layers are ranked together,
    so each gets the ratio the global ranking assigns, kept within `min_ratio`/`max_ratio`.
    For n:m the sparsity is fixed by n and m; ratios only select layers (> 0 means
    pruned), and a plan with neither ratios nor global_ratio targets every layer.
    `recalibrate_bn` re-estimates BatchNorm statistics on calibration data after
    pruning (see `calibration.py`), which channel pruning usually needs.
    """

    granularity: str = "unstructured"
    criterion: str = "l1"
    scope: str = "layer"
    ratios: dict[str, float] = field(default_factory=dict)
    global_ratio: float | None = None
    n: int = 2
    m: int = 4
    min_ratio: float | None = None
    max_ratio: float | None = None
    ignored_layers: list[str] = field(default_factory=list)
    round_to: int | None = None
    seed: int = 0
    recalibrate_bn: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.ratios, Mapping):
            raise InvalidPlanError(f"ratios must map layer names to fractions, got {_shown(self.ratios)}.")
        if isinstance(self.ignored_layers, (str, bytes)) or not isinstance(self.ignored_layers, (list, tuple)):
            raise InvalidPlanError(
                f"ignored_layers must be a list of layer names, got {_shown(self.ignored_layers)}; "
                'write ["fc1"] for one layer.'
            )
        self.ratios = dict(self.ratios)
        self.ignored_layers = list(self.ignored_layers)
        self.validate()

    def validate(self) -> None:
        """Check every setting that does not need the model; raise InvalidPlanError."""
        from .importance import CRITERIA  # the criteria registry imports nothing from here

        _check_choice("granularity", self.granularity, GRANULARITIES)
        _check_choice("scope", self.scope, SCOPES)
        _check_choice("criterion", self.criterion, tuple(sorted(CRITERIA)))
        if not isinstance(self.ratios, dict):
            raise InvalidPlanError("ratios must map layer names to fractions.")
        for layer, ratio in self.ratios.items():
            if not isinstance(layer, str) or not layer:
                raise InvalidPlanError(f"Layer names must be non-empty strings, got {_shown(layer)}.")
            _check_ratio(f"The ratio for layer {_shown(layer)}", ratio)
        if self.global_ratio is not None:
            _check_ratio("The global ratio", self.global_ratio)
        for name in ("min_ratio", "max_ratio"):
            value = getattr(self, name)
            if value is not None:
                _check_ratio(name.replace("_", " ").capitalize(), value)
        if self.min_ratio is not None and self.max_ratio is not None and self.min_ratio > self.max_ratio:
            raise InvalidPlanError(f"The minimum ratio {self.min_ratio} is above the maximum ratio {self.max_ratio}.")
        for name, low, high in (("n", 0, MAX_M), ("m", 1, MAX_M), ("seed", MIN_SEED, MAX_SEED)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidPlanError(f"{name} must be a whole number from {low} to {high}, got {_shown(value)}.")
        if self.granularity == "n:m" and not 0 < self.n < self.m:
            raise InvalidPlanError(f"N:M needs 0 < n < m (e.g. 2:4), got {self.n}:{self.m}.")
        if self.round_to is not None and (
            isinstance(self.round_to, bool) or not isinstance(self.round_to, int) or self.round_to < 1
        ):
            raise InvalidPlanError(f"round_to must be a positive whole number or None, got {self.round_to!r}.")
        if not isinstance(self.recalibrate_bn, bool):
            raise InvalidPlanError(f"recalibrate_bn must be true or false, got {self.recalibrate_bn!r}.")
        if not isinstance(self.ignored_layers, list) or not all(
            isinstance(layer, str) for layer in self.ignored_layers
        ):
            raise InvalidPlanError("ignored_layers must be a list of layer names.")

    def check_layers(self, layer_names: Iterable[str]) -> None:
        """Raise InvalidPlanError if the plan names a layer the model does not have."""
        known = set(layer_names)
        for layer in [*self.ratios, *self.ignored_layers]:
            if layer not in known:
                shown = ", ".join(sorted(known)[:6]) + (" …" if len(known) > 6 else "")
                raise InvalidPlanError(
                    f"The plan names layer {_shown(layer)}, which this model does not have ({shown})."
                )

    def target_ratio(self, layer: str) -> float:
        """The ratio asked for `layer`: its own entry, else the global ratio, else 0."""
        if layer in self.ignored_layers:
            return 0.0
        if layer in self.ratios:
            return float(self.ratios[layer])
        if self.granularity == "n:m" and not self.ratios and self.global_ratio is None:
            return 1.0 - self.n / self.m
        return float(self.global_ratio or 0.0)

    def is_global_ranked(self, layer: str) -> bool:
        """Whether `layer` takes part in the global ranking (global scope, no own entry)."""
        return (
            self.scope == "global"
            and self.granularity != "n:m"
            and layer not in self.ratios
            and layer not in self.ignored_layers
            and bool(self.global_ratio)
        )

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["version"] = PLAN_FORMAT_VERSION
        return data

    def to_json(self) -> str:
        """JSON text naming layers by module path; `from_json` gives an equal plan back."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> PruningPlan:
        if not isinstance(data, dict):
            raise InvalidPlanError("A plan must be a JSON object.")
        data = dict(data)
        version = data.pop("version", PLAN_FORMAT_VERSION)
        if version != PLAN_FORMAT_VERSION:
            raise InvalidPlanError(f"This plan has format version {version}; this PruneScope reads version 1.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(key) for key in set(data) - known)
        if unknown:
            shown = ", ".join(_shown(key, quote=False) for key in unknown[:10]) + (" …" if len(unknown) > 10 else "")
            raise InvalidPlanError(f"The plan has unknown settings: {shown}.")
        try:
            return cls(**data)  # type: ignore[arg-type]
        except TypeError as error:
            raise InvalidPlanError(f"The plan's settings do not fit: {error}.") from error

    @classmethod
    def from_json(cls, text: str | bytes) -> PruningPlan:
        """Read a plan written by `to_json` (or by hand); errors name what is wrong."""
        if not isinstance(text, (str, bytes, bytearray)):
            raise InvalidPlanError(f"A plan is JSON text, not {type(text).__name__}.")
        return cls.from_dict(loads(text, "The plan", InvalidPlanError))


def _shown(value: object, quote: bool = True) -> str:
    """`value` for an error message: its repr (or text), cut to `NAME_SHOWN` characters."""
    text = repr(value) if quote else str(value)
    return text if len(text) <= NAME_SHOWN else f"{text[: NAME_SHOWN - 1]}… ({len(text):,} characters)"


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise InvalidPlanError(f"Unknown {name} {_shown(value)}; choose one of {', '.join(choices)}.")


def _check_ratio(what: str, ratio: object) -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(float(min(ratio, 2.0))):
        raise InvalidPlanError(f"{what} must be a number in [0, 1), got {_shown(ratio)}.")
    if not 0.0 <= ratio < 1.0:
        raise InvalidPlanError(
            f"{what} is {_shown(ratio, quote=False)}; it must be at least 0 and below 1 (1 would remove everything)."
        )
