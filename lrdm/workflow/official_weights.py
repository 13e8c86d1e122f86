"""The authors' weights (top-level config key ``official_weights``): official RDDM checkpoints placed by hand
(``file``, ``page``) or LRDM/RDDM checkpoints on the Hugging Face Hub (``hub``, ``filename``, optional
``revision``, ``sha256``), downloaded by the workflow (:mod:`lrdm.hub`), imported as ``runs/<dataset>/official``
and evaluated like a trained run for the main table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lrdm.errors import ConfigError
from lrdm.hub import DEFAULT_REVISION, HubFile
from lrdm.paths import model_path, official_folder, official_run, score_path
from lrdm.targets import MAIN_TABLE, enabled_targets

OFFICIAL_EXPECTED = "an official RDDM Trainer checkpoint: a model-N.pt holding step, model, opt, ema, scaler"
"""What a placed official file must be (the missing-file message says so)."""
OFFICIAL_REASON = "the authors publish their weights behind links on their page, not at a download URL"
HUB_KEY = "hub"
"""The key that makes an ``official_weights`` entry a Hub source (else ``file`` placed by hand)."""
DOWNLOAD_RECORD = "download.json"
"""What the download rule writes per dataset (``<resources>/official/<dataset>/download.json``): the Hub file,
the commit it resolved to, its place in the Hugging Face cache, its sha256 and size (:meth:`HubDownload.record`)."""


def official_weights(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``official_weights``: per dataset, the placed ``file``, the ``page`` it comes from and the ``set``
    overrides of its import (:func:`lrdm.training.official_checkpoint.import_checkpoint`)."""
    entries = config.get("official_weights") or {}
    return {name: entry for name, entry in entries.items() if entry is not None}


def is_hub_entry(entry: dict[str, Any]) -> bool:
    """Whether an ``official_weights`` entry names a Hub file (downloaded by the workflow)."""
    return HUB_KEY in entry


def official_hub_file(config: dict[str, Any], dataset: str) -> HubFile:
    """The Hub file of the dataset's ``official_weights`` entry; :class:`ConfigError` naming the key for a placed
    one."""
    entry = official_weights(config)[dataset]
    if not is_hub_entry(entry):
        raise ConfigError(
            f"config key official_weights.{dataset}: names a file placed by hand, not a Hub file",
            f"official_weights.{dataset}",
        )
    try:
        return HubFile(
            repo_id=entry[HUB_KEY],
            filename=entry["filename"],
            revision=entry.get("revision", DEFAULT_REVISION),
            sha256=entry.get("sha256"),
        )
    except ValueError as err:  # HubFile checks its own fields
        raise ConfigError(f"config key official_weights.{dataset}: {err}", f"official_weights.{dataset}") from None


def official_record_path(resources: str, dataset: str) -> str:
    """Where the download rule records the dataset's downloaded Hub file (:data:`DOWNLOAD_RECORD`)."""
    return f"{official_folder(resources, dataset)}/{DOWNLOAD_RECORD}"


def official_source(config: dict[str, Any], dataset: str) -> str:
    """Where the dataset's official weights come from, for messages and the plan."""
    entry = official_weights(config)[dataset]
    if is_hub_entry(entry):
        file = official_hub_file(config, dataset)
        return f"downloaded by the workflow from the Hugging Face Hub: {file.describe()} ({file.page})"
    return f"by hand, from {entry.get('page', '?')}"


def read_download_record(path: str | Path) -> dict[str, Any]:
    """The download rule's record (:data:`DOWNLOAD_RECORD`) with its file checked: the file still in the
    Hugging Face cache and of the sha256 recorded; else :class:`lrdm.errors.DownloadError` (gone) or
    :class:`lrdm.errors.ChecksumError` (changed), naming the record, the file and both hashes."""
    from lrdm.errors import ChecksumError, DownloadError
    from lrdm.files import sha256_file

    record = json.loads(Path(path).read_text())
    file = Path(record["path"])
    if not file.is_file():
        raise DownloadError(
            f"{path}: the downloaded file {file} ({record['source']}) is no longer in the Hugging Face cache; "
            f"delete {path} (or run Snakemake with -R download_official) to download it again"
        )
    digest = sha256_file(file)
    if digest != record["sha256"]:
        raise ChecksumError(
            f"{file}: sha256 {digest} differs from the sha256 {record['sha256']} recorded at its download in {path}"
        )
    return record


def official_datasets(config: dict[str, Any]) -> list[str]:
    """Main-table datasets with official weights configured (the main table's official rows)."""
    if MAIN_TABLE not in enabled_targets(config):
        return []
    return [name for name in config["targets"][MAIN_TABLE]["datasets"] if name in official_weights(config)]


def unused_official_weights(config: dict[str, Any]) -> list[str]:
    """One note per ``official_weights`` entry that no enabled target evaluates (its dataset is not in an enabled
    ``targets.main_table.datasets``): such entries are ignored, so an overlay can subset the main table."""
    used = set(official_datasets(config))
    return [
        f"note: config key official_weights.{name} is ignored: {name!r} is not in an enabled "
        f"targets.{MAIN_TABLE}.datasets, the only target that evaluates official weights"
        for name in official_weights(config)
        if name not in used
    ]


def official_model_path(results: str, dataset: str) -> str:
    """The imported run's model (rule import_official)."""
    return model_path(results, official_run(dataset))


def official_score_path(results: str, dataset: str, steps: int | str) -> str:
    """The imported run's scores at ``steps`` steps (rule evaluate_official)."""
    return score_path(results, official_run(dataset), steps)


def official_overrides(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The import's config overrides: the entry's ``set``, and the dataset its score rows name."""
    return {**official_weights(config)[dataset].get("set", {}), "extra": {"dataset": dataset}}


def placed_official_file(config: dict[str, Any], dataset: str) -> str:
    """The dataset's placed official checkpoint (an entry with ``file``); :class:`lrdm.errors.ManualDownloadRequired`
    naming the file, its page and where to put it when it is not there (as a missing manual dataset archive)."""

    from lrdm.data.download import manual_file_message
    from lrdm.errors import ManualDownloadRequired

    entry = official_weights(config)[dataset]
    path = Path(entry["file"])
    if not path.is_file():
        raise ManualDownloadRequired(
            f"official_weights.{dataset}: "
            + manual_file_message(path.name, OFFICIAL_REASON, entry["page"], path, OFFICIAL_EXPECTED)
        )
    return str(path)
