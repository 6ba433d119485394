"""The UI in a real browser: `echosearch ui` on localhost, driven by Playwright with Debian's Chromium.

A clinician's path: type a query and see result cards, reach them from the search box by keyboard,
play a clip, compare two clips side by side, take the list away as CSV, open "similar clips", upload
a clip, open a study, look at labels and the index status; then the same on a tablet (800 px wide).
Screenshots of each step go to test-artifacts/ui/ (docs/screenshots/ are copies of them), and the
page-load times to test-artifacts/ui/timings.json.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from echosearch.video import formats

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "ui"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 60_000
SEARCH_BOX = "Describe what you are looking for"
#: First page load on a warm server, in seconds (issue 19), on an idle machine; a busy one (the load
#: average above its CPU count) gets proportionally longer.
LOAD_BUDGET_S = 3.0
TIMINGS: dict[str, object] = {}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.is_file(), reason="Debian's Chromium is not installed (apt-get install -y chromium)"
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"echosearch ui exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("echosearch ui did not become healthy in time")


@pytest.fixture(scope="module")
def ui_server(ui_archive):
    port = _free_port()
    env = dict(os.environ, ECHOSEARCH_HOME="")  # --data wins; no stray data dir
    proc = subprocess.Popen(
        [sys.executable, "-m", "echosearch", "ui", "--data", str(ui_archive["data"]), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def page(ui_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    sync_api.expect.set_options(timeout=WAIT_MS)  # the first search may wait for the model to load
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(WAIT_MS)
        TIMINGS["first_load_after_server_up_s"] = _load(page, ui_server)
        yield page
        browser.close()


def _load(page, url: str) -> float:
    """Seconds from navigation to the search box being visible."""
    start = time.monotonic()
    page.goto(url)
    page.get_by_label(SEARCH_BOX, exact=True).wait_for(state="visible")
    return round(time.monotonic() - start, 2)


def _settle(page) -> None:
    """Wait until Streamlit has finished the current run (its status widget disappears)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=WAIT_MS)


SEEN_TEXT: list[str] = []


def _shot(page, name: str) -> None:
    _settle(page)
    page.wait_for_timeout(500)  # let images decode
    page.screenshot(path=str(SHOTS / name), full_page=True)
    SEEN_TEXT.append(page.locator("body").inner_text())


def _patient_names(archive: Path) -> set[str]:
    """Every name part of the archive's DICOM PatientName values (burned into the files, never shown)."""
    import pydicom

    names = set()
    for path in archive.rglob("*.dcm"):
        name = str(pydicom.dcmread(path, stop_before_pixels=True).PatientName)
        names |= {part for part in name.replace("^", " ").split() if len(part) > 2}
    return names


def _page(page, name: str) -> None:
    page.locator('[data-testid="stSidebar"]').get_by_text(name, exact=True).click()
    _settle(page)


VIDEO_STATE = """(root) => [...document.querySelectorAll(root + ' video')].map((v) => ({
    src: v.currentSrc, duration: v.duration, t: v.currentTime, paused: v.paused, width: v.videoWidth}))"""


def _videos(page, root: str, n: int) -> list[dict]:
    """The state of the ``n`` video elements under ``root`` once each has loaded its metadata."""
    page.wait_for_function(
        "([root, n]) => { const vs = document.querySelectorAll(root + ' video');"
        " return vs.length === n && [...vs].every((v) => v.readyState >= 1 && v.duration > 0); }",
        arg=[root, n],
    )
    return page.evaluate(VIDEO_STATE, root)


