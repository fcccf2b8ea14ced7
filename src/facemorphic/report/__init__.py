"""The figures of the Snakemake report (``snakemake --report``): per-AU bars beside the paper, training
curves, per-user sanity panels. A package of its own, after every stage, so that editing a figure reruns
only the report's rules (the training rules list the evaluation package's code as their input)."""
