# facemorphic: event-camera facial Action Unit analysis with cross-modal 3DMM supervision.
# `snakemake -c8 all` runs the whole pipeline on the dataset that config.yaml names
# (by default a synthetic FACEMORPHIC dataset the pipeline generates itself).
from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


wildcard_constraints:
    user=SAFE_NAME_PATTERN,
    experiment=SAFE_NAME_PATTERN,
    seed=r"\d+",
    lam=r"[0-9][0-9.e+-]*",
    modality="events|rgb|rgb_face",
    variant=SAFE_NAME_PATTERN,


include: "workflow/rules/synthetic.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/events.smk"
include: "workflow/rules/landmarks.smk"
include: "workflow/rules/morphable.smk"
include: "workflow/rules/fitting.smk"
include: "workflow/rules/quality.smk"
include: "workflow/rules/shards.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/representations.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/report.smk"


onsuccess:
    print(
        "facemorphic: tables in results/tables/, the data-quality table in results/quality.csv, figures in "
        "results/figures/; `snakemake --report report.html` builds the report."
    )


rule all:
    default_target: True
    input:
        final_targets(),
