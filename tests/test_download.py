"""Download (download.py): offline it fails fast with the way forward; against a local stand-in for the
Hugging Face Hub (a real HTTP server on 127.0.0.1, never the internet) the real code path fetches a file
that then ingests."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nemo_core.cli.main import main
from nemo_core.base.config import HF_FILES, HF_REPO_ID
from nemo_core.data.download import download
from nemo_core.base.errors import DownloadError
from nemo_core.data.ingest import ingest
from nemo_core.data.store import Store

DATA = Path(__file__).resolve().parent / "data"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def hub_env(monkeypatch, tmp_path):
    """Keep huggingface_hub's caches and tokens inside the test, and restore the timeouts download() sets."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "3")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "3")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: connections are refused


def test_offline_fails_fast_and_says_how_to_ingest_local_files(tmp_path):
    started = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download(["tool_calling"], dest=tmp_path / "raw", timeout=2, endpoint=f"http://127.0.0.1:{closed_port()}")
    assert time.monotonic() - started < 15
    line = info.value.one_line()
    assert "\n" not in line
    assert "cannot reach the Hub" in line and "python -m nemo_core ingest" in line
    assert not (tmp_path / "raw").exists()  # nothing half-written


def test_offline_through_the_cli_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    import nemo_core.data.download as download_module

    real = download_module.download
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setattr(download_module, "download", lambda *a, **k: real(*a, **{**k, "endpoint": endpoint}))
    started = time.monotonic()
    code = main(["download", "--split", "interactive_agent", "--dest", str(tmp_path / "raw"), "--timeout", "2"])
    assert time.monotonic() - started < 15
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err and err.startswith("error: ") and "ingest" in err


def test_an_unknown_split_is_refused(tmp_path):
    with pytest.raises(DownloadError, match="unknown split"):
        download(["train"], dest=tmp_path)


class FakeHub(BaseHTTPRequestHandler):
    """Just the Hub API paths `HfApi.dataset_info` and `hf_hub_download` use."""

    files: dict[str, bytes] = {}
    requests: list[str] = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _resolve(self) -> bytes | None:
        prefix = f"/datasets/{HF_REPO_ID}/resolve/"
        if not self.path.startswith(prefix):
            return None
        revision, _, filename = self.path[len(prefix):].partition("/")
        return self.files.get(filename.split("?")[0]) if revision in ("main", COMMIT) else None

    def _file_headers(self, body: bytes) -> None:
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", '"' + hashlib.sha1(body).hexdigest() + '"')
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")

    def do_HEAD(self):
        self.requests.append(f"HEAD {self.path}")
        body = self._resolve()
        if body is None:
            self._not_found(error_code="EntryNotFound")
            return
        self.send_response(200)
        self._file_headers(body)
        self.end_headers()

    def _not_found(self, error_code: str | None = None) -> None:
        self.send_response(404)
        if error_code:
            self.send_header("X-Error-Code", error_code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.requests.append(f"GET {self.path}")
        if self.path.split("?")[0] in (f"/api/datasets/{HF_REPO_ID}", f"/api/datasets/{HF_REPO_ID}/revision/main"):
            payload = json.dumps({
                "_id": "x", "id": HF_REPO_ID, "author": "nvidia", "sha": COMMIT, "private": False, "gated": False,
                "disabled": False, "downloads": 0, "likes": 0, "tags": [], "lastModified": "2025-01-01T00:00:00.000Z",
                "createdAt": "2025-01-01T00:00:00.000Z", "siblings": [{"rfilename": f} for f in self.files],
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        body = self._resolve()
        if body is None:
            self._not_found()
            return
        self.send_response(200)
        self._file_headers(body)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def fake_hub():
    FakeHub.files = {
        HF_FILES["tool_calling"]: (DATA / "tool_calling_shapes.jsonl").read_bytes(),
        HF_FILES["interactive_agent"]: (DATA / "interactive_agent_shapes.jsonl").read_bytes(),
    }
    FakeHub.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_download_from_a_local_hub_writes_the_raw_files_that_then_ingest(tmp_path, fake_hub):
    dest = tmp_path / "raw"
    paths = download(["tool_calling", "interactive_agent"], dest=dest, timeout=5, endpoint=fake_hub)
    assert set(paths) == {"tool_calling", "interactive_agent"}
    for split, path in paths.items():
        assert path == dest / HF_FILES[split]
        assert path.read_bytes() == FakeHub.files[HF_FILES[split]]
    assert any(r.startswith("GET /api/datasets/") for r in FakeHub.requests)
    assert any(r.startswith("GET /datasets/") and "/resolve/" in r for r in FakeHub.requests)
    with Store.open(tmp_path / "db.sqlite") as store:
        report = ingest(store, list(paths.values()), workers=1)  # the split comes from the file names
        assert report.conversations_stored == 12 and report.rows_rejected == 0
        assert store.counts()["interactive_agent"]["function_call"] == 5


def test_a_file_missing_on_the_hub_is_a_download_error(tmp_path, fake_hub):
    FakeHub.files.pop(HF_FILES["interactive_agent"])
    with pytest.raises(DownloadError, match="interactive_agent.jsonl"):
        download(["interactive_agent"], dest=tmp_path / "raw", timeout=5, endpoint=fake_hub)
