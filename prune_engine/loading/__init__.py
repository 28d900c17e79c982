"""Load user models and evaluation data safely.

`files.py` reads a path or bytes within a size limit; `formats.py` tells a model file's
format from its content, never from its name; `models.py` loads a model (weights into an
architecture; code-carrying formats only when allowed); `eval_data.py` loads evaluation
data and checks it fits the model. Every failure a user can cause raises a `PruneScopeError`.
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
from .models import (
    ALLOW_CODE_ENV_VAR,
    StateDictMismatchError,
    code_loading_allowed,
    load_model,
    nonfinite_weights,
    state_dict_mismatches,
)

__all__ = [
    "ALLOW_CODE_ENV_VAR",
    "DATA_EXTENSIONS",
    "DEFAULT_MAX_BYTES",
    "FORMAT_NAMES",
    "StateDictMismatchError",
    "check_data_fits",
    "code_loading_allowed",
    "csv_columns",
    "detect_format",
    "load_eval_data",
    "load_model",
    "nonfinite_weights",
    "random_eval_data",
    "state_dict_mismatches",
]
