"""Small random-weight transformers model folders written with save_pretrained, for the hf tests.

Every config is tiny (a few thousand parameters) so a test runs in a second; the tokenizer is a
word-level one built from `WORDS`, saved beside the model as `save_pretrained` writes it.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import torch

transformers = __import__("pytest").importorskip("transformers")

WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "ran",
    "on",
    "under",
    "mat",
    "rug",
    "quickly",
    "slowly",
    "big",
    "small",
    "red",
    "blue",
    "house",
    "tree",
    "good",
    "bad",
    "great",
    "awful",
    "film",
    "book",
    "loved",
    "hated",
    "it",
    "was",
    "is",
    "very",
    "not",
]
SPECIAL = ["[PAD]", "[UNK]", "[EOS]"]
VOCAB = len(SPECIAL) + len(WORDS)


def tokenizer() -> object:
    """A word-level tokenizer: [PAD] = 0, [UNK] = 1, [EOS] = 2, then `WORDS`."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {word: index for index, word in enumerate([*SPECIAL, *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]"
    )


def configs() -> dict[str, tuple[object, type]]:
    """Family → (config, task class): BERT encoder and classifier, GPT-2, Llama with GQA, ViT."""
    bert = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 48}
    return {
        "bert": (transformers.BertConfig(vocab_size=VOCAB, pad_token_id=0, **bert), transformers.BertModel),
        "bert_classifier": (
            transformers.BertConfig(
                vocab_size=VOCAB, pad_token_id=0, num_labels=2, id2label={0: "neg", 1: "pos"}, **bert
            ),
            transformers.BertForSequenceClassification,
        ),
        "gpt2": (
            transformers.GPT2Config(
                vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=2, eos_token_id=2
            ),
            transformers.GPT2LMHeadModel,
        ),
        "llama": (
            transformers.LlamaConfig(
                vocab_size=VOCAB,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=8,
                num_key_value_heads=4,
                head_dim=8,
                intermediate_size=48,
                max_position_embeddings=64,
                pad_token_id=0,
                bos_token_id=2,
                eos_token_id=2,
            ),
            transformers.LlamaForCausalLM,
        ),
        "vit": (
            transformers.ViTConfig(
                image_size=16,
                patch_size=4,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=48,
                num_labels=3,
            ),
            transformers.ViTForImageClassification,
        ),
    }


def save_folder(family: str, folder: Path, with_tokenizer: bool = True, **save: object) -> Path:
    """Write the family's model (seeded random weights) and, for text models, the tokenizer to `folder`."""
    config, model_class = configs()[family]
    torch.manual_seed(0)
    model_class(config).eval().save_pretrained(str(folder), **save)
    if with_tokenizer and family != "vit":
        tokenizer().save_pretrained(str(folder))
    return folder


def zipped(folder: Path, top: str = "") -> bytes:
    """The folder as a zip, its files under `top` (e.g. "my-model/") or at the archive's top."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, top + path.relative_to(folder).as_posix())
    return buffer.getvalue()


def inputs(family: str, count: int = 3, tokens: int = 10) -> torch.Tensor:
    """Seeded inputs of the family's model: pixel values for ViT, else token ids that are never padding."""
    generator = torch.Generator().manual_seed(1)
    if family == "vit":
        return torch.randn(count, 3, 16, 16, generator=generator)
    return torch.randint(len(SPECIAL), VOCAB, (count, tokens), generator=generator)
