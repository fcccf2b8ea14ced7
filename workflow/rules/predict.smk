# Apply one experiment's trained runs to the test split's recordings, straight from their RAW files.


rule predict_run:
    input:
        run="results/runs/{experiment}/seed-{seed}/run.json",
        manifest="results/manifest.csv",
        code=stage_code("predict"),
    output:
        decisions="results/predict/{experiment}/seed-{seed}/decisions.csv",
    params:
        run_dir=lambda wildcards, input: Path(input.run).parent,
        out_dir=lambda wildcards, output: Path(output.decisions).parent,
        split=config["predict"]["split"],
        options=predict_options(),
        events=events_options(),
        cores=cores_of,
        facemorphic=facemorphic_command,
    log:
        "logs/predict/{experiment}/seed-{seed}.log",
    benchmark:
        "benchmarks/out/predict/{experiment}/seed-{seed}.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} predict --run {params.run_dir:q} --manifest {input.manifest:q} "
        "--split {params.split:q} --out-dir {params.out_dir:q} --options {params.options:q} "
        "--events-options {params.events:q} --threads {params.cores:q} > {log:q} 2>&1"


rule predict:
    input:
        expand(
            "results/predict/{experiment}/seed-{seed}/decisions.csv",
            experiment=config["predict"]["experiment"],
            seed=config["training"]["seeds"],
        ),
