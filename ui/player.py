"""The cine viewer and the side-by-side player: real frame rate, full resolution, masked sector.

A clip plays from its cine loop (:mod:`echosearch.cine`: every masked frame as an MP4, made once
under ``DATA/cine/``) in the browser's own video element, looping. A small control bar under it
(plain HTML and JavaScript, no network) adds what a reader needs and the browser lacks: play/pause,
one frame back or forward, speed, loop, and the frame number; for two clips it keeps the second in
step with the first, by the same point in the clip (frame fraction) or the same point in the
heartbeat (from each file's recorded heart rate). A slider below shows single frames from the
server too, so stepping works wherever scripts do not run.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import streamlit as st

from echosearch.errors import EchosearchError
from echosearch.search import Engine
from echosearch.ui import clinical

SPEEDS = (0.25, 0.5, 1.0)
FRACTION = "Same point in the clip"
HEARTBEAT = "Same point in the heartbeat"


def cine(eng: Engine, video_id: int):
    """The clip's cine loop (made on first view), or None with the reason on the page."""
    try:
        with st.spinner("Preparing the cine loop (every frame, sector only)…"):
            return eng.cine(int(video_id))
    except EchosearchError as exc:
        st.error(f"Cannot play clip {video_id}: {exc}")
        return None


@st.cache_data(max_entries=6, show_spinner=False)
def _frames(path: str, mtime: float) -> list[bytes]:
    """Every frame of a cine loop as JPEG bytes (small to keep; decoded once per loop)."""
    from PIL import Image

    from echosearch.cine import read_frames

    out = []
    for frame in read_frames(path):
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def frames_of(c) -> list[bytes]:
    return _frames(str(c.path), c.path.stat().st_mtime)


def describe(c) -> str:
    """ "36 frames at 30/s (1.2 s) · 400×300 · heart rate 92/min · ultrasound sector only"."""
    rate = f"{c.fps:g}/s" if c.fps_recorded else f"{c.fps:g}/s (frame rate not recorded; assumed)"
    parts = [f"{c.frames} frames at {rate} ({c.duration_s:.1f} s)", f"{c.width}×{c.height}"]
    if c.heart_rate:
        parts.append(f"heart rate {c.heart_rate:g}/min")
    parts.append("ultrasound sector only")
    return " · ".join(parts)


def video(c, key: str, *, autoplay: bool = True) -> None:
    """The browser's player for a cine loop, in a container the control bar finds by ``key``."""
    with st.container(key=key):
        # Looping is the control bar's (its Loop box sets the element's own loop attribute).
        st.video(str(c.path), format="video/mp4", autoplay=autoplay, muted=True)


def viewer(eng: Engine, video_id: int, key: str) -> None:
    """One clip: the looping player with its control bar, and single frames on demand."""
    c = cine(eng, video_id)
    if c is None:
        return
    st.caption(describe(c))
    video(c, f"{key}-video")
    controls(key, [f"{key}-video"], [c])
    with st.expander("Frame by frame (still images)"):
        n = st.slider("Frame", 1, c.frames, 1, key=f"{key}-frame")
        st.image(frames_of(c)[n - 1], caption=f"frame {n} of {c.frames}", width="stretch")


def sync_modes(a, b) -> list[str]:
    """How two clips can be kept in step: always by frame fraction; by heartbeat when both files
    record a heart rate."""
    return [FRACTION, HEARTBEAT] if a.heart_rate and b.heart_rate else [FRACTION]


def partner_frame(i: int, a, b, mode: str) -> int:
    """The frame of clip ``b`` (0-based) shown with frame ``i`` of clip ``a`` in the given mode."""
    t = (i + 0.5) / a.fps
    if mode == HEARTBEAT and a.cycle_s and b.cycle_s:
        tb = (t / a.cycle_s * b.cycle_s) % b.duration_s
    else:
        tb = t / a.duration_s * b.duration_s
    return min(b.frames - 1, max(0, int(tb * b.fps)))


