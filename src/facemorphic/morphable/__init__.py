"""The 3DMM stage's models: corpus loaders, the identity (PCA) and AU (DL-3DMM) models, the model file.

``facemorphic morphable`` (see :mod:`.cli`) learns both models from D3DFACS/VOCASET-layout scans (real or
the synthetic corpus) or imports bases in the authors' ``.mat`` layout, and writes ``model.h5``.
"""
