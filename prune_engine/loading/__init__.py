"""Load user models and evaluation data safely.

`files.py` reads a path or bytes within a size limit; `formats.py` tells a model file's
format from its content, never from its name; `models.py` loads a model (weights into an
architecture; code-carrying formats only when allowed); `eval_data.py` loads evaluation
data and checks it fits the model; `hf_folder.py` builds a transformers model folder with
transformers (never running code from it), `hf_model.py` wraps it for the engine, and
`text_data.py` tokenizes your own text with its tokenizer. Every failure a user can cause
raises a `PruneScopeError`.
"""

from .eval_data import (
    DATA_EXTENSIONS,
    check_data_fits,
    csv_columns,
    load_eval_data,
    random_eval_data,
)
from .files import DEFAULT_MAX_BYTES
from .formats import FORMAT_NAMES, detect_format
from .hf_folder import is_model_folder, load_transformers_folder
from .hf_model import TransformersModel, is_transformers_model
from .models import (
    ALLOW_CODE_ENV_VAR,
    StateDictMismatchError,
    code_loading_allowed,
    load_model,
    nonfinite_weights,
    state_dict_mismatches,
)
from .text_data import MAX_EXAMPLES, TEXT_EXTENSIONS, load_text_data, random_token_data, text_lines

__all__ = [
    "ALLOW_CODE_ENV_VAR",
    "DATA_EXTENSIONS",
    "DEFAULT_MAX_BYTES",
    "FORMAT_NAMES",
    "MAX_EXAMPLES",
    "TEXT_EXTENSIONS",
    "StateDictMismatchError",
    "TransformersModel",
    "check_data_fits",
    "code_loading_allowed",
    "csv_columns",
    "detect_format",
    "is_model_folder",
    "is_transformers_model",
    "load_eval_data",
    "load_model",
    "load_text_data",
    "load_transformers_folder",
    "nonfinite_weights",
    "random_eval_data",
    "random_token_data",
    "state_dict_mismatches",
    "text_lines",
]
