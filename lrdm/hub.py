"""Files on the Hugging Face Hub (the authors' LRDM weights, dataset archives hosted there), fetched with
``huggingface_hub.hf_hub_download``: one cache (``HF_HOME`` / ``HF_HUB_CACHE``), downloads resumed after a cut,
``HF_HUB_OFFLINE=1`` served from that cache, and a token from the environment (``HF_TOKEN``) or ``hf auth login``
for gated repositories.

:func:`hub_download` returns the cached file with the sha256 of its bytes; a configured sha256 that differs is a
:class:`~lrdm.errors.ChecksumError` naming both, a file the repository does not hold a
:class:`~lrdm.errors.DownloadError` listing the repository's checkpoint files.  ``HF_ENDPOINT`` is read when a
download starts (not when ``huggingface_hub`` was imported), so a test can point it at a local server; so is
``HF_HUB_CACHE``.

This module is imported while Snakemake builds the DAG: it never imports torch, and huggingface_hub only inside
the functions that download.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lrdm.errors import ChecksumError, DownloadError
from lrdm.files import sha256_file

HUB_URL = "https://huggingface.co"
"""The public Hub: where a repository's page is, whatever ``HF_ENDPOINT`` the downloads use."""
ENDPOINT_VARIABLE = "HF_ENDPOINT"
CACHE_VARIABLE = "HF_HUB_CACHE"
OFFLINE_VARIABLE = "HF_HUB_OFFLINE"
REPO_TYPES = ("model", "dataset")
DEFAULT_REVISION = "main"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors", ".bin")
"""File names listed as candidates when a configured checkpoint is not in its repository."""
SNAPSHOTS_FOLDER = "snapshots"
"""Folder of the Hub cache holding one folder per commit (``…/snapshots/<commit>/<filename>``)."""
RESOLVE_URL = re.compile(
    r"^/(?:(?P<datasets>datasets)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$"
)
"""Path of a Hub file URL: ``[/datasets]/<owner>/<name>/resolve/<revision>/<filename>``."""


@dataclass(frozen=True)
class HubFile:
    """One file of a Hub repository: ``repo_id`` (``owner/name``), ``filename`` (path in the repository),
    ``revision`` (branch, tag or commit), ``repo_type`` (``model`` or ``dataset``) and the ``sha256`` it must
    have (None: not pinned)."""

    repo_id: str
    filename: str
    revision: str = DEFAULT_REVISION
    repo_type: str = "model"
    sha256: str | None = None

    def __post_init__(self) -> None:
        if self.repo_type not in REPO_TYPES:
            raise ValueError(f"Hub repo_type must be one of {', '.join(REPO_TYPES)}, got {self.repo_type!r}")
        if self.repo_id.count("/") != 1 or not all(self.repo_id.split("/")):
            raise ValueError(f"Hub repository must be 'owner/name', got {self.repo_id!r}")
        if self.sha256 is not None:
            object.__setattr__(self, "sha256", self.sha256.strip().lower())

    @property
    def page(self) -> str:
        """The repository's page on the public Hub."""
        return f"{HUB_URL}/{'datasets/' if self.repo_type == 'dataset' else ''}{self.repo_id}"

    def describe(self) -> str:
        """``hf://jun0519/lrdm/model-120.pt@main`` (``hf://datasets/…`` for a dataset)."""
        kind = "datasets/" if self.repo_type == "dataset" else ""
        return f"hf://{kind}{self.repo_id}/{self.filename}@{self.revision}"


@dataclass(frozen=True)
class HubDownload:
    """A downloaded :class:`HubFile`: its ``path`` in the Hub cache, the ``commit`` it was resolved to, the
    ``sha256`` and ``size`` of its bytes."""

    file: HubFile
    path: Path
    commit: str | None
    sha256: str
    size: int

    def record(self) -> dict[str, Any]:
        """What the workflow keeps beside an import (JSON-ready)."""
        return {
            "source": self.file.describe(),
            "hub": self.file.repo_id,
            "repo_type": self.file.repo_type,
            "filename": self.file.filename,
            "revision": self.file.revision,
            "commit": self.commit,
            "path": str(self.path),
            "sha256": self.sha256,
            "size": self.size,
        }


