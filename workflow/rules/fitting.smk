# Per-frame 3DMM fitting on the RGB landmarks: identity once per recording, AU coefficients per frame.


rule fit:
    input:
        landmarks="results/landmarks/{user}.h5",
        model="results/morphable/model.h5",
        code=stage_code("fitting"),
    output:
        "results/coefficients/{user}.h5",
    params:
        lambda_id=config["fitting"]["lambda_id"],
        lambda_au=config["fitting"]["lambda_au"],
        rounds=config["fitting"]["rounds"],
        update_rule=config["fitting"]["update"],
        drop_landmarks=",".join(str(i) for i in config["fitting"]["drop_landmarks"]),
        options=fitting_flags,
        facemorphic=facemorphic_command(),
    log:
        "logs/fitting/{user}.log",
    benchmark:
        "benchmarks/out/fitting/{user}.tsv"
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../../envs/fitting.yaml"
    shell:
        "{params.facemorphic} fit --landmarks {input.landmarks} --model {input.model} --out {output} "
        "--lambda-id {params.lambda_id} --lambda-au {params.lambda_au} --rounds {params.rounds} "
        "--update {params.update_rule} --drop-landmarks '{params.drop_landmarks}' {params.options} > {log} 2>&1"