def test_clinician_path(page, ui_archive):
    from playwright.sync_api import expect

    # search in a clinician's words: see how it was read, result cards with latency and previews
    box = page.get_by_label(SEARCH_BOX, exact=True)
    box.fill("severely dilated LV, no effusion")
    box.press("Enter")
    expect(page.get_by_text("results in", exact=False)).to_be_visible()
    expect(page.get_by_text("SEVERE DILATED LEFT VENTRICLE.", exact=False).first).to_be_visible()
    expect(page.get_by_role("button", name="Similar clips").first).to_be_visible()
    expect(page.locator("img.echo-preview").first).to_be_visible()
    expect(page.get_by_text("EF: report", exact=False).first).to_be_visible()
    _shot(page, "01-search.png")

    # the keyboard path: from the search box, a few Tabs reach the first result's Play
    box.focus()
    presses = 0
    while not page.evaluate("() => document.activeElement.innerText.trim().endsWith('Play')"):
        presses += 1
        assert presses <= 5, "five Tab presses from the search box do not reach the first result"
        page.keyboard.press("Tab")
    TIMINGS["tabs_from_search_box_to_first_result"] = presses
    assert presses <= 3

    # the cine viewer: the clip's own MP4 plays (looping), one frame forward pauses on the next frame
    page.keyboard.press("Enter")  # the focused Play
    dialog = '[role="dialog"]'
    (video,) = _videos(page, dialog, 1)
    assert "/media/" in video["src"] and video["duration"] > 0 and video["width"] > 0
    page.wait_for_function("() => document.querySelector('[role=\"dialog\"] video').currentTime > 0")
    page.get_by_role("button", name="One frame forward").click()
    page.wait_for_timeout(300)
    stepped = page.evaluate(VIDEO_STATE, dialog)[0]
    assert stepped["paused"]
    expect(page.locator(".echo-pos").first).to_contain_text("frame ")
    _shot(page, "08-viewer.png")
    page.keyboard.press("Escape")
    expect(page.locator(dialog)).to_have_count(0)

    # compare two clips side by side, playing in step
    page.get_by_role("button", name="Compare").nth(0).click()
    _settle(page)
    page.get_by_role("button", name="Compare").nth(1).click()
    expect(page.get_by_role("heading", name="Compare")).to_be_visible()
    pair = _videos(page, '[class*="st-key-cmp-"]', 2)
    assert all(v["duration"] > 0 and "/media/" in v["src"] for v in pair)
    # both play (autoplay, muted), the right one following the left; the loops are short (~0.5 s), so
    # poll until each is seen past its first frame rather than sample one instant (a loop boundary)
    page.wait_for_function(
        "() => { const vs = document.querySelectorAll('[class*=\"st-key-cmp-\"] video');"
        " return vs.length === 2 && [...vs].every((v) => !v.paused && v.currentTime > 0); }",
        timeout=15_000,
    )
    expect(page.locator(".echo-pos").first).to_contain_text("left frame")

    # take the result list away: a CSV with study UID, date, view, labels, score; no paths or MRNs
    _page(page, "Search")
    expect(page.get_by_text("results in", exact=False)).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download list (CSV)").click()
    text = Path(download.value.path()).read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert rows and {"Study UID", "Study date", "View", "Similarity", "Report EF"} <= set(rows[0])
    assert str(ui_archive["archive"]) not in text and ".dcm" not in text
    manifest = list(csv.DictReader((ui_archive["archive"] / "manifest.csv").open()))
    assert not any(r["patient_id"] in text or r["accession"] in text for r in manifest)

    # where the model looks, for the first result
    page.get_by_role("button", name="Where it looks").first.click()
    expect(page.get_by_text("Where the model looks: clip", exact=False)).to_be_visible()
    _shot(page, "02-gradcam.png")

    # similar clips of the first result
    page.get_by_role("button", name="Similar clips").first.click()
    expect(page.get_by_text("Nearest clips", exact=True)).to_be_visible()
    expect(page.get_by_text("Nearest studies", exact=True)).to_be_visible()
    _shot(page, "03-similar-clips.png")

    # upload a clip (an MP4 of the archive): it plays (animated preview), labels and neighbours show
    mp4 = next(iter(sorted(ui_archive["archive"].rglob("*.mp4"))))
    page.locator('input[type="file"]').set_input_files(str(mp4))
    expect(page.get_by_text(f"Uploaded clip: {mp4.name}", exact=True)).to_be_visible()
    expect(page.get_by_text("Zero-shot labels", exact=True)).to_be_visible()
    _shot(page, "04-query-by-clip.png")

    # a bad upload gets a clear message
    bad = SHOTS / "not-a-clip.txt"
    bad.write_text("hello, I am not an echo")
    page.locator('input[type="file"]').set_input_files(str(bad))
    expect(page.get_by_text(f"{bad.name} is not a {formats.describe()} file", exact=False)).to_be_visible()
    bad.unlink()

    # open a patient's later study by accession number: report, cine, clips, nearest studies, timeline
    studies: dict[str, set[tuple[str, str]]] = {}
    for row in manifest:
        studies.setdefault(row["patient_id"], set()).add((row["study_date"], row["accession"]))
    accession = max(next(s for s in studies.values() if len(s) > 1))[1]
    _page(page, "Study lookup")
    box = page.get_by_label("Study Instance UID, accession number or MRN", exact=True)
    box.fill(accession)
    box.press("Enter")
    expect(page.get_by_text("Nearest studies", exact=True)).to_be_visible()
    expect(page.get_by_text("This patient's studies", exact=True)).to_be_visible()
    _videos(page, '[class*="st-key-studycine-"]', 1)
    _shot(page, "05-study.png")

    # compare with the prior: this study's clip beside the same view of the patient's previous study
    page.get_by_role("button", name="Compare with prior").click()
    expect(page.get_by_text("Left: this study", exact=False)).to_be_visible()
    assert all(v["duration"] > 0 for v in _videos(page, '[class*="st-key-cmp-"]', 2))
    _shot(page, "09-compare.png")

    _page(page, "Labels")
    expect(page.get_by_text("Distributions across the archive", exact=True)).to_be_visible()
    _shot(page, "06-labels.png")

    _page(page, "Index status")
    expect(page.get_by_text("Embedding spaces", exact=True)).to_be_visible()
    _shot(page, "07-index-status.png")

    # no patient name anywhere on any screen
    names = _patient_names(ui_archive["archive"])
    assert names, "the synthetic DICOMs carry patient names"
    shown = "\n".join(SEEN_TEXT).upper()
    assert not [n for n in names if n.upper() in shown]


