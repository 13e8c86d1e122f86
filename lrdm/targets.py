"""The table of paper targets: one entry per artefact of the papers that the workflow rebuilds, and the one home of
every target's name.

An entry (:class:`Target`) holds everything the workflow needs to know about its artefact: its name (the
Snakemake target and the key under ``targets`` in the config), a caption (what it reproduces: its row in the
README's table of targets), its report category, the evaluations it needs (the (run, steps) pairs whose scores it
reads; none for figure-only targets), the files it makes (a table named after it when it has a builder, its
figures, other files), the builder of its table, the plotter of its scores figure and the properties that other
modules would otherwise decide by its name (``protocol_scores``, ``official_rows``, ``steps_keys``).  The
Snakefile's target rules and report categories (``workflow/rules/report.smk``), the outputs each target needs
(``target_outputs`` in ``common.smk``), the config checks, the table and scores-figure scripts and the README's
table of targets (:func:`targets_markdown`) all read :data:`TARGETS`; rules and modules that refer to one target
use its constant here (:data:`MAIN_TABLE`, ...), never its name as text.

Adding an artefact is one entry here, its builder (``lrdm/results/tables.py``) and its block under ``targets`` in
``workflow/schemas/config.schema.yaml``.  A config without a block for it does not build it, unless its schema
block has a ``default`` (Snakemake's ``validate`` fills it in, so every config builds it).  The generated
documents follow: ``snakemake readme_targets`` and ``python -m lrdm.results.readme --update README.md`` (the
README's row), ``python -m lrdm.workflow.config_reference`` (``config/README.md``).

This module is imported while Snakemake builds the DAG, so it imports neither torch, pandas nor matplotlib:
builders and plotters are named by :class:`Ref` and imported when called.

An evaluation is identified by a training run ``(dataset, process, objective, rank_spec, seed)`` and a number of
sampling steps (:class:`Evaluation`); targets that need the same run share it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import astuple, dataclass
from typing import TYPE_CHECKING, Any

from lrdm.errors import ConfigError
from lrdm.paths import (
    DEFAULT_RESULTS,
    FIGURE_FORMATS,
    RUN_FIELDS,
    RUN_PATTERN,
    TABLE_FORMATS,
    figure_path,
    model_path,
    run_folder,
    spectrum_file,
    table_path,
)
from lrdm.vocab import (
    DEFAULT_OBJECTIVE,
    DEFAULT_PROCESS,
    FULL_RANK,
    OBJECTIVES,
    PROCESS_OBJECTIVES,
    PROCESSES,
    RankSpec,
)

if TYPE_CHECKING:
    import pandas as pd

PER_DATASET = "{dataset}"
"""Placeholder in a target's figure or file stem: one per dataset of the target (``targets.<name>.datasets``)."""

# --------------------------------------------------------------------------------------------------
# The names of the targets that other modules and rules refer to (each the key of its entry in TARGETS)
# --------------------------------------------------------------------------------------------------

SPECTRUM = "spectrum"
RANK_SCHEDULES = "rank_schedules"
RANK_SWEEP = "rank_sweep"
SCHEDULERS = "schedulers"
ORDERS = "orders"
STEPS = "steps"
FEASIBILITY = "feasibility"
MAIN_TABLE = "main_table"
PROTOCOLS = "protocols"
SAMPLING_METHODS = "sampling_methods"
CLAIMS = "claims"

# Figures made by rules of their own (the other figures are named after their target)
SPECTRUM_FIGURES = (f"spectrum/{PER_DATASET}_fig2", f"spectrum/{PER_DATASET}_fig3")
"""LRDM Fig. 2 and Fig. 3 of each spectrum dataset (rule spectrum_figures)."""
SPECTRUM_SUMMARY = "summary"
"""The spectrum analysis's per-dataset summary (k90/k99; what ``max_rank: auto`` reads)."""
RANK_GRID = "rank_grid"
"""LRDM Fig. 7: restorations of one test image by each fixed rank (rule rank_grid_figure)."""
RESTORATION_GRID = f"restoration/{PER_DATASET}"
"""The main table's restoration grid of each dataset (rule restoration_grid_figure)."""
LOSSES_FIGURE = f"losses/{PER_DATASET}"
"""The training losses of every run of a dataset that ``all`` trains (rule loss_comparison_figure)."""


