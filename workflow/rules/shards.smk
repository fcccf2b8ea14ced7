# Training-ready shards: one sample per AU recording (event and RGB frames at the model input size,
# per-frame 3DMM coefficients with their mask, label), grouped by split. The landmarks files are an input
# only when shards.modalities has rgb_face (RGB cropped to the face boxes they hold).


rule shards:
    input:
        manifest="results/manifest.csv",
        quality="results/quality.csv",
        events=expand("results/events/{user}.h5", user=users()),
        coefficients=expand("results/coefficients/{user}.h5", user=users()),
        landmarks=expand("results/landmarks/{user}.h5", user=users())
        if "rgb_face" in config["shards"]["modalities"]
        else [],
        code=stage_code("shards"),
    output:
        shards=expand(
            "results/shards/{split}/shard-{k}.h5", split=SPLITS, k=range(config["shards"]["num_shards"])
        ),
        index=expand("results/shards/{split}/index.csv", split=SPLITS),
    params:
        events_dir=lambda wildcards, input: Path(input.events[0]).parent,
        coefficients_dir=lambda wildcards, input: Path(input.coefficients[0]).parent,
        landmarks_dir=lambda wildcards, input: (
            ["--landmarks-dir", str(Path(input.landmarks[0]).parent)] if input.landmarks else []
        ),
        out_dir=lambda wildcards, output: Path(output.index[0]).parent.parent,
        splits=SPLITS,
        options=shards_options(),
        facemorphic=facemorphic_command,
    log:
        "logs/shards.log",
    benchmark:
        "benchmarks/out/shards.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} shards --manifest {input.manifest:q} --events-dir {params.events_dir:q} "
        "--coefficients-dir {params.coefficients_dir:q} {params.landmarks_dir:q} --out-dir {params.out_dir:q} "
        "--splits {params.splits:q} --quality {input.quality:q} --options {params.options:q} > {log:q} 2>&1"
