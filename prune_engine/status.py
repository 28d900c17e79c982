"""What happened to each layer, as typed values the app and scripts can branch on.

Report and preview tables carry `status` (a `LayerStatus`) and `blocked_by` (a
`BlockedBy`, or None) beside a `note`. The note is a sentence for people only: its
wording may change at any time, so no code decides anything from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class LayerStatus(StrEnum):
    """What a plan does to one layer.

    `blocked`: the granularity cannot remove anything of the layer's own (its weights,
    channels or heads), whether or not the plan targets it; it may still lose inputs when
    a layer before it loses channels. `unchanged`: it could be pruned but the plan removes
    nothing from it. `pruned`: it loses something.
    """

    PRUNED = "pruned"
    UNCHANGED = "unchanged"
    BLOCKED = "blocked"


class BlockedBy(StrEnum):
    """Why a layer cannot be pruned by a granularity."""

    OUTPUT_LAYER = "output_layer"
    """Its channels are the model's output (channel)."""
    SINGLE_CHANNEL = "single_channel"
    """It has one channel (or one head) left, and the last one is never removed."""
    TIED_WEIGHTS = "tied_weights"
    """It shares its weight tensor with another module; removing channels would untie them."""
    ATTENTION_PROJECTION = "attention_projection"
    """It projects attention heads; single channels would cut across heads (use head pruning)."""
    PACKED_ATTENTION = "packed_attention"
    """It is coupled to an `nn.MultiheadAttention`, whose packed in-projection cannot shrink."""
    RECURRENT_HIDDEN = "recurrent_hidden"
    """Removing its channels would shrink a recurrent layer's hidden state."""
    NOT_REACHED = "not_reached"
    """No prunable channel group reaches it (coupled with an ignored layer, or inside a fused module)."""
    NO_SCORE = "no_score"
    """The criterion gives no score for its channels."""
    NM_SHAPE = "nm_shape"
    """Its input size is not a multiple of m, so it has no N:M groups."""
    NOT_ATTENTION = "not_attention"
    """It is not a projection of an attention layer, so head pruning cannot touch it."""
    SHAPE_CHANGE = "shape_change"
    """Its block changes the shape of what flows through it, so it cannot become the identity."""
    NOT_IN_BLOCK = "not_in_block"
    """It is in no block that could be skipped (block pruning removes whole residual blocks or layers)."""
    HIDDEN_SIZE = "hidden_size"
    """Its channels are a transformers model's hidden size (the residual stream), set once for all layers."""


PLAN_ERRORS = frozenset({BlockedBy.OUTPUT_LAYER, BlockedBy.SINGLE_CHANNEL})
"""Causes that make an explicit ratio a mistake in the plan (set it to 0), not a limit of
PruneScope: an explicit ratio on such a layer raises InvalidPlanError; on any other
blocked layer, UnsupportedModelError."""


@dataclass(frozen=True)
class Blocked:
    """Why one layer cannot be pruned: the typed cause and a sentence for people."""

    by: BlockedBy
    reason: str
