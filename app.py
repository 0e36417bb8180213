"""The workbench's entry point: only builds the navigation (pages live in app_pages/, helpers in ui/; not `pages/`, which Streamlit would also auto-discover and list by file name on a deep link).

Page icons are emoji: a `:material/...:` icon would make the browser fetch a favicon from the internet.
"""

import streamlit as st

from ui.admin import admin_controls
from ui.mode import annotate_mode

st.set_page_config(page_title="Nemotron-Agentic Workbench", page_icon="🧭", layout="wide")

pages = [
    st.Page("app_pages/overview.py", title="Overview", icon="📊", url_path="home", default=True),
    st.Page("app_pages/browse.py", title="Browse", icon="🔎", url_path="browse"),
    st.Page("app_pages/decision_point.py", title="Decision point", icon="🧩", url_path="decision_point"),
    st.Page("app_pages/runs.py", title="Runs", icon="🏁", url_path="runs"),
    st.Page("app_pages/failures.py", title="Failures", icon="🩺", url_path="failures"),
    st.Page("app_pages/compare.py", title="Compare runs", icon="⚖️", url_path="compare"),
    st.Page("app_pages/annotate.py", title="Annotate", icon="✍️", url_path="annotate"),
    st.Page("app_pages/campaigns.py", title="Campaigns", icon="🗂️", url_path="campaigns"),
    st.Page("app_pages/audit.py", title="Grader audit", icon="🔬", url_path="audit"),
    # The default page lives at "/" whatever its url_path says, so "/overview" (what the page is called) was
    # "Page not found": this hidden entry serves the same page there.
    st.Page("app_pages/overview.py", title="Overview", icon="📊", url_path="overview", visibility="hidden"),
]
if annotate_mode():
    # A server for annotators: only their queue, so no page can reveal an expected action; and an unexpected
    # error shows no detail (a traceback names the server's files).
    pages = [st.Page("app_pages/annotate.py", title="Annotate", icon="✍️", url_path="annotate", default=True)]
    st.set_option("client.showErrorDetails", "none")
else:
    admin_controls()  # the admin unlock's cookie and Lock button, on every page (nothing is guarded in annotate mode)
st.navigation(pages).run()
