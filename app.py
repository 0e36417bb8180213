"""The workbench's entry point: only builds the navigation (pages live in pages/)."""

import streamlit as st

st.set_page_config(page_title="Nemotron-Agentic Workbench", page_icon="🧭", layout="wide")

pages = [
    st.Page("pages/overview.py", title="Overview", icon="📊", default=True),
]
st.navigation(pages).run()
