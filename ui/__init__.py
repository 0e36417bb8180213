"""Streamlit-side helpers shared by the pages (the core, `nemo_core`, never imports Streamlit).

- `db`: the database chosen in the sidebar, the cached store and cached aggregates;
- `safe`: showing dataset text so it stays inert (no Markdown images, links or HTML);
- `listing`: the filtered list's state in the URL;
- `chat`: the conversation replay; `tools_panel`: the tools offered.
"""
