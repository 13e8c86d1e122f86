"""The authors' weights (top-level config key ``official_weights``): official RDDM checkpoints placed by hand,
imported as ``runs/<dataset>/official`` and evaluated like a trained run for the main table."""

from __future__ import annotations

from typing import Any

from lrdm.targets import enabled_targets
from lrdm.vocab import OFFICIAL_RUN

OFFICIAL_EXPECTED = "an official RDDM Trainer checkpoint: a model-N.pt holding step, model, opt, ema, scaler"
"""What a placed official file must be (the missing-file message says so)."""
OFFICIAL_REASON = "the authors publish their weights behind links on their page, not at a download URL"


def official_weights(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``official_weights``: per dataset, the placed ``file``, the ``page`` it comes from and the ``set``
    overrides of its import (:func:`lrdm.training.official.import_checkpoint`)."""
    entries = config.get("official_weights") or {}
    return {name: entry for name, entry in entries.items() if entry is not None}


def official_datasets(config: dict[str, Any]) -> list[str]:
    """Main-table datasets with official weights configured (the main table's official rows)."""
    if "main_table" not in enabled_targets(config):
        return []
    return [name for name in config["targets"]["main_table"]["datasets"] if name in official_weights(config)]


def unused_official_weights(config: dict[str, Any]) -> list[str]:
    """One note per ``official_weights`` entry that no enabled target evaluates (its dataset is not in an enabled
    ``targets.main_table.datasets``): such entries are ignored, so an overlay can subset the main table."""
    used = set(official_datasets(config))
    return [
        f"note: config key official_weights.{name} is ignored: {name!r} is not in an enabled "
        "targets.main_table.datasets, the only target that evaluates official weights"
        for name in official_weights(config)
        if name not in used
    ]


def official_score_path(results: str, dataset: str, steps: int | str) -> str:
    return f"{results}/scores/{dataset}/{OFFICIAL_RUN}/steps{steps}.parquet"


def official_overrides(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The import's config overrides: the entry's ``set``, and the dataset its score rows name."""
    return {**official_weights(config)[dataset].get("set", {}), "extra": {"dataset": dataset}}


def placed_official_file(config: dict[str, Any], dataset: str) -> str:
    """The dataset's placed official checkpoint; :class:`lrdm.errors.ManualDownloadRequired` naming the file,
    its page and where to put it when it is not there (as a missing manual dataset archive)."""
    from pathlib import Path

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
