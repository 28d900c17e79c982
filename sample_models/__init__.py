"""Sample models for PruneScope, all offline.

Three small classifiers trained on scikit-learn's digits (safetensors files in `weights/`),
the pretrained MiniLM sentence encoder with a sentence set written for this project, and,
with `list_samples(include_large=True)`, two random-weight scale tests (a GPT-2-small-shaped
language model and a 100 M-parameter MLP). Each comes with its evaluation data::

    from sample_models import list_samples, load_sample

    bundle = load_sample("digits_resnet")   # model, eval_data, train_data, example_input, ...

`python -m sample_models.train` retrains the digits models deterministically.
"""

from .architectures import ARCHITECTURES
from .digits import digits_data
from .registry import SampleInfo, list_samples, load_sample, sample_info

__all__ = ["ARCHITECTURES", "SampleInfo", "digits_data", "list_samples", "load_sample", "sample_info"]
