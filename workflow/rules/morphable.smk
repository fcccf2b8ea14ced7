# The 3D morphable model: identity (PCA) and AU (dictionary learning) bases on one topology.


rule morphable:
    input:
        unpack(morphable_inputs),
        code=stage_code("morphable"),
    output:
        model="results/morphable/model.h5",
        figure=report("results/figures/au_components.png", caption="../report/au_components.rst", category="3DMM"),
    params:
        sources=morphable_arguments,
        options=morphable_options(),
        facemorphic=facemorphic_command,
    log:
        "logs/morphable.log",
    benchmark:
        "benchmarks/out/morphable.tsv"
    threads: job_slots(1)
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/morphable.yaml"
    shell:
        "{params.facemorphic} morphable {params.sources:q} --out {output.model:q} --figure {output.figure:q} "
        "--options {params.options:q} > {log:q} 2>&1"
