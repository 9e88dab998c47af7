"""Video data: reading and writing video files, and datasets of clips for training.

* :mod:`vgz.data.video`: ``VideoWriter``, ``export_video``, ``read_video`` (PyAV).
* :mod:`vgz.data.sampling`: ``ClipSamplingConfig`` (StyleGAN-V / StyleInV / image presets),
  ``sample_frame_indices`` and the resumable ``InfiniteClipSampler``.
* :mod:`vgz.data.datasets`: ``open_dataset`` (folders of videos, frame folders, zips,
  ``synthetic:shapes``), ``make_dataloader`` and the ``VideoDataset`` base class.
* :mod:`vgz.data.shapes`: the procedural ``synthetic-shapes`` dataset.

Importing this package is cheap (no torch); the modules above import it.
"""
