"""The Inspect page: layers, weight histograms, channel norms and importance by every criterion."""
