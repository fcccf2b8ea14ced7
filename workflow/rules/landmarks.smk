# 68-point landmarks of every RGB frame, one HDF5 file per user.


rule landmarks:
    input:
        manifest="results/manifest/{user}.csv",
        truth=landmark_truth_files,
        code=stage_code("landmarks", "video"),
    output:
        "results/landmarks/{user}.h5",
    params:
        backend=config["landmarks"]["backend"],
        landmarks_type=config["landmarks"]["landmarks_type"],
        device=config["landmarks"]["device"],
        batch_size=config["landmarks"]["batch_size"],
        max_gap=config["landmarks"]["max_gap"],
        smooth=config["landmarks"]["smooth"],
        truth_root=f"{SYNTHETIC_ROOT}/truth",
        facemorphic=facemorphic_command(),
    log:
        "logs/landmarks/{user}.log",
    benchmark:
        "benchmarks/out/landmarks/{user}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=120,
        gpu=landmarks_gpus(),
    conda:
        "../../envs/landmarks.yaml"
    shell:
        "{params.facemorphic} landmarks --manifest {input.manifest} --out {output} "
        "--backend {params.backend} --landmarks-type {params.landmarks_type} --device {params.device} "
        "--batch-size {params.batch_size} --max-gap {params.max_gap} --smooth {params.smooth} "
        "--truth-root {params.truth_root:q} --no-progress > {log} 2>&1"
