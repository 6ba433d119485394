"""The UI in a real browser: `echosearch ui` on localhost, driven by Playwright with Debian's Chromium.

A clinician's path: type a query and see result cards, open "similar clips", upload a clip, open a
study, look at labels and the index status. Screenshots of each step go to test-artifacts/ui/.
"""

from __future__ import annotations

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
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(WAIT_MS)
        page.goto(ui_server)
        yield page
        browser.close()


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


def test_clinician_path(page, ui_archive):
    from playwright.sync_api import expect

    # search in a clinician's words: see how it was read, result cards with latency and previews
    box = page.get_by_label("Describe what you are looking for", exact=True)
    box.fill("severely dilated LV, no effusion")
    box.press("Enter")
    expect(page.get_by_text("results in", exact=False)).to_be_visible()
    expect(page.get_by_text("SEVERE DILATED LEFT VENTRICLE.", exact=False).first).to_be_visible()
    expect(page.get_by_role("button", name="Similar clips").first).to_be_visible()
    expect(page.locator("img.echo-preview").first).to_be_visible()
    _shot(page, "01-search.png")

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

    # open a study by accession number: clips, nearest studies, the patient's timeline
    accession = next(p.parent.name for p in sorted(ui_archive["archive"].rglob("*.dcm")))
    _page(page, "Study lookup")
    box = page.get_by_label("Study Instance UID, accession number or MRN", exact=True)
    box.fill(accession)
    box.press("Enter")
    expect(page.get_by_text("Nearest studies", exact=True)).to_be_visible()
    expect(page.get_by_text("This patient's studies", exact=True)).to_be_visible()
    _shot(page, "05-study.png")

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
