# Event frames aligned one to one with the RGB frames, one HDF5 file per user.


rule events:
    input:
        manifest="results/manifest/{user}.csv",
        code=stage_code("events"),
    output:
        "results/events/{user}.h5",
    params:
        options=events_options(),
        facemorphic=facemorphic_command,
    log:
        "logs/events/{user}.log",
    benchmark:
        "benchmarks/out/events/{user}.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/events.yaml"
    shell:
        "{params.facemorphic} events --manifest {input.manifest:q} --out {output:q} --options {params.options:q} "
        "> {log:q} 2>&1"
