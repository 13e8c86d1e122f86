"""The README's numbers: its generated blocks equal the committed fragments under results/readme/, the tool that
copies them in, the fragments' builders, and the README's snippet for reading the scores."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_tables import make_scores

from lrdm.errors import LrdmError
from lrdm.results import readme, tables
from lrdm.results.scores import read_scores, summarize

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCUMENTS = [README, *sorted((REPO / "docs").glob("*.md"))]
"""Where the generated blocks are: the README and the pages under docs/."""
FRAGMENTS = REPO / "results" / "readme"
#: Blocks the README must carry: the scores, read beside the claims, and the table of targets.
README_BLOCKS = {"scores", "gains", "restorations", "losses", "claims", "claims_verdicts", "targets"}
#: Blocks the README and docs/ must carry together: the embedded default's tables, the claims, the protocols, the plan.
EXPECTED_BLOCKS = README_BLOCKS | {"setup", "timing", "protocols", "claims_seeds", "claims_timing", "plan_summary"}


def run_tool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``python -m lrdm.results.readme ARGS`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "lrdm.results.readme", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def tool(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The same command's entry point in this process (faster): exit code and stderr."""
    code = readme.main(list(args))
    return code, capsys.readouterr().err


def test_readme_and_docs_blocks_equal_the_committed_generated_fragments():
    where = readme.documents_blocks({str(path): path.read_text() for path in DOCUMENTS})
    assert EXPECTED_BLOCKS <= set(where)
    assert README_BLOCKS <= set(readme.readme_blocks(README.read_text()))
    for name in where:
        assert (FRAGMENTS / f"{name}.md").is_file(), f"results/readme/{name}.md is not committed"
    paths = [str(path.relative_to(REPO)) for path in DOCUMENTS]
    checked = run_tool("--check", *paths)
    assert checked.returncode == 0, checked.stderr
    for path in DOCUMENTS:
        assert readme.stale_blocks(path.read_text(), FRAGMENTS) == [], path


def test_check_and_update_take_several_documents_and_refuse_a_block_in_two(tmp_path, capsys):
    folder = tmp_path / "fragments"
    readme.write_fragments({"scores": "| a |\n", "claims": "| b |\n"}, folder)
    first, second = tmp_path / "README.md", tmp_path / "page.md"
    first.write_text("<!-- generated: scores -->\nold\n<!-- end generated -->\n")
    second.write_text("<!-- generated: claims -->\nold\n<!-- end generated -->\n")
    code, err = tool(capsys, "--check", str(first), str(second), "--folder", str(folder))
    assert code == 1 and f"{first}: block 'scores'" in err and f"{second}: block 'claims'" in err
    assert tool(capsys, "--update", str(first), str(second), "--folder", str(folder))[0] == 0
    assert second.read_text() == "<!-- generated: claims -->\n| b |\n<!-- end generated -->\n"
    second.write_text(first.read_text())
    code, err = tool(capsys, "--check", str(first), str(second), "--folder", str(folder))
    assert code == 2 and f"README block 'scores' appears in {first} and in {second}" in err


def test_images_the_readme_shows_are_committed_and_linked_from_the_readme():
    text = README.read_text()
    assert readme.readme_blocks(text)["restorations"] and readme.readme_blocks(text)["losses"]
    for path in DOCUMENTS[1:]:  # image paths are relative to the repository root: only the README can show them
        assert "restorations" not in readme.readme_blocks(path.read_text()), path


def test_images_the_generated_blocks_show_are_committed():
    text = "".join((FRAGMENTS / f"{name}.md").read_text() for name in ("restorations", "losses"))
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert images
    for image in images:
        assert (REPO / image).is_file(), image


def test_update_replaces_each_block_and_check_names_the_stale_one(tmp_path, capsys):
    folder = tmp_path / "fragments"
    readme.write_fragments({"scores": "| a |\n|---:|\n| 1.00 |\n"}, folder, footer="made here\n")
    doc = tmp_path / "README.md"
    doc.write_text("intro\n<!-- generated: scores -->\n| a |\n| 9 |\n<!-- end generated -->\nafter\n")
    code, err = tool(capsys, "--check", str(doc), "--folder", str(folder))
    assert code == 1
    assert err.strip() == f"{doc}: block 'scores' differs from {folder / 'scores.md'}"
    code, err = tool(capsys, "--update", str(doc), "--folder", str(folder))
    assert code == 0, err
    assert doc.read_text() == (
        "intro\n<!-- generated: scores -->\n| a |\n|---:|\n| 1.00 |\n\nmade here\n<!-- end generated -->\nafter\n"
    )
    assert tool(capsys, "--check", str(doc), "--folder", str(folder))[0] == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- generated: timing -->\nx\n<!-- end generated -->\n", "timing.md: no generated fragment"),
        ("<!-- generated: scores -->\nno end marker\n", "README block 'scores' has no '<!-- end generated -->'"),
    ],
)
def test_update_refuses_a_missing_fragment_or_end_marker_in_one_line(tmp_path, capsys, text, message):
    doc = tmp_path / "README.md"
    doc.write_text(text)
    code, err = tool(capsys, "--update", str(doc), "--folder", str(tmp_path))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m lrdm.results.readme: error:") and message in lines[0]
    assert doc.read_text() == text  # nothing rewritten


