"""The SLURM profile: a dry-run of the paper's DAG, and a trimmed smoke config submitted through the real
profile to a throw-away single-node SLURM cluster (tests/slurm/cluster.sh; root and the Debian packages
slurmctld, slurmd, slurm-client and munge, which .ci/run installs; skipped otherwise)."""

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from lrdm.targets import TARGETS
from lrdm.workflow import target_score_paths

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "profiles" / "slurm" / "profile.yaml"
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
PARTITION = "lrdm"
SNAKEMAKE_TIMEOUT = 600  # hard limit: a status-query fault must not hang CI
# the cluster's config is /etc/slurm/slurm.conf (the plugin's job step drops SLURM_CONF anyway)
ENV = {key: value for key, value in os.environ.items() if key != "SLURM_CONF"}


def plugin_missing():
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    return None


def job_blocks(dry_run_output):
    """(rule, resources dict) of every job a dry-run lists."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run_output):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if not head:
            continue
        found = re.search(r"^\s+resources: (.*)$", block, re.MULTILINE)
        pairs = [item.split("=", 1) for item in found[1].split(", ")] if found else []
        jobs.append((head[1], dict(pairs)))
    return jobs


RESTORING_RULES = ("evaluate", "evaluate_official", "restoration_grid_figure", "rank_grid_figure")
"""The rules that restore test images with trained networks (after training): each gets a GPU."""


def test_profile_keeps_going_past_a_failed_job():
    assert yaml.safe_load(PROFILE.read_text())["keep-going"] is True


def test_profile_dry_run_of_the_paper_asks_gpus_for_training_and_evaluation(tmp_path):
    if reason := plugin_missing():
        pytest.skip(reason)
    proc = subprocess.run(
        [*SNAKEMAKE, "-d", str(tmp_path), "-n", "--configfile", str(REPO / "config/paper.yaml")]
        + ["--workflow-profile", str(PROFILE.parent)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    jobs = job_blocks(proc.stdout)
    rules = {rule for rule, _ in jobs}
    restoring = restoring_rules(proc.stdout)
    assert restoring == set(RESTORING_RULES), restoring  # a new restoring rule must be added there (a GPU)
    assert {"train", "evaluate", "prepare_dataset", "table", "restoration_grid_figure", "rank_grid_figure"} <= rules
    for rule, resources in jobs:
        if rule == "all" or rule in TARGETS:  # target rules only collect files
            continue
        assert resources.get("slurm_account") == "<your-account>", (rule, resources)
        assert {"mem_mb", "runtime", "cpus_per_task"} <= resources.keys(), (rule, resources)
        if rule == "train":
            assert resources["gpu"] == "1" and resources["slurm_partition"] == "<your-gpu-partition>"
            assert resources["cpus_per_task"] == "8" and resources["runtime"] == "2880"
        elif rule in RESTORING_RULES:  # restoring test images on a GPU whenever training has one
            assert resources["gpu"] == "1" and resources["slurm_partition"] == "<your-gpu-partition>", (rule, resources)
            assert resources["cpus_per_task"] == "4" and resources["runtime"] == "240", (rule, resources)
        else:
            assert "gpu" not in resources and "gres" not in resources, (rule, resources)
            assert rule not in restoring, (rule, resources)  # never left on a CPU node's default
            assert resources["slurm_partition"] == "<your-cpu-partition>", (rule, resources)
    # two GPUs per run (global batch 2): the train jobs ask for both
    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    config["train"]["batch_size"] = config["train_gpus"] = 2
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(config))
    two = subprocess.run(
        [*SNAKEMAKE, "-d", str(tmp_path), "-n", "--configfile", str(tmp_path / "two.yaml")]
        + ["--workflow-profile", str(PROFILE.parent), "main_table"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, (two.stdout + two.stderr)[-3000:]
    gpus = {rule: resources.get("gpu") for rule, resources in job_blocks(two.stdout) if rule in ("train", "evaluate")}
    assert gpus == {"train": "2", "evaluate": "1"}


def restoring_rules(dry_run_output):
    """Rules of a dry run with a job that reads a trained model and a dataset index: it restores test images
    after training, so it must not be left on a CPU node's default (1 thread, 60 minutes)."""
    rules = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run_output):
        head = re.match(r"(?:local)?rule (\w+):", block)
        inputs = re.search(r"^\s+input: (.*)$", block, re.MULTILINE)
        if head and inputs and "model.pt" in inputs[1] and "index.parquet" in inputs[1]:
            rules.add(head[1])
    return rules


