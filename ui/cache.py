"""Cached engine calls.

Models are cached with `st.cache_resource` and therefore shared by every session:
nothing may change a cached model in place (pruning works on copies). Tables, numbers
and histograms are cached with `st.cache_data`, keyed by the model's content
fingerprint; the model itself is passed as an unhashed `_model` argument.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch
from torch import nn

import prune_engine as pe
from sample_models import load_sample

from .state import LoadedModel


@st.cache_resource(show_spinner="Loading the sample model…")
def load_sample_model(name: str) -> LoadedModel:
    """Sample `name` with its fingerprints, loaded once per server and shared read-only."""
    return LoadedModel.from_bundle(load_sample(name), source="sample")


@st.cache_data(show_spinner=False, max_entries=32)
def layer_table(fingerprint: str, _model: nn.Module) -> pd.DataFrame:
    """`prune_engine.layer_stats` of the model with this fingerprint."""
    return pe.layer_stats(_model)


@st.cache_data(show_spinner=False, max_entries=32)
def summary(fingerprint: str, _model: nn.Module, _example_input: torch.Tensor) -> dict[str, float | int | None]:
    """`prune_engine.model_summary`: params, non-zeros, FLOPs and bytes."""
    return pe.model_summary(_model, _example_input)


@st.cache_data(show_spinner="Evaluating the model…", max_entries=32)
def evaluation(fingerprint: str, data_fingerprint: str, _model: nn.Module, _data: pe.EvalData) -> dict[str, float]:
    """`prune_engine.evaluate` of the model on its evaluation data."""
    return pe.evaluate(_model, _data)


@st.cache_data(show_spinner=False, max_entries=256)
def histogram(fingerprint: str, layer_name: str, _model: nn.Module, bins: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """`(counts, edges)` of one layer's weights: only the bins ever reach the browser."""
    return pe.weight_histogram(_model, layer_name, bins=bins)


@st.cache_data(show_spinner=False, max_entries=256)
def channel_l1_norms(fingerprint: str, layer_name: str, _model: nn.Module) -> np.ndarray:
    """The L1 norm of each output channel of one layer."""
    return pe.channel_norms(_model, layer_name, p=1.0).numpy()


def model_evaluation(loaded: LoadedModel) -> dict[str, float] | None:
    """The cached evaluation of `loaded` on its own data, or None when it has none."""
    data = loaded.bundle.eval_data
    if data is None or loaded.data_fingerprint is None:
        return None
    return evaluation(loaded.fingerprint, loaded.data_fingerprint, loaded.bundle.model, data)


def model_summary(loaded: LoadedModel) -> dict[str, float | int | None]:
    """The cached summary of `loaded` on its example input."""
    return summary(loaded.fingerprint, loaded.bundle.model, loaded.bundle.example_input)


def model_layers(loaded: LoadedModel) -> pd.DataFrame:
    """The cached per-layer statistics of `loaded`."""
    return layer_table(loaded.fingerprint, loaded.bundle.model)
