"""The data-quality stage: ``results/quality.csv``, one row per recording (the rejected ones too), saying
what is wrong with it and whether it may be used for training (docs/ARCHITECTURE.md, quality table)."""
