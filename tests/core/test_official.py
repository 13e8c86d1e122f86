"""Official RDDM fixtures (produced by running nachifur/RDDM): the official backbone, the checkpoint import and
the official sampler agree with the official code's outputs.

The fixtures live in ``../shared/fixtures/official-rddm/<case>/`` (checkpoint.pt, expected.pt, case.json); a clone
without ``../shared`` uses the slim copy of the smallest case in ``tests/fixtures/official-rddm/``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

import lrdm
from lrdm.cli import main
from lrdm.core.nets import OfficialTermNetwork, count_parameters
from lrdm.core.unetres import UnetRes

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "fixtures" / "official-rddm"  # a worktree's checkout sits beside shared/
if not FIXTURES.is_dir():  # the main checkout may hold it inside; a clone on its own has the slim copy
    FIXTURES = REPO / "shared" / "fixtures" / "official-rddm"
if not FIXTURES.is_dir():
    FIXTURES = REPO / "tests" / "fixtures" / "official-rddm"
SMALLEST = "res_1net"
"""The case every checkout has (tests/fixtures/official-rddm: a slim copy, see its README)."""
OBJECTIVES = {"res_noise_2net": None, SMALLEST: "pred_res"}
"""Fixture case -> the objective to pass with --set (None: the checkpoint determines it)."""
CASES = {case: objective for case, objective in OBJECTIVES.items() if (FIXTURES / case).is_dir()}
"""The cases present: both beside the shared set, the smallest in a clone on its own."""
ATOL = 1e-4  # the tolerance; the official code's own spread across CPU thread counts is up to 6e-5
STEPS = (1, 2, 5, 10)
PAPER_PARAMETERS = 72_522_374
WRONG_WEIGHTS_MIN_DIFF = 0.1  # the raw (non-EMA) weights miss the expected outputs by more than this



@pytest.fixture(autouse=True)
def one_thread():
    """One CPU thread: fast on a loaded machine, and the thread count the fixtures were made with."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def import_case(case: str, out: Path, *extra: str) -> int:
    objective = CASES[case]
    sets = ["--set", f"objective={objective}"] if objective else []
    return main(["import-checkpoint", str(FIXTURES / case / "checkpoint.pt"), "--out", str(out), *sets, *extra])


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """case -> (config, network, process, expected) after ``lrdm import-checkpoint`` and ``lrdm.load_model``."""
    torch.set_num_threads(1)
    loaded = {}
    for case in CASES:
        out = tmp_path_factory.mktemp(case)
        assert import_case(case, out) == 0
        config, network, process = lrdm.load_model(out / "model.pt")
        loaded[case] = (config, network, process, torch.load(FIXTURES / case / "expected.pt", weights_only=True))
    return loaded


def test_paper_size_parameter_count():
    with torch.device("meta"):
        assert count_parameters(UnetRes(dim=64, dim_mults=(1, 2, 4, 8), share_encoder=0)) == PAPER_PARAMETERS


@pytest.mark.parametrize("case", CASES)
def test_import_infers_the_architecture_and_schedule(case, imported):
    config, network, _, _ = imported[case]
    spec = json.loads((FIXTURES / case / "case.json").read_text())
    kwargs, diffusion = spec["UnetRes_kwargs"], spec["ResidualDiffusion_effective"]
    assert config.backbone == "rddm_unetres"
    assert (config.dim, list(config.dim_mults)) == (kwargs["dim"], kwargs["dim_mults"])
    assert network.share_encoder == kwargs["share_encoder"]
    assert (config.T, config.objective) == (diffusion["num_timesteps"], diffusion["objective"])
    assert config.beta2_sum == pytest.approx(diffusion["sum_scale"], rel=1e-12)
    assert count_parameters(network) == spec["checkpoint"]["unet_parameter_count"]


@pytest.mark.parametrize("case", CASES)
def test_network_outputs_match_official_and_come_from_the_ema_weights(case, imported):
    _, network, _, expected = imported[case]
    with torch.no_grad():
        for k in range(expected["net_t"].shape[0]):
            outputs = network(expected["net_x_t"][k], expected["net_t"][k], expected["x_in"])
            for head, value in outputs.terms().items():
                torch.testing.assert_close(value, expected[f"net_out_{head}"][k], rtol=0, atol=ATOL)
                wrong = (value - expected[f"diag_rawweights_net_out_{head}"][k]).abs().max()
                assert float(wrong) > WRONG_WEIGHTS_MIN_DIFF  # the raw weights would not match