# ---------------------------------------------------------------------------------------------------------
# A real single-node cluster


def cluster_unavailable():
    if reason := plugin_missing():
        return reason
    if not sys.platform.startswith("linux"):
        return "the test cluster needs Linux"
    if os.geteuid() != 0:
        return "starting slurmctld, slurmd and munged needs root"
    tools = ("slurmctld", "slurmd", "sinfo", "squeue", "sbatch", "munged")
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        return f"SLURM is not installed (missing {', '.join(missing)}); run tests/slurm/install.sh as root"
    for name in ("slurm.conf", "gres.conf"):
        path = Path("/etc/slurm") / name
        if path.exists() and "lrdm-test-cluster" not in (path.read_text().splitlines() or [""])[0]:
            return f"{path} belongs to a real SLURM installation; not replacing it"
    return None


@pytest.fixture
def slurm_cluster(tmp_path_factory):
    if reason := cluster_unavailable():
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm-state")
    try:
        start = subprocess.run(
            ["bash", str(CLUSTER), "start", str(state), PARTITION],
            capture_output=True,
            text=True,
            timeout=120,
            env=ENV,
        )
        assert start.returncode == 0, f"the test cluster did not start:\n{start.stdout}\n{start.stderr}"
        yield state
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop", str(state)], capture_output=True, timeout=120, env=ENV)


def trimmed_smoke_config():
    """config/smoke.yaml cut down to LRDM Tab. 3 on one dataset: data, 2 trainings, 2 evaluations."""
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["datasets"] = {"synthetic_rain": config["datasets"]["synthetic_rain"]}
    config["max_rank"] = 8  # no spectrum job
    config["targets"] = {"schedulers": {"datasets": ["synthetic_rain"], "specs": ["lin_increase", "poly_decrease-p3"]}}
    return config