@dataclass(frozen=True)
class Run:
    """One training run, ``(dataset, process, objective, rank_spec, seed)``."""

    dataset: str
    process: str
    objective: str
    rank_spec: str
    seed: int

    @classmethod
    def from_wildcards(cls, wildcards: Mapping[str, Any]) -> Run:
        """The run a job's wildcards name (``seed`` as text becomes an int)."""
        return cls(*(wildcards[name] for name in RUN_FIELDS[:-1]), int(wildcards["seed"]))

    @property
    def path(self) -> str:
        """Run folder relative to ``results/runs`` and ``results/scores`` (:data:`RUN_PATTERN`)."""
        return RUN_PATTERN.format(**{name: getattr(self, name) for name in RUN_FIELDS})

    def folder(self, results: str) -> str:
        """The run's folder under the ``results`` folder."""
        return run_folder(results, self.path)

    def model(self, results: str) -> str:
        """The run's trained model under the ``results`` folder (the train rule's output)."""
        return model_path(results, self.path)


@dataclass(frozen=True)
class Evaluation(Run):
    """A training run (:class:`Run`) sampled with ``steps`` steps."""

    steps: int

    @property
    def trained(self) -> Run:
        """The training run it samples."""
        return Run(*(getattr(self, name) for name in RUN_FIELDS))


@dataclass(frozen=True)
class Ref:
    """A function named by its module and name, imported on the first call: the table names builders and
    plotters without the DAG build importing pandas or matplotlib."""

    module: str
    name: str

    def resolve(self) -> Callable[..., Any]:
        """The function itself (imports its module)."""
        return getattr(importlib.import_module(self.module), self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)


Spec = Mapping[str, Any]
"""A target's config section, ``config["targets"][name]``."""
Evaluations = Callable[[dict[str, Any], Spec], list["Evaluation"]]
"""A target's evaluations from the whole config and its own section."""
BuilderArgs = Callable[[Spec, "int | None"], dict[str, Any]]
"""The keyword arguments of a target's builder from its section and the config's ``sampling.steps``."""


def no_args(spec: Spec, sampling_steps: int | None) -> dict[str, Any]:
    """Builder arguments of a target whose builder needs the scores only."""
    return {}


@dataclass(frozen=True)
class Target:
    """One paper artefact (see the module docstring)."""

    name: str
    caption: str
    """What the artefact reproduces (the paper's table or figure): its row in the README's table of targets."""
    category: str
    """The Snakemake report category of its tables and figures."""
    evaluations: Evaluations | None = None
    """The evaluations whose scores it reads; None for a figure-only target."""
    builder: Ref | None = None
    """Builds its table, ``builder(scores, **builder_args(spec, sampling_steps))``; None: no table."""
    builder_args: BuilderArgs = no_args
    figures: tuple[str, ...] = ()
    """Figure stems under ``results/figures``; :data:`PER_DATASET` expands over the target's datasets."""
    plot: Ref | None = None
    """Draws the scores figure named after the target, ``plot(scores, out_stem)``; None: no such figure."""
    files: tuple[str, ...] = ()
    """Other files under ``results`` that it makes; :data:`PER_DATASET` expands as in ``figures``."""
    in_all: bool = True
    """Whether ``snakemake all`` builds it (False: a separate target, e.g. one that trains on several seeds)."""
    protocol_scores: bool = False
    """Whether it reads the further-protocol score files (:func:`lrdm.paths.protocols_path`) instead of the scores."""
    official_rows: bool = False
    """Whether it also reads the scores of the authors' weights (config key ``official_weights``)."""
    steps_keys: tuple[str, ...] = ()
    """The keys of its config section that list sampling steps (the others sample ``sampling.steps``)."""

    @property
    def tables(self) -> tuple[str, ...]:
        """Its tables under ``results/tables``: one named after it when it has a builder."""
        return (self.name,) if self.builder is not None else ()

    def outputs(self, results: str, spec: Spec) -> list[str]:
        """Every file that makes up the artefact (the inputs of its target rule): its tables and the files and
        figures made once, then those made per dataset, dataset by dataset."""
        tables = [table_path(results, name, ext) for name in self.tables for ext in TABLE_FORMATS]
        files = [f"{results}/{path}" for path in self.files]
        paths = [*files, *(figure_path(results, stem, ext) for stem in self.figures for ext in FIGURE_FORMATS)]
        once = [path for path in paths if PER_DATASET not in path]
        per_dataset = [path for path in paths if PER_DATASET in path]
        each = [path.format(dataset=d) for d in (spec["datasets"] if per_dataset else []) for path in per_dataset]
        return [*tables, *once, *each]


