"""Your own paired folders as a dataset (``datasets.<name>.source: folders``), torch-free.

Config (the dataset's ``train`` key stays the run-config override it is for every dataset, so the folders live
under their own key)::

    datasets:
      my_rain:
        source: folders
        task: rain
        protocol: derain_y
        folders:
          train: {input: data/my_rain/train/rainy, target: data/my_rain/train/clean}
          test: {input: data/my_rain/test/rainy, target: data/my_rain/test/clean}
          pattern: {input: "{id}_rain", target: "{id}_clean"}   # optional; default: the stems are equal

An input and a target pair up when their stems give the same ``{id}`` (without ``pattern``: the same stem;
case-sensitive).  Relative folders are relative to the working directory of the workflow.  Every entry of a folder
but hidden ones (a leading ``.``) must be an image file: a dangling link, a folder, a file without an image suffix
or one whose header does not read is an error, never skipped.  Every unmatched file,
every file whose stem does not fit the pattern, every id found twice in a folder (``0.png`` and ``0.jpg``) and
every pair whose input and target sizes differ is an error, all listed in one :class:`~lrdm.errors.DataError`.
:func:`pair_folders` reads only folder listings and image headers, so the DAG check can run it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from lrdm.data.images import IMAGE_SUFFIXES, header_size
from lrdm.errors import ConfigError, DataError
from lrdm.vocab import SPLITS

ID_FIELD = "{id}"
"""The placeholder of ``folders.pattern`` that stands for the shared part of the stems."""
ROLES = ("input", "target")
HIDDEN_PREFIX = "."
"""Folder entries whose name starts with it are skipped (``.DS_Store``, ``.ipynb_checkpoints``)."""
MAX_LISTED = 20
"""Problems named in one error message (the count says how many more there are)."""


def stem_regex(template: str, key: str) -> re.Pattern[str]:
    """``"{id}_rain"`` -> a regex matching whole stems, capturing the id; ``key`` names the config key in errors."""
    if template.count(ID_FIELD) != 1:
        raise ConfigError(f"config key {key}: {template!r} must contain {ID_FIELD} exactly once", key)
    before, after = template.split(ID_FIELD)
    return re.compile(f"^{re.escape(before)}(?P<id>.+){re.escape(after)}$")


def not_an_image_file(path: Path) -> str | None:
    """Why the folder entry ``path`` cannot be read as an image file (a dangling link, a folder, a fifo or other
    special file, a file without an image suffix), or None when it is a file with an image suffix."""
    if path.is_symlink() and not path.exists():
        return f"{path} is a dangling symbolic link (to {os.readlink(path)})"
    if path.is_dir():
        return f"{path} is a folder, not an image file"
    if not path.is_file():
        return f"{path} is not a regular file"
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return f"{path} is not an image file (images end in {', '.join(IMAGE_SUFFIXES)}; hide it with a leading '.')"
    return None


def folder_images(folder: Path, regex: re.Pattern[str], problems: list[str]) -> dict[str, Path | None]:
    """Images directly in ``folder`` keyed by their id (``None`` for an id found twice).  Every entry but hidden
    ones (a leading ``.``) must be an image file: the others (:func:`not_an_image_file`), stems not fitting
    ``regex`` and ids found twice are added to ``problems``."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(HIDDEN_PREFIX):
            continue
        if (why := not_an_image_file(path)) is not None:
            problems.append(why)
            continue
        match = regex.match(path.stem)
        if match is None:
            problems.append(f"{path} does not fit the pattern {regex.pattern}")
        else:
            found.setdefault(match["id"], []).append(path)
    for image_id, paths in found.items():
        if len(paths) > 1:
            problems.append(f"{' and '.join(p.name for p in paths)} in {folder} have the same id {image_id!r}")
    return {image_id: paths[0] if len(paths) == 1 else None for image_id, paths in found.items()}


def _listed(problems: list[str]) -> str:
    shown = "; ".join(problems[:MAX_LISTED])
    more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
    return f"{len(problems)} problem(s): {shown}{more}"


def pair_folders(spec: Mapping[str, Any], name: str) -> pd.DataFrame:
    """Pairs the images of ``datasets.<name>.folders`` -> columns ``image_id, split, input, target, height,
    width`` (absolute paths), sorted by split and id.

    ``image_id`` is ``<split>-<id>``, unique over the splits.  Raises ``ConfigError`` for a missing folder or a
    bad pattern, ``DataError`` listing every unmatched file, ambiguous id and size mismatch."""
    key = f"datasets.{name}.folders"
    pattern = spec.get("pattern") or {role: ID_FIELD for role in ROLES}
    regexes = {role: stem_regex(pattern[role], f"{key}.pattern.{role}") for role in ROLES}
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    for split in SPLITS:
        if split not in spec:
            raise ConfigError(
                f"config key {key}.{split} is missing: give {{input: DIR, target: DIR}}", f"{key}.{split}"
            )
        images = {}
        for role in ROLES:
            folder = Path(spec[split][role]).resolve()
            if not folder.is_dir():
                raise ConfigError(
                    f"config key {key}.{split}.{role}: folder {spec[split][role]} does not exist",
                    f"{key}.{split}.{role}",
                )
            images[role] = folder_images(folder, regexes[role], problems)
        for role, other in (ROLES, ROLES[::-1]):
            for image_id in sorted(set(images[role]) - set(images[other])):
                if images[role][image_id] is not None:  # an ambiguous id is already listed
                    problems.append(f"{images[role][image_id]} has no {other} (id {image_id!r})")
        for image_id in sorted(set(images["input"]) & set(images["target"])):
            pair = {role: images[role][image_id] for role in ROLES}
            if None in pair.values():
                continue  # an ambiguous id, already listed
            try:
                sizes = {role: header_size(path) for role, path in pair.items()}
            except DataError as err:
                problems.append(str(err))
                continue
            if sizes["input"] != sizes["target"]:
                problems.append(
                    f"size mismatch: {pair['input']} is {sizes['input'][1]}x{sizes['input'][0]}, "
                    f"{pair['target']} is {sizes['target'][1]}x{sizes['target'][0]}"
                )
                continue
            height, width = sizes["input"]
            rows.append(
                {
                    "image_id": f"{split}-{image_id}",
                    "split": split,
                    "input": str(pair["input"]),
                    "target": str(pair["target"]),
                    "height": height,
                    "width": width,
                }
            )
    if problems:
        raise DataError(f"{key}: {_listed(problems)}")
    for split in SPLITS:
        if not any(row["split"] == split for row in rows):
            raise DataError(f"{key}.{split}: no image pairs in {spec[split]['input']} and {spec[split]['target']}")
    return pd.DataFrame(rows, columns=["image_id", "split", "input", "target", "height", "width"])
