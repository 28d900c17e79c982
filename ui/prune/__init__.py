"""The Prune page: plan settings, per-layer and per-head sliders, the live preview and the result."""
