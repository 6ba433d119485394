"""Query by clip: an uploaded clip (DICOM or video), or an indexed clip ("similar clips") -> its labels and
nearest clips, studies and reports."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from echosearch.errors import EchosearchError
from echosearch.fsutil import PRIVATE, atomic_write_bytes
from echosearch.search import Engine
from echosearch.ui import clinical, common, export
from echosearch.uploads import BadUpload, check_upload  # noqa: F401 - shared with the API

MAX_UPLOAD_MB = 200
#: Where uploads go when no data dir is given (tests); the app keeps them in ``<data>/uploads/``.
UPLOAD_DIR = Path(tempfile.gettempdir()) / "echosearch-ui-uploads"
#: An uploaded original (full DICOM header included) is deleted when the session replaces it, and
#: by any later upload once it is older than this, whatever happened to its session.
UPLOAD_TTL_S = 3600


@dataclass
class Upload:
    """A checked upload saved to a private temp file, with a de-identified preview."""

    name: str
    path: Path
    sha256: str
    kind: str  # a format name of echosearch.video.formats: dicom, avi, mp4, mkv, ...
    preview: Path | None = None
    results: dict[str, Any] = field(default_factory=dict)


def purge_uploads(upload_dir: Path, older_than_s: float = UPLOAD_TTL_S) -> int:
    """Delete uploads (and their previews) older than ``older_than_s``; how many files went."""
    import time

    if not upload_dir.is_dir():
        return 0
    cutoff, gone = time.time() - older_than_s, 0
    for path in sorted(upload_dir.rglob("*"), reverse=True):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                gone += 1
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        except OSError:  # another session removed it first
            pass
    return gone


def discard_upload(upload: Upload | None) -> None:
    """Delete an upload's original and preview (the session is done with it)."""
    if upload is None:
        return
    for path in (upload.path, upload.preview):
        if path is not None:
            Path(path).unlink(missing_ok=True)


def save_upload(name: str, data: bytes, upload_dir: Path | None = None) -> Upload:
    """Check an upload (size, type), save it privately and make a preview from the masked frames.

    The preview is built from the frames the reader returns (masked to the ultrasound sector), not
    the raw file, so burned-in patient names outside the sector never reach the screen. The file
    lives in ``upload_dir`` (the data dir's private ``uploads/``) only while the session uses it.
    """
    from echosearch.thumbnails import write_thumbnails
    from echosearch.video import read_clip

    if not data:
        raise BadUpload(f"{name} is empty")
    if len(data) > MAX_UPLOAD_MB * 1024 * 1024:
        raise BadUpload(f"{name} is larger than {MAX_UPLOAD_MB} MB")
    fmt = check_upload(name, data)
    sha = hashlib.sha256(data).hexdigest()
    upload_dir = upload_dir or UPLOAD_DIR
    upload_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    purge_uploads(upload_dir)
    path = upload_dir / f"{sha[:16]}{fmt.suffix}"
    # atomic: another session reading the same upload (same bytes, same name) never sees it half-written
    atomic_write_bytes(path, data, mode=PRIVATE, fsync=False)
    try:
        clip = read_clip(path)  # raises a one-line ClipReadError for anything unreadable
        thumbs = write_thumbnails(upload_dir, sha, clip.frames, clip.fps or 30.0)
    except BaseException:
        path.unlink(missing_ok=True)  # nothing to keep a refused file for
        raise
    return Upload(name=name, path=path, sha256=sha, kind=fmt.name, preview=upload_dir / thumbs.preview)


def _query_results(eng: Engine, target: Any, filters, k: int) -> dict[str, Any]:
    """Labels and nearest clips, studies and reports of a clip (an id or a file path)."""
    out: dict[str, Any] = {}
    for name, call in (
        ("labels", lambda: eng.clip_labels(target)),
        ("clips", lambda: eng.search_clip(target, k=k, filters=filters)),
        ("studies", lambda: eng.patient_candidates(target, k=5)),
        ("reports", lambda: eng.nearest_reports(target, k=3)),
    ):
        try:
            out[name] = call()
        except EchosearchError as exc:
            out[name] = exc
    return out


