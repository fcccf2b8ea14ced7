"""``facemorphic fit``: per-frame 3DMM coefficients of one user's recordings from their landmarks."""

from __future__ import annotations

import argparse
import logging

from ..options import add_options
from .options import FittingOptions

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--landmarks", required=True, help="landmarks file of one user (results/landmarks/{user}.h5)")
    parser.add_argument("--model", required=True, help="morphable model (results/morphable/model.h5)")
    parser.add_argument("--out", required=True, help="coefficients file to write (results/coefficients/{user}.h5)")
    add_options(parser, FittingOptions, title="fitting options")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from ..errors import FacemorphicError
    from ..morphable.model import load_model
    from ..options import options_from_args
    from .closed_form import FitOptions
    from .io import iter_landmark_recordings, write_coefficients
    from .recording import LandmarkFitter, landmark_subset

    options = options_from_args(FittingOptions, args)
    try:
        idx = landmark_subset(tuple(options.drop_landmarks), options.drop_jaw)
    except ValueError as exc:
        raise FacemorphicError(f"option 'drop_landmarks' {options.drop_landmarks}: {exc}") from exc
    model = load_model(args.model)
    fitter = LandmarkFitter(
        model, idx,
        id_options=FitOptions(options.lambda_id, options.rounds, options.normalise_scale, options.update),
        au_options=FitOptions(options.lambda_au, options.rounds, options.normalise_scale, options.update),
    )
    fits = {}
    recordings = list(iter_landmark_recordings(args.landmarks))
    for recording_id, landmarks, valid in tqdm(recordings, desc="fit", unit="rec", disable=None):
        fit = fitter.fit(landmarks, valid)
        fits[recording_id] = fit
        if fit.valid.any():
            log.info("%s: %d/%d valid frames, median residual %.2f px", recording_id, fit.valid.sum(),
                     len(fit.valid), float(np.nanmedian(fit.residual_px)))
        else:
            log.warning("%s: no valid frame, all coefficients NaN", recording_id)
    attrs = {
        "model": str(args.model), "lambda_id": options.lambda_id, "lambda_au": options.lambda_au,
        "rounds": options.rounds, "update": options.update, "normalise_scale": options.normalise_scale,
        "landmarks_used": idx, "n_components_au": model.au_basis.shape[1],
        "n_components_id": model.id_basis.shape[1],
    }
    write_coefficients(args.out, fits, attrs)
    n_valid = sum(int(f.valid.sum()) for f in fits.values())
    log.info("fitted %d recordings (%d valid frames) -> %s", len(fits), n_valid, args.out)
    return 0
