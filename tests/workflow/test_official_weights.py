"""The authors' weights in the workflow (config key ``official_weights``): the score files the main table
reads, the message for a file not yet placed, and a real Snakemake import and evaluation of an official
fixture checkpoint on a small synthetic set."""

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lrdm.errors import ConfigError, ManualDownloadRequired
from lrdm.files import sha256_file
from lrdm.vocab import OFFICIAL_RUN
from lrdm.workflow import (
    check_config,
    official_overrides,
    official_score_path,
    placed_official_file,
    target_score_paths,
)
from lrdm.workflow.official_weights import official_hub_file

REPO = Path(__file__).resolve().parents[2]
PAGE = "https://github.com/nachifur/RDDM"
FIXTURES = REPO.parent / "shared" / "fixtures" / "official-rddm"  # a worktree's checkout sits beside shared/
if not FIXTURES.is_dir():  # the main checkout may hold it inside; a clone on its own has the slim copy
    FIXTURES = REPO / "shared" / "fixtures" / "official-rddm"
if not FIXTURES.is_dir():
    FIXTURES = REPO / "tests" / "fixtures" / "official-rddm"
CHECKPOINT = FIXTURES / "res_1net" / "checkpoint.pt"  # one output network: the import needs objective pred_res


def smoke(official=None):
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    if official is not None:
        config["official_weights"] = official
    return copy.deepcopy(config)


def test_main_table_reads_the_official_scores_only_when_configured():
    plain = smoke()
    assert not any(f"/{OFFICIAL_RUN}/" in path for path in target_score_paths(plain, "main_table"))
    config = smoke({"synthetic_rain": {"file": "resources/official/x.pt", "page": PAGE}})
    check_config(config)
    official = official_score_path("results", "synthetic_rain", 2)
    assert official == f"results/scores/synthetic_rain/{OFFICIAL_RUN}/steps2.parquet"
    assert set(target_score_paths(config, "main_table")) == {*target_score_paths(plain, "main_table"), official}
    assert target_score_paths(config, "rank_sweep") == target_score_paths(plain, "rank_sweep")
    assert official_overrides(config, "synthetic_rain") == {"extra": {"dataset": "synthetic_rain"}}


def test_official_weights_must_name_a_dataset_and_outside_the_main_table_are_ignored_with_a_note(capsys):
    config = smoke({"gopro": {"file": "resources/official/x.pt", "page": PAGE}})
    with pytest.raises(ValueError, match=r"official_weights\.gopro names a dataset that is not under 'datasets'"):
        check_config(config)
    config = smoke({"synthetic_blur": {"file": "resources/official/x.pt", "page": PAGE}})
    config["targets"]["main_table"]["datasets"] = ["synthetic_rain"]
    check_config(config)
    assert "official_weights.synthetic_blur is ignored" in capsys.readouterr().err
    assert not any(f"/{OFFICIAL_RUN}/" in path for path in target_score_paths(config, "main_table"))


def test_a_missing_official_file_says_what_to_fetch_from_where_and_where_to_put_it(tmp_path):
    file = tmp_path / "resources" / "official" / "rddm_raindrop.pt"
    config = smoke({"synthetic_rain": {"file": str(file), "page": PAGE}})
    with pytest.raises(ManualDownloadRequired) as err:
        placed_official_file(config, "synthetic_rain")
    message = str(err.value)
    assert message.startswith("official_weights.synthetic_rain: rddm_raindrop.pt must be downloaded by hand")
    assert f"from {PAGE} and place it at {file.resolve()}" in message and "official RDDM Trainer checkpoint" in message
    file.parent.mkdir(parents=True)
    file.write_bytes(b"placed")
    assert placed_official_file(config, "synthetic_rain") == str(file)


def test_workflow_imports_and_evaluates_placed_official_weights(tmp_path, workflow):
    missing = smoke({"synthetic_rain": {"file": "resources/official/rddm.pt", "page": PAGE}})
    plan = workflow(missing, "-n", "main_table")
    assert plan.returncode == 0 and "import_official" in plan.stdout, (plan.stdout + plan.stderr)[-3000:]
    # cfg.yaml writes results/cfg/ and logs/cfg/ (lrdm/paths.py)
    failed = workflow(missing, f"results/cfg/runs/synthetic_rain/{OFFICIAL_RUN}/model.pt")
    assert failed.returncode != 0
    expected = f"Fetch rddm.pt from {PAGE} and place it at {(tmp_path / 'resources/official/rddm.pt').resolve()}"
    assert "ManualDownloadRequired" in failed.stderr and expected in failed.stderr, failed.stderr[-3000:]
    assert expected in (tmp_path / "logs/cfg/official/synthetic_rain/import.log").read_text()

    config = smoke({"synthetic_rain": {"file": str(CHECKPOINT), "page": PAGE, "set": {"objective": "pred_res"}}})
    target = f"results/cfg/scores/synthetic_rain/{OFFICIAL_RUN}/steps2.parquet"
    proc = workflow(config, target)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    scores = pd.read_parquet(tmp_path / target)
    assert set(scores["run"]) == {OFFICIAL_RUN} and set(scores["dataset"]) == {"synthetic_rain"}
    assert set(scores["objective"]) == {"pred_res"} and set(scores["steps"]) == {2}
    assert set(scores["protocol"]) == {"derain_y"} and scores["psnr"].notna().all()
    run = yaml.safe_load((tmp_path / f"results/cfg/runs/synthetic_rain/{OFFICIAL_RUN}/config.yaml").read_text())
    assert run["extra"] == {
        "dataset": "synthetic_rain",
        "official_checkpoint": str(CHECKPOINT),
        "official_sha256": sha256_file(CHECKPOINT),
    }


@pytest.mark.parametrize(
    ("entry", "message"),
    [({"file": "x.pt"}, "placed by hand"), ({"hub": "no-owner", "filename": "x.pt"}, "owner/name")],
)
def test_official_hub_file_names_the_config_key(entry, message):
    with pytest.raises(ConfigError, match=message) as info:
        official_hub_file({"official_weights": {"synthetic_rain": entry}}, "synthetic_rain")
    assert info.value.key == "official_weights.synthetic_rain"