def hub_file_from_url(url: str, sha256: str | None = None) -> HubFile | None:
    """The :class:`HubFile` of a ``https://huggingface.co/[datasets/]owner/name/resolve/rev/file`` URL, else
    None (another host, or not a file URL)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or parts.netloc != urlsplit(HUB_URL).netloc:
        return None
    match = RESOLVE_URL.match(parts.path)
    if match is None:
        return None
    return HubFile(
        repo_id=match["repo"],
        filename=match["filename"],
        revision=match["revision"],
        repo_type="dataset" if match["datasets"] else "model",
        sha256=sha256,
    )


def hub_endpoint() -> str | None:
    """``HF_ENDPOINT`` as it is now (None: the library's default, the public Hub)."""
    return os.environ.get(ENDPOINT_VARIABLE) or None


def hub_cache(cache_dir: str | os.PathLike[str] | None = None) -> str | None:
    """``cache_dir``, else ``HF_HUB_CACHE`` as it is now, else None (the library's default under ``HF_HOME``)."""
    if cache_dir is not None:
        return str(cache_dir)
    return os.environ.get(CACHE_VARIABLE) or None


def offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for the cache only (read now, as huggingface_hub reads it)."""
    return os.environ.get(OFFLINE_VARIABLE, "").strip().upper() in ("1", "ON", "YES", "TRUE")


def snapshot_commit(path: Path) -> str | None:
    """The commit of a file in the Hub cache (``…/snapshots/<commit>/<filename>``); None elsewhere."""
    for parent in path.parents:
        if parent.parent.name == SNAPSHOTS_FOLDER:
            return parent.name
    return None


def checkpoint_candidates(file: HubFile, token: str | bool | None = None) -> list[str]:
    """The repository's files whose names end in one of :data:`CHECKPOINT_SUFFIXES`, at ``file.revision``."""
    from huggingface_hub import HfApi

    names = HfApi(endpoint=hub_endpoint(), token=token).list_repo_files(
        file.repo_id, revision=file.revision, repo_type=file.repo_type
    )
    return sorted(name for name in names if name.lower().endswith(CHECKPOINT_SUFFIXES))


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def hub_download(file: HubFile, cache_dir: str | os.PathLike[str] | None = None) -> HubDownload:
    """``file`` from the Hub cache, downloaded first if it is not there (``hf_hub_download``: resumed after a
    cut, from the cache only under ``HF_HUB_OFFLINE``), with the sha256 of its bytes.

    Raises :class:`~lrdm.errors.DownloadError` (one line) when the repository does not hold ``file.filename``
    (naming the checkpoint files it holds), when the repository or revision is unknown or gated (naming the
    token variable), or when offline and not cached; :class:`~lrdm.errors.ChecksumError` when ``file.sha256``
    is set and the bytes differ (the cached copy stays, so a corrected sha256 needs no new download).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = file.describe()
    try:
        path = hf_hub_download(
            file.repo_id,
            file.filename,
            revision=file.revision,
            repo_type=file.repo_type,
            cache_dir=hub_cache(cache_dir),
            endpoint=hub_endpoint(),
            local_files_only=offline(),
        )
    except GatedRepoError as err:
        raise DownloadError(
            f"{where}: the repository {file.page} is gated: accept its terms on that page and set HF_TOKEN "
            f"(or run `hf auth login`) ({_first_line(err)})"
        ) from None
    except RepositoryNotFoundError as err:
        raise DownloadError(
            f"{where}: no repository {file.repo_id!r} ({file.repo_type}) on the Hub, or it is private and no "
            f"token with access is set (HF_TOKEN) ({_first_line(err)})"
        ) from None
    except RevisionNotFoundError:
        raise DownloadError(f"{where}: the repository {file.page} has no revision {file.revision!r}") from None
    except LocalEntryNotFoundError as err:
        if offline():
            raise DownloadError(
                f"{where}: not in the Hugging Face cache and {OFFLINE_VARIABLE} is set: download it once "
                f"online (unset {OFFLINE_VARIABLE}), or copy the cache folder (HF_HUB_CACHE) from a machine "
                "that has it"
            ) from None
        raise DownloadError(f"{where}: cannot reach the Hub and not cached: {_first_line(err)}") from None
    except EntryNotFoundError:
        candidates = checkpoint_candidates(file)
        listed = ", ".join(candidates) if candidates else "none"
        raise DownloadError(
            f"{where}: the repository {file.page} has no file {file.filename!r} at revision {file.revision!r}; "
            f"its checkpoint files: {listed}"
        ) from None
    path = Path(path)
    digest = sha256_file(path)
    if file.sha256 is not None and digest != file.sha256:
        raise ChecksumError(
            f"{where}: sha256 {digest} of the downloaded file {path} differs from the configured sha256 {file.sha256}"
        )
    return HubDownload(file=file, path=path, commit=snapshot_commit(path), sha256=digest, size=path.stat().st_size)


def cached_file(file: HubFile, cache_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """``file``'s copy in the Hub cache if there is one (no network), else None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        file.repo_id, file.filename, cache_dir=hub_cache(cache_dir), revision=file.revision, repo_type=file.repo_type
    )
    return Path(found) if isinstance(found, str) else None
