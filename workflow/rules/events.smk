# Event frames aligned one to one with the RGB frames, one HDF5 file per user.


rule events:
    input:
        manifest="results/manifest/{user}.csv",
        code=stage_code("events", "video"),
    output:
        "results/events/{user}.h5",
    params:
        representation=config["events"]["representation"],
        palette=config["events"]["palette"],
        bins=config["events"]["bins"],
        tau_us=config["events"]["tau_us"],
        width=config["events"]["width"],
        height=config["events"]["height"],
        subwindows=config["events"]["subwindows"],
        accumulation_us=config["events"]["accumulation_us"],
        facemorphic=facemorphic_command(),
    log:
        "logs/events/{user}.log",
    benchmark:
        "benchmarks/out/events/{user}.tsv"
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../../envs/events.yaml"
    shell:
        "{params.facemorphic} events --manifest {input.manifest} --out {output} "
        "--representation {params.representation} --palette {params.palette} --bins {params.bins} "
        "--tau-us {params.tau_us} --width {params.width} --height {params.height} "
        "--subwindows {params.subwindows} --accumulation-us {params.accumulation_us} > {log} 2>&1"
