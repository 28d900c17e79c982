"""Loading a transformers folder safely: config-named class, sharded and .bin weights, bounded zips,
nothing from the folder ever run; your own text tokenized with the folder's tokenizer."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

import prune_engine as pe
from prune_engine.loading.hf_model import TransformersModel
from tests.engine.hf_folders import SPECIAL, inputs, save_folder, zipped

transformers = pytest.importorskip("transformers")

MARKER_CODE = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\n"


def _with_code(folder: Path, marker: Path) -> None:
    """Add Python files to `folder` that would leave `marker` behind if anything imported them."""
    for name in ("modeling_evil.py", "configuration_evil.py", "tokenization_evil.py"):
        (folder / name).write_text(MARKER_CODE.format(marker=str(marker)))


def _edit_json(path: Path, **changes: object) -> None:
    content = json.loads(path.read_text())
    content.update(changes)
    path.write_text(json.dumps(content))


@pytest.mark.parametrize("as_zip", [False, True])
def test_a_config_asking_for_remote_code_is_refused_and_nothing_runs(tmp_path: Path, as_zip: bool) -> None:
    folder = save_folder("bert", tmp_path / "model")
    marker = tmp_path / "ran.txt"
    _with_code(folder, marker)
    _edit_json(folder / "config.json", auto_map={"AutoModel": "modeling_evil.EvilModel"})
    with pytest.raises(pe.ModelLoadError, match="never runs code"):
        pe.load_model(zipped(folder) if as_zip else folder)
    assert not marker.exists()


def test_an_unknown_model_type_and_an_unknown_class_are_refused(tmp_path: Path) -> None:
    folder = save_folder("bert", tmp_path / "model")
    marker = tmp_path / "ran.txt"
    _with_code(folder, marker)
    _edit_json(folder / "config.json", model_type="evil")
    with pytest.raises(pe.ModelLoadError, match="not an architecture transformers ships"):
        pe.load_model(folder)
    _edit_json(folder / "config.json", model_type="bert", architectures=["EvilForEverything"])
    with pytest.raises(pe.ModelLoadError, match="EvilForEverything"):
        pe.load_model(folder)
    assert not marker.exists()


def test_a_tokenizer_asking_for_remote_code_is_refused(tmp_path: Path) -> None:
    folder = save_folder("bert", tmp_path / "model")
    marker = tmp_path / "ran.txt"
    _with_code(folder, marker)
    _edit_json(folder / "tokenizer_config.json", auto_map={"AutoTokenizer": ["tokenization_evil.Evil", None]})
    with pytest.raises(pe.ModelLoadError, match="tokenizer code"):
        pe.load_model(folder)
    assert not marker.exists()


class _WritesMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (Path(self.marker), "ran"))  # type: ignore[return-value]


def test_pytorch_model_bin_is_read_weights_only(tmp_path: Path) -> None:
    folder = save_folder("bert", tmp_path / "model")
    state = pe.load_model(folder).state_dict()
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    assert isinstance(pe.load_model(folder), TransformersModel)

    marker = tmp_path / "ran.txt"
    with open(folder / "pytorch_model.bin", "wb") as file:
        pickle.dump({"trap": _WritesMarker(marker)}, file)
    with pytest.raises(pe.ModelLoadError, match="weights"):
        pe.load_model(folder)
    assert not marker.exists()


def test_sharded_safetensors_load_through_their_index(tmp_path: Path) -> None:
    whole = pe.load_model(save_folder("gpt2", tmp_path / "whole"))
    folder = save_folder("gpt2", tmp_path / "sharded", max_shard_size="20KB")
    assert (folder / "model.safetensors.index.json").is_file()
    assert len(list(folder.glob("model-*-of-*.safetensors"))) > 1
    sharded = pe.load_model(zipped(folder))
    with torch.inference_mode():
        torch.testing.assert_close(sharded(inputs("gpt2")), whole(inputs("gpt2")))


def test_zip_expansion_is_bounded_before_anything_is_written(tmp_path: Path) -> None:
    folder = save_folder("bert", tmp_path / "model")
    (folder / "vocab.txt").write_bytes(b"\0" * (4 << 20))  # compresses to a few kB
    archive = zipped(folder)
    assert len(archive) < 1 << 20
    with pytest.raises(pe.ModelLoadError, match="expands to"):
        pe.load_model(archive, max_bytes=1 << 20)


def test_a_zip_entry_longer_than_declared_is_refused_as_corrupt(tmp_path: Path) -> None:
    folder = save_folder("bert", tmp_path / "model", with_tokenizer=False)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, path.name)
    lying = bytes(_shorten_entry(bytearray(buffer.getvalue()), "model.safetensors", 10))
    with pytest.raises(pe.ModelLoadError, match="corrupt"):
        pe.load_model(lying)


def _shorten_entry(data: bytearray, name: str, by: int) -> bytearray:
    """Lower the uncompressed size a stored entry declares (local header and central directory) by `by` bytes."""
    encoded = name.encode()
    local = data.index(b"PK\x03\x04")
    while data[local + 30 : local + 30 + len(encoded)] != encoded:
        local = data.index(b"PK\x03\x04", local + 4)
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(encoded)] != encoded:
        central = data.index(b"PK\x01\x02", central + 4)
    for offset in (local + 22, central + 24):
        size = int.from_bytes(data[offset : offset + 4], "little")
        data[offset : offset + 4] = (size - by).to_bytes(4, "little")
    return data


def test_a_folder_without_weights_or_config_says_what_is_missing(tmp_path: Path) -> None:
    folder = save_folder("bert", tmp_path / "model")
    (folder / "model.safetensors").unlink()
    with pytest.raises(pe.ModelLoadError, match="holds no weights"):
        pe.load_model(folder)
    with pytest.raises(pe.ModelLoadError, match=r"no config\.json"):
        pe.load_model(_zip_without_config(folder))


def _zip_without_config(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("weights/tokenizer.json", (folder / "tokenizer.json").read_bytes())
    return buffer.getvalue()


def test_loaded_models_are_marked_by_task(tmp_path: Path) -> None:
    tasks = {family: pe.load_model(save_folder(family, tmp_path / family)) for family in ("bert", "gpt2", "vit")}
    assert pe.is_embedding_model(tasks["bert"]) and not pe.is_language_model(tasks["bert"])
    assert pe.is_language_model(tasks["gpt2"])
    assert tasks["vit"].task == "image_classification" and tasks["vit"].prunescope_task is None


def test_a_causal_lm_gets_perplexity_on_its_own_text_in_unpadded_windows(tmp_path: Path) -> None:
    model = pe.load_model(save_folder("gpt2", tmp_path / "gpt2"))
    text = tmp_path / "story.txt"
    text.write_text("the cat sat on the mat\n\nthe dog ran under the tree\n" * 20)

    data = pe.load_text_data(text, model, max_tokens=16)

    assert data.labels is None and data.inputs.shape[1] == 16
    eos = model.tokenizer.eos_token_id
    assert int((data.inputs == eos).sum()) >= 30 and int(data.inputs.min()) >= len(SPECIAL) - 1
    metrics = pe.evaluate(model, data, reference=model)
    assert 1.0 < metrics["perplexity"] < 3 * model.config.vocab_size
    assert metrics["agreement"] == 1.0


def test_a_classifier_gets_accuracy_from_a_csv_with_label_names(tmp_path: Path) -> None:
    model = pe.load_model(save_folder("bert_classifier", tmp_path / "classifier"))
    table = tmp_path / "reviews.csv"
    table.write_text('review,label\n"a great film, loved it",pos\nawful book,neg\nvery good,pos\nbad,neg\n')

    data = pe.load_text_data(table, model, label_column="label")

    assert data.labels.tolist() == [1, 0, 1, 0]
    assert int((data.inputs[3] == 0).sum()) > 0  # the short line is padded with [PAD] = 0
    assert 0.0 <= pe.evaluate(model, data)["accuracy"] <= 1.0


def test_an_encoder_gets_embedding_fidelity_on_text(tmp_path: Path) -> None:
    model = pe.load_model(save_folder("bert", tmp_path / "bert"))
    text = tmp_path / "lines.txt"
    text.write_text("the cat sat\nthe dog ran quickly\na big red house\nthe small blue tree\n")
    data = pe.load_text_data(text, model)
    pruned = pe.apply_plan(model, pe.PruningPlan(granularity="head", global_ratio=0.5), data.inputs[:1]).model
    metrics = pe.evaluate(pruned, data, reference=model)
    assert {"cosine", "retrieval_agreement"} <= metrics.keys() and metrics["cosine"] < 1.0


def test_without_tokenizer_text_is_refused_and_random_tokens_serve_fidelity(tmp_path: Path) -> None:
    model = pe.load_model(save_folder("gpt2", tmp_path / "bare", with_tokenizer=False))
    text = tmp_path / "lines.txt"
    text.write_text("the cat sat\n")
    with pytest.raises(pe.DataError, match="no tokenizer files"):
        pe.load_text_data(text, model)
    data = pe.loading.random_token_data(model, count=4, tokens=8)
    assert data.inputs.shape == (4, 8) and int(data.inputs.max()) < model.config.vocab_size
    assert pe.evaluate(model, data, reference=model)["agreement"] == 1.0
