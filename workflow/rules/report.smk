# The figures that exist for the Snakemake report (`snakemake --report report.html`): per-AU top-1 beside
# the paper, training curves per experiment, and one sanity panel per user. Every output carries a caption
# (workflow/report/*.rst) and a category; the workflow description is workflow/report/workflow.rst.


rule per_au_figure:
    input:
        table="results/tables/table4_per_au.csv",
        code=stage_code("report"),
    output:
        report("results/figures/per_au_top1.png", caption="../report/per_au_top1.rst", category="Results"),
    params:
        facemorphic=facemorphic_command,
    log:
        "logs/report/per_au_figure.log",
    benchmark:
        "benchmarks/out/report/per_au_figure.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} figures per-au --table {input.table:q} --out {output:q} > {log:q} 2>&1"


rule training_curves:
    input:
        runs=expand("results/runs/{{experiment}}/seed-{seed}/run.json", seed=config["training"]["seeds"]),
        metrics=expand("results/runs/{{experiment}}/seed-{seed}/metrics.csv", seed=config["training"]["seeds"]),
        code=stage_code("report"),
    output:
        report(
            "results/figures/training_curves_{experiment}.png",
            caption="../report/training_curves.rst",
            category="Training curves",
            labels={"experiment": "{experiment}"},
        ),
    params:
        run_dirs=lambda wildcards, input: [str(Path(p).parent) for p in input.runs],
        data_source=config["dataset"]["source"],
        facemorphic=facemorphic_command,
    log:
        "logs/report/training_curves/{experiment}.log",
    benchmark:
        "benchmarks/out/report/training_curves/{experiment}.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} figures curves --runs {params.run_dirs:q} --experiment {wildcards.experiment:q} "
        "--data-source {params.data_source:q} --out {output:q} > {log:q} 2>&1"


rule sanity_panel:
    input:
        manifest="results/manifest/{user}.csv",
        landmarks="results/landmarks/{user}.h5",
        events="results/events/{user}.h5",
        coefficients="results/coefficients/{user}.h5",
        model="results/morphable/model.h5",
        code=stage_code("report"),
    output:
        report(
            "results/figures/sanity_{user}.png",
            caption="../report/sanity_panel.rst",
            category="Sanity checks",
            labels={"user": "{user}"},
        ),
    params:
        data_source=config["dataset"]["source"],
        facemorphic=facemorphic_command,
    log:
        "logs/report/sanity/{user}.log",
    benchmark:
        "benchmarks/out/report/sanity/{user}.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.facemorphic} figures sanity --user {wildcards.user:q} --manifest {input.manifest:q} "
        "--landmarks {input.landmarks:q} --events {input.events:q} --coefficients {input.coefficients:q} "
        "--model {input.model:q} --data-source {params.data_source:q} --out {output:q} > {log:q} 2>&1"
