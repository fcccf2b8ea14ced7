"""A figure in the style of the DL-3DMM paper's Fig. 2: AU atoms drawn on the template mesh.

Each panel shows the template seen from the front (x right, y up), its triangles coloured by the
per-vertex displacement magnitude of one atom; the atoms with the largest weights are shown, each titled
with the AU whose training sequences use it most.
"""

from __future__ import annotations

import os

import numpy as np


def atom_au_association(codes: np.ndarray, sequence_aus: list[tuple[int, ...]]) -> list[int | None]:
    """For each atom, the AU whose sequences have the largest mean absolute code (None if no labels)."""
    aus = sorted({au for labels in sequence_aus for au in labels})
    if not aus:
        return [None] * codes.shape[1]
    usage = np.stack([np.abs(codes[[au in labels for labels in sequence_aus]]).mean(axis=0) for au in aus])
    return [aus[i] for i in usage.argmax(axis=0)]


def plot_au_components(path: str | os.PathLike, template: np.ndarray, faces: np.ndarray, au_basis: np.ndarray,
                       au_weights: np.ndarray, labels: list[int | None] | None = None, n_show: int = 6) -> None:
    """Write a PNG of the ``n_show`` highest-weight AU atoms on the template mesh."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.tri as mtri

    from ..fileio import atomic_path

    order = np.argsort(-au_weights)[: min(n_show, len(au_weights))]
    n_cols = min(3, len(order))
    n_rows = int(np.ceil(len(order) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.2 * n_cols, 3.6 * n_rows), squeeze=False)
    triangulation = mtri.Triangulation(template[:, 0], template[:, 1], faces) if len(faces) else None
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, atom in zip(axes.ravel(), order):
        magnitude = np.linalg.norm(au_basis[:, atom].reshape(-1, 3), axis=1)
        if triangulation is not None:
            image = ax.tripcolor(triangulation, magnitude, shading="gouraud", cmap="jet")
        else:
            image = ax.scatter(template[:, 0], template[:, 1], c=magnitude, s=2, cmap="jet")
        ax.set_aspect("equal")
        label = labels[atom] if labels is not None else None
        name = f"atom {atom}" + (f" ~ AU{label}" if label is not None else "")
        ax.set_title(f"{name}\nweight {au_weights[atom]:.3g}",
                     fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    fig.suptitle("AU components: displacement magnitude on the template")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
