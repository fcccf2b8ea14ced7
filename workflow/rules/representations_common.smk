# Helpers of the event representation study (representations.smk; apart from its rules, as `snakemake
# --lint` wants): the study's config block, its parse-time checks, and each rule's options and inputs.
STUDY = config["representations"]
STUDY_TABLE = "results/tables/table6_representations.csv"


def variant_events_values(variant):
    """The events block overridden by one variant: every events key."""
    return {**config["events"], **STUDY["variants"][variant]}


def variant_events_json(variant):
    """The variant's events options as events_options() gives the events block's: only the chosen
    representation's own parameters, so a variant reruns only when a value it draws with changes."""
    values = variant_events_values(variant)
    keep = ("representation", "width", "height", "subwindows", "accumulation_us")
    keep += REPRESENTATIONS[values["representation"]].parameters
    return options_json({key: values[key] for key in keep})


# Parse-time checks (the experiment's presence is checked when the study's jobs are planned, so a config
# without that experiment still runs `all`).
for _variant in STUDY["variants"]:
    if not re.fullmatch(SAFE_NAME_PATTERN, _variant):
        raise WorkflowError(
            f"config representations.variants: the name {_variant!r} is not of the form {SAFE_NAME_PATTERN}"
        )
    checked_options(f"representations.variants.{_variant}", EventsOptions, variant_events_values(_variant))
if STUDY["experiment"] in config["experiments"]:
    _modality = config["experiments"][STUDY["experiment"]]["modality"]
    if _modality != "events":
        raise WorkflowError(
            f"config representations.experiment: {STUDY['experiment']!r} is an experiment on {_modality}, "
            "not on events (the study trains an event model on each representation)"
        )


def study_experiment():
    """The study's experiment name; a WorkflowError naming the key when it is not in `experiments`."""
    name = STUDY["experiment"]
    if name not in config["experiments"]:
        raise WorkflowError(
            f"config representations.experiment: {name!r} is not one of the experiments "
            f"{sorted(config['experiments'])}"
        )
    return name


def study_events_options(wildcards):
    return variant_events_json(wildcards.variant)


def study_events_files(wildcards):
    """The variant's event frames: the events stage's own when the variant draws them the same way."""
    if variant_events_json(wildcards.variant) == events_options():
        return expand("results/events/{user}.h5", user=users())
    return expand("results/representations/{variant}/events/{user}.h5", variant=wildcards.variant, user=users())


def study_shards_options():
    """The shards block with the event frames only: the study never reads RGB, so the face crop's own
    options (face_*) are left out and never rerun it."""
    shards = {key: value for key, value in config["shards"].items() if not key.startswith("face_")}
    return options_json({**shards, "modalities": ["events"]})


def study_features(wildcards):
    spec = config["experiments"][study_experiment()]
    if not uses_feature_cache(spec):
        return []
    return expand(
        "results/representations/{variant}/features/resnet18/events/{split}.h5",
        variant=wildcards.variant,
        split=SPLITS,
    )


def study_sweep_table(wildcards):
    """A swept experiment takes the lambda the L_alpha sweep chose, as its main runs do."""
    return ["results/tables/table_lambda_sweep.csv"] if is_swept(study_experiment()) else []


def study_run_options(wildcards):
    return options_json(experiment_values(study_experiment()))


def study_predicted_splits(wildcards):
    return ["val", "test"] if experiment_values(study_experiment())["val_fraction"] > 0 else ["test"]


def study_variants_json():
    """Each variant's events options, written in its table row."""
    return options_json({variant: json.loads(variant_events_json(variant)) for variant in STUDY["variants"]})


def study_runs(name):
    return expand(
        "results/representations/{variant}/runs/seed-{seed}/{name}",
        variant=list(STUDY["variants"]),
        seed=STUDY["seeds"],
        name=name,
    )


def study_run_arguments(wildcards, input):
    """VARIANT=RUN_DIR per run (results/representations/{variant}/runs/seed-{seed}/run.json)."""
    return [f"{Path(run).parts[-4]}={Path(run).parent}" for run in input.runs]
