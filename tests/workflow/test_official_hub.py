"""The authors' weights from the Hugging Face Hub in the workflow (``official_weights.<dataset>.hub``), against a
local stand-in for the Hub (tests/conftest.py): a dry run plans the download, a real run downloads a tiny
checkpoint laid out as the official LRDM trainer saves it, records its sha256 and rank settings beside the
import, and scores it into one main-table row; a wrong sha256 and a missing file stop the download job."""

import copy
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lrdm.vocab import OFFICIAL_RUN
from lrdm.workflow import check_config, official_record_path, official_source

REPO = Path(__file__).resolve().parents[2]
HUB = "jun0519/lrdm"
RANK = {"rank_spec": "fixed-r4"}


def smoke(entry):
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["official_weights"] = {"synthetic_rain": entry}
    return copy.deepcopy(config)


def test_a_hub_entry_is_downloaded_imported_with_its_sha256_and_rank_settings_and_scored(
    mock_hub, tmp_path, trainer_checkpoint, workflow
):
    checkpoint = tmp_path / "model-120.pt"
    trainer_checkpoint(checkpoint)
    body = checkpoint.read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    mock_hub.state.add(HUB, "model-120.pt", body)
    mock_hub.state.add(HUB, "model-60.pt", body)
    record = tmp_path / official_record_path("resources/cfg", "synthetic_rain")
    model = f"results/cfg/runs/synthetic_rain/{OFFICIAL_RUN}/model.pt"

    missing = smoke({"hub": HUB, "filename": "model-100.pt", "set": RANK})
    check_config(missing)
    assert official_source(missing, "synthetic_rain").startswith(
        f"downloaded by the workflow from the Hugging Face Hub: hf://{HUB}/model-100.pt@main"
    )
    plan = workflow(missing, "-n", "main_table")
    assert plan.returncode == 0, (plan.stdout + plan.stderr)[-3000:]
    assert "download_official" in plan.stdout and "import_official" in plan.stdout
    assert mock_hub.state.requests == []  # a dry run asks the Hub nothing
    failed = workflow(missing, model)
    assert failed.returncode != 0 and not record.exists()
    assert "its checkpoint files: model-120.pt, model-60.pt" in failed.stderr, failed.stderr[-3000:]

    wrong = smoke({"hub": HUB, "filename": "model-120.pt", "sha256": "0" * 64, "set": RANK})
    failed = workflow(wrong, model)
    assert failed.returncode != 0 and not record.exists()
    assert f"sha256 {digest}" in failed.stderr and f"configured sha256 {'0' * 64}" in failed.stderr

    config = smoke({"hub": HUB, "filename": "model-120.pt", "sha256": digest, "set": RANK})
    config["targets"]["main_table"] = {"datasets": ["synthetic_rain"], "specs": []}  # the official row only
    proc = workflow(config, "main_table")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    downloaded = json.loads(record.read_text())
    assert downloaded["sha256"] == digest and downloaded["commit"] == mock_hub.state.commit
    assert downloaded["path"].startswith(mock_hub.cache) and downloaded["size"] == len(body)
    run = yaml.safe_load((tmp_path / f"results/cfg/runs/synthetic_rain/{OFFICIAL_RUN}/config.yaml").read_text())
    assert run["extra"] == {
        "dataset": "synthetic_rain",
        "official_checkpoint": downloaded["path"],
        "official_sha256": digest,
        "official_source": f"hf://{HUB}/model-120.pt@main",
        "official_commit": mock_hub.state.commit,
    }
    assert run["rank_spec"] == "fixed-r4" and run["network"] == "two_net" and run["T"] == 100

    scores = pd.read_parquet(tmp_path / f"results/cfg/scores/synthetic_rain/{OFFICIAL_RUN}/steps2.parquet")
    assert set(scores["run"]) == {OFFICIAL_RUN} and set(scores["rank_spec"]) == {"fixed-r4"}
    assert scores["psnr"].notna().all() and set(scores["steps"]) == {2}
    table = pd.read_csv(tmp_path / "results/cfg/tables/main_table.csv").set_index("method")
    assert list(table.index) == ["input (degraded)", "LRDM, official weights (evaluated here)"]
    assert table.loc["LRDM, official weights (evaluated here)", "synthetic_rain PSNR"] == pytest.approx(
        scores["psnr"].mean(), abs=0.01
    )
    downloads = len(mock_hub.state.downloads())
    assert workflow(config, "main_table").returncode == 0 and len(mock_hub.state.downloads()) == downloads


def test_an_entry_is_either_placed_or_on_the_hub_and_says_so_in_one_line():
    from lrdm.errors import ConfigError
    from lrdm.schema import checked_config

    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    good = smoke({"hub": HUB, "filename": "model-120.pt", "revision": "main", "sha256": "a" * 64, "size": 10})
    assert checked_config(good, schema)["official_weights"]["synthetic_rain"]["hub"] == HUB
    dropped = smoke({"hub": HUB, "filename": "model-120.pt"})
    dropped["official_weights"]["synthetic_rain"] = None  # an overlay drops an entry with null
    checked_config(dropped, schema)
    for entry, expected in (
        ({"hub": HUB, "filename": "m.pt", "file": "x.pt", "page": "p"}, "either file and page (placed by hand)"),
        ({"hub": HUB}, "or hub and filename (downloaded from the Hugging Face Hub)"),
        ({"hub": "lrdm", "filename": "m.pt"}, "official_weights.synthetic_rain.hub: 'lrdm' does not match"),
        ({"hub": HUB, "filename": "m.pt", "sha256": "ABC"}, "official_weights.synthetic_rain.sha256: 'ABC'"),
    ):
        with pytest.raises(ConfigError) as err:
            checked_config(smoke(entry), schema)
        assert expected in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_the_import_refuses_a_download_record_whose_file_is_gone_or_changed(tmp_path):
    from lrdm.errors import ChecksumError, DownloadError
    from lrdm.workflow import read_download_record

    cached = tmp_path / "blob"
    cached.write_bytes(b"weights")
    record = tmp_path / "download.json"
    fields = {"source": f"hf://{HUB}/model-120.pt@main", "path": str(cached)}
    record.write_text(json.dumps({**fields, "sha256": hashlib.sha256(b"weights").hexdigest()}))
    assert read_download_record(record)["path"] == str(cached)
    cached.write_bytes(b"other bytes")
    with pytest.raises(ChecksumError, match=hashlib.sha256(b"other bytes").hexdigest()):
        read_download_record(record)
    cached.unlink()
    with pytest.raises(DownloadError, match="no longer in the Hugging Face cache; delete"):
        read_download_record(record)