def sampling_steps(config: dict[str, Any]) -> int:
    """The config's ``sampling.steps``: the step count of every evaluation that names no other."""
    return int(config["sampling"]["steps"])


def evaluation_grid(
    config: dict[str, Any],
    datasets: Iterable[str],
    specs: Iterable[str],
    processes: Iterable[str] = (DEFAULT_PROCESS,),
    objectives: Iterable[str] = (DEFAULT_OBJECTIVE,),
    steps: Iterable[int] | None = None,
    seeds: Iterable[int] | None = None,
) -> list[Evaluation]:
    """Every combination of the given values (steps: ``sampling.steps``; seeds: the top-level ``seeds``)."""
    steps = list(steps) if steps is not None else [sampling_steps(config)]
    seeds = list(seeds) if seeds is not None else config["seeds"]
    return [
        Evaluation(d, p, o, s, int(seed), int(n))
        for d in datasets
        for p in processes
        for o in objectives
        for s in specs
        for seed in seeds
        for n in steps
    ]


# --------------------------------------------------------------------------------------------------
# The evaluations of each scored target
# --------------------------------------------------------------------------------------------------


def fixed_rank_specs(ranks: Iterable[int]) -> list[str]:
    """The rank spec of a fixed rank ``r`` for each of ``ranks`` (``fixed-r<r>``)."""
    return [RankSpec("fixed", rank=int(r)).name for r in ranks]


def rank_sweep_evaluations(config: dict[str, Any], spec: Spec) -> list[Evaluation]:
    return evaluation_grid(config, spec["datasets"], [FULL_RANK.name, *fixed_rank_specs(spec["ranks"])])


def specs_evaluations(config: dict[str, Any], spec: Spec) -> list[Evaluation]:
    """The ``specs`` of the target on its ``datasets``, default process and objective."""
    return evaluation_grid(config, spec["datasets"], spec["specs"])


def orders_evaluations(config: dict[str, Any], spec: Spec) -> list[Evaluation]:
    specs = [RankSpec(kind, order=int(p)).name for kind in spec["kinds"] for p in spec["orders"]]
    return evaluation_grid(config, spec["datasets"], specs)


def steps_evaluations(config: dict[str, Any], spec: Spec) -> list[Evaluation]:
    return evaluation_grid(config, spec["datasets"], spec["specs"], steps=spec["steps"])


def feasibility_evaluations(config: dict[str, Any], spec: Spec) -> list[Evaluation]:
    """Full rank and ``spec`` under every process, each with its first objective."""
    return [
        e
        for process in PROCESSES
        for e in evaluation_grid(
            config,
            spec["datasets"],
            [FULL_RANK.name, spec["spec"]],
            processes=[process],
            objectives=PROCESS_OBJECTIVES[process][:1],
        )
    ]


def protocols_evaluations(config: dict[str, Any], spec: Spec) -> list[Evaluation]:
    """The main table's evaluations (their restored images, scored once more under each protocol)."""
    return specs_evaluations(config, config["targets"][MAIN_TABLE])


def sampling_methods_evaluations(config: dict[str, Any], spec: Spec) -> list[Evaluation]:
    return evaluation_grid(config, spec["datasets"], [spec["spec"]], objectives=OBJECTIVES)


def claims_evaluations(config: dict[str, Any], spec: Spec) -> list[Evaluation]:
    """The runs behind :func:`lrdm.results.claims.claims_from_spec`, on the target's own seeds."""
    seeds = spec["seeds"]
    datasets = spec["datasets"]
    specs = [spec["medium_rank"], *spec["schedulers"]]
    step_lists = sorted({*spec["few_steps"], *spec["many_steps"], sampling_steps(config)})
    return sorted(
        set(evaluation_grid(config, datasets, specs, seeds=seeds))
        | set(evaluation_grid(config, datasets, [FULL_RANK.name, spec["low_rank"]], steps=step_lists, seeds=seeds))
        | set(evaluation_grid(config, datasets, [FULL_RANK.name], objectives=OBJECTIVES, seeds=seeds)),
        key=astuple,
    )


