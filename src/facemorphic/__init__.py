"""facemorphic: neuromorphic facial Action Unit analysis with cross-modal 3DMM supervision.

The package is a set of plain library functions (arrays and paths in, arrays and files out), one
subpackage per pipeline stage, and one ``facemorphic`` command whose subcommands are the stages.
Library code never reads ``config.yaml``: the Snakemake rules pass config values as CLI arguments.
"""

__version__ = "0.1.0"

#: The 24 Action Units of FACEMORPHIC, in class-index order (0..23).
ACTION_UNITS = (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 23, 24, 25, 26, 27, 43, 45, 51, 52, 53, 54, 55, 56)
#: Model name -> the input it reads ("frames" or "coefficients"): the names the CLI, the config's
#: experiments and the tables use (kept here, torch-free, so option parsing never imports torch).
MODEL_INPUTS = {
    "resnet18_lstm": "frames",
    "resnet18_transformer": "frames",
    "i3d": "frames",
    "coeff_transformer": "coefficients",
    "coeff_lstm": "coefficients",
}
#: What a model can see (``rgb_face``: RGB frames cropped to the face, see facemorphic.shards.face).
MODALITIES = ("events", "rgb", "rgb_face", "coefficients")
#: AUs 1-45 are facial muscle actions; 51-56 are head movements.
FACIAL_ACTION_UNITS = tuple(au for au in ACTION_UNITS if au < 50)
HEAD_ACTION_UNITS = tuple(au for au in ACTION_UNITS if au > 50)


def au_class_index(au: int) -> int:
    """Class index (0..23) of an Action Unit number; raises ``ValueError`` for an unknown AU."""
    try:
        return ACTION_UNITS.index(int(au))
    except ValueError:
        raise ValueError(f"AU {au} is not one of the 24 FACEMORPHIC Action Units {ACTION_UNITS}") from None
