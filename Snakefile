# LRDM reproduction workflow: `snakemake --cores all <target>`; targets are listed in README.md.
import os
import sys

from snakemake.utils import min_version, validate

import lrdm.paths as P
import lrdm.schema as S
import lrdm.targets as T
import lrdm.vocab as V
import lrdm.workflow as W
from lrdm.errors import LrdmError

min_version("9.27")  # as pyproject.toml: workflow profiles from profile.yaml


configfile: "config/config.yaml"


# Each config file writes its own folders (README "Where each config writes"): results/ and resources/ for the
# embedded default, results/NAME/ and resources/NAME/ for `--configfile NAME.yaml` unless it sets them.
SCHEMA = "workflow/schemas/config.schema.yaml"
try:  # a config error ends with one line naming the key (Snakemake's validate would print schema and config)
    FOLDERS = P.output_folders(config, P.config_name(workflow.overwrite_configfiles, f"{workflow.basedir}/config/config.yaml"))
    config.update(results=FOLDERS.results, resources=FOLDERS.resources, downloads=FOLDERS.downloads)  # for the scripts
    config.update(S.checked_config(config, os.path.join(workflow.basedir, SCHEMA)))  # numbers as text -> floats
    validate(config, SCHEMA)  # fills the schema's defaults
    W.check_config(config)
except LrdmError as err:
    sys.exit(str(err))
RESULTS = FOLDERS.results
RESOURCES = FOLDERS.resources
LOGS = FOLDERS.logs


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
