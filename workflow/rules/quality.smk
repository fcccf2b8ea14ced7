# The data-quality table: one row per recording (the rejected ones too), what is wrong with it and whether
# it may be used for training. The shards rule reads it and keeps the flagged recordings out.


rule quality:
    input:
        manifest="results/manifest.csv",
        rejects="results/rejects.csv",
        events=expand("results/events/{user}.h5", user=users()),
        landmarks=expand("results/landmarks/{user}.h5", user=users()),
        coefficients=expand("results/coefficients/{user}.h5", user=users()),
        code=stage_code("quality"),
    output:
        report("results/quality.csv", caption="../report/tables/quality.rst", category="Tables"),
    params:
        events_dir=lambda wildcards, input: Path(input.events[0]).parent,
        landmarks_dir=lambda wildcards, input: Path(input.landmarks[0]).parent,
        coefficients_dir=lambda wildcards, input: Path(input.coefficients[0]).parent,
        options=quality_options(),
        facemorphic=facemorphic_command,
    log:
        "logs/quality.log",
    benchmark:
        "benchmarks/out/quality.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=1000,
        runtime=20,
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} quality --manifest {input.manifest:q} --rejects {input.rejects:q} "
        "--events-dir {params.events_dir:q} --landmarks-dir {params.landmarks_dir:q} "
        "--coefficients-dir {params.coefficients_dir:q} --out {output:q} --options {params.options:q} > {log:q} 2>&1"
