"""Fetching the raw dataset files with huggingface_hub (raw JSONL, not the `datasets` library, which
rewrites the schema; see SPEC §1)."""

from __future__ import annotations

from pathlib import Path

from ..base.config import HF_FILES, HF_REPO_ID, SPLITS
from ..base.errors import DownloadError

OFFLINE_HINT = (
    "no network access to the Hub here; copy tool_calling.jsonl / interactive_agent.jsonl onto this machine "
    "and run: python -m nemo_core ingest PATH [PATH ...]"
)


def download(splits: list[str], *, revision: str | None = None, dest: Path, timeout: float = 10.0,
             endpoint: str | None = None) -> dict[str, Path]:
    """Download each split's file into `dest`; returns split -> local path.

    A quick reachability check runs first, so an offline machine gets the way forward in seconds
    rather than a long retry loop.
    """
    import os

    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise DownloadError(f"unknown split {unknown[0]!r}", f"choose from {', '.join(SPLITS)}")
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(int(timeout)))
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(int(timeout)))
    try:
        from huggingface_hub import HfApi, hf_hub_download
    except ImportError:  # pragma: no cover - it is in requirements.txt
        raise DownloadError("huggingface_hub is not installed", "pip install -r requirements.txt") from None
    api = HfApi(endpoint=endpoint)
    try:
        api.dataset_info(HF_REPO_ID, revision=revision, timeout=timeout)
    except Exception as exc:  # any failure here means we cannot download: say how to go on
        raise DownloadError(f"cannot reach the Hub for {HF_REPO_ID} ({type(exc).__name__})", OFFLINE_HINT) from None
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for split in splits:
        try:
            path = hf_hub_download(HF_REPO_ID, HF_FILES[split], repo_type="dataset", revision=revision,
                                   local_dir=str(dest), endpoint=endpoint)
        except Exception as exc:
            raise DownloadError(f"download of {HF_FILES[split]} failed ({type(exc).__name__}: {exc})", OFFLINE_HINT) from None
        out[split] = Path(path)
    return out
