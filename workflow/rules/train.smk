# Frozen-backbone feature cache, one training job per experiment and seed, and the result tables.


rule features:
    input:
        shards=rules.shards.output.shards,
        code=stage_code("training", "models", "shards"),
    output:
        expand("results/features/resnet18/{{modality}}/{split}.h5", split=SPLITS),
    params:
        out_dir=lambda wildcards, output: Path(output[0]).parent,
        shards_dir=lambda wildcards, input: Path(input.shards[0]).parent.parent,
        splits=SPLITS,
        weights=resnet_weights_argument(),
        backbone_seed=config["features"]["backbone_seed"],
        device=config["training"]["device"],
        facemorphic=facemorphic_command(),
    log:
        "logs/features/{modality}.log",
    benchmark:
        "benchmarks/out/features/{modality}.tsv"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=120,
        gpu=training_gpus(),
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} features --shards-dir {params.shards_dir} --modality {wildcards.modality} "
        "--out-dir {params.out_dir} --splits {params.splits} {params.weights} "
        "--backbone-seed {params.backbone_seed} --device {params.device} --threads {threads} > {log} 2>&1"


rule train:
    input:
        shards=rules.shards.output.shards,
        features=experiment_features,
        code=stage_code("training", "models", "shards"),
    output:
        predictions="results/runs/{experiment}/seed-{seed}/predictions.csv",
        run="results/runs/{experiment}/seed-{seed}/run.json",
        metrics="results/runs/{experiment}/seed-{seed}/metrics.csv",
    params:
        shards_dir=lambda wildcards, input: Path(input.shards[0]).parent.parent,
        out_dir=lambda wildcards, output: Path(output.run).parent,
        options=experiment_arguments,
        facemorphic=facemorphic_command(),
    log:
        "logs/train/{experiment}/seed-{seed}.log",
    benchmark:
        "benchmarks/out/train/{experiment}/seed-{seed}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=training_gpus(),
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} train --shards-dir {params.shards_dir} --out-dir {params.out_dir} "
        "--experiment {wildcards.experiment} --seed {wildcards.seed} {params.options} "
        "--threads {threads} > {log} 2>&1"


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
        tables=expand("results/tables/{table}.csv", table=TABLES),
        figures=report(
            expand("results/figures/confusion_{experiment}.png", experiment=list(config["experiments"])),
            category="Confusion matrices",
        ),
    params:
        run_dirs=lambda wildcards, input: [Path(p).parent for p in input.runs],
        tables_dir=lambda wildcards, output: Path(output.tables[0]).parent,
        figures_dir=lambda wildcards, output: Path(output.figures[0]).parent,
        facemorphic=facemorphic_command(),
    log:
        "logs/evaluate.log",
    benchmark:
        "benchmarks/out/evaluate.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} evaluate --runs {params.run_dirs} --tables-dir {params.tables_dir} "
        "--figures-dir {params.figures_dir} > {log} 2>&1"
