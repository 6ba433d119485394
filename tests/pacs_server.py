"""A real Orthanc PACS for the tests: its configuration written to a temp dir (HTTP and DICOM on
free loopback ports, the DICOMweb plugin on, HTTP basic auth, a DICOM destination for the test's
listener), started as the ``Orthanc`` server, and driven through its REST API.

Debian's ``orthanc`` and ``orthanc-dicomweb`` packages (``.ci/run`` installs them); :func:`skip_reason`
says why the tests skip where they are absent.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import requests

PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc/plugins", "/usr/local/share/orthanc/plugins")
USER, PASSWORD = "echo-lab", "s3cret-pw"


def dicomweb_plugin() -> Path | None:
    for d in PLUGIN_DIRS:
        for p in sorted(Path(d).glob("libOrthancDicomWeb.so*")) if Path(d).is_dir() else []:
            return p
    return None


def skip_reason() -> str | None:
    """Why a real-Orthanc test cannot run here (None: it can)."""
    if not shutil.which("Orthanc"):
        return "the Orthanc server is not installed (apt-get install orthanc orthanc-dicomweb)"
    if dicomweb_plugin() is None:
        return "Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    """One Orthanc server in ``root`` (start, stop, upload, C-STORE to the listener)."""

    def __init__(self, root: Path, listener_port: int | None = None, listener_aet: str = "ECHOSEARCH"):
        self.root = root
        self.http_port, self.dicom_port = free_port(), free_port()
        self.listener_port = listener_port or free_port()
        self.listener_aet = listener_aet
        self.proc: subprocess.Popen | None = None
        root.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "echosearch-test",
            "StorageDirectory": str(root / "storage"),
            "IndexDirectory": str(root / "storage"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": "ORTHANC",
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD},
            "DicomModalities": {"echosearch": [listener_aet, "127.0.0.1", self.listener_port]},
            "Plugins": [str(dicomweb_plugin())],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "StorageCompression": False,
            "ConcurrentJobs": 2,
            "HttpThreadsCount": 8,
        }
        self.config = root / "orthanc.json"
        self.config.write_text(json.dumps(config, indent=2))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        """The URL ``echosearch index`` takes."""
        return f"dicomweb+{self.url}/dicom-web"

    def start(self, timeout: float = 60.0) -> Orthanc:
        log = open(self.root / "orthanc.log", "ab")  # noqa: SIM115 (the server's lifetime)
        self.proc = subprocess.Popen(["Orthanc", str(self.config)], cwd=self.root, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited: {(self.root / 'orthanc.log').read_text()[-2000:]}")
            try:
                if self.get("/system").ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError("Orthanc did not start in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, auth=(USER, PASSWORD), timeout=30, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.url + path, auth=(USER, PASSWORD), timeout=120, **kw)

    def upload(self, files) -> list[dict]:  # noqa: ANN001
        """POST each DICOM file to ``/instances``; Orthanc's answers (ID, ParentStudy, Status)."""
        out = []
        for f in files:
            r = self.post("/instances", data=Path(f).read_bytes())
            r.raise_for_status()
            out.append(r.json())
        return out

    def store_to_listener(self, study_id: str) -> dict:
        """C-STORE one study (Orthanc's ID) to the listener (the ``echosearch`` modality)."""
        r = self.post("/modalities/echosearch/store", json={"Resources": [study_id], "Synchronous": True})
        r.raise_for_status()
        return r.json()
