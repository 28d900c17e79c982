"""Experiments: the history of applied plans, their trade-offs and their differences."""

from ui.experiments import page

page.render()
