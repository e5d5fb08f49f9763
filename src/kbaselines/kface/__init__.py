"""K-Face (``kface.md``): ``<person>/<session>/<light>/<expression>/<camera>.jpg`` + box ``.txt``.

One module per job, imported by their full names (this package imports nothing, so that the
torch-free reader stays torch-free):

- :mod:`~kbaselines.kface.reader`: the on-disk format to plain records and problems (no torch);
- :mod:`~kbaselines.kface.index`: the cached, column-wise index of a tree (10 million images);
- :mod:`~kbaselines.kface.synthetic`: a generated tree in the same format;
- :mod:`~kbaselines.kface.dataset`: records to tensors (face crop, resize, augmentation);
- :mod:`~kbaselines.kface.datamodule`: the LightningDataModule the configs instantiate.
"""
