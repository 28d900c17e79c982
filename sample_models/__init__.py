"""Sample models for PruneScope: small classifiers trained on scikit-learn's digits.

They ship trained (safetensors files in `weights/`) together with their data, so the
app works offline from the first click::

    from sample_models import list_samples, load_sample

    bundle = load_sample("digits_resnet")   # model, eval_data, train_data, example_input, ...

`python -m sample_models.train` retrains them deterministically.
"""

from .architectures import ARCHITECTURES
from .digits import digits_data
from .registry import SampleInfo, list_samples, load_sample, sample_info

__all__ = ["ARCHITECTURES", "SampleInfo", "digits_data", "list_samples", "load_sample", "sample_info"]
