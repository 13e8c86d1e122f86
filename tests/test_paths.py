"""Where each config's files land: the embedded default in results/, resources/ and logs/; config/smoke.yaml,
config/paper.yaml and a user's overlay in their own folders, so that no config plans a job over another's files."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from lrdm import paths
from lrdm.errors import ConfigError
from lrdm.paths import OutputFolders, config_name, output_folders, results_folder

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = REPO / "config" / "config.yaml"
FILE_LINE = re.compile(r"^\s+(?:output|log): (.*)$", re.MULTILINE)


def test_the_first_config_file_names_the_folders():
    assert config_name([], EMBEDDED) is None
    assert config_name([EMBEDDED], EMBEDDED) is None  # the embedded default named on the command line
    assert config_name([REPO / "config" / "smoke.yaml"], EMBEDDED) == "smoke"
    assert config_name([REPO / "config" / "paper.yaml", Path("runs/first.yaml")], EMBEDDED) == "paper"  # an overlay
    assert config_name([Path("runs/my_rain.yaml")], EMBEDDED) == "my_rain"
    assert config_name([EMBEDDED, Path("mine.yaml")], EMBEDDED) is None  # an overlay of the embedded default


@pytest.mark.parametrize("file", ["tables.yaml", "downloads.yml", "my rain.yaml", "-x.yaml"])
def test_a_config_file_whose_name_cannot_name_a_folder_is_refused_naming_it(file):
    with pytest.raises(ConfigError, match=rf"config file '{re.escape(file)}': its name .* set the keys results"):
        config_name([file], EMBEDDED)


def test_each_file_is_named_once_for_a_job_and_for_its_rule():
    run = paths.RUN_PATTERN.format(dataset="rain", process="rddm", objective="pred_res", rank_spec="full", seed=2)
    assert run == "rain/" + paths.run_tail("rddm", "pred_res", "full", 2) == "rain/rddm/pred_res/full/seed2"
    assert paths.model_path("res", run) == "res/runs/rain/rddm/pred_res/full/seed2/model.pt"
    assert paths.score_path("res", run, 5) == "res/scores/rain/rddm/pred_res/full/seed2/steps5.parquet"
    assert paths.protocols_path("res", run, 5) == "res/scores/rain/rddm/pred_res/full/seed2/steps5.protocols.parquet"
    assert paths.train_benchmark_path("res", run) == "res/benchmarks/train/rain/rddm/pred_res/full/seed2.tsv"
    benchmark = "res/benchmarks/evaluate/rain/rddm/pred_res/full/seed2/steps5.tsv"
    assert paths.evaluate_benchmark_path("res", run, 5) == benchmark
    assert paths.train_log_path("logs", run) == "logs/train/rain/rddm/pred_res/full/seed2.log"
    assert paths.evaluate_log_path("logs", run, 5) == "logs/evaluate/rain/rddm/pred_res/full/seed2/steps5.log"
    assert paths.model_path("res", paths.official_run("rain")) == "res/runs/rain/official/model.pt"
    assert paths.dataset_index_path("rsc", "rain") == "rsc/data/rain/index.parquet"
    # the same function with wildcards is the rule's pattern, and the pattern filled in is the job's file
    pattern = paths.score_path("res", paths.RUN_PATTERN, "{steps}")
    fields = {"dataset": "rain", "process": "rddm", "objective": "pred_res", "rank_spec": "full", "seed": 2}
    assert pattern.format(**fields, steps=5) == paths.score_path("res", run, 5)


def test_the_rules_spell_no_file_name_of_their_own():
    rules = {path.name: path.read_text() for path in (REPO / "workflow/rules").glob("*.smk")}
    spelled = ("{RESULTS}/", "{RESOURCES}/", "model.pt", "/runs/", "/scores/", "/benchmarks/", ".parquet", ".tsv")
    found = [(name, part) for name, text in rules.items() for part in spelled if part in text]
    assert not found, f"write these paths through lrdm.paths (P) in the rules: {found}"


def test_folders_of_each_kind_of_config():
    assert output_folders({}, None) == OutputFolders("results", "resources", "logs", "resources/downloads")
    assert output_folders({}, "smoke") == OutputFolders(
        "results/smoke", "resources/smoke", "logs/smoke", "resources/downloads"
    )
    mine = output_folders({"results": "/scratch/out", "resources": "/scratch/res"}, "mine")
    assert mine == OutputFolders("/scratch/out", "/scratch/res", "logs/mine", "/scratch/res/downloads")
    assert output_folders({"downloads": "/archives"}, "paper").downloads == "/archives"
    assert results_folder({}) == "results" and results_folder({"results": "out"}) == "out"


def planned_files(cwd: Path, *configfile: str, target: str = "all") -> set[str]:
    """Every output and log file of the jobs a dry run plans, run in ``cwd`` as a user types it."""
    words = ["--configfile", *configfile] if configfile else []
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", target, *words],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return {path for line in FILE_LINE.findall(proc.stdout) for path in line.split(", ")}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A folder laid out as a checkout (config/ beside the Snakefile), where the README's commands run as written."""
    root = tmp_path_factory.mktemp("checkout")
    (root / "config").symlink_to(REPO / "config")
    return root


@pytest.fixture(scope="module")
def default_files(checkout) -> set[str]:
    files = planned_files(checkout)
    assert any(f.startswith("results/tables/") for f in files) and any(f.startswith("logs/train/") for f in files)
    return files


@pytest.mark.parametrize("name", ["smoke", "paper"])
def test_a_shipped_config_plans_no_job_over_the_default_outputs(checkout, default_files, name):
    files = planned_files(checkout, f"config/{name}.yaml")
    assert files and not files & default_files
    outside = [f for f in files if not f.startswith((f"results/{name}/", f"resources/{name}/", f"logs/{name}/"))]
    assert not outside, outside


def test_a_users_overlay_writes_its_own_folders(checkout, default_files):
    overlay = checkout / "my_rain.yaml"
    overlay.write_text("targets:\n  main_table: {datasets: [synthetic_rain], specs: [full]}\n")
    files = planned_files(checkout, "my_rain.yaml", target="main_table")
    assert "results/my_rain/tables/main_table.csv" in files and not files & default_files


def test_an_overlay_shares_its_base_configs_folders(checkout, default_files):
    """``--configfile config/paper.yaml first.yaml`` (a subset) trains into ``results/paper/``: the full paper run
    later reuses those runs instead of training them again."""
    overlay = checkout / "first.yaml"
    overlay.write_text("targets:\n  main_table: {datasets: [rain1400]}\n")
    subset = planned_files(checkout, "config/paper.yaml", "first.yaml", target="main_table")
    full = planned_files(checkout, "config/paper.yaml", target="main_table")
    runs = {f for f in subset if f.startswith("results/paper/runs/rain1400/")}
    assert runs and runs <= full and not subset & default_files
