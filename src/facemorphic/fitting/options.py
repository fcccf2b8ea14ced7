"""Options of ``facemorphic fit`` (the ``fitting`` config block); single source of their defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import option

UPDATE_RULES = ("projected", "authors")


@dataclass(frozen=True)
class FittingOptions:
    lambda_id: float = option(1.0, "ridge weight of the identity fit, divided by each component's weight "
                                   "(squared pixels unless normalise_scale)", minimum=1e-12)
    lambda_au: float = option(1.0, "ridge weight of the AU fit, divided by each atom's weight", minimum=1e-12)
    rounds: int = option(1, "rounds of pose re-estimation after the first solve; increments are summed",
                         minimum=0)
    update: str = option("projected", "fit rule: projected (the corrected rule: Gauss-Newton with the camera "
                                      "eliminated, basis centred over the landmarks) or authors (their _3DMM.py fit "
                                      "exactly: uncentred basis, translation in the projected components)", choices=UPDATE_RULES)
    drop_landmarks: list[int] = option([60, 64], "iBUG-68 indices left out of the fit (the inner mouth corners)")
    drop_jaw: bool = option(False, "also leave out the jaw contour 0-16")
    normalise_scale: bool = option(False, "divide residuals by the camera scale so lambda is in squared model "
                                          "units, independent of image resolution")

    def check(self) -> None:
        from ..errors import FacemorphicError

        bad = [i for i in self.drop_landmarks if not 0 <= i < 68]
        if bad:
            raise FacemorphicError(f"option 'drop_landmarks': {bad} are not iBUG-68 indices (0-67)")
