"""The Model page: pick a sample or upload a model with its data, and see what it is made of."""