def side_by_side(eng: Engine, left: Any, right: Any, key: str = "cmp") -> None:
    """Two clips (hits) side by side, playing in step, with a slider that steps both."""
    ca, cb = cine(eng, left.video_id), cine(eng, right.video_id)
    if ca is None or cb is None:
        return
    modes = sync_modes(ca, cb)
    if len(modes) > 1:
        mode = st.radio(
            "Keep in step by",
            modes,
            horizontal=True,
            key=f"{key}-mode",
            help="Heartbeat: each clip's recorded heart rate sets its cycle length; both first frames are "
            "taken as the same point of the cycle (the ECG trace itself is not read).",
        )
    else:
        mode = FRACTION
        st.caption(
            "Kept in step by the same point in the clip (a heart rate is not recorded for both clips)."
        )
    cols = st.columns(2)
    for col, hit, c, side in ((cols[0], left, ca, "left"), (cols[1], right, cb, "right")):
        with col:
            st.markdown(clinical.heading(hit.view, hit.study_date, bold=True))
            st.caption(f"clip {hit.video_id} · " + describe(c))
            video(c, f"{key}-{side}-video")
    controls(key, [f"{key}-left-video", f"{key}-right-video"], [ca, cb], heartbeat=mode == HEARTBEAT)
    with st.expander("Frame by frame, both clips (still images)"):
        i = st.slider("Frame of the left clip", 1, ca.frames, 1, key=f"{key}-frame") - 1
        j = partner_frame(i, ca, cb, mode)
        c1, c2 = st.columns(2)
        c1.image(frames_of(ca)[i], caption=f"left: frame {i + 1} of {ca.frames}", width="stretch")
        c2.image(frames_of(cb)[j], caption=f"right: frame {j + 1} of {cb.frames}", width="stretch")


# ---------------------------------------------------------------- the control bar

_BAR = """
<div id="{id}" class="echo-controls" role="toolbar" aria-label="{label}">
  <button type="button" data-act="toggle" aria-label="Play or pause">Play / pause</button>
  <button type="button" data-act="back" aria-label="One frame back">&#9664; Frame</button>
  <button type="button" data-act="fwd" aria-label="One frame forward">Frame &#9654;</button>
  <label>Speed <select data-act="speed">{speeds}</select></label>
  <label><input type="checkbox" data-act="loop" checked> Loop</label>
  <span class="echo-pos" aria-live="polite"></span>
</div>
<style>
  .echo-controls {{ display:flex; flex-wrap:wrap; gap:.4rem .8rem; align-items:center; font-size:.9rem;
    margin:.2rem 0 .6rem 0; }}
  .echo-controls button {{ padding:.25rem .7rem; border:1px solid rgba(49,51,63,.25); border-radius:.4rem;
    background:white; cursor:pointer; white-space:nowrap; }}
  .echo-controls button:focus-visible, .echo-controls select:focus-visible {{ outline:2px solid #ff4b4b; }}
  .echo-pos {{ color:rgba(49,51,63,.7); font-variant-numeric:tabular-nums; }}
  [class*="-video"] video {{ max-height:68vh; background:#000; }}
</style>
<script>
(function () {{
  const cfg = {cfg};
  const reg = (window.__echoPlayers = window.__echoPlayers || {{}});
  if (reg[cfg.id]) clearInterval(reg[cfg.id]);
  const vids = () => cfg.targets.map((k) => document.querySelector(".st-key-" + k + " video"));
  const frameOf = (v, c) => Math.min(c.frames - 1, Math.max(0, Math.floor(v.currentTime * c.fps + 1e-6)));
  const mapTime = (t) => {{
    const [a, b] = cfg.clips;
    if (cfg.heartbeat) return ((t / a.cycle) * b.cycle) % b.duration;
    return (t / a.duration) * b.duration;
  }};
  const ratio = () => {{
    const [a, b] = cfg.clips;
    return cfg.heartbeat ? b.cycle / a.cycle : b.duration / a.duration;
  }};
  let rate = 1.0;
  const follow = (force) => {{
    const [a, b] = vids();
    if (!a || !b) return;
    const want = mapTime(a.currentTime);
    b.playbackRate = Math.min(16, Math.max(0.0625, rate * ratio()));
    if (force || Math.abs(b.currentTime - want) > 2 / cfg.clips[1].fps) b.currentTime = want;
    if (a.paused !== b.paused) (a.paused ? b.pause() : b.play().catch(() => {{}}));
  }};
  const show = () => {{
    const root = document.getElementById(cfg.id);
    const vs = vids();
    if (!root || !vs[0]) return;
    const pos = root.querySelector(".echo-pos");
    const txt = vs.map((v, i) => v ? "frame " + (frameOf(v, cfg.clips[i]) + 1) + " / " + cfg.clips[i].frames : "");
    pos.textContent = (cfg.targets.length > 1 ? "left " + txt[0] + " · right " + txt[1] : txt[0]);
  }};
  const step = (d) => {{
    const vs = vids();
    const a = vs[0];
    if (!a) return;
    vs.forEach((v) => v && v.pause());
    const c = cfg.clips[0];
    const i = (frameOf(a, c) + d + c.frames) % c.frames;
    a.currentTime = (i + 0.5) / c.fps;
    if (vs.length > 1) follow(true);
  }};
  const bind = () => {{
    const root = document.getElementById(cfg.id);
    if (!root) return false;
    if (root.dataset.bound) return true;
    root.dataset.bound = "1";
    root.addEventListener("click", (e) => {{
      const act = e.target.closest("[data-act]")?.dataset.act;
      const vs = vids();
      if (!vs[0]) return;
      if (act === "toggle") {{
        const play = vs[0].paused;
        vs.forEach((v) => v && (play ? v.play().catch(() => {{}}) : v.pause()));
      }} else if (act === "back") step(-1);
      else if (act === "fwd") step(1);
    }});
    root.addEventListener("change", (e) => {{
      const act = e.target.dataset.act;
      if (act === "speed") {{ rate = parseFloat(e.target.value); vids().forEach((v, i) => v && (v.playbackRate = i ? rate * ratio() : rate)); }}
    }});
    root.addEventListener("keydown", (e) => {{
      if (e.key === "ArrowLeft") {{ step(-1); e.preventDefault(); }}
      if (e.key === "ArrowRight") {{ step(1); e.preventDefault(); }}
    }});
    return true;
  }};
  reg[cfg.id] = setInterval(() => {{
    if (!bind()) return;
    const loop = document.getElementById(cfg.id).querySelector('[data-act="loop"]').checked;
    vids().forEach((v) => v && v.loop !== loop && (v.loop = loop));
    if (cfg.targets.length > 1) follow(false);
    show();
  }}, 100);
}})();
</script>
"""


