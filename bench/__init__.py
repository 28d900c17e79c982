"""Benchmarks that print tables (speed, memory, accuracy retained); run each with
`python -m bench.<name>` from the repository root, or all with `make bench`."""
