# The 3D morphable model: identity (PCA) and AU (dictionary learning) bases on one topology.


rule morphable:
    input:
        unpack(morphable_inputs),
        code=stage_code("morphable"),
    output:
        model="results/morphable/model.h5",
        figure=report("results/figures/au_components.png", category="3DMM"),
    params:
        sources=morphable_arguments,
        n_au=config["morphable"]["n_au"],
        dl_alpha=config["morphable"]["dl_alpha"],
        au_weights=config["morphable"]["au_weights"],
        dl_max_iter=config["morphable"]["dl_max_iter"],
        seed=config["morphable"]["seed"],
        facemorphic=facemorphic_command(),
    log:
        "logs/morphable.log",
    benchmark:
        "benchmarks/out/morphable.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/morphable.yaml"
    shell:
        "{params.facemorphic} morphable {params.sources} --out {output.model} --figure {output.figure} "
        "--n-au {params.n_au} --dl-alpha {params.dl_alpha} --au-weights {params.au_weights} "
        "--dl-max-iter {params.dl_max_iter} --seed {params.seed} > {log} 2>&1"
