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


def _session_id() -> str | None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def _client() -> str:
    """Whom the per-client login throttle counts: the browser's address; behind a reverse proxy on
    this machine (Streamlit then reports no address), the address that proxy appended last to
    X-Forwarded-For (the client cannot forge that entry); else this session."""
    try:
        ip = st.context.ip_address
        forwarded = None if ip else st.context.headers.get("X-Forwarded-For")
    except Exception:  # no server (AppTest)
        ip = forwarded = None
    if isinstance(ip, str) and ip:
        return ip
    if isinstance(forwarded, str) and forwarded.strip():
        return forwarded.split(",")[-1].strip()
    return f"session:{_session_id()}"


def _wait_text(seconds: float) -> str:
    return f"{int(seconds // 60) + 1} minutes" if seconds > 90 else f"{int(seconds) + 1} seconds"


def _login_gate(root: Path) -> bool:
    """True when this session may use the UI: it logged in with an enabled account, or the archive
    has no account at all (this machine only: `echosearch ui` refuses other addresses then)."""
    from echosearch.accounts import Caller
    from echosearch.whoami import os_user

    accounts = common.accounts()
    sid = _session_id()
    if not accounts.has_accounts():
        if auth.password_hash(root) is not None:  # it had a gate: never open it without accounts
            st.title("echosearch")
            st.error(auth.LEGACY_PASSWORD_NOTE)
            return False
        st.session_state.caller = Caller(os_user(), "admin", "ui")
        st.session_state.open_mode = True
        auth.mark_authed(sid)
        return True
    if st.session_state.pop("open_mode", False):  # accounts were added since: log in like everyone
        st.session_state.pop("caller", None)
    current = common.caller()
    if current is not None:
        role = accounts.active_role(current.name)
        if role is not None:
            current.role = role
            auth.mark_authed(sid)
            return True
        st.session_state.pop("caller", None)  # disabled meanwhile: this session ends too
    auth.forget(sid)
    st.title("echosearch")
    with st.form("login"):
        name = st.text_input("Account", key="login_name")
        password = st.text_input("Password", type="password", key="login_password")
        if st.form_submit_button("Log in"):
            result = accounts.login(name, password, client=_client())
            if result.ok:
                st.session_state.caller = result.caller
                st.session_state.who = result.caller.who
                auth.mark_authed(sid)
                st.rerun()
            elif result.reason == "client_locked":
                st.error(
                    f"Too many failed logins from here: try again in {_wait_text(result.retry_after_s)}."
                )
            elif result.reason == "locked":
                st.error(
                    f"Too many failed logins for this account: try again in {_wait_text(result.retry_after_s)} "
                    "(or ask an admin: `echosearch users reset`)."
                )
            else:
                st.error("Wrong account name or password.")
    return False


def _account_sidebar() -> None:
    current = common.caller()
    if current is None:
        return
    if st.session_state.get("open_mode"):
        st.sidebar.caption(
            f"No accounts: local use as {current.name} (`echosearch users add` to require logins)"
        )
        return
    st.sidebar.caption(f"Logged in as **{current.name}** ({current.role})")
    if st.sidebar.button("Log out", key="logout"):
        for key in ("caller", "who"):
            st.session_state.pop(key, None)
        auth.forget(_session_id())
        st.rerun()


def main() -> None:
    st.set_page_config(page_title="echosearch", layout="wide")
    auth.guard_server_uploads()  # before anything else: no upload is kept for a session not logged in
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
    _account_sidebar()
    RENDER[page](eng)
    player.dialog_if_open(eng)
    common.warm_model(eng)  # after the page: its first view does not wait for the model


main()
