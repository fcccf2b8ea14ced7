# 68-point landmarks of every RGB frame, one HDF5 file per user.


rule landmarks:
    input:
        manifest="results/manifest/{user}.csv",
        truth=landmark_truth_files,
        code=stage_code("landmarks"),
    output:
        "results/landmarks/{user}.h5",
    params:
        options=landmarks_options(),
        truth_root=f"{SYNTHETIC_ROOT}/truth",
        facemorphic=facemorphic_command,
    log:
        "logs/landmarks/{user}.log",
    benchmark:
        "benchmarks/out/landmarks/{user}.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=3000,
        runtime=120,
        gpu=landmarks_gpus(),
    conda:
        "../../envs/landmarks.yaml"
    shell:
        "{params.facemorphic} landmarks --manifest {input.manifest:q} --out {output:q} --options {params.options:q} "
        "--truth-root {params.truth_root:q} --no-progress > {log:q} 2>&1"
