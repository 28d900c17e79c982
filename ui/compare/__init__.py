"""The Compare page: original and pruned side by side, latency, per-layer changes and export."""
