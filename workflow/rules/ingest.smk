# Ingest: discover and probe each user's recordings (one job per user), then merge and split.


rule ingest_user:
    input:
        recordings=user_recording_files,
        sync=sync_csv_files(),
        code=stage_code("dataset"),
    output:
        manifest="results/manifest/{user}.csv",
        rejects="results/manifest/{user}.rejects.csv",
    params:
        root=dataset_root(),
        sync=sync_csv_files(),
        outdir=lambda wildcards, output: Path(output.manifest).parent,
        options=ingest_options(),
        facemorphic=facemorphic_command,
    log:
        "logs/ingest/{user}.log",
    benchmark:
        "benchmarks/out/ingest/{user}.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=1000,
        runtime=20,
    conda:
        "../../envs/ingest.yaml"
    shell:
        "{params.facemorphic} ingest --root {params.root:q} --users {wildcards.user:q} "
        "--sync-csv {params.sync:q} --out-dir {params.outdir:q} --options {params.options:q} --no-progress "
        "> {log:q} 2>&1"


rule split:
    input:
        manifests=expand("results/manifest/{user}.csv", user=users()),
        rejects=expand("results/manifest/{user}.rejects.csv", user=users()),
        code=stage_code("dataset"),
    output:
        manifest="results/manifest.csv",
        rejects="results/rejects.csv",
    params:
        options=split_options(),
        root=dataset_root(),
        unsafe_users=json.dumps(unsafe_users()),
        facemorphic=facemorphic_command,
    log:
        "logs/split.log",
    benchmark:
        "benchmarks/out/split.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/ingest.yaml"
    shell:
        "{params.facemorphic} split --user-manifests {input.manifests:q} --user-rejects {input.rejects:q} "
        "--manifest {output.manifest:q} --rejects {output.rejects:q} --options {params.options:q} "
        "--root {params.root:q} --unsafe-users-json {params.unsafe_users:q} > {log:q} 2>&1"
