"""What a browser session works on, as plain values: the loaded model and a pruned result.

Both carry the content fingerprints that key every cache computed from them; both are
frozen, and the models they hold may be shared between sessions, so they are read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

import prune_engine as pe
from prune_engine.data import model_fingerprint

ModelSource = Literal["sample", "upload"]


@dataclass(frozen=True)
class LoadedModel:
    """A bundle with the content fingerprints that key every cache computed from it.

    Fingerprints are computed once, when the model is loaded, not on every rerun.
    `data_fingerprint` is None when the bundle carries no evaluation data.
    """

    bundle: pe.ModelBundle
    fingerprint: str
    data_fingerprint: str | None
    source: ModelSource = "sample"

    @classmethod
    def from_bundle(cls, bundle: pe.ModelBundle, source: ModelSource = "sample") -> LoadedModel:
        data = bundle.eval_data
        return cls(
            bundle=bundle,
            fingerprint=model_fingerprint(bundle.model),
            data_fingerprint=None if data is None else data.fingerprint(),
            source=source,
        )

    @property
    def name(self) -> str:
        return self.bundle.name


@dataclass(frozen=True)
class PrunedModel:
    """A pruning result kept in the session, with the fingerprints that key its caches.

    `base_fingerprint` names the original it was pruned from, so a page can tell a
    result that belongs to the current model from a stale one.
    """

    result: pe.PruneResult
    fingerprint: str
    base_fingerprint: str

    @property
    def model(self) -> nn.Module:
        return self.result.model

    @property
    def plan(self) -> pe.PruningPlan:
        return self.result.plan

    @classmethod
    def from_result(cls, result: pe.PruneResult, base: LoadedModel) -> PrunedModel:
        return cls(result=result, fingerprint=model_fingerprint(result.model), base_fingerprint=base.fingerprint)


RunKey = tuple[str, str, str]


def run_key(pruned: PrunedModel) -> RunKey:
    """What makes a result one run of the history: the original, the pruned weights and the plan."""
    return pruned.base_fingerprint, pruned.fingerprint, pruned.plan.to_json()