def run_order(scores: pd.DataFrame) -> list[list[str]]:
    """Every run of ``scores`` in the order ``make_scores`` wrote them (the order a config would name them)."""
    keys = scores[["dataset", "process", "objective", "rank_spec"]].drop_duplicates()
    return [list(key) for key in keys.itertuples(index=False)]


def test_scores_fragment_holds_the_tables_means_and_the_gain_over_the_input():
    scores = make_scores(datasets=("synthetic_rain",), seeds=(0, 1), steps=(1, 5))
    summary = readme.scores_summary(scores, steps=5)
    frame = readme.scores_frame(summary, {"synthetic_rain": "derain_y"}, run_order(scores))
    expected = summarize(scores[scores["steps"] == 5], ["dataset", "process", "objective", "rank_spec"])
    full = expected[(expected["rank_spec"] == "full") & (expected["process"] == "rddm")]
    full = full[full["objective"] == "pred_res_noise"].iloc[0]
    row = frame[frame["run"] == "RDDM (ours, full)"].iloc[0]
    assert row["PSNR"] == pytest.approx(full["psnr_mean"])
    assert row[readme.GAIN_COLUMN] == pytest.approx(full["psnr_mean"] - full["input_psnr_mean"])
    assert frame.iloc[0]["run"] == "degraded input" and frame.iloc[0]["PSNR"] == pytest.approx(full["input_psnr_mean"])
    assert len(frame) == 1 + expected.shape[0]


def test_scores_rows_follow_the_config_not_the_scores():
    scores = make_scores(datasets=("synthetic_rain", "raindrop"), seeds=(0,), steps=(5,))
    summary = readme.scores_summary(scores, steps=5)
    order = run_order(scores)[::-1]  # the config names them in another order than make_scores wrote them
    frame = readme.scores_frame(summary, {"synthetic_rain": "derain_y", "raindrop": "derain_y"}, order)
    runs = frame[frame["run"] != "degraded input"]
    labels = [(d, tables.method_label(p, r, o)) for d, p, o, r in order]
    assert list(zip(runs["dataset"], runs["run"])) == labels
    assert list(dict.fromkeys(frame["dataset"])) == ["raindrop", "synthetic_rain"]
    assert not runs["PSNR"].is_monotonic_decreasing  # the fixtures' scores would order them otherwise
    with pytest.raises(ValueError, match="synthetic_rain/rddm/pred_res_noise/full is not in the config's order"):
        readme.scores_frame(
            summary,
            {"synthetic_rain": "derain_y", "raindrop": "derain_y"},
            [key for key in order if key != ["synthetic_rain", "rddm", "pred_res_noise", "full"]],
        )


def test_scores_caption_says_one_seed_the_measured_spread_and_where_to_compare():
    scores = make_scores(datasets=("synthetic_rain",), seeds=(0,), steps=(5,))
    caption = readme.scores_caption(readme.scores_summary(scores, steps=5), steps=5)
    assert "5 sampling steps, one training seed per run" in caption
    assert f"up to {readme.MACHINE_SPREAD_DB} dB" in caption and "not a ranking" in caption
    assert "claims table" in caption
    several = readme.scores_caption(readme.scores_summary(make_scores(seeds=(0, 1, 2), steps=(5,)), 5), 5)
    assert "mean over 3 training seeds per run" in several and "dB" not in several


def test_runs_in_config_order_follow_the_datasets_then_the_targets_as_written():
    import yaml

    from lrdm.workflow import all_evaluations, runs_in_config_order

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    order = runs_in_config_order(config)
    assert [key[0] for key in order] == sorted((key[0] for key in order), key=list(config["datasets"]).index)
    rain = [key[3] for key in order if key[0] == "synthetic_rain" and key[2] == "pred_res_noise"]
    assert rain[:4] == ["full", "fixed-r2", "fixed-r4", "fixed-r16"]  # rank_sweep is the first scored target
    trained = {(e.dataset, e.process, e.objective, e.rank_spec) for e in all_evaluations(config)}
    assert sorted(map(tuple, order)) == sorted(trained) and len(order) == len(trained)


def test_gains_text_names_the_runs_at_or_below_the_input():
    table = pd.DataFrame(
        {
            "dataset": ["d"] * 3,
            "run": ["degraded input", "A", "B"],
            readme.GAIN_COLUMN: [None, 2.5, -1.25],
        }
    )
    assert readme.gains_text(table) == (
        "- `d`: 1 of 2 runs score above the degraded input (Δ PSNR -1.25 to +2.50 dB); at or below it: B (-1.25).\n"
    )


