# facemorphic: event-camera facial Action Unit analysis with cross-modal 3DMM supervision.
# `snakemake -c8 all` runs the whole pipeline on the dataset that config.yaml names
# (by default a synthetic FACEMORPHIC dataset the pipeline generates itself).
from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/events.smk"
include: "workflow/rules/landmarks.smk"
include: "workflow/rules/morphable.smk"
include: "workflow/rules/fitting.smk"
include: "workflow/rules/shards.smk"
include: "workflow/rules/train.smk"


rule all:
    default_target: True
    input:
        final_targets(),
