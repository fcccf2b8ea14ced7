# The embedded synthetic FACEMORPHIC dataset: one generation job per user, plus the 3D scan corpus.


rule synth_user:
    input:
        code=stage_code("synthetic"),
    output:
        recordings=directory(f"{SYNTHETIC_ROOT}/{{user}}"),
        truth=f"{SYNTHETIC_ROOT}/truth/{{user}}.h5",
    params:
        root=lambda wildcards, output: Path(output.recordings).parent,
        user_index=lambda wildcards: users().index(wildcards.user),
        options=synth_options(),
        facemorphic=facemorphic_command,
    log:
        "logs/synthetic/{user}.log",
    benchmark:
        "benchmarks/out/synthetic/{user}.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=3000,
        runtime=60,
    conda:
        "../../envs/synthetic.yaml"
    shell:
        "{params.facemorphic} synth --out-dir {params.root:q} --user {wildcards.user:q} "
        "--user-index {params.user_index:q} "
        "--options {params.options:q} --no-progress > {log:q} 2>&1"


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
        options=corpus_options(),
        facemorphic=facemorphic_command,
    log:
        "logs/synthetic/corpus.log",
    benchmark:
        "benchmarks/out/synthetic/corpus.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/synthetic.yaml"
    shell:
        "{params.facemorphic} synth-corpus --out-dir {params.out:q} --options {params.options:q} > {log:q} 2>&1"
