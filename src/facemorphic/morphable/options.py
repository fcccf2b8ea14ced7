"""Options of ``facemorphic morphable`` (the learning and import part of the ``morphable`` config block; the source
paths are inputs, not options). Single source of their defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import option


@dataclass(frozen=True)
class MorphableOptions:
    n_id: int = option(0, "identity components (0: all, the number of neutral scans - 1)", minimum=0)
    n_au: int = option(32, "AU dictionary atoms K", minimum=1)
    sparsity: float = option(0.05, "sparsity of the dictionary learning, relative: lambda1 = sparsity * RMS "
                                   "offset norm", minimum=0.0)
    au_weights: str = option("mean_abs", "per-atom weight from the sparse codes", choices=("mean_abs", "variance"))
    positive_codes: bool = option(False, "constrain the sparse codes to be >= 0")
    dl_max_iter: int = option(200, "dictionary learning iterations", minimum=1)
    seed: int = option(0, "seed of the dictionary initialisation")
    released_landmark_overrides: bool = option(True, "released bases: replace landmarks 17 and 26 with vertices "
                                                     "3709 and 695, as the authors' scripts do")
    released_template_scale: float = option(1.0, "released bases: factor on the template's coordinates (the "
                                                 "bases are in metres; 0.001 for a template in mm)",
                                            minimum=1e-9)
