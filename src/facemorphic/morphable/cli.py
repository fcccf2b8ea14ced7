"""``facemorphic morphable``: learn the identity (PCA) and AU (DL-3DMM) models, or import released bases."""

from __future__ import annotations

import argparse
import logging

from ..options import add_options
from .options import MorphableOptions

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--d3dfacs", help="D3DFACS-in-FLAME folder <Subject>/<AUcode>/<AUcode>_<frame>.ply")
    parser.add_argument("--vocaset", help="VOCASET folder (templates.pkl [+ data_verts.npy, subj_seq_to_idx.pkl])")
    parser.add_argument("--template", help="FLAME template mesh (.ply/.obj): triangles and the model's frame")
    parser.add_argument("--embedding", help="68-landmark embedding: FLAME static .pkl or DECA landmark_embedding.npy")
    parser.add_argument("--released-identity", help="the authors' identity basis, PCA_D3DFACS_ID_22.mat "
                                                    "(Components, Weights); with the three below, skips learning")
    parser.add_argument("--released-au", help="the authors' AU basis, DL_D3DFACS_expr_0.05_32.mat (Components_e, "
                                              "Weights_e)")
    parser.add_argument("--released-landmarks", help="the authors' coma_landmarks.mat (landmarks_idx, 1-based)")
    parser.add_argument("--released-template", help="the mean face: template_D3DFACS.mat (template_n, f), a "
                                                    ".ply/.obj, or FLAME's template .pkl")
    parser.add_argument("--released-mat", help="all bases in one .mat (avgModel, Components, Weights, "
                                               "Components_e, Weights_e, landmarks_idx); skips learning")
    parser.add_argument("--out", required=True, help="model file to write (results/morphable/model.h5)")
    parser.add_argument("--figure", help="PNG of the main AU components on the template (like the paper's Fig. 2)")
    add_options(parser, MorphableOptions, title="learning and import options")


def run(args: argparse.Namespace) -> int:
    from ..errors import FacemorphicError
    from ..options import options_from_args
    from .build import learn_morphable_model, load_corpus
    from .figure import atom_au_association, plot_au_components
    from .meshio import read_mesh
    from .model import load_landmark_embedding, load_released_mat, save_model

    options = options_from_args(MorphableOptions, args)
    released = (args.released_identity, args.released_au, args.released_landmarks, args.released_template)
    if any(released) and not all(released):
        raise FacemorphicError("the released bases need all of --released-identity, --released-au, "
                               "--released-landmarks and --released-template")
    template_mesh = read_mesh(args.template) if args.template else None
    if all(released):
        from .released import load_released_bases

        model = load_released_bases(*released, override_landmarks=options.released_landmark_overrides,
                                    template_scale=options.released_template_scale)
        labels = None
    elif args.released_mat:
        model = load_released_mat(args.released_mat, template_mesh)
        labels = None
    else:
        if not args.d3dfacs or not args.embedding:
            raise FacemorphicError("learning needs --d3dfacs and --embedding (or give --released-mat)")
        corpus = load_corpus(args.d3dfacs, args.vocaset)
        model, au = learn_morphable_model(
            corpus, load_landmark_embedding(args.embedding), template_mesh, n_id=options.n_id or None,
            n_au=options.n_au, sparsity=options.sparsity, au_weight_mode=options.au_weights,
            positive_codes=options.positive_codes, dl_max_iter=options.dl_max_iter, seed=options.seed,
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
