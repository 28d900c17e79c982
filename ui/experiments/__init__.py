"""The Experiments page: the history of runs, Pareto charts, plan differences and reloading."""
