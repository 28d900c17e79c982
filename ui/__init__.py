"""Streamlit helpers shared by the pages: session state, cached engine calls, charts, formatting.

The engine (`prune_engine`) knows nothing of Streamlit; this package is the thin layer
that turns engine results into what the pages render.
"""
