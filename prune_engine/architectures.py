"""Architectures a state_dict can be loaded into: named zero-argument model factories.

A weights-only file (safetensors, a `torch.save` of a state_dict) holds tensors but no
code, so loading it needs the model class it was saved from. PruneScope finds those
classes in Python modules that define::

    ARCHITECTURES: dict[str, Callable[[], nn.Module]]

Sources, later ones winning on a name clash:

1. the modules in `DEFAULT_MODULES` (the sample models), imported by name when they are
   importable, so the engine also works without them;
2. the files named by the environment variable `PRUNESCOPE_ARCHITECTURES` (paths
   separated by `os.pathsep`): local code the operator chose to trust. Uploaded files
   are never imported;
3. factories registered by a script or test with `register_architecture`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

from torch import nn

from .errors import ModelLoadError

logger = logging.getLogger(__name__)

ENV_VAR = "PRUNESCOPE_ARCHITECTURES"
"""Environment variable: operator-chosen Python files defining `ARCHITECTURES`."""

DEFAULT_MODULES: list[str] = ["sample_models.architectures"]
"""Modules imported by name (when importable) for their `ARCHITECTURES`."""

Factory = Callable[[], nn.Module]

_registered: dict[str, Factory] = {}
_file_cache: dict[tuple[str, int], dict[str, Factory]] = {}


def register_architecture(name: str, factory: Factory) -> None:
    """Make `factory` (a zero-argument callable returning a model) loadable as `name`."""
    if not isinstance(name, str) or not name:
        raise ModelLoadError("An architecture name must be a non-empty string.")
    if not callable(factory):
        raise ModelLoadError(f"The factory for architecture {name!r} must be callable, got {type(factory).__name__}.")
    _registered[name] = factory


def unregister_architecture(name: str) -> None:
    """Forget an architecture added with `register_architecture` (no error if absent)."""
    _registered.pop(name, None)


def architecture_registry() -> dict[str, Factory]:
    """Every known architecture name → factory, from all sources (read afresh each call)."""
    registry: dict[str, Factory] = {}
    for module_name in DEFAULT_MODULES:
        module = _import_default(module_name)
        if module is not None:
            registry.update(_architectures_of(module, module_name))
    for path in _operator_files():
        registry.update(_load_operator_file(path))
    registry.update(_registered)
    return registry


def list_architectures() -> list[str]:
    """The names `build_architecture` and `load_model(..., architecture=name)` accept, sorted."""
    return sorted(architecture_registry())


def build_architecture(name: str) -> nn.Module:
    """A fresh, untrained model of the architecture registered as `name`."""
    registry = architecture_registry()
    if name not in registry:
        known = ", ".join(sorted(registry)) or "none"
        raise ModelLoadError(
            f"Unknown architecture {name!r}. Registered architectures: {known}. "
            f"To add your own, list a Python file defining ARCHITECTURES in {ENV_VAR}."
        )
    try:
        model = registry[name]()
    except Exception as error:  # operator code: any failure is reported, not propagated raw
        raise ModelLoadError(f"Building architecture {name!r} failed: {type(error).__name__}: {error}") from error
    if not isinstance(model, nn.Module):
        raise ModelLoadError(
            f"The factory for architecture {name!r} returned {type(model).__name__}, not a torch.nn.Module."
        )
    return model


def _import_default(module_name: str) -> ModuleType | None:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            logger.debug("Architecture module %s is not installed; skipping it.", module_name)
            return None
        raise ModelLoadError(f"Importing architecture module {module_name!r} failed: {error}") from error
    except Exception as error:
        raise ModelLoadError(
            f"Importing architecture module {module_name!r} failed: {type(error).__name__}: {error}"
        ) from error


def _operator_files() -> list[Path]:
    value = os.environ.get(ENV_VAR, "")
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]


def _load_operator_file(path: Path) -> dict[str, Factory]:
    """Import one operator-chosen Python file (cached by path and modification time)."""
    if not path.is_file():
        raise ModelLoadError(f"{ENV_VAR} names {str(path)!r}, which is not a file; fix the path or remove it.")
    resolved = path.resolve()
    key = (str(resolved), resolved.stat().st_mtime_ns)
    if key in _file_cache:
        return _file_cache[key]
    module_name = "prunescope_architectures_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"{ENV_VAR} names {str(path)!r}, which Python cannot import; give a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # operator code: report any failure with its type
        sys.modules.pop(module_name, None)
        raise ModelLoadError(
            f"Importing architecture file {str(path)!r} (from {ENV_VAR}) failed: {type(error).__name__}: {error}"
        ) from error
    architectures = _architectures_of(module, str(path))
    _file_cache[key] = architectures
    return architectures


def _architectures_of(module: ModuleType, origin: str) -> dict[str, Factory]:
    architectures = getattr(module, "ARCHITECTURES", None)
    if architectures is None:
        raise ModelLoadError(
            f"{origin!r} defines no ARCHITECTURES; add `ARCHITECTURES = {{'name': ModelClass}}` "
            "mapping names to zero-argument model factories."
        )
    if not isinstance(architectures, Mapping):
        raise ModelLoadError(
            f"ARCHITECTURES in {origin!r} is a {type(architectures).__name__}; "
            "it must be a dict of name → zero-argument model factory."
        )
    bad = [repr(name) for name, factory in architectures.items() if not isinstance(name, str) or not callable(factory)]
    if bad:
        raise ModelLoadError(
            f"ARCHITECTURES in {origin!r} has entries that are not name → callable: {', '.join(bad[:5])}."
        )
    return dict(architectures)
