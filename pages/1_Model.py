"""Model: choose the model to work on and see what it is made of."""

from ui.model import page

page.render()
