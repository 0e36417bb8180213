"""Nemotron-Agentic Workbench core: decision points, the store, grading. Never imports Streamlit.

Sub-packages by layer, each importing only the ones before it: `base`, `data`, `grading`, `runs`, `people`,
`environment`; `cli` on top. Importing any of them creates nothing in a database: the schema is the named
migrations of `data/schema.py`, applied by `Store.open`.
"""
