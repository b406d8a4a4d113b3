"""The stage registry: every stage of a run, in run order. Adding a stage is its module plus one
entry here; the runner, the CLI (a subcommand with its flags), the config (its section) and the
catalog (its artifacts) all read their part from the stage's declaration."""

from pipeline.stages import evaluate, explain, extract, fit, fuse, report

STAGES = {stage.name: stage for stage in (extract.STAGE, fuse.STAGE, fit.STAGE, evaluate.STAGE, explain.STAGE,
                                            report.STAGE)}
RUN_ORDER = tuple(STAGES)
