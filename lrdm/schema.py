"""The workflow config against its JSON schema (``workflow/schemas/config.schema.yaml``), with errors of one line.

Two steps the Snakefile takes before Snakemake's own ``validate`` (which fills the schema's defaults but, on a
violation, prints the whole schema and config):

- :func:`numbers_from_text`: numbers that PyYAML reads as text (``1e-4``; YAML 1.1 wants ``1.0e-4``) become
  floats wherever the schema asks for a number and in the run-config layers (``train``, ``datasets.<name>.train``,
  ``processes.<name>``, ``official_weights.<name>.set``), as :class:`~lrdm.config.TrainConfig`'s field types ask.
- :func:`check_schema`: the first violation as one :class:`~lrdm.errors.ConfigError` line naming the key, e.g.
  ``config key train.lr: 'fast' is not of type 'number'`` or ``config key trian: unknown key (did you mean
  train?)``.
"""

from __future__ import annotations

import copy
import difflib
import functools
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lrdm.config import TrainConfig, coerce, number_from_text
from lrdm.errors import TOP_LEVEL_KEY, ConfigError

REF_PREFIX = "#/definitions/"
"""How the schema's ``$ref`` values name its ``definitions``."""
MAX_MESSAGE = 300
"""Characters of jsonschema's message kept (it quotes the offending value, which may be a whole section)."""
DESCRIBED_VALIDATORS = ("pattern", "oneOf")
"""Violations whose message adds the schema node's ``description`` (what the pattern or the alternatives mean)."""
CLOSE_MATCH_CUTOFF = 0.6
"""difflib similarity above which an unknown key is offered a known one (``trian`` -> ``train``)."""


def load_schema(path: str | Path) -> dict[str, Any]:
    """The schema at ``path`` (YAML)."""
    with open(path) as handle:
        return yaml.safe_load(handle)


def run_config_layers(config: Mapping[str, Any]) -> Iterable[tuple[tuple[str, ...], Mapping[str, Any]]]:
    """``(path, mapping)`` of every run-config layer of the workflow config: mappings of TrainConfig keys."""
    layers: list[tuple[tuple[str, ...], Any]] = [(("train",), config.get("train"))]
    for name, dataset in _mapping(config.get("datasets")).items():
        layers.append((("datasets", name, "train"), _mapping(dataset).get("train")))
    for name, overrides in _mapping(config.get("processes")).items():
        layers.append((("processes", name), overrides))
    for name, entry in _mapping(config.get("official_weights")).items():
        layers.append((("official_weights", name, "set"), _mapping(entry).get("set")))
    return [(path, layer) for path, layer in layers if isinstance(layer, Mapping)]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@functools.cache
def _train_hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def numbers_from_text(config: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` whose numbers written as text (``"1e-4"``) are floats where a number is expected:
    where the schema's type is ``number``, and in the run-config layers by TrainConfig's field types.
    ``config`` itself is not changed."""
    out = _numbers(copy.deepcopy(dict(config)), schema, schema)
    hints = _train_hints()
    for path, layer in run_config_layers(out):
        target = functools.reduce(lambda node, key: node[key], path, out)
        for key, value in layer.items():
            if key in hints:
                number = coerce(key, value, hints[key])
                target[key] = list(number) if isinstance(number, tuple) else number  # the config keeps YAML types
    return out


def _resolve(node: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(REF_PREFIX):
        return {**schema["definitions"][ref.removeprefix(REF_PREFIX)], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _numbers(value: Any, node: Mapping[str, Any], schema: Mapping[str, Any]) -> Any:
    """``value`` with its number texts turned into floats where schema ``node`` asks for a number."""
    node = _resolve(node, schema)
    types = node.get("type")
    if types == "number" or (isinstance(types, list) and "number" in types):
        return number_from_text(value)
    if isinstance(value, dict):
        properties = node.get("properties", {})
        rest = node.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, rest if isinstance(rest, Mapping) else None)
            if sub is not None:
                value[key] = _numbers(item, sub, schema)
    elif isinstance(value, list) and isinstance(node.get("items"), Mapping):
        return [_numbers(item, node["items"], schema) for item in value]
    return value


def dotted(path: Iterable[Any]) -> str:
    """``["datasets", "mine", "folders"]`` -> ``"datasets.mine.folders"``."""
    return ".".join(str(part) for part in path)


def schema_message(error: jsonschema.ValidationError) -> str:
    """One line naming the config key of a schema violation and what is wrong with it."""
    where = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        known = list(error.schema.get("properties", {}))
        unknown = sorted(key for key in error.instance if key not in known)
        key = unknown[0] if unknown else "?"
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=CLOSE_MATCH_CUTOFF)
        hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(known)}"
        return f"config key {dotted([*where, key])}: unknown key ({hint})"
    if error.validator == "required" and isinstance(error.validator_value, list):
        missing = [key for key in error.validator_value if key not in _mapping(error.instance)]
        return f"config key {dotted([*where, missing[0] if missing else '?'])}: missing (it is required)"
    described = error.schema.get("description") if error.validator in DESCRIBED_VALIDATORS else None
    message = error.message if len(error.message) <= MAX_MESSAGE else error.message[:MAX_MESSAGE] + "…"
    return f"config key {dotted(where) or '(top level)'}: {message}" + (f" ({described})" if described else "")


def check_schema(config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Raises :class:`ConfigError` with one line naming the key of the most relevant schema violation."""
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(schema_message(error), dotted(error.absolute_path) or TOP_LEVEL_KEY)


def checked_config(config: Mapping[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """``config`` with its numbers written as text turned into floats (:func:`numbers_from_text`), checked against
    the schema at ``schema_path`` (:func:`check_schema`: one-line :class:`ConfigError`).  ``config`` is not
    changed."""
    schema = load_schema(schema_path)
    out = numbers_from_text(config, schema)
    check_schema(out, schema)
    return out
