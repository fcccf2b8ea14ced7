"""``facemorphic morphable``: learn the identity (PCA) and AU (DL-3DMM) models, or import released bases."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--d3dfacs", help="D3DFACS-in-FLAME folder <Subject>/<AUcode>/<AUcode>_<frame>.ply")
    parser.add_argument("--vocaset", help="VOCASET folder (templates.pkl [+ data_verts.npy, subj_seq_to_idx.pkl])")
    parser.add_argument("--template", help="FLAME template mesh (.ply/.obj): triangles and the model's frame")
    parser.add_argument("--embedding", help="68-landmark embedding: FLAME static .pkl or DECA landmark_embedding.npy")
    parser.add_argument("--released-mat", help="bases in the authors' .mat layout (skips learning)")
    parser.add_argument("--out", required=True, help="model file to write (results/morphable/model.h5)")
    parser.add_argument("--figure", help="PNG of the main AU components on the template (like the paper's Fig. 2)")
    parser.add_argument("--n-id", type=int, default=None, help="identity components (default: all, n_neutrals - 1)")
    parser.add_argument("--n-au", type=int, default=32, help="AU dictionary atoms K (default 32)")
    parser.add_argument("--dl-alpha", type=float, default=0.05,
                        help="sparsity, relative: SPAMS lambda1 = dl_alpha * RMS offset norm (default 0.05)")
    parser.add_argument("--au-weights", choices=("mean_abs", "variance"), default="mean_abs",
                        help="per-atom weight from the sparse codes (default mean_abs)")
    parser.add_argument("--positive-codes", action="store_true", help="constrain the sparse codes to be >= 0")
    parser.add_argument("--dl-max-iter", type=int, default=200, help="dictionary learning iterations (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the dictionary initialisation (default 0)")


def run(args: argparse.Namespace) -> int:
    from ..errors import FacemorphicError
    from .build import build_model, load_corpus
    from .figure import atom_au_association, plot_au_components
    from .meshio import read_mesh
    from .model import load_landmark_embedding, load_released_mat, save_model

    template_mesh = read_mesh(args.template) if args.template else None
    if args.released_mat:
        model = load_released_mat(args.released_mat, template_mesh)
        labels = None
    else:
        if not args.d3dfacs or not args.embedding:
            raise FacemorphicError("learning needs --d3dfacs and --embedding (or give --released-mat)")
        corpus = load_corpus(args.d3dfacs, args.vocaset)
        model, au = build_model(
            corpus, load_landmark_embedding(args.embedding), template_mesh, n_id=args.n_id, n_au=args.n_au,
            dl_alpha=args.dl_alpha, au_weight_mode=args.au_weights, positive_codes=args.positive_codes,
            dl_max_iter=args.dl_max_iter, seed=args.seed,
        )
        labels = atom_au_association(au.codes, corpus.expression_aus)
        log.info("learned %d identity components from %d neutrals, %d AU atoms from %d sequences in %.1f s",
                 model.id_basis.shape[1], model.attrs["n_neutrals"], model.au_basis.shape[1],
                 model.attrs["n_sequences"], model.attrs["learning_seconds"])
    save_model(model, args.out)
    if args.figure:
        plot_au_components(args.figure, model.template, model.faces, model.au_basis, model.au_weights, labels)
    log.info("wrote %s", args.out)
    return 0
