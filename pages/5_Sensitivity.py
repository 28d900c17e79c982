"""Sensitivity: how much each layer can lose, suggested ratios, fine-tuning and sparsity training."""

from ui.sensitivity import page

page.render()
