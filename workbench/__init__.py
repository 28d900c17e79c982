"""PruneScope's application logic between the engine and the pages, without Streamlit.

What a session works on (`session`), how controls edit plans and how plans read (`plans`),
what a model can be offered (`capabilities`), the Sensitivity page's task requests and results
(`tasks`), importance scores shaped for charts (`importance_data`) and number formatting (`fmt`).
Everything here is plain Python, tested with plain pytest; `ui/` draws it.
"""