# --------------------------------------------------------------------------------------------------
# The arguments of each builder that needs more than the scores
# --------------------------------------------------------------------------------------------------


def main_table_args(spec: Spec, sampling_steps: int | None) -> dict[str, Any]:
    return {"datasets": spec.get("datasets"), "labels": spec.get("labels")}


def sampling_methods_args(spec: Spec, sampling_steps: int | None) -> dict[str, Any]:
    return {"rank_specs": [spec["spec"]] if spec.get("spec") else None}


def claims_args(spec: Spec, sampling_steps: int | None) -> dict[str, Any]:
    if sampling_steps is None:
        raise ConfigError("the claims table needs sampling_steps (config key sampling.steps)", "sampling.steps")
    return {"spec": spec, "sampling_steps": sampling_steps}


# --------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------

TABLES = "lrdm.results.tables"
PLOTS = "lrdm.results.plots"

TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target(
            SPECTRUM,
            "LRDM Fig. 2 and 3 (residual spectrum; k90/k99 energy ranks)",
            "Fig. 2 and 3: residual spectrum",
            figures=SPECTRUM_FIGURES,
            files=(spectrum_file(PER_DATASET, SPECTRUM_SUMMARY),),
        ),
        Target(
            RANK_SCHEDULES,
            "LRDM Fig. 4 (k(t) of each rank scheduler, Eq. 15–19)",
            "Fig. 4: rank schedulers",
            figures=(RANK_SCHEDULES,),
        ),
        Target(
            RANK_SWEEP,
            "LRDM Fig. 6 and 7 (PSNR/SSIM against the fixed rank; image grid)",
            "Fig. 6 and 7: fixed-rank sweep",
            rank_sweep_evaluations,
            Ref(TABLES, "rank_sweep_table"),
            figures=(RANK_SWEEP, RANK_GRID),
            plot=Ref(PLOTS, "plot_rank_sweep"),
        ),
        Target(
            SCHEDULERS,
            "LRDM Tab. 3 (LI / LD / PI / PD)",
            "Tab. 3: rank schedulers",
            specs_evaluations,
            Ref(TABLES, "schedulers_table"),
        ),
        Target(
            ORDERS,
            "LRDM Tab. 4 (polynomial order p)",
            "Tab. 4: polynomial orders",
            orders_evaluations,
            Ref(TABLES, "orders_table"),
        ),
        Target(
            STEPS,
            "LRDM Fig. 8 (PSNR against 1–10 sampling steps)",
            "Fig. 8: sampling steps",
            steps_evaluations,
            Ref(TABLES, "steps_table"),
            figures=(STEPS,),
            plot=Ref(PLOTS, "plot_steps"),
            steps_keys=("steps",),
        ),
        Target(
            FEASIBILITY,
            "LRDM Tab. 5 (RDDM / ResShift with and without low rank)",
            "Tab. 5: low rank in RDDM and ResShift",
            feasibility_evaluations,
            Ref(TABLES, "feasibility_table"),
        ),
        Target(
            MAIN_TABLE,
            "LRDM Tab. 1 and 2 (our rows beside the paper's reported rows, with the protocol of each, and an "
            '"input (degraded)" row per protocol: the test inputs scored as our runs); a restoration grid per dataset '
            "(GT, input, RDDM, LRDM; its PSNRs scored as the table scores, the scoring named in its title)",
            "Tab. 1 and 2: main comparison",
            specs_evaluations,
            Ref(TABLES, "main_table"),
            main_table_args,
            figures=(RESTORATION_GRID,),
            official_rows=True,
        ),
        Target(
            PROTOCOLS,
            "how each paper's protocol scores the main-table runs (see [docs/protocols.md](docs/protocols.md))",
            "How each paper measured: the main-table runs under each protocol",
            protocols_evaluations,
            Ref(TABLES, "protocols_table"),
            protocol_scores=True,
        ),
        Target(
            SAMPLING_METHODS,
            "RDDM Tab. 1 (SM-Res / SM-N / SM-Res-N)",
            "RDDM Tab. 1: sampling methods",
            sampling_methods_evaluations,
            Ref(TABLES, "sampling_methods_table"),
            sampling_methods_args,
        ),
        Target(
            CLAIMS,
            "the papers' qualitative claims on three training seeds, each with a 95 % interval and a verdict (see "
            "[docs/results.md](docs/results.md))",
            "The papers' claims on several seeds",
            claims_evaluations,
            Ref("lrdm.results.claims", "claims_table"),
            claims_args,
            steps_keys=("few_steps", "many_steps"),
            in_all=False,  # trains every run again on several seeds (docs/results.md: their budget)
        ),
    )
}
"""Every paper artefact the workflow rebuilds, in the order ``all`` lists them."""

