# Per-frame 3DMM fitting on the RGB landmarks: identity once per recording, AU coefficients per frame.


rule fit:
    input:
        landmarks="results/landmarks/{user}.h5",
        model="results/morphable/model.h5",
        code=stage_code("fitting"),
    output:
        "results/coefficients/{user}.h5",
    params:
        options=fitting_options(),
        facemorphic=facemorphic_command,
    log:
        "logs/fitting/{user}.log",
    benchmark:
        "benchmarks/out/fitting/{user}.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../../envs/fitting.yaml"
    shell:
        "{params.facemorphic} fit --landmarks {input.landmarks:q} --model {input.model:q} --out {output:q} "
        "--options {params.options:q} > {log:q} 2>&1"
