# The event representation study (`snakemake representations`, not part of `all`): one event experiment
# (representations.experiment) trained over representations.seeds on each variant of
# representations.variants (the events block overridden by the variant), and one row per variant in
# results/tables/table6_representations.csv. Each variant has its own event frames (a variant drawn exactly
# as the events block reuses results/events/), event-only shards, feature cache and runs under
# results/representations/{variant}/; the recordings are those the quality table keeps for the main runs.


include: "representations_common.smk"


rule representation_events:
    input:
        manifest="results/manifest/{user}.csv",
        code=stage_code("events"),
    output:
        "results/representations/{variant}/events/{user}.h5",
    params:
        options=study_events_options,
        facemorphic=facemorphic_command,
    log:
        "logs/representations/{variant}/events/{user}.log",
    benchmark:
        "benchmarks/out/representations/{variant}/events/{user}.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/events.yaml"
    shell:
        "{params.facemorphic} events --manifest {input.manifest:q} --out {output:q} --options {params.options:q} "
        "> {log:q} 2>&1"


rule representation_shards:
    input:
        manifest="results/manifest.csv",
        quality="results/quality.csv",
        events=study_events_files,
        coefficients=expand("results/coefficients/{user}.h5", user=users()),
        code=stage_code("shards"),
    output:
        shards=expand(
            "results/representations/{{variant}}/shards/{split}/shard-{k}.h5",
            split=SPLITS,
            k=range(config["shards"]["num_shards"]),
        ),
        index=expand("results/representations/{{variant}}/shards/{split}/index.csv", split=SPLITS),
    params:
        events_dir=lambda wildcards, input: Path(input.events[0]).parent,
        coefficients_dir=lambda wildcards, input: Path(input.coefficients[0]).parent,
        out_dir=lambda wildcards, output: Path(output.index[0]).parent.parent,
        splits=SPLITS,
        options=study_shards_options(),
        facemorphic=facemorphic_command,
    log:
        "logs/representations/{variant}/shards.log",
    benchmark:
        "benchmarks/out/representations/{variant}/shards.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} shards --manifest {input.manifest:q} --events-dir {params.events_dir:q} "
        "--coefficients-dir {params.coefficients_dir:q} --out-dir {params.out_dir:q} --splits {params.splits:q} "
        "--quality {input.quality:q} --options {params.options:q} > {log:q} 2>&1"


rule representation_features:
    input:
        shards=rules.representation_shards.output.shards,
        code=stage_code("training"),
    output:
        expand("results/representations/{{variant}}/features/resnet18/events/{split}.h5", split=SPLITS),
    params:
        out_dir=lambda wildcards, output: Path(output[0]).parent,
        shards_dir=lambda wildcards, input: Path(input.shards[0]).parent.parent,
        splits=SPLITS,
        modality="events",
        options=features_options(),
        facemorphic=facemorphic_command,
    log:
        "logs/representations/{variant}/features.log",
    benchmark:
        "benchmarks/out/representations/{variant}/features.tsv"
    threads: job_slots(config["features"]["threads"])
    resources:
        mem_mb=6000,
        runtime=120,
        gpu=training_gpus(),
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} features --shards-dir {params.shards_dir:q} --modality {params.modality:q} "
        "--out-dir {params.out_dir:q} --splits {params.splits:q} --options {params.options:q} "
        "> {log:q} 2>&1"


rule representation_train:
    input:
        shards=rules.representation_shards.output.shards,
        features=study_features,
        sweep_table=study_sweep_table,
        code=stage_code("training"),
    output:
        predictions="results/representations/{variant}/runs/seed-{seed}/predictions.csv",
        run="results/representations/{variant}/runs/seed-{seed}/run.json",
        metrics="results/representations/{variant}/runs/seed-{seed}/metrics.csv",
    params:
        shards_dir=lambda wildcards, input: Path(input.shards[0]).parent.parent,
        out_dir=lambda wildcards, output: Path(output.run).parent,
        experiment=lambda wildcards: study_experiment(),
        options=study_run_options,
        splits=study_predicted_splits,
        features=features_dir_argument,
        lambda_from=lambda_from_argument,
        facemorphic=facemorphic_command,
    log:
        "logs/representations/{variant}/train/seed-{seed}.log",
    benchmark:
        "benchmarks/out/representations/{variant}/train/seed-{seed}.tsv"
    threads: job_slots(config["training"]["threads"])
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=training_gpus(),
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} train --shards-dir {params.shards_dir:q} --out-dir {params.out_dir:q} "
        "--experiment {params.experiment:q} --seed {wildcards.seed:q} --options {params.options:q} "
        "{params.features:q} {params.lambda_from:q} --predict-splits {params.splits:q} > {log:q} 2>&1"


rule representation_table:
    input:
        runs=study_runs("run.json"),
        predictions=study_runs("predictions.csv"),
        code=stage_code("evaluation"),
    output:
        report(STUDY_TABLE, caption="../report/tables/table6_representations.rst", category="Tables"),
    params:
        runs=study_run_arguments,
        variants=study_variants_json(),
        tables_dir=lambda wildcards, output: Path(output[0]).parent,
        data_source=config["dataset"]["source"],
        facemorphic=facemorphic_command,
    log:
        "logs/representations/table.log",
    benchmark:
        "benchmarks/out/representations/table.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} evaluate --representation-runs {params.runs:q} "
        "--representation-variants {params.variants:q} --out-dir {params.tables_dir:q} "
        "--data-source {params.data_source:q} > {log:q} 2>&1"


rule representations:
    input:
        STUDY_TABLE,
