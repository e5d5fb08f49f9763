"""K-Face (``kface.md``): ``<person>/<session>/<light>/<expression>/<camera>.jpg`` + box ``.txt``.

One module per job, imported by their full names (this package imports nothing, so that the
torch-free reader stays torch-free):

- data: ``reader`` (the on-disk format to plain records and problems, no torch), ``index`` (the
  cached, column-wise index of a tree of 10 million images), ``synthetic`` (a generated tree in the
  same format), ``dataset`` (records to tensors: face crop, resize, augmentation), ``datamodule``
  (the LightningDataModule the configs instantiate);
- recognition: ``lightcnn`` (LightCNN-4/9/29/29v2), ``recognition`` (the task: identity training,
  verification and identification on unseen people), ``verification`` (its metrics);
- generation: ``pggan`` (progressive GAN), ``generation`` (the task: phases, EMA, WGAN-GP),
  ``gan_metrics`` (SWD, MS-SSIM, FID), ``sample_grids`` (sample grids and phase plots).
"""