def local_cluster_profile(folder):
    """The real SLURM profile with this cluster's partition, no account, and requests this machine can hold.

    Resources keep their names and the rules they apply to (the `gpu` of train comes from the rule itself);
    one thread per job, as in the local reference run, so both compute the same numbers."""
    profile = yaml.safe_load(PROFILE.read_text())
    for resources in [profile["default-resources"], *profile["set-resources"].values()]:
        resources.pop("slurm_account", None)
        if "slurm_partition" in resources:
            resources["slurm_partition"] = PARTITION
        if "mem_mb" in resources:
            resources["mem_mb"] = min(resources["mem_mb"], 1000)
        if "cpus_per_task" in resources:
            resources["cpus_per_task"] = 1
    profile["set-threads"] = {rule: 1 for rule in profile.get("set-threads", {})}
    profile.update(
        {
            "latency-wait": 5,
            "slurm-status-command": "squeue",  # no slurmdbd: sacct would not know the jobs
            # Status polls come after 8, 8 + 18, 8 + 18 + 28 ... s (the plugin adds 10 s to each wait until a
            # job finishes): a job of this test takes 10-25 s here. MinJobAge (600 s) >= 3 x 8.
            "slurm-init-seconds-before-status-checks": 8,
            "seconds-between-status-checks": 8,
            "slurm-keep-successful-logs": True,
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profile.yaml").write_text(yaml.safe_dump(profile))
    return folder


def run_snakemake(args, cwd, env=None):
    """Snakemake in its own process group, killed as a whole after SNAKEMAKE_TIMEOUT seconds."""
    with subprocess.Popen(
        [*SNAKEMAKE, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            out, _ = proc.communicate(timeout=SNAKEMAKE_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            pytest.fail(f"snakemake ran past {SNAKEMAKE_TIMEOUT} s:\n{out[-5000:]}")
    return proc.returncode, out


def slurm_jobs():
    """Every job the controller still knows (MinJobAge keeps finished ones): id -> scontrol fields."""
    command = ["scontrol", "-o", "-d", "show", "job"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=30, env=ENV).stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w[\w:/]*)=(\S*)", line))
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs


def scores(results):
    frame = pd.concat([pd.read_parquet(p) for p in sorted(Path(results, "scores").rglob("*.parquet"))])
    keys = ["run", "steps", "image_id"]
    return frame.drop(columns=["seconds"]).sort_values(keys).reset_index(drop=True)


@pytest.mark.slurm
@pytest.mark.slow
def test_smoke_config_through_the_slurm_profile_matches_a_local_run(slurm_cluster, tmp_path):
    began = time.perf_counter()
    config = trimmed_smoke_config()
    config.update(results="results", resources="resources")  # set, so not results/config/ (lrdm/paths.py)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    targets = target_score_paths(config, "schedulers")  # the table job would add a fourth stage of polls
    profile = local_cluster_profile(tmp_path / "profile")
    env = {**ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{ENV.get('PATH', '')}"}

    on_slurm = tmp_path / "slurm"
    on_slurm.mkdir()
    code, out = run_snakemake(
        ["-d", str(on_slurm), "--configfile", str(config_path), "--workflow-profile", str(profile), *targets],
        cwd=on_slurm,
        env=env,
    )
    slurm_seconds = time.perf_counter() - began
    jobs = slurm_jobs()
    (tmp_path / "slurm-run.log").write_text(out)
    assert code == 0, out[-6000:] + "\n" + "\n".join(str(j) for j in jobs.values())

    # every job of the DAG ran as a SLURM job
    by_rule = {}
    for job in jobs.values():
        rule = re.match(r"rule_([a-z_]+?)(?:_wildcards_|$)", job.get("Comment", ""))
        if rule:
            by_rule.setdefault(rule[1], []).append(job)
    assert {rule: len(js) for rule, js in by_rule.items()} == {"prepare_dataset": 1, "train": 2, "evaluate": 2}
    for job in (job for js in by_rule.values() for job in js):
        assert job["JobState"] == "COMPLETED" and job["Partition"] == PARTITION, job
    slurm_logs = on_slurm / ".snakemake" / "slurm_logs"  # the plugin's per-job logs (kept by the test profile)
    assert {p.relative_to(slurm_logs).parts[0] for p in slurm_logs.rglob("*.log")} == {
        "rule_evaluate",
        "rule_prepare_dataset",
        "rule_train",
    }

    # training and evaluation jobs got a GPU from SLURM (evaluation samples with the network); data preparation none
    for job in by_rule["train"] + by_rule["evaluate"]:
        assert job.get("TresPerJob") == "gres:gpu:1" and job.get("JOB_GRES", "").startswith("gpu:1"), job
    for job in by_rule["prepare_dataset"]:
        assert "gpu" not in job.get("TresPerJob", "") and job.get("JOB_GRES") in (None, "(null)"), job
    train_ids = {job["JobId"] for job in by_rule["train"]}
    train_logs = sorted((on_slurm / "logs" / "config" / "train").rglob("*.log"))  # logs/<config file's name>/
    assert len(train_logs) == 2
    for log in train_logs:
        line = next(line for line in log.read_text().splitlines() if line.startswith("gpu environment: "))
        seen = json.loads(line.removeprefix("gpu environment: "))
        assert seen["SLURM_JOB_ID"] in train_ids, (log, seen)
        assert seen["CUDA_VISIBLE_DEVICES"] and (seen["SLURM_STEP_GPUS"] or seen["SLURM_JOB_GPUS"]), (log, seen)

    # the same numbers as a local run of the same config (training and sampling are deterministic by seed)
    local = tmp_path / "local"
    local.mkdir()
    code, out = run_snakemake(
        [*targets, "-d", str(local), "--configfile", str(config_path), "--cores", "2"]
        + ["--set-threads", "train=1", "evaluate=1"],
        cwd=local,
    )
    assert code == 0, out[-6000:]
    expected = scores(local / "results")
    assert len(expected) == 2 * len(set(expected["image_id"])) > 0  # two runs, every test image
    pd.testing.assert_frame_equal(scores(on_slurm / "results"), expected)
    for model in sorted((local / "results" / "runs").rglob("model.pt")):
        a = torch.load(model, weights_only=True)["ema"]
        b = torch.load(on_slurm / model.relative_to(local), weights_only=True)["ema"]
        assert all(torch.equal(a[k], b[k]) for k in a), model
    print(f"SLURM run {slurm_seconds:.1f} s, whole test {time.perf_counter() - began:.1f} s")


# ---------------------------------------------------------------------------------------------------------
# A train job stopped by SLURM comes back and resumes

STOP_WINDOW_SECONDS = 40
"""How long each run trains, at least: slurmctld sends the --signal warning at its periodic time-limit check (every
30 s), so the run whose time limit the test shortens must still be training up to 30 s later."""
RATE_MARGIN = 1.5
"""The jobs may train faster than the calibration measured (a machine whose load drops): the steps allow for it."""
STOP_GRACE = 90
"""The test profile's --signal=TERM@90: once the test cuts a running job's time limit to 2 minutes, the warning is due
at slurmctld's next check (within 30 s), well before the limit itself (whose SIGTERM would end it as TIMEOUT)."""
STOP_PATTERN = re.compile(r"stopped by SIGTERM at step (\d+) of (\S+); checkpoint (\S+); the next run resumes there")


def steps_for(seconds, config, run):
    """Steps the run trains in about ``seconds`` on this machine (one thread, as the jobs): its rate over a few
    steps, measured here; each run of the test trains long enough, on a fast machine or a slow one."""
    from lrdm.data.synthetic import SynthesisOptions, make_synthetic_dataset
    from lrdm.training.trainer import train
    from lrdm.workflow import run_config

    folder = Path(config["resources"]) / "calibration"
    dataset = config["datasets"][run.dataset]
    sizes = {key: dataset[key] for key in ("size", "patches_per_image", "test_patches_per_image")}
    make_synthetic_dataset(folder, dataset["task"], SynthesisOptions(**sizes))
    probe = run_config(config, run, str(folder / "index.parquet"), max_rank=config["max_rank"]).replace(steps=20)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        began = time.perf_counter()
        train(probe, folder / "run", progress=False)
        rate = probe.steps / (time.perf_counter() - began)
    finally:
        torch.set_num_threads(previous)
    return int(rate * seconds)


def wait_for(condition, seconds, what, proc):
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.stdout.read() if proc.poll() is not None else ""
            pytest.fail(f"no {what} after {seconds} s:\n{out[-4000:]}")
        time.sleep(0.5)
    return found


def logged_steps(run_dir):
    path = run_dir / "losses.csv"
    return [int(line.split(",")[0]) for line in path.read_text().splitlines()[1:]] if path.exists() else []


@pytest.mark.slurm
@pytest.mark.slow
def test_train_jobs_stopped_by_scancel_and_by_their_time_limit_come_back_and_resume(slurm_cluster, tmp_path):
    """Two train jobs: one sent SIGTERM (`scancel --signal=TERM`, as at preemption), one whose time limit is cut to 2
    minutes mid-training (the profile's --signal sends SIGTERM ahead of it). Both checkpoint and stop, Snakemake's
    retries submit them again, they resume, and their model.pt equals an uninterrupted local run's, bit for bit."""
    from lrdm.targets import target_evaluations

    began = time.perf_counter()
    on_slurm = tmp_path / "slurm"
    on_slurm.mkdir()
    config = trimmed_smoke_config()
    config.update(results="results", resources="resources")
    runs = sorted({evaluation.trained for evaluation in target_evaluations(config, "schedulers")}, key=str)
    assert len(runs) == 2
    steps = max(100, steps_for(RATE_MARGIN * STOP_WINDOW_SECONDS, {**config, "resources": str(tmp_path)}, runs[0]))
    config["train"].update(steps=steps, checkpoint_every=10 * steps, log_every=1)  # checkpoints: the stop and the end
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    targets = [run.model("results") for run in runs]

    real = yaml.safe_load(PROFILE.read_text())
    assert real["retries"] >= 1 and re.fullmatch(r"--signal=TERM@\d+", real["set-resources"]["train"]["slurm_extra"])
    profile = local_cluster_profile(tmp_path / "profile")
    settings = yaml.safe_load((profile / "profile.yaml").read_text())
    settings["set-resources"]["train"]["slurm_extra"] = f"--signal=TERM@{STOP_GRACE}"
    (profile / "profile.yaml").write_text(yaml.safe_dump(settings))
    env = {**ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{ENV.get('PATH', '')}"}

    command = [*SNAKEMAKE, "-d", str(on_slurm), "--configfile", str(config_path), "--workflow-profile", str(profile)]
    with subprocess.Popen([*command, *targets], cwd=on_slurm, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True) as proc:  # fmt: skip
        try:

            def running_train_jobs():
                jobs = {}
                for job in slurm_jobs().values():
                    comment = job.get("Comment", "")
                    if comment.startswith("rule_train") and job["JobState"] == "RUNNING":
                        jobs.update({run: job["JobId"] for run in runs if f"_{run.rank_spec}_" in comment})
                return jobs if len(jobs) == len(runs) else None

            first = wait_for(running_train_jobs, 240, "two running train jobs", proc)
            for run in runs:  # both train already: the signal lands mid-training
                wait_for(lambda run=run: len(logged_steps(on_slurm / run.folder("results"))) >= 3, 120,
                         f"training steps of {run}", proc)  # fmt: skip
            cancelled, timed = (first[run] for run in runs)
            subprocess.run(["scancel", "--signal=TERM", cancelled], check=True, timeout=30, env=ENV)
            subprocess.run(["scontrol", "update", f"JobId={timed}", "TimeLimit=2"], check=True, timeout=30, env=ENV)
            out, _ = proc.communicate(timeout=SNAKEMAKE_TIMEOUT)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):  # Snakemake may have ended already (its failure is raised)
                os.killpg(proc.pid, signal.SIGKILL)
            raise
    slurm_seconds = time.perf_counter() - began
    (tmp_path / "slurm-run.log").write_text(out)
    jobs = slurm_jobs()
    assert proc.returncode == 0, out[-6000:] + "\n" + "\n".join(str(j) for j in jobs.values())

    train_jobs = [job for job in jobs.values() if job.get("Comment", "").startswith("rule_train")]
    assert sorted(job["JobState"] for job in train_jobs) == ["COMPLETED", "COMPLETED", "FAILED", "FAILED"], train_jobs
    assert {jobs[cancelled]["JobState"], jobs[timed]["JobState"]} == {"FAILED"}
    assert jobs[timed]["TimeLimit"] == "00:02:00"
    logs = "\n".join(p.read_text() for p in (on_slurm / ".snakemake" / "slurm_logs").rglob("*.log"))  # per job
    stops = {(on_slurm / m[2]).resolve(): int(m[1]) for m in STOP_PATTERN.finditer(logs)}  # relative to -d
    for run in runs:
        folder = (on_slurm / run.folder("results")).resolve()
        assert 3 <= stops.get(folder, -1) < steps, (run, stops)  # stopped mid-training, by SIGTERM
        assert logged_steps(folder) == list(range(1, steps + 1)), "resumed after the stop: no step lost or repeated"

    local = tmp_path / "local"
    local.mkdir()
    code, local_out = run_snakemake(
        [*targets, "-d", str(local), "--configfile", str(config_path), "--cores", "2", "--set-threads", "train=1"],
        cwd=local,
    )
    assert code == 0, local_out[-6000:]
    for target in targets:
        a = torch.load(local / target, weights_only=True)["ema"]
        b = torch.load(on_slurm / target, weights_only=True)["ema"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), target
    print(f"{steps} steps per run; stopped at {sorted(stops.values())}; SLURM run {slurm_seconds:.1f} s, "
          f"whole test {time.perf_counter() - began:.1f} s")  # fmt: skip
