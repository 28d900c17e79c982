"""The Sensitivity page: per-layer scans, suggested ratios, pruning in steps and sparsity training."""
