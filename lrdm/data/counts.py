"""Whether a prepared registry dataset holds the pairs it should: the registry's expected count per split, or
what the config accepts (``datasets.<name>.expected_pairs``), so a partial download never trains silently."""

from __future__ import annotations

from collections.abc import Mapping

from lrdm.errors import ConfigError, DataError

ANY_PAIR_COUNT = "any"
"""``datasets.<name>.expected_pairs`` value that accepts whatever pairs were found."""
PAIR_COUNT_TOLERANCE = 0.01
"""Largest relative difference from the registry's count of a split that still passes (1 %: a few pairs a
release adds or drops); beyond it the preparation fails."""


def expected_pairs_key(name: str) -> str:
    return f"datasets.{name}.expected_pairs"


def check_pair_counts(
    name: str, counts: Mapping[str, int], expected: Mapping[str, int], accepted: int | str | None = None
) -> None:
    """Raises :class:`DataError` when the pairs found per split (``counts``) are off from the registry's
    ``expected`` by more than :data:`PAIR_COUNT_TOLERANCE`, naming the dataset, the counts and the config key that
    accepts them.  ``accepted`` (the config's ``expected_pairs``): :data:`ANY_PAIR_COUNT` checks nothing; an integer
    is the total number of pairs (all splits) the user says they have, which must be found exactly."""
    key = expected_pairs_key(name)
    total = sum(counts.values())
    if accepted == ANY_PAIR_COUNT:
        return
    if accepted is not None:
        if isinstance(accepted, bool) or not isinstance(accepted, int) or accepted < 1:
            raise ConfigError(
                f"config key {key} must be a positive integer or {ANY_PAIR_COUNT!r}, got {accepted!r}", key
            )
        if total != accepted:
            raise DataError(
                f"{name}: {total} pairs found ({_split_text(counts)}), config key {key} says {accepted}; "
                f"fix the data or set {key} to {total} (or {ANY_PAIR_COUNT!r})"
            )
        return
    off = {
        split: (counts.get(split, 0), want)
        for split, want in expected.items()
        if abs(counts.get(split, 0) - want) > PAIR_COUNT_TOLERANCE * want
    }
    if off:
        found = ", ".join(f"{got} {split} pairs, expected {want}" for split, (got, want) in sorted(off.items()))
        raise DataError(
            f"{name}: {found} (the registry's count, tolerance {PAIR_COUNT_TOLERANCE:.0%}): a partial download or "
            f"another release; to use these pairs set config key {key}: {total} (or {ANY_PAIR_COUNT!r})"
        )


def _split_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{count} {split}" for split, count in sorted(counts.items()))
