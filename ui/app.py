"""echosearch's browser UI (Streamlit): ``echosearch ui --data DIR`` starts it.

Pages: Search, Query by clip, Study lookup, Compare, Labels, Index status. The Engine is opened once
per process (``st.cache_resource``) and its model loaded in the background after the first page is
drawn; pages only call the Engine.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run` puts this file's folder, not the package's parent, on the path. In a checkout
# (ui/app.py) the repository root goes first so that its echosearch is the one imported; an
# installed wheel (echosearch/ui/app.py) is importable already.
_ROOT = Path(__file__).resolve().parent.parent
if (_ROOT / "echosearch" / "__init__.py").is_file() and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

from echosearch.errors import EchosearchError  # noqa: E402
from echosearch.ui import auth, common, player  # noqa: E402
from echosearch.ui.views import clip, compare, labels, search, status, study  # noqa: E402

RENDER = {
    "Search": search.render,
    "Query by clip": clip.render,
    "Study lookup": study.render,
    "Compare": compare.render,
    "Labels": labels.render,
    "Index status": status.render,
}


def _login_gate(root: Path) -> bool:
    """True when this session may use the UI (no password set, or it logged in)."""
    if st.session_state.get("authed") or auth.password_hash(root) is None:
        return True
    st.title("echosearch")
    with st.form("login"):
        name = st.text_input("Your name (for the audit log)", key="login_name")
        password = st.text_input("Password", type="password", key="login_password")
        if st.form_submit_button("Log in"):
            if auth.check_login(root, password):
                st.session_state.authed = True
                st.session_state.who = f"ui:{name.strip() or 'anonymous'}"
                st.rerun()
            st.error("Wrong password.")
    return False


def main() -> None:
    st.set_page_config(page_title="echosearch", layout="wide")
    root = common.data_dir()
    if not _login_gate(root):
        return
    spaces = common.video_spaces(root)
    if len(spaces) > 1:  # e.g. the demo: a template-tokenizer and a BPE model, one space each
        st.sidebar.selectbox("Model", spaces, key="space", help="The archive is indexed with several models.")
    try:
        eng = common.engine()
    except EchosearchError as exc:
        st.error(str(exc))
        return
    st.sidebar.title("echosearch")
    if "page" not in st.session_state:
        st.session_state.page = common.PAGES[0]
    page = st.sidebar.radio("Page", common.PAGES, key="page")
    if eng.clinical is False:
        st.sidebar.error(common.DEMO_WARNING)
    st.sidebar.caption(f"Model: {eng.model_name}")
    common.layout()
    RENDER[page](eng)
    player.dialog_if_open(eng)
    common.warm_model(eng)  # after the page: its first view does not wait for the model


main()