SCORE_TARGETS = tuple(name for name, target in TARGETS.items() if target.evaluations is not None)
"""The targets built from per-image scores."""
TABLE_TARGETS = tuple(name for name, target in TARGETS.items() if target.builder is not None)
"""The targets with a table (named after the target)."""
PLOT_TARGETS = tuple(name for name, target in TARGETS.items() if target.plot is not None)
"""The targets with a scores figure (named after the target)."""


def enabled_targets(config: dict[str, Any]) -> list[str]:
    """The targets configured under ``targets`` and not ``enabled: false``, in :data:`TARGETS` order."""
    targets = config.get("targets", {})
    return [name for name in TARGETS if name in targets and targets[name].get("enabled", True)]


def all_targets(config: dict[str, Any]) -> list[str]:
    """The enabled targets that ``snakemake all`` (the default) builds: those with ``in_all``."""
    return [name for name in enabled_targets(config) if TARGETS[name].in_all]


def target_evaluations(config: dict[str, Any], target: str) -> list[Evaluation]:
    """Every (run, steps) evaluation a scored target needs."""
    entry = TARGETS.get(target)
    if entry is None or entry.evaluations is None:
        raise ValueError(f"target {target!r} has no evaluations; scored targets: {', '.join(SCORE_TARGETS)}")
    return entry.evaluations(config, config["targets"][target])


def build_target_table(
    name: str, scores: pd.DataFrame, spec: Spec | None = None, sampling_steps: int | None = None
) -> tuple[pd.DataFrame, str]:
    """The display frame and caption of target ``name`` from its scores (``spec``: the target's config section,
    e.g. ``datasets`` for ``main_table``; ``sampling_steps``: the config's ``sampling.steps``, where the claims
    compare runs)."""
    target = TARGETS.get(name)
    if target is None or target.builder is None:
        raise ValueError(f"no table for target {name!r}; tables: {', '.join(TABLE_TARGETS)}")
    frame = target.builder(scores, **target.builder_args(spec or {}, sampling_steps))
    return frame, frame.attrs["caption"]


# --------------------------------------------------------------------------------------------------
# The README's table of targets
# --------------------------------------------------------------------------------------------------

README_BLOCK = "targets"
"""The README's generated block (and its fragment under ``results/readme``) listing the targets."""
ALL = "all"
"""The default target: every enabled target with ``in_all``."""


def readme_outputs(target: Target) -> list[str]:
    """The target's files as the README names them: under the embedded default's ``results/``, each table and
    figure once with ``.*`` for its formats, ``<dataset>`` for each dataset."""
    shown = {PER_DATASET: "<dataset>"}
    results = DEFAULT_RESULTS
    names = [
        *(table_path(results, name, "*") for name in target.tables),
        *(figure_path(results, stem, "*") for stem in target.figures),
        *(f"{results}/{path}" for path in target.files),
    ]
    return [name.replace(PER_DATASET, shown[PER_DATASET]) for name in names]


def targets_markdown() -> str:
    """The README's table of targets (block :data:`README_BLOCK`): a row per entry of :data:`TARGETS` (name,
    caption, files), then ``all``."""
    rows = ["| target | paper artefact | outputs |", "|---|---|---|"]
    for target in TARGETS.values():
        outputs = ", ".join(f"`{path}`" for path in readme_outputs(target))
        rows.append(f"| `{target.name}` | {target.caption} | {outputs} |")
    separate = ", ".join(f"`{name}`" for name, target in TARGETS.items() if not target.in_all)
    rows.append(f"| `{ALL}` | every target enabled in the config but {separate} (each built on its own) | |")
    return "\n".join(rows) + "\n"
