"""Each transformers family round-trips: load the folder → prune (heads, FFN channels, single weights) →
export → from_pretrained (AutoModel and the task class) → the pruned model's outputs, sizes in the config."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import torch

import prune_engine as pe
from prune_engine.hf_export import TransformersExportError, export_transformers
from prune_engine.loading.hf_model import TransformersModel
from sample_models import load_sample
from sample_models.minilm import model_dir, sentence_groups, tokenize
from tests.engine.hf_folders import configs, inputs, save_folder, zipped

transformers = pytest.importorskip("transformers")

FAMILIES = ["bert", "bert_classifier", "gpt2", "llama", "vit"]


def _pruned(model: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module:
    """Heads (a different share per layer), then a quarter of the FFN channels, then 30 % of single weights."""
    layers = pe.attention_layers(model)
    heads = pe.PruningPlan(granularity="head", ratios={layers[0].name: 0.5, layers[1].name: 0.25})
    model = pe.apply_plan(model, heads, example).model
    model = pe.apply_plan(model, pe.PruningPlan(granularity="channel", global_ratio=0.25), example).model
    unstructured = pe.PruningPlan(granularity="unstructured", scope="global", global_ratio=0.3)
    return pe.apply_plan(model, unstructured, example).model


def _ffn_width(model: torch.nn.Module) -> int:
    """The widest feed-forward layer's neurons."""
    return max(
        module.out_features
        for name, module in model.named_modules()
        if name.endswith(("intermediate.dense", "mlp.c_fc", "mlp.up_proj", "mlp.fc1"))
    )


def _unzipped(archive: bytes, folder: Path) -> Path:
    zipfile.ZipFile(io.BytesIO(archive)).extractall(folder)
    return folder


@pytest.mark.parametrize("family", FAMILIES)
def test_a_pruned_folder_exports_to_a_folder_transformers_loads_with_the_same_outputs(
    family: str, tmp_path: Path
) -> None:
    source = save_folder(family, tmp_path / "source")
    model = pe.load_model(source)
    example = inputs(family)
    pruned = _pruned(model, example[:1])

    folder = _unzipped(pe.export_model(pruned, fmt="transformers"), tmp_path / "exported")

    config, task_class = configs()[family]
    loaded = task_class.from_pretrained(str(folder)).eval()
    base = transformers.AutoModel.from_pretrained(str(folder))
    assert base.config.to_dict() == loaded.config.to_dict()
    assert type(base).__name__ == transformers.AutoModel.from_config(config).__class__.__name__
    wrapped = TransformersModel(loaded, pruned.task, pad_token_id=pruned.pad_token_id)
    with torch.inference_mode():
        torch.testing.assert_close(wrapped(example), pruned(example), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(pruned(example), model(example), atol=1e-4)
    assert _ffn_width(pruned) == _ffn_width(model) * 3 // 4
    assert (loaded.config.n_inner if family == "gpt2" else loaded.config.intermediate_size) == _ffn_width(pruned)
    assert (folder / "tokenizer.json").is_file() is (family != "vit")


def test_llama_head_pruning_removes_whole_query_groups_and_shrinks_the_config(tmp_path: Path) -> None:
    model = pe.load_model(save_folder("llama", tmp_path / "source"))
    layer = pe.attention_layers(model)[0]
    assert (layer.heads, layer.group_size, layer.groups) == (8, 2, 4)
    half = pe.PruningPlan(granularity="head", ratios={layer.name: 0.5 for layer in pe.attention_layers(model)})

    pruned = pe.apply_plan(model, half, inputs("llama")[:1]).model

    kept = pe.attention_layers(pruned)
    assert [(layer.heads, layer.groups) for layer in kept] == [(4, 2), (4, 2)]
    attention = pruned.get_submodule(kept[0].name)
    assert attention.k_proj.out_features * 2 == attention.q_proj.out_features
    folder = _unzipped(export_transformers(pruned), tmp_path / "exported")
    loaded = transformers.LlamaForCausalLM.from_pretrained(str(folder))
    assert (loaded.config.num_attention_heads, loaded.config.num_key_value_heads, loaded.config.head_dim) == (4, 2, 8)
    with torch.inference_mode():
        expected = pruned(inputs("llama"))
        torch.testing.assert_close(loaded(inputs("llama")).logits, expected, atol=1e-5, rtol=1e-5)


def test_removing_part_of_a_query_group_is_refused_with_a_sentence(tmp_path: Path) -> None:
    model = pe.load_model(save_folder("llama", tmp_path / "source"))
    layer = pe.attention_layers(model)[0]
    with pytest.raises(pe.UnsupportedModelError, match="whole groups of 2"):
        pe.remove_heads(model, layer, [0])


def test_bert_keeps_its_head_count_in_the_config_and_writes_removed_heads_as_zeros(tmp_path: Path) -> None:
    model = pe.load_model(save_folder("bert", tmp_path / "source"))
    pruned = pe.apply_plan(model, pe.PruningPlan(granularity="head", global_ratio=0.5), inputs("bert")[:1]).model
    folder = _unzipped(export_transformers(pruned), tmp_path / "exported")
    loaded = transformers.BertModel.from_pretrained(str(folder))
    assert loaded.config.num_attention_heads == 4  # BERT derives the head size from it
    query = loaded.encoder.layer[0].attention.self.query.weight
    assert int((query.abs().sum(dim=1) == 0).sum()) == 16  # two zero heads of 8 rows


def test_gpt2_layers_are_linear_under_their_own_names_and_channel_pruning_spares_the_fused_projection(
    tmp_path: Path,
) -> None:
    model = pe.load_model(save_folder("gpt2", tmp_path / "source"))
    names = pe.layer_stats(model)["name"].tolist()
    assert names[:4] == [
        "transformer.h.0.attn.c_attn",
        "transformer.h.0.attn.c_proj",
        "transformer.h.0.mlp.c_fc",
        "transformer.h.0.mlp.c_proj",
    ]
    report = pe.apply_plan(model, pe.PruningPlan(granularity="channel", global_ratio=0.25), inputs("gpt2")[:1]).report
    rows = report.set_index("layer")
    assert rows.loc["transformer.h.0.attn.c_attn", "blocked_by"] == "attention_projection"
    assert rows.loc["transformer.h.0.attn.c_proj", "blocked_by"] == "tied_weights"  # the residual stream
    assert rows.loc["transformer.h.0.mlp.c_fc", "status"] == "pruned"


def test_channel_pruning_of_a_transformers_model_leaves_the_hidden_size_alone(tmp_path: Path) -> None:
    model = pe.load_model(save_folder("llama", tmp_path / "source"))
    plan = pe.PruningPlan(granularity="channel", global_ratio=0.25)
    rows = pe.apply_plan(model, plan, inputs("llama")[:1]).report.set_index("layer")
    assert rows.loc["model.layers.0.self_attn.o_proj", "blocked_by"] == "hidden_size"
    assert rows.loc["model.layers.0.mlp.down_proj", "status"] != "pruned"
    assert rows.loc["model.layers.0.mlp.up_proj", "status"] == "pruned"


def test_the_original_model_is_untouched_by_pruning_and_export(tmp_path: Path) -> None:
    model = pe.load_model(save_folder("gpt2", tmp_path / "source"))
    before = {key: value.clone() for key, value in model.state_dict().items()}
    export_transformers(_pruned(model, inputs("gpt2")[:1]))
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[key], after[key]) for key in before)
    assert len(pe.attention_layers(model)[0].heads_of(range(4))) == 4