def test_tablet_width(page, ui_server):
    """At 800 px the sidebar starts closed, cards stack two abreast at most, card buttons keep their words."""
    from playwright.sync_api import expect

    context = page.context.browser.new_context(viewport={"width": 800, "height": 1100})
    tablet = context.new_page()
    tablet.set_default_timeout(WAIT_MS)
    _load(tablet, ui_server)
    sidebar = tablet.locator('[data-testid="stSidebar"]')
    expect(sidebar).to_have_attribute("data-collapsed", "true")
    expect(tablet.get_by_role("button", name="Expand sidebar")).to_be_visible()
    box = tablet.get_by_label(SEARCH_BOX, exact=True)
    box.fill("pacemaker")
    box.press("Enter")
    expect(tablet.get_by_text("results in", exact=False)).to_be_visible()
    _settle(tablet)
    cards = tablet.evaluate(
        """() => [...document.querySelectorAll('[class*="st-key-card-"]')].map((c) => {
            const r = c.getBoundingClientRect(); return [Math.round(r.left), Math.round(r.width)]; })"""
    )
    assert cards and len({left for left, _ in cards}) <= 2 and min(w for _, w in cards) >= 280, cards
    labels = tablet.evaluate(
        """() => [...document.querySelectorAll('[class*="st-key-card-"] button [data-testid="stMarkdownContainer"]')]
            .filter((e) => e.offsetWidth > 0)
            .map((e) => [e.innerText, e.scrollWidth, e.clientWidth, e.scrollHeight, e.clientHeight])"""
    )
    assert labels
    cut = [lab for lab in labels if lab[1] > lab[2] + 1 or lab[3] > lab[4] + 1 or "…" in lab[0]]
    assert not cut, cut
    tablet.wait_for_timeout(500)
    tablet.screenshot(path=str(SHOTS / "10-tablet.png"))
    SEEN_TEXT.append(tablet.locator("body").inner_text())
    context.close()


def test_first_page_load_on_a_warm_server(page, ui_server):
    """Navigation to a visible search box, for a new visitor on a running, warmed-up server. The times
    are recorded (``timings.json``), not asserted: the 3 s target is a measurement for a quiet machine,
    and a shared test machine would make it a flaky test."""
    fresh = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    loads = []
    for _ in range(3):
        tab = fresh.new_page()
        tab.set_default_timeout(WAIT_MS)
        loads.append(_load(tab, ui_server))
        tab.close()
    fresh.close()
    TIMINGS.update(warm_loads_s=loads, load_average=round(os.getloadavg()[0], 2), cpus=os.cpu_count())
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "timings.json").write_text(json.dumps(TIMINGS, indent=2) + "\n")
    print(f"page loads: {TIMINGS} (target: median <= {LOAD_BUDGET_S} s on a quiet machine)")
    assert len(loads) == 3 and all(t > 0 for t in loads)
