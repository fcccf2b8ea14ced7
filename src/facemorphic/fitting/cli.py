"""``facemorphic fit``: per-frame 3DMM coefficients of one user's recordings from their landmarks."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--landmarks", required=True, help="landmarks file of one user (results/landmarks/{user}.h5)")
    parser.add_argument("--model", required=True, help="morphable model (results/morphable/model.h5)")
    parser.add_argument("--out", required=True, help="coefficients file to write (results/coefficients/{user}.h5)")
    parser.add_argument("--lambda-id", type=float, default=1.0,
                        help="ridge weight of the identity fit, divided by each component's weight (default 1.0)")
    parser.add_argument("--lambda-au", type=float, default=1.0,
                        help="ridge weight of the AU fit, divided by each atom's weight (default 1.0)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of pose re-estimation after the first solve; increments are summed (default 1)")
    parser.add_argument("--update", choices=("projected", "authors"), default="projected",
                        help="update rule of the rounds: 'projected' (Gauss-Newton with the camera eliminated, "
                             "converges in 1-2 rounds) or 'authors' (the Florence code's ridge on the residual); "
                             "default projected")
    parser.add_argument("--drop-landmarks", default="60,64",
                        help="comma-separated iBUG-68 indices left out of the fit, '' for none (default 60,64)")
    parser.add_argument("--drop-jaw", action="store_true", help="also leave out the jaw contour 0-16")
    parser.add_argument("--normalise-scale", action="store_true",
                        help="divide residuals by the camera scale so lambda is in squared model units, "
                             "independent of image resolution: lambda_px / s^2 with s the pixels per model unit "
                             "(about 1500 px/m for a face filling a 640x480 frame, so lambda 1 px^2 ~ 4e-7 m^2); "
                             "default off, lambda in squared pixels")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from ..errors import FacemorphicError
    from ..morphable.model import load_model
    from .closed_form import FitOptions
    from .io import iter_landmark_recordings, write_coefficients
    from .recording import LandmarkFitter, landmark_subset

    try:
        drop = tuple(int(x) for x in args.drop_landmarks.split(",") if x.strip())
        idx = landmark_subset(drop, args.drop_jaw)
    except ValueError as exc:
        raise FacemorphicError(f"--drop-landmarks {args.drop_landmarks!r}: {exc}") from exc
    if args.rounds < 0:
        raise FacemorphicError(f"--rounds must be >= 0, got {args.rounds}")
    if not (args.lambda_id > 0 and args.lambda_au > 0):
        raise FacemorphicError(f"--lambda-id and --lambda-au must be > 0 (got {args.lambda_id}, {args.lambda_au})")
    model = load_model(args.model)
    fitter = LandmarkFitter(
        model, idx,
        id_options=FitOptions(args.lambda_id, args.rounds, args.normalise_scale, args.update),
        au_options=FitOptions(args.lambda_au, args.rounds, args.normalise_scale, args.update),
    )
    fits = {}
    for recording_id, landmarks, valid in tqdm(list(iter_landmark_recordings(args.landmarks)), desc="fit", unit="rec"):
        fit = fitter.fit(landmarks, valid)
        fits[recording_id] = fit
        if fit.valid.any():
            log.debug("%s: %d/%d valid frames, median residual %.2f px", recording_id, fit.valid.sum(),
                      len(fit.valid), float(np.nanmedian(fit.residual_px)))
        else:
            log.warning("%s: no valid frame, all coefficients NaN", recording_id)
    attrs = {
        "model": str(args.model), "lambda_id": args.lambda_id, "lambda_au": args.lambda_au, "rounds": args.rounds,
        "update": args.update, "normalise_scale": args.normalise_scale, "landmarks_used": idx,
        "n_components_au": model.au_basis.shape[1], "n_components_id": model.id_basis.shape[1],
    }
    write_coefficients(args.out, fits, attrs)
    n_valid = sum(int(f.valid.sum()) for f in fits.values())
    log.info("fitted %d recordings (%d valid frames) -> %s", len(fits), n_valid, args.out)
    return 0
