# Frozen-backbone feature cache, one training job per experiment and seed, and the result tables.


rule features:
    input:
        shards=rules.shards.output.shards,
        code=stage_code("training"),
    output:
        expand("results/features/resnet18/{{modality}}/{split}.h5", split=SPLITS),
    params:
        out_dir=lambda wildcards, output: Path(output[0]).parent,
        shards_dir=lambda wildcards, input: Path(input.shards[0]).parent.parent,
        splits=SPLITS,
        options=features_options(),
        facemorphic=facemorphic_command,
    log:
        "logs/features/{modality}.log",
    benchmark:
        "benchmarks/out/features/{modality}.tsv"
    threads: job_slots(config["features"]["threads"])
    resources:
        mem_mb=6000,
        runtime=120,
        gpu=training_gpus(),
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} features --shards-dir {params.shards_dir:q} --modality {wildcards.modality:q} "
        "--out-dir {params.out_dir:q} --splits {params.splits:q} --options {params.options:q} "
        "> {log:q} 2>&1"


rule train_sweep:
    input:
        shards=rules.shards.output.shards,
        features=experiment_features,
        code=stage_code("training"),
    output:
        predictions="results/sweep/{experiment}/lambda-{lam}/seed-{seed}/predictions.csv",
        run="results/sweep/{experiment}/lambda-{lam}/seed-{seed}/run.json",
        metrics="results/sweep/{experiment}/lambda-{lam}/seed-{seed}/metrics.csv",
    params:
        shards_dir=lambda wildcards, input: Path(input.shards[0]).parent.parent,
        out_dir=lambda wildcards, output: Path(output.run).parent,
        options=sweep_run_options,
        features=features_dir_argument,
        facemorphic=facemorphic_command,
    log:
        "logs/sweep/{experiment}/lambda-{lam}/seed-{seed}.log",
    benchmark:
        "benchmarks/out/sweep/{experiment}/lambda-{lam}/seed-{seed}.tsv"
    threads: job_slots(config["training"]["threads"])
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=training_gpus(),
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} train --shards-dir {params.shards_dir:q} --out-dir {params.out_dir:q} "
        "--experiment {wildcards.experiment:q} --seed {wildcards.seed:q} --options {params.options:q} "
        "{params.features:q} --predict-splits val > {log:q} 2>&1"


rule lambda_sweep:
    input:
        runs=sweep_runs(),
        code=stage_code("evaluation"),
    output:
        report(
            "results/tables/table_lambda_sweep.csv",
            caption="../report/tables/table_lambda_sweep.rst",
            category="Tables",
        ),
    params:
        run_dirs=lambda wildcards, input: [str(Path(p).parent) for p in input.runs],
        tables_dir=lambda wildcards, output: Path(output[0]).parent,
        facemorphic=facemorphic_command,
    log:
        "logs/lambda_sweep.log",
    benchmark:
        "benchmarks/out/lambda_sweep.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} evaluate --sweep-runs {params.run_dirs:q} --out-dir {params.tables_dir:q} "
        "> {log:q} 2>&1"


rule train:
    input:
        shards=rules.shards.output.shards,
        features=experiment_features,
        sweep_table=sweep_table_input,
        code=stage_code("training"),
    output:
        predictions="results/runs/{experiment}/seed-{seed}/predictions.csv",
        run="results/runs/{experiment}/seed-{seed}/run.json",
        metrics="results/runs/{experiment}/seed-{seed}/metrics.csv",
    params:
        shards_dir=lambda wildcards, input: Path(input.shards[0]).parent.parent,
        out_dir=lambda wildcards, output: Path(output.run).parent,
        options=experiment_options,
        splits=predicted_splits,
        features=features_dir_argument,
        lambda_from=lambda_from_argument,
        facemorphic=facemorphic_command,
    log:
        "logs/train/{experiment}/seed-{seed}.log",
    benchmark:
        "benchmarks/out/train/{experiment}/seed-{seed}.tsv"
    threads: job_slots(config["training"]["threads"])
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=training_gpus(),
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} train --shards-dir {params.shards_dir:q} --out-dir {params.out_dir:q} "
        "--experiment {wildcards.experiment:q} --seed {wildcards.seed:q} --options {params.options:q} "
        "{params.features:q} {params.lambda_from:q} --predict-splits {params.splits:q} > {log:q} 2>&1"


rule evaluate:
    input:
        runs=expand(
            "results/runs/{experiment}/seed-{seed}/run.json",
            experiment=list(config["experiments"]),
            seed=config["training"]["seeds"],
        ),
        predictions=expand(
            "results/runs/{experiment}/seed-{seed}/predictions.csv",
            experiment=list(config["experiments"]),
            seed=config["training"]["seeds"],
        ),
        code=stage_code("evaluation"),
    output:
        tables=[
            report(f"results/tables/{table}.csv", caption=f"../report/tables/{table}.rst", category="Tables")
            for table in TABLES
        ],
        figures=report(
            expand("results/figures/confusion_{experiment}.png", experiment=list(config["experiments"])),
            caption="../report/confusion.rst",
            category="Confusion matrices",
        ),
    params:
        run_dirs=lambda wildcards, input: [str(Path(p).parent) for p in input.runs],
        tables_dir=lambda wildcards, output: Path(output.tables[0]).parent,
        figures_dir=lambda wildcards, output: Path(output.figures[0]).parent,
        data_source=config["dataset"]["source"],
        facemorphic=facemorphic_command,
    log:
        "logs/evaluate.log",
    benchmark:
        "benchmarks/out/evaluate.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} evaluate --runs {params.run_dirs:q} --out-dir {params.tables_dir:q} "
        "--figures-dir {params.figures_dir:q} --data-source {params.data_source:q} > {log:q} 2>&1"