def render(eng: Engine) -> None:
    from echosearch.video import formats

    st.header("Query by clip")
    filters, k = common.sidebar_filters(eng)
    uploaded = st.file_uploader(
        f"Drop a clip ({formats.describe()})",
        type=None,
        key="uploader",
        help=f"Up to {MAX_UPLOAD_MB} MB. The file stays on this server, in the data dir's private uploads folder, only while you use it.",
    )
    if uploaded is not None:
        current: Upload | None = st.session_state.get("clip_upload")
        data = uploaded.getvalue()
        if current is None or current.sha256 != hashlib.sha256(data).hexdigest():
            discard_upload(current)
            try:
                st.session_state.clip_upload = save_upload(uploaded.name, data, eng.data_dir / "uploads")
                st.session_state.clip_video = None
            except EchosearchError as exc:
                st.session_state.clip_upload = None
                st.error(str(exc))
                return
    upload: Upload | None = st.session_state.get("clip_upload")
    video_id = st.session_state.get("clip_video")
    if upload is not None and video_id is None:
        target: Any = str(upload.path)
        title, preview = f"Uploaded clip: {upload.name}", upload.preview
    elif video_id is not None:
        hit = common.guarded(lambda: eng.video(int(video_id)))
        if hit is None:
            return
        target = int(video_id)
        title, preview = (
            f"Clip {video_id} · {clinical.view_text(hit.view)} · {clinical.date_text(hit.study_date)}",
            hit.preview,
        )
    else:
        st.info("Upload a clip, or press 'Similar clips' on a search result.")
        return

    sig = (str(target), common.filter_signature(filters, k))
    if st.session_state.get("clip_sig") != sig:
        with st.spinner("Reading and embedding the clip…"):
            st.session_state.clip_results = _query_results(eng, target, filters, k)
        st.session_state.clip_sig = sig
    res = st.session_state.clip_results

    st.subheader(title)
    left, right = st.columns([1, 2])
    with left:
        common.animated(str(preview) if preview else None, alt="query clip")
        st.caption("Sector only (burned-in text outside the ultrasound sector is masked).")
        if isinstance(target, int):  # an indexed clip has a cine loop; an upload has its preview
            st.button(
                "Play",
                key="clipq-play",
                icon=":material/play_arrow:",
                type="primary",
                on_click=lambda: st.session_state.update(cine_video=int(video_id)),
            )
    with right:
        st.markdown("**Zero-shot labels**")
        if isinstance(res["labels"], Exception):
            st.error(str(res["labels"]))
        else:
            common.labels_table(eng, res["labels"])
    clips = res["clips"]
    st.subheader("Nearest clips")
    if isinstance(clips, Exception):
        st.error(str(clips))
    else:
        st.caption(f"{len(clips.results)} clips in {clips.elapsed_ms:.0f} ms · " + " · ".join(clips.notes))
        common.card_grid(eng, clips.results, "clipres")
        export.panel(eng, clips.results, "clipres", "similar-clips")
    st.subheader("Nearest studies")
    studies = res["studies"]
    if isinstance(studies, Exception):
        st.error(str(studies))
    else:
        _study_buttons(
            studies.results, "clipstudy", common.reports_for(eng, [h.study_uid for h in studies.results])
        )
    st.subheader("Nearest reports")
    reports = res["reports"]
    if isinstance(reports, Exception):
        st.info(str(reports))
    else:
        for r in reports.results:
            with st.container(border=True):
                st.markdown(f"**similarity {r.score:.2f}** · study {r.study_uid or 'not recorded'}")
                st.caption(r.text)


def _study_buttons(hits: list[Any], prefix: str, reports: dict[str, str] | None = None) -> None:
    st.dataframe(common.study_rows(hits, reports), hide_index=True, width="stretch")
    cols = st.columns(min(len(hits), 5) or 1)
    for i, h in enumerate(hits[:5]):
        cols[i].button(
            f"Open study {i + 1}",
            key=f"{prefix}-{i}",
            help=h.study_uid,
            on_click=common.go("Study lookup", study_q=h.study_uid, study_focus=None),
            width="stretch",
        )
