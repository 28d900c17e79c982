"""The upload form under AppTest: what a user chose survives a visit to another page, an uploaded model
can bring training data (a file, or half of its evaluation data), and NaN weights load with a warning."""

from __future__ import annotations

import numpy as np
import torch
from streamlit.testing.v1 import AppTest

from sample_models import digits_data, load_sample
from tests.app.test_upload import (
    CSV_EXAMPLES,
    choose_files,
    current,
    digits_csv,
    press_load,
    shown,
    torch_bytes,
    warnings_shown,
)
from ui.shared import keys
from ui.shared.navigation import MODEL_PAGE, PRUNE_PAGE
from workbench import capabilities


def test_the_form_keeps_files_architecture_and_shape_after_visiting_another_page(app: AppTest) -> None:
    cnn = load_sample("digits_cnn").model
    at = choose_files(
        app,
        ("cnn.pt", torch_bytes(cnn.state_dict())),
        architecture="digits_cnn",
        data=("digits.csv", digits_csv()),
        shape="1, 8, 8",
    )
    at.switch_page(PRUNE_PAGE).run()
    at.switch_page(MODEL_PAGE).run()
    assert at.selectbox(key=keys.UPLOAD_ARCHITECTURE).value == "digits_cnn"
    assert at.text_input(key=keys.UPLOAD_INPUT_SHAPE).value == "1, 8, 8"
    assert at.selectbox(key=keys.UPLOAD_LABEL_COLUMN).value == "label"
    assert "Model file: **cnn.pt**, chosen earlier" in shown(at.caption.values)
    at = press_load(at)
    assert not at.exception and not at.error, [error.value for error in at.error]
    assert current(at).name == "cnn.pt"


def test_removing_a_remembered_file_forgets_it(app: AppTest) -> None:
    mlp = load_sample("digits_mlp").model
    at = choose_files(app, ("mlp.pt", torch_bytes(mlp.state_dict())), data=("digits.csv", digits_csv()))
    at.switch_page(PRUNE_PAGE).run()
    at.switch_page(MODEL_PAGE).run()
    at.button(key=keys.upload_forget(keys.UPLOAD_MODEL_FILE)).click().run()
    at = press_load(at)
    assert "Choose a model file first." in [error.value for error in at.error]


def test_an_upload_with_a_training_file_can_recalibrate_and_fine_tune(app: AppTest) -> None:
    mlp = load_sample("digits_mlp").model
    at = choose_files(app, ("mlp.pt", torch_bytes(mlp.state_dict())), data=("digits.csv", digits_csv()))
    at.radio(key=keys.UPLOAD_TRAIN_SOURCE).set_value("file").run()
    at.file_uploader(key=keys.UPLOAD_TRAIN_FILE).upload("train.csv", digits_csv())
    at = press_load(at.run())
    assert not at.exception and not at.error, [error.value for error in at.error]
    bundle = current(at).bundle
    assert bundle.train_data is not None and len(bundle.train_data) == CSV_EXAMPLES
    assert "training data: 120 examples from train.csv" in bundle.description
    assert capabilities.NO_TRAINING not in at.caption.values


def test_splitting_the_evaluation_data_says_so_and_keeps_the_halves_apart(app: AppTest) -> None:
    mlp = load_sample("digits_mlp").model
    at = choose_files(app, ("mlp.pt", torch_bytes(mlp.state_dict())), data=("digits.csv", digits_csv()))
    at.radio(key=keys.UPLOAD_TRAIN_SOURCE).set_value("split")
    at = press_load(at.run())
    assert not at.exception and not at.error
    bundle = current(at).bundle
    assert len(bundle.eval_data) + len(bundle.train_data) == CSV_EXAMPLES
    rows = {tuple(row.tolist()) for row in bundle.eval_data.inputs}
    assert not rows & {tuple(row.tolist()) for row in bundle.train_data.inputs}
    assert "set aside as training data, so accuracy is measured on the other 60" in bundle.description


def test_without_training_data_the_page_says_what_is_missing_and_why(app: AppTest) -> None:
    mlp = load_sample("digits_mlp").model
    at = press_load(choose_files(app, ("mlp.pt", torch_bytes(mlp.state_dict())), data=("digits.csv", digits_csv())))
    assert current(at).bundle.train_data is None
    assert capabilities.NO_TRAINING in at.caption.values


def test_nan_weights_load_with_a_warning_naming_the_tensor(app: AppTest) -> None:
    state = {key: value.clone() for key, value in load_sample("digits_mlp").model.state_dict().items()}
    state["fc1.weight"][0, :3] = torch.tensor([np.nan, np.inf, -np.inf])
    at = press_load(choose_files(app, ("nan.pt", torch_bytes(state)), data=("digits.csv", digits_csv())))
    assert not at.exception and not at.error
    assert current(at).name == "nan.pt"
    assert "NaN or infinite values in 1 tensor(s): fc1.weight (3)" in warnings_shown(at)
    assert digits_data()  # the sample data stays importable for the other tests
