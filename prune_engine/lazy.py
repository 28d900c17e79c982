"""Per-layer tensors computed when read, never all held at once.

A global ranking over a large model reads every layer's scores several times; holding
them all costs as much as the weights (GPT-2 small: 475 MiB of scores, 118 MiB of bool
masks). A `LazyTensors` computes a layer's tensor each time it is read, so the ranking
holds one layer's at a time, at the cost of computing them again on each pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import torch


class LazyTensors(Mapping[str, torch.Tensor]):
    """Layer name → tensor, computed by `compute(name)` each time it is read.

    `shapes` gives each layer's tensor shape, so sizes are known without computing them.
    """

    def __init__(self, shapes: Mapping[str, torch.Size], compute: Callable[[str], torch.Tensor]) -> None:
        self.shapes = dict(shapes)
        self._compute = compute

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.shapes:
            raise KeyError(name)
        return self._compute(name)

    def __contains__(self, name: object) -> bool:
        return name in self.shapes

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)

    def subset(self, names: Sequence[str]) -> LazyTensors:
        """The same tensors for `names` only, still computed when read."""
        return LazyTensors({name: self.shapes[name] for name in names}, self._compute)


def shapes_of(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Size]:
    """Each layer's tensor shape, without computing `LazyTensors`."""
    if isinstance(tensors, LazyTensors):
        return dict(tensors.shapes)
    return {name: tensor.shape for name, tensor in tensors.items()}


def select(tensors: Mapping[str, torch.Tensor], names: Sequence[str]) -> Mapping[str, torch.Tensor]:
    """The tensors of `names` only; `LazyTensors` stay lazy."""
    if isinstance(tensors, LazyTensors):
        return tensors.subset(names)
    return {name: tensors[name] for name in names}


def element_count(tensors: Mapping[str, torch.Tensor]) -> int:
    """How many values the tensors hold in all, without computing `LazyTensors`."""
    return sum(shape.numel() for shape in shapes_of(tensors).values())


def map_layers(
    tensors: Mapping[str, torch.Tensor], function: Callable[[str, torch.Tensor], torch.Tensor]
) -> Mapping[str, torch.Tensor]:
    """`function(name, tensor)` for every layer, each result shaped like its input: computed when read
    if `tensors` are `LazyTensors`, else now."""
    if isinstance(tensors, LazyTensors):
        return LazyTensors(tensors.shapes, lambda name: function(name, tensors[name]))
    return {name: function(name, tensor) for name, tensor in tensors.items()}


def merged(*parts: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """The layers of all `parts` in one mapping (a later part wins); lazy if any part is."""
    if not any(isinstance(part, LazyTensors) for part in parts):
        return {name: tensor for part in parts for name, tensor in part.items()}
    owners = {name: part for part in parts for name in part}
    shapes = {name: shape for part in parts for name, shape in shapes_of(part).items()}
    return LazyTensors(shapes, lambda name: owners[name][name])
