"""Errors a user can cause, each with a sentence that says what to do.

Every exception the engine raises on purpose derives from `PruneScopeError`, so a
caller (the app, the command line, a notebook) can catch one type and show its
message as it is.
"""

from __future__ import annotations


class PruneScopeError(Exception):
    """Base class: something the user asked for cannot be done; the message says why."""


class InvalidPlanError(PruneScopeError, ValueError):
    """A pruning plan names an unknown layer, an out-of-range ratio or an impossible setting."""


class UnsupportedModelError(PruneScopeError):
    """The model (or one of its layers) cannot be handled for the requested operation."""


class ModelLoadError(PruneScopeError):
    """A model file is empty, corrupt, of an unknown format, or refused for safety."""


class DataError(PruneScopeError, ValueError):
    """Evaluation or training data is missing, malformed, or does not fit the model."""


class CriterionError(PruneScopeError, ValueError):
    """An importance criterion is unknown or cannot apply to this model or data."""


class _KeyLikeError(PruneScopeError, KeyError):
    """A lookup failed; shows its sentence as it is (KeyError would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownSampleError(_KeyLikeError):
    """A sample model name is not in the registry."""


class UnknownLayerError(_KeyLikeError):
    """A layer name is not a prunable layer of the model."""


class SparseRuntimeError(PruneScopeError, ValueError):
    """A sparse-runtime setting is out of range."""
