"""Compare: the original and the pruned model side by side, measured the same way."""

from ui.compare import page

page.render()
