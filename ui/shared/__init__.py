"""What every page shares: session keys and state, caches, navigation, saving runs, widgets, charts and texts."""
