"""The benchmark scripts (``benchmarks/*.py``) run by hand, outside the suite: every ``lrdm`` name they import, at
the top or inside a function, must exist, so that a move inside the package cannot break them unnoticed."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def lrdm_imports(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` of every ``from lrdm... import name`` in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lrdm"
        for alias in node.names
    ]


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda path: path.name)
def test_benchmark_imports_resolve(path):
    imports = lrdm_imports(path)
    missing = [f"{module}.{name}" for module, name in imports if not hasattr(importlib.import_module(module), name)]
    assert not missing, f"{path.name} imports names that do not exist: {missing}"


def test_the_check_sees_function_level_imports():
    assert ("lrdm.paths", "README_FOLDER") in lrdm_imports(Path(__file__).parents[1] / "benchmarks" / "real_recipe.py")


def test_rank_oracle_full_rank_restores_the_clean_image(rain_index, tmp_path):
    """The oracle of benchmarks/rank_oracle.py: with ``full`` it predicts the whole residual and the start noise, so
    the sampler returns ``I_0`` (up to the uint8 round trip); a rank schedule leaves part of the residual in."""
    import sys

    sys.path.insert(0, str(BENCHMARKS[0].parent))
    try:
        rank_oracle = importlib.import_module("rank_oracle")
    finally:
        sys.path.pop(0)
    out = tmp_path / "benchmarks" / "rank_oracle.parquet"
    assert rank_oracle.main(["--index", str(rain_index), "--side", "32", "--out", str(out)]) == 0
    import pandas as pd

    rows = pd.read_parquet(out).set_index("predictor")
    full, low_rank = rows.loc["oracle full"], rows.loc["oracle poly_decrease-p3"]
    assert full["psnr"] > 60
    assert full["input_psnr"] < low_rank["psnr"] < full["psnr"]
    assert (rows.filter(like="rmse_t") == 0).all().all()  # the oracle predicts each step's target exactly
    assert (tmp_path / "readme" / "rank_oracle.md").exists()
