"""The minilm sample: the pretrained all-MiniLM-L6-v2 loads offline and is evaluated without labels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import prune_engine as pe
from sample_models import list_samples, load_sample, sample_info
from sample_models.minilm import (
    CALIBRATION_SENTENCES,
    MINILM_PARAMS,
    SENTENCES_PATH,
    calibration_data,
    calibration_sentences,
    sentence_groups,
)
from tests.conftest import REPO_ROOT

OFFLINE_CHECK = textwrap.dedent(
    """
    import json, socket

    def refuse(*args, **kwargs):
        raise OSError("network access is blocked in this test")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    import torch
    from sentence_transformers import SentenceTransformer
    from sample_models import load_sample
    from sample_models.minilm import model_dir, sentence_groups, tokenize

    bundle = load_sample("minilm")
    sentences = sentence_groups()[0][:8]
    with torch.inference_mode():
        ours = bundle.model(tokenize(sentences))
    reference = SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)
    theirs = reference.encode(sentences, convert_to_tensor=True)
    print(json.dumps({"max_difference": float((ours - theirs).abs().max()), "shape": list(ours.shape)}))
    """
)


@pytest.fixture(scope="module")
def minilm() -> pe.ModelBundle:
    return load_sample("minilm")


def test_minilm_loads_with_the_network_blocked_and_matches_sentence_transformers() -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "TRANSFORMERS_"))}
    environment["PYTHONPATH"] = str(REPO_ROOT)
    completed = subprocess.run(
        [sys.executable, "-c", OFFLINE_CHECK],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["shape"] == [8, 384]
    assert result["max_difference"] < 1e-5


def test_minilm_is_a_default_sample_after_the_digits_ones() -> None:
    names = list_samples()

    assert names.index("minilm") > max(names.index(name) for name in names if name.startswith("digits_"))
    info = sample_info("minilm")
    assert info.task == "embedding"
    assert info.params == MINILM_PARAMS


def test_minilm_bundle_is_an_eval_mode_embedder_of_token_ids(minilm: pe.ModelBundle) -> None:
    sentences, groups = sentence_groups()

    assert minilm.task == "embedding"
    assert pe.is_embedding_model(minilm.model)
    assert not any(module.training for module in minilm.model.modules())
    assert sum(parameter.numel() for parameter in minilm.model.parameters()) == MINILM_PARAMS
    assert minilm.example_input.shape == (1, 128)
    assert minilm.example_input.dtype == torch.int64
    assert bool((minilm.example_input != 0).all()), "the example is 128 real tokens, no padding"
    assert len(minilm.eval_data) == len(sentences) >= 250
    assert minilm.eval_data.labels.tolist() == groups
    assert len(pe.attention_layers(minilm.model)) == 6
    with torch.inference_mode():
        embeddings = minilm.model(minilm.eval_data.inputs[:5])
    assert embeddings.shape == (5, 384)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(5), atol=1e-5)


def test_padding_does_not_change_a_sentence_embedding(minilm: pe.ModelBundle) -> None:
    ids = minilm.eval_data.inputs[:1]
    real = ids[:, : int((ids != 0).sum())]
    padded = torch.cat([real, torch.zeros(1, 10, dtype=torch.long)], dim=1)

    with torch.inference_mode():
        assert torch.allclose(minilm.model(real), minilm.model(padded), atol=1e-5)


def test_sentence_set_holds_paraphrase_groups_and_unrelated_sentences() -> None:
    text = json.loads(SENTENCES_PATH.read_text(encoding="utf-8"))
    sentences, groups = sentence_groups()

    assert len(text["groups"]) >= 60 and all(len(group) >= 2 for group in text["groups"])
    assert len(text["unrelated"]) >= 40
    assert len(set(sentences)) == len(sentences), "every sentence appears once"
    assert len(set(groups)) == len(text["groups"]) + len(text["unrelated"])


def test_evaluate_gives_the_three_embedding_metrics_and_one_against_itself(minilm: pe.ModelBundle) -> None:
    alone = pe.evaluate(minilm.model, minilm.eval_data)
    against_itself = pe.evaluate(minilm.model, minilm.eval_data, reference=minilm.model)

    assert "accuracy" not in alone and "agreement" not in alone
    assert alone["paraphrase_accuracy"] >= 0.9
    assert against_itself["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert against_itself["retrieval_agreement"] == 1.0
    assert against_itself["paraphrase_accuracy"] == alone["paraphrase_accuracy"]


def test_unstructured_30_percent_keeps_embeddings_close(minilm: pe.ModelBundle) -> None:
    plan = pe.PruningPlan(granularity="unstructured", global_ratio=0.3)

    result = pe.apply_plan(minilm.model, plan, minilm.example_input)
    metrics = pe.evaluate(result.model, minilm.eval_data, reference=minilm.model)

    assert metrics["cosine"] >= 0.9
    assert result.report["achieved_ratio"].between(0.29, 0.31).all()


def test_calibration_sentences_are_prose_and_never_the_evaluation_sentences() -> None:
    sentences = calibration_sentences()
    evaluation = set(sentence_groups()[0])

    assert len(sentences) == len(set(sentences)) == CALIBRATION_SENTENCES
    assert not evaluation.intersection(sentences)
    assert all(8 <= len(sentence.split()) <= 40 and sentence.endswith(".") for sentence in sentences)
    assert calibration_data().inputs.shape[0] == CALIBRATION_SENTENCES
