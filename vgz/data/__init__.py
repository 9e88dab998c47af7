"""Video data: reading and writing video files, and datasets of clips for training.

* :mod:`vgz.data.video`: ``VideoWriter``, ``export_video``, ``read_video`` (PyAV).
* :mod:`vgz.data.sampling`: ``ClipSamplingConfig`` (StyleGAN-V / StyleInV / image presets),
  ``sample_frame_indices`` and the resumable ``InfiniteClipSampler``.
* :mod:`vgz.data.datasets`: ``open_dataset`` (folders of videos, frame folders, zips,
  ``synthetic:shapes``), ``make_dataloader``, and every dataset name re-exported.
* :mod:`vgz.data.base`: the ``VideoDataset`` base class, ``DatasetConfig``, errors and frame helpers.
* :mod:`vgz.data.video_folder`, :mod:`vgz.data.frame_folder`, :mod:`vgz.data.shapes`: the
  ``video-folder``, ``frame-folder`` and procedural ``synthetic-shapes`` datasets.
* :mod:`vgz.data.latents`: the ``latent-folder`` dataset, videos as per-frame StyleGAN latents
  (written by ``vgz invert``, :mod:`vgz.inversion`), for recipes that train on latents.

Importing this package is cheap (no torch); the modules above import it.
"""