@pytest.mark.parametrize("case", CASES)
def test_sampler_matches_official_ddim_sample(case, imported):
    config, network, process, expected = imported[case]
    x_in = expected["x_in"]
    x_T = x_in + math.sqrt(config.beta2_sum) * expected["ddim_start_noise"]
    torch.testing.assert_close((x_T + 1) / 2, expected["ddim_x_T_01"], rtol=0, atol=1e-6)
    with torch.no_grad():
        for steps in STEPS:
            out = (process.sample(network, x_in, steps, x_T=x_T) + 1) / 2
            torch.testing.assert_close(out, expected[f"ddim_S{steps}_out_01"], rtol=0, atol=ATOL)
            if steps == 5:
                assert float((out - expected["diag_rawweights_ddim_S5_out_01"]).abs().max()) > WRONG_WEIGHTS_MIN_DIFF


def test_truncated_and_foreign_checkpoints_name_the_file(tmp_path, capsys):
    truncated = tmp_path / "truncated.pt"
    data = (FIXTURES / SMALLEST / "checkpoint.pt").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    assert main(["import-checkpoint", str(truncated), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lrdm import-checkpoint: error: ") and str(truncated) in err and "truncated" in err
    assert len(err.strip().splitlines()) == 1

    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"weight": torch.zeros(2)}}, foreign)
    assert main(["import-checkpoint", str(foreign), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert str(foreign) in err and "not an official RDDM checkpoint" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def edited_checkpoint(tmp_path: Path, edit) -> Path:
    state = torch.load(FIXTURES / SMALLEST / "checkpoint.pt", weights_only=True)
    edit(state["ema"])
    path = tmp_path / "edited.pt"
    torch.save(state, path)
    return path


def test_missing_keys_and_shape_mismatch_name_the_parameter(tmp_path, capsys):
    missing_name = "ema_model.model.unet0.final_conv.weight"
    path = edited_checkpoint(tmp_path, lambda ema: ema.pop(missing_name))
    assert main(["import-checkpoint", str(path), "--out", str(tmp_path / "a"), "--set", "objective=pred_res"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and f"missing keys: {missing_name}" in err

    bad_name = "ema_model.model.unet0.mid_attn.fn.fn.to_out.weight"
    path = edited_checkpoint(tmp_path, lambda ema: ema.update({bad_name: torch.zeros(3, 3, 1, 1)}))
    assert main(["import-checkpoint", str(path), "--out", str(tmp_path / "b"), "--set", "objective=pred_res"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and f"shape mismatch at {bad_name}" in err


def test_overrides_contradicting_the_checkpoint_or_a_missing_objective_fail(tmp_path, capsys):
    checkpoint = str(FIXTURES / SMALLEST / "checkpoint.pt")
    assert main(["import-checkpoint", checkpoint, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "--set objective=pred_res" in err and "pred_noise" in err and checkpoint in err
    for key, value in (("dim", "32"), ("T", "500"), ("objective", "pred_res_noise"), ("dim_mults", "[1,2]")):
        args = ["import-checkpoint", checkpoint, "--out", str(tmp_path / "b"), "--set", f"{key}={value}"]
        assert main([*args, "--set", "objective=pred_res"] if key != "objective" else args) == 2
        assert f"--set {key}=" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # keys the checkpoint does not fix are free; a consistent restatement is accepted
    args = ["--set", "objective=pred_noise", "--set", "dim=16", "--set", "beta2_sum=0.01", "--set", "crop=64"]
    assert main(["import-checkpoint", checkpoint, "--out", str(tmp_path / "c"), *args]) == 0
    config, network, process = lrdm.load_model(tmp_path / "c" / "model.pt")
    assert (config.objective, config.crop) == ("pred_noise", 64)
    x_in = torch.zeros(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.isfinite(process.sample(network, x_in, 2, generator=torch.Generator().manual_seed(0))).all()


OFFICIAL_LAYOUTS = [(("res", "noise"), "two_net", 0), (("res", "noise"), "one_net", 1), (("res",), "two_net", -1)]


@pytest.mark.parametrize(("terms", "network", "share_encoder"), OFFICIAL_LAYOUTS)
def test_official_term_network_keeps_the_official_names(terms, network, share_encoder):
    """The held ``UnetRes`` adds no prefix: the state_dict is the official one, key for key and in order, and
    an official state_dict loads strictly (nested under another module too)."""
    torch.manual_seed(0)
    official = UnetRes(dim=8, dim_mults=(1, 2), share_encoder=share_encoder)
    held = OfficialTermNetwork(terms, network=network, dim=8, dim_mults=(1, 2))
    assert held.share_encoder == share_encoder
    assert list(held.state_dict()) == list(official.state_dict())
    held.load_state_dict(official.state_dict())
    assert all(torch.equal(held.state_dict()[k], v) for k, v in official.state_dict().items())
    outer = torch.nn.ModuleDict({"model": held})
    assert list(outer.state_dict()) == [f"model.{k}" for k in official.state_dict()]
    outer.load_state_dict({f"model.{k}": v for k, v in official.state_dict().items()})


def test_shared_encoder_checkpoint_round_trip(tmp_path):
    """``share_encoder = 1`` (no fixture of the official code): an official-layout checkpoint built from this
    network imports as ``network: one_net`` with the same weights and outputs."""
    torch.manual_seed(0)
    source = UnetRes(dim=8, dim_mults=(1, 2), share_encoder=1)
    buffers = torch.load(FIXTURES / SMALLEST / "checkpoint.pt", weights_only=True)["ema"]
    ema = {k: v for k, v in buffers.items() if k.startswith("ema_model.") and not k.startswith("ema_model.model.")}
    ema.update({f"ema_model.model.{k}": v for k, v in source.state_dict().items()})
    path = tmp_path / "shared.pt"
    torch.save({"step": 3, "model": {}, "opt": {}, "ema": ema, "scaler": None}, path)
    assert main(["import-checkpoint", str(path), "--out", str(tmp_path / "run")]) == 0
    config, network, _ = lrdm.load_model(tmp_path / "run" / "model.pt")
    assert (config.network, config.objective, config.dim, config.dim_mults) == ("one_net", "pred_res_noise", 8, (1, 2))
    x_t, x_in, t = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8), torch.tensor([5, 900])
    with torch.no_grad():
        res, noise = source(torch.cat([x_t, x_in], dim=1), t)
        out = network(x_t, t, x_in)
    assert torch.equal(out.res, res) and torch.equal(out.noise, noise)


def test_imported_run_evaluates_like_a_trained_run(rain_index, tmp_path):
    out = tmp_path / "scores.parquet"
    run = tmp_path / "run"
    assert import_case(SMALLEST, run) == 0
    args = ["evaluate", "--model", str(run / "model.pt"), "--index", str(rain_index), "--steps", "2", "--out", str(out)]
    assert main([*args, "--device", "cpu"]) == 0
    scores = pd.read_parquet(out)
    assert len(scores) > 0 and scores["psnr"].notna().all()


def test_import_refuses_a_trained_run_or_existing_files_unless_forced(tmp_path, capsys):
    trained = tmp_path / "trained"
    (trained / "checkpoints").mkdir(parents=True)
    (trained / "losses.csv").write_text("step,loss,seconds\n1,0.5,0.1\n")
    (trained / "model.pt").write_bytes(b"the trained model")
    assert import_case(SMALLEST, trained) == 2
    err = capsys.readouterr().err
    assert err.startswith("lrdm import-checkpoint: error: --out ") and len(err.strip().splitlines()) == 1
    assert str(trained) in err and "trained run (checkpoints, losses.csv)" in err and "--force" in err
    assert (trained / "model.pt").read_bytes() == b"the trained model"

    plain = tmp_path / "plain"
    assert import_case(SMALLEST, plain) == 0
    capsys.readouterr()
    assert import_case(SMALLEST, plain) == 2
    assert "model.pt and config.yaml already exist; pass --force" in capsys.readouterr().err
    assert import_case(SMALLEST, plain, "--force") == 0

    a_file = tmp_path / "model.pt"
    a_file.write_bytes(b"x")
    for extra in ((), ("--force",)):
        assert import_case(SMALLEST, a_file, *extra) == 2
        assert f"--out {a_file}: is an existing file" in capsys.readouterr().err
    assert import_case(SMALLEST, trained, "--force") == 0
    assert lrdm.load_model(trained / "model.pt")[0].objective == "pred_res"