def test_minilm_real_weights_load_from_their_folder_prune_and_round_trip(tmp_path: Path) -> None:
    sample = load_sample("minilm")
    model = pe.load_model(model_dir())
    ids = tokenize(sentence_groups()[0][:12])
    with torch.inference_mode():
        torch.testing.assert_close(model(ids), sample.model(ids), atol=1e-5, rtol=1e-5)
    example = ids[:1]
    pruned = pe.apply_plan(model, pe.PruningPlan(granularity="head", global_ratio=0.25), example).model
    ffn = {f"encoder.layer.{index}.intermediate.dense": 0.25 for index in range(6)}
    pruned = pe.apply_plan(pruned, pe.PruningPlan(granularity="channel", ratios=ffn), example).model

    folder = _unzipped(pe.export_model(pruned, fmt="transformers"), tmp_path / "exported")

    encoder = transformers.AutoModel.from_pretrained(str(folder))
    assert encoder.config.intermediate_size == 1152
    assert (folder / "tokenizer.json").is_file() and (folder / "modules.json").is_file()
    with torch.inference_mode():
        torch.testing.assert_close(TransformersModel(encoder, "embedding", 0)(ids), pruned(ids), atol=1e-5, rtol=1e-4)


def test_export_formats_offer_transformers_only_for_transformers_models(tmp_path: Path) -> None:
    assert "transformers" in pe.export_formats(pe.load_model(save_folder("vit", tmp_path / "vit")))
    digits = load_sample("digits_mlp").model
    assert "transformers" not in pe.export_formats(digits)
    with pytest.raises(TransformersExportError, match="state_dict"):
        pe.export_model(digits, fmt="transformers")


def test_a_zipped_folder_loads_as_the_directory_does(tmp_path: Path) -> None:
    folder = save_folder("bert_classifier", tmp_path / "source")
    from_directory = pe.load_model(folder)
    from_zip = pe.load_model(zipped(folder, top="my-model/"))
    assert pe.loading.detect_format(zipped(folder)) == "transformers"
    with torch.inference_mode():
        torch.testing.assert_close(from_zip(inputs("bert")), from_directory(inputs("bert")))
