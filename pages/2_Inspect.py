"""Inspect: where a model's parameters sit, what one layer's weights look like, and which channels matter."""

from ui.inspect import page

page.render()
