# The embedded synthetic FACEMORPHIC dataset: one generation job per user, plus the 3D scan corpus.


rule synth_user:
    input:
        code=stage_code("synthetic", "events"),
    output:
        recordings=directory(f"{SYNTHETIC_ROOT}/{{user}}"),
        truth=f"{SYNTHETIC_ROOT}/truth/{{user}}.h5",
    params:
        root=lambda wildcards, output: Path(output.recordings).parent,
        user_index=lambda wildcards: users().index(wildcards.user),
        seed=config["synthetic"]["seed"],
        repetitions=config["synthetic"]["repetitions"],
        free=config["synthetic"]["free"],
        reading=config["synthetic"]["reading"],
        aus=config["synthetic"]["aus"],
        au_duration=config["synthetic"]["au_duration_s"],
        free_duration=config["synthetic"]["free_duration_s"],
        reading_duration=config["synthetic"]["reading_duration_s"],
        rgb_format=config["synthetic"]["rgb_format"],
        contrast=config["synthetic"]["contrast"],
        contrast_sigma=config["synthetic"]["contrast_sigma"],
        refractory_us=config["synthetic"]["refractory_us"],
        noise_rate_hz=config["synthetic"]["noise_rate_hz"],
        facemorphic=facemorphic_command(),
    log:
        "logs/synthetic/{user}.log",
    benchmark:
        "benchmarks/out/synthetic/{user}.tsv"
    resources:
        mem_mb=3000,
        runtime=60,
    conda:
        "../../envs/synthetic.yaml"
    shell:
        "{params.facemorphic} synth --root {params.root:q} --user {wildcards.user} "
        "--user-index {params.user_index} --seed {params.seed} --repetitions {params.repetitions} "
        "--free {params.free} --reading {params.reading} --aus {params.aus} "
        "--au-duration {params.au_duration} --free-duration {params.free_duration} "
        "--reading-duration {params.reading_duration} --rgb-format {params.rgb_format} "
        "--contrast {params.contrast} --contrast-sigma {params.contrast_sigma} "
        "--refractory-us {params.refractory_us} --noise-rate-hz {params.noise_rate_hz} "
        "--no-progress > {log} 2>&1"


rule synth_corpus:
    input:
        code=stage_code("synthetic"),
    output:
        d3dfacs=directory(f"{SYNTHETIC_ROOT}/scans/d3dfacs"),
        vocaset=directory(f"{SYNTHETIC_ROOT}/scans/vocaset"),
        template=f"{SYNTHETIC_ROOT}/scans/template.ply",
        embedding=f"{SYNTHETIC_ROOT}/scans/landmark_embedding.pkl",
        truth=f"{SYNTHETIC_ROOT}/scans/truth.h5",
    params:
        out=lambda wildcards, output: Path(output.template).parent,
        seed=config["synthetic"]["seed"],
        d3dfacs_subjects=config["synthetic"]["corpus"]["d3dfacs_subjects"],
        sequences_per_subject=config["synthetic"]["corpus"]["sequences_per_subject"],
        vocaset_subjects=config["synthetic"]["corpus"]["vocaset_subjects"],
        facemorphic=facemorphic_command(),
    log:
        "logs/synthetic/corpus.log",
    benchmark:
        "benchmarks/out/synthetic/corpus.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/synthetic.yaml"
    shell:
        "{params.facemorphic} synth-corpus --out {params.out:q} --seed {params.seed} "
        "--d3dfacs-subjects {params.d3dfacs_subjects} --sequences-per-subject {params.sequences_per_subject} "
        "--vocaset-subjects {params.vocaset_subjects} > {log} 2>&1"
