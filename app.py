"""The workbench's entry point: only builds the navigation (pages live in pages/, helpers in ui/).

Page icons are emoji: a `:material/...:` icon would make the browser fetch a favicon from the internet.
"""

import streamlit as st

st.set_page_config(page_title="Nemotron-Agentic Workbench", page_icon="🧭", layout="wide")

pages = [
    st.Page("pages/overview.py", title="Overview", icon="📊", url_path="overview", default=True),
    st.Page("pages/browse.py", title="Browse", icon="🔎", url_path="browse"),
    st.Page("pages/decision_point.py", title="Decision point", icon="🧩", url_path="decision_point"),
    st.Page("pages/runs.py", title="Runs", icon="🏁", url_path="runs"),
    st.Page("pages/failures.py", title="Failures", icon="🩺", url_path="failures"),
    st.Page("pages/compare.py", title="Compare runs", icon="⚖️", url_path="compare"),
    st.Page("pages/annotate.py", title="Annotate", icon="✍️", url_path="annotate"),
    st.Page("pages/campaigns.py", title="Campaigns", icon="🗂️", url_path="campaigns"),
    st.Page("pages/audit.py", title="Grader audit", icon="🔬", url_path="audit"),
]
st.navigation(pages).run()
