"""What a browser session works on, as plain values: the loaded model and a pruned result.

Both carry the content fingerprints that key every cache computed from them; both are
frozen, and the models they hold may be shared between sessions, so they are read-only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

import prune_engine as pe
from prune_engine.data import model_fingerprint
from prune_engine.placement import model_device, place_model

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

    @property
    def identity(self) -> str:
        """The fingerprint of the model's weights wherever they are placed: what the history files runs under."""
        return self.fingerprint.partition("@")[0]

    def placed(self, device: str, dtype: torch.dtype | None = None) -> LoadedModel:
        """A working copy on `device` (in `dtype` when given); its fingerprint names the place
        (`fingerprint@cuda`, `…@cuda:bfloat16`), so caches keyed by it keep results per device.
        The original stays where it is, and the evaluation data as it was loaded."""
        model = place_model(self.bundle.model, device, dtype)
        place = (
            str(model_device(model)) if dtype is None else f"{model_device(model)}:{str(dtype).removeprefix('torch.')}"
        )
        return LoadedModel(
            bundle=dataclasses.replace(self.bundle, model=model),
            fingerprint=f"{self.fingerprint}@{place}",
            data_fingerprint=self.data_fingerprint,
            source=self.source,
        )


@dataclass(frozen=True)
class PrunedModel:
    """A pruning result kept in the session, with the fingerprints that key its caches.

    `base_fingerprint` names the original it was pruned from, so a page can tell a
    result that belongs to the current model from a stale one. `draft_fingerprint` names the
    draft (a result whose BatchNorm re-estimation was left for later) this one was finished from.
    """

    result: pe.PruneResult
    fingerprint: str
    base_fingerprint: str
    draft_fingerprint: str | None = None

    @property
    def model(self) -> nn.Module:
        return self.result.model

    @property
    def plan(self) -> pe.PruningPlan:
        return self.result.plan

    @classmethod
    def from_result(
        cls, result: pe.PruneResult, base: LoadedModel, draft_fingerprint: str | None = None
    ) -> PrunedModel:
        return cls(
            result=result,
            fingerprint=model_fingerprint(result.model),
            base_fingerprint=base.fingerprint,
            draft_fingerprint=draft_fingerprint,
        )


RunKey = tuple[str, str, str]


def run_key(pruned: PrunedModel) -> RunKey:
    """What makes a result one run of the history: the original, the pruned weights and the plan. A result
    finished from a draft (`draft_fingerprint`) shares its draft's key, so the page that shows the draft
    knows it saved."""
    return pruned.base_fingerprint, pruned.draft_fingerprint or pruned.fingerprint, pruned.plan.to_json()
