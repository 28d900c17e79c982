"""The Streamlit layer: `shared` is what every page uses, and each other package is one page.

A page package imports `ui.shared`, `workbench` and the engine, never another page's package
(`tests/test_layering.py` checks it). The scripts in `pages/` only call their package's `render()`.
"""
