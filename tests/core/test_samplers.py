"""The sampler table (lrdm/core/samplers.py): every sampler one function of one signature, chosen by name."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest
import torch

import lrdm
from lrdm.config import TrainConfig
from lrdm.core.process import build_network, build_process
from lrdm.core.samplers import (
    DEFAULT_OPTIONS,
    DEFAULT_SAMPLER,
    SAMPLER_NAMES,
    SAMPLER_PARAMETERS,
    SAMPLERS,
    SamplerOptions,
    check_sampler_name,
    sampler_for,
)
from lrdm.errors import ConfigError
from lrdm.vocab import PROCESS_DEFAULT_OBJECTIVES, PROCESSES


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_has_the_one_signature(name):
    entry = SAMPLERS[name]
    module, _, attribute = entry.path.partition(":")
    parameters = inspect.signature(getattr(importlib.import_module(module), attribute)).parameters
    assert list(parameters)[: len(SAMPLER_PARAMETERS)] == list(SAMPLER_PARAMETERS)
    assert [parameters[name].default for name in ("generator", "callback", "options")] == [None, None, DEFAULT_OPTIONS]
    assert set(list(parameters)[len(SAMPLER_PARAMETERS) :]) == set(entry.keywords)  # its own settings, bound here
    assert entry.process in PROCESSES and entry.summary


def test_each_process_has_one_default_sampler_and_others_are_refused_by_key():
    for process in PROCESSES:
        own = [entry for entry in SAMPLERS.values() if entry.process == process and entry.default]
        assert len(own) == 1 and sampler_for(DEFAULT_SAMPLER, process) is own[0]
    assert sampler_for(DEFAULT_SAMPLER, "rddm").name == "ddim"
    assert sampler_for(DEFAULT_SAMPLER, "resshift").name == "resshift"
    with pytest.raises(ConfigError, match="key sampling.sampler: sampler 'resshift' samples process 'resshift', not"):
        sampler_for("resshift", "rddm")
    with pytest.raises(ConfigError, match=r"--sampler: unknown sampler 'euler'; valid: default, ddim, resshift") as err:
        check_sampler_name("euler", "--sampler")
    assert err.value.key == "--sampler"
    assert SAMPLER_NAMES[0] == DEFAULT_SAMPLER


def test_the_table_is_torch_free():
    code = "import sys, lrdm.core.samplers; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == (
        "False"
    )


@pytest.mark.parametrize("process_name", PROCESSES)
def test_process_sample_is_its_default_table_entry(process_name):
    """DESIGN's ``process.sample(network, x_in, steps, eta, generator, clip, x_T)`` is the table's default entry with
    ``SamplerOptions(eta, clip, x_T)``, bit for bit; ``lrdm.sample`` is the ``ddim`` entry."""
    objective = PROCESS_DEFAULT_OBJECTIVES[process_name]
    config = TrainConfig(process=process_name, objective=objective, T=20, dim=8, dim_mults=(1, 2), crop=16)
    process = build_process(config)
    torch.manual_seed(0)
    network = build_network(config, process).eval()
    x_in = torch.rand(2, 3, 16, 16) * 2 - 1
    entry = sampler_for(DEFAULT_SAMPLER, process.name)
    with torch.no_grad():
        direct = process.sample(network, x_in, 3, generator=torch.Generator().manual_seed(4), clip=False)
        generator = torch.Generator().manual_seed(4)
        table = entry.function(network, x_in, process.schedule, 3, generator, None, SamplerOptions(clip=False))
        assert torch.equal(direct, table)
        if process_name == "rddm":
            public = lrdm.sample(network, x_in, process.schedule, 3, 0.0, torch.Generator().manual_seed(4), clip=False)
            assert torch.equal(public, table)
            with pytest.raises(TypeError, match="unexpected keyword argument 'etta'"):
                lrdm.sample(network, x_in, process.schedule, 3, etta=0.5)
        else:
            with pytest.raises(ValueError, match="eta applies to process 'rddm' only"):
                process.sample(network, x_in, 3, eta=0.5)