def test_benchmark_fragment_sums_each_rules_files_and_names_a_missing_one(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    paths = []
    for i, seconds in enumerate((10.0, 30.0)):
        path = tmp_path / f"{i}.tsv"
        path.write_text(header + f"{seconds}\t0:00:10\t{100 + i}\t0\t0\t0\t0\t0\t0\t1\n")
        paths.append(path)
    frame = readme.benchmark_frame({"train": paths, "evaluate": []})
    assert frame.to_dict("records") == [
        {"rule": "train", "jobs": 2, "wall seconds, total": 40, "wall seconds per job": 20, "peak RSS (MB)": 101}
    ]
    with pytest.raises(LrdmError, match="missing.tsv: no benchmark file"):
        readme.benchmark_frame({"train": [tmp_path / "missing.tsv"]})


def test_provenance_names_commit_machine_and_date(tmp_path):
    import datetime

    info = readme.provenance(["config/config.yaml"], REPO, ignore=[FRAGMENTS, README], today=datetime.date(2026, 1, 2))
    line = readme.provenance_line(info)
    assert "config/config.yaml" in line and "2026-01-02" in line and "cores)" in line
    assert re.search(r"commit [0-9a-f]{12}", line), line
    assert readme.provenance([], tmp_path)["commit"] == readme.UNKNOWN  # not a git work tree


def test_claims_timing_counts_only_the_jobs_claims_adds_to_all():
    import yaml

    from lrdm.workflow import all_evaluations, benchmark_paths, target_evaluations

    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["results"] = "results"
    in_all = all_evaluations(config)
    added = benchmark_paths(config, target_evaluations(config, "claims"), already=in_all)
    everything = benchmark_paths(config, in_all)
    assert added["train"] and not set(added["train"]) & set(everything["train"])
    assert added["evaluate"] and not set(added["evaluate"]) & set(everything["evaluate"])
    assert all("/seed0" not in path for path in added["train"])  # seed 0 is trained by all


# --------------------------------------------------------------------------------------------------
# The README's snippet for reading the scores
# --------------------------------------------------------------------------------------------------


def readme_python_blocks(section: str) -> list[str]:
    """The ```python blocks of the docs/results.md section whose heading is ``section``."""
    text = (REPO / "docs" / "results.md").read_text()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], re.DOTALL)


def write_results_tree(root: Path, scores: pd.DataFrame) -> None:
    """Score files as the evaluate rule writes them: ``stepsN.parquet`` with the dataset's protocol, and beside it
    ``stepsN.protocols.parquet`` with the same images under other protocols (empty outside the main table)."""
    for (run, steps), part in scores.groupby(["run", "steps"]):
        folder = root / "results" / "scores" / part["dataset"].iloc[0] / run
        folder.mkdir(parents=True, exist_ok=True)
        part.to_parquet(folder / f"steps{steps}.parquet")
        if part["rank_spec"].iloc[0] in ("full", "poly_decrease-p3"):
            others = [part.assign(protocol=f"derain_y{suffix}", psnr=part["psnr"] + shift)
                      for suffix, shift in (("", 0.0), ("@256", 0.3), ("@lrdm256", 12.0))]  # fmt: skip
            pd.concat(others).to_parquet(folder / f"steps{steps}.protocols.parquet")
        else:
            part.iloc[:0].to_parquet(folder / f"steps{steps}.protocols.parquet")


def test_readme_snippet_gives_the_main_tables_psnr(tmp_path, monkeypatch, capsys):
    scores = make_scores(datasets=("synthetic_rain",), seeds=(0,), steps=(5,))
    write_results_tree(tmp_path, scores)
    monkeypatch.chdir(tmp_path)
    blocks = readme_python_blocks("Reading the results")
    namespace: dict = {}
    exec(blocks[0], namespace)  # noqa: S102 - the README's own snippet
    means = namespace["means"]
    table = tables.main_table(read_scores(sorted(Path("results/scores").rglob("steps5.parquet"))))
    for rank_spec, method in (("full", "RDDM (ours, full)"), ("poly_decrease-p3", "LRDM (ours, poly_decrease-p3)")):
        expected = table.loc[table["method"] == method, "synthetic_rain PSNR"].item()
        got = means.loc[("synthetic_rain", "derain_y", "rddm", "pred_res_noise", rank_spec, 5), "psnr"]
        assert got == pytest.approx(expected)
        # the whole folder mixes protocols: what the README's snippet avoids
        everything = pd.read_parquet("results/scores")
        mixed = everything[(everything["rank_spec"] == rank_spec) & (everything["objective"] == "pred_res_noise")]
        assert mixed[mixed["process"] == "rddm"]["psnr"].mean() != pytest.approx(expected)
    exec(blocks[1], namespace)  # noqa: S102 - the protocols snippet runs on the same tree
    assert set(namespace["protocols"]["protocol"]) == {"derain_y", "derain_y@256", "derain_y@lrdm256"}
    assert "derain_y" in capsys.readouterr().out
