# LRDM reproduction workflow: `snakemake --cores all <target>`; targets are listed in README.md.
import os

from snakemake.utils import min_version, validate

import lrdm.layout as L
import lrdm.vocab as V
import lrdm.workflow as W

min_version("9.27")  # as pyproject.toml: workflow profiles from profile.yaml


configfile: "config/config.yaml"


# Each config file writes its own folders (README "Where each config writes"): results/ and resources/ for the
# embedded default, results/NAME/ and resources/NAME/ for `--configfile NAME.yaml` unless it sets them.
LAYOUT = L.layout(config, L.config_name(workflow.overwrite_configfiles, f"{workflow.basedir}/config/config.yaml"))
config.update(results=LAYOUT.results, resources=LAYOUT.resources, downloads=LAYOUT.downloads)  # read by the scripts
RESULTS = LAYOUT.results
RESOURCES = LAYOUT.resources
LOGS = LAYOUT.logs

validate(config, "workflow/schemas/config.schema.yaml")
W.check_config(config)


wildcard_constraints:
    dataset="[a-z0-9_]+",
    process="|".join(V.PROCESSES),
    objective="|".join(sorted({o for names in V.PROCESS_OBJECTIVES.values() for o in names})),
    rank_spec=V.RANK_SPEC_PATTERN,
    seed="[0-9]+",
    steps="[0-9]+",
    name="[a-z_]+",


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/spectrum.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/official.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        [path for target in W.all_targets(config) for path in target_outputs(target)],
        W.loss_comparison_paths(config),
