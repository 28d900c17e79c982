"""Prune: a global slider and one per layer build a pruning plan; small models are pruned as they move."""

from ui.prune import page

page.render()