def controls(key: str, targets: Sequence[str], clips: Sequence[Any], *, heartbeat: bool = False) -> None:
    """The control bar of one player (``targets``: its video containers' keys, the first leads)."""
    cfg = {
        "id": f"echo-ctl-{key}",
        "targets": list(targets),
        "heartbeat": bool(heartbeat),
        "clips": [
            {"fps": c.fps, "frames": c.frames, "duration": c.duration_s, "cycle": c.cycle_s or c.duration_s}
            for c in clips
        ],
    }
    speeds = "".join(
        f'<option value="{s:g}"{" selected" if s == 1.0 else ""}>{s:g}×</option>' for s in SPEEDS
    )
    label = "Cine controls" if len(targets) == 1 else "Controls of both clips"
    html = _BAR.format(id=cfg["id"], label=label, speeds=speeds, cfg=json.dumps(cfg))
    st.html(html, unsafe_allow_javascript=True)


# ---------------------------------------------------------------- the viewer as a dialog


def close_viewer() -> None:
    st.session_state.cine_video = None


def dialog_if_open(eng: Engine) -> None:
    """The cine dialog of the clip whose Play button was pressed (``session_state.cine_video``)."""
    video_id = st.session_state.get("cine_video")
    if video_id is None:
        return
    try:
        hit = eng.video(int(video_id))
    except EchosearchError as exc:
        st.session_state.cine_video = None
        st.error(str(exc))
        return
    title = f"{clinical.heading(hit.view, hit.study_date)} · clip {hit.video_id}"

    def body() -> None:
        viewer(eng, hit.video_id, "cine")

    st.dialog(title, width="large", on_dismiss=close_viewer)(body)()
