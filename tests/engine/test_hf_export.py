"""A head- and FFN-pruned MiniLM written as a Hugging Face folder loads back in transformers and
sentence-transformers and gives the pruned model's embeddings."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import torch

import prune_engine as pe
from prune_engine.hf_export import TransformersExportError, export_transformers
from sample_models import load_sample
from sample_models.minilm import model_dir, sentence_groups, tokenize

transformers = pytest.importorskip("transformers")
sentence_transformers = pytest.importorskip("sentence_transformers")


def test_pruned_minilm_round_trips_through_transformers_and_sentence_transformers(tmp_path: Path) -> None:
    bundle = load_sample("minilm")
    ffn = {f"bert.encoder.layer.{index}.intermediate.dense": 0.25 * (index % 2 + 1) for index in range(6)}
    channel = pe.apply_plan(bundle.model, pe.PruningPlan(granularity="channel", ratios=ffn), bundle.example_input)
    pruned = pe.apply_plan(channel.model, pe.PruningPlan(granularity="head", global_ratio=0.25), bundle.example_input)

    archive = export_transformers(pruned.model, files_from=model_dir())
    zipfile.ZipFile(io.BytesIO(archive)).extractall(tmp_path)

    encoder = transformers.AutoModel.from_pretrained(str(tmp_path))
    assert encoder.config.intermediate_size == 1152  # the widest kept FFN (25 % of 1536 removed)
    assert encoder.config.num_attention_heads == 12  # removed heads come back as zero heads
    sentences = sentence_groups()[0][:16]
    loaded = sentence_transformers.SentenceTransformer(str(tmp_path), device="cpu")
    with torch.inference_mode():
        expected = pruned.model(tokenize(sentences))
        embeddings = loaded.encode(sentences, convert_to_tensor=True)
    torch.testing.assert_close(embeddings, expected, atol=1e-5, rtol=1e-4)
    original = bundle.model(tokenize(sentences)).detach()
    assert not torch.allclose(embeddings, original, atol=1e-3)


def test_a_model_without_a_transformers_encoder_is_refused() -> None:
    with pytest.raises(TransformersExportError, match="state_dict"):
        export_transformers(load_sample("digits_mlp").model)
