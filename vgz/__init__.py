"""vgz: a video GAN zoo for PyTorch.

``import vgz`` is cheap: torch and the networks are imported on first use of the names below.

    >>> import vgz
    >>> vgz.list_components("synthesis")
    >>> net = vgz.create("synthesis", "stylegan2", preset="tiny")
    >>> pipe = vgz.VideoPipeline.from_pretrained("path/or/org-name")
    >>> vgz.export_video(pipe(num_frames=64, generator=0).frames[0], "video.mp4", fps=25)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vgz._lazy import lazy_attributes
from vgz._version import __version__

# name -> module that defines it; resolved lazily by __getattr__ (PEP 562).
_LAZY = {
    "register": "vgz.registry",
    "register_kind": "vgz.registry",
    "create": "vgz.registry",
    "list_components": "vgz.registry",
    "list_kinds": "vgz.registry",
    "broken_plugins": "vgz.registry",
    "UnknownComponentError": "vgz.registry",
    "DuplicateComponentError": "vgz.registry",
    "ComponentConfig": "vgz.configs",
    "ConfigError": "vgz.configs",
    "config_field": "vgz.configs",
    "ModelMixin": "vgz.modeling",
    "WeightsError": "vgz.modeling",
    "load_component": "vgz.modeling",
    "VideoPipeline": "vgz.pipelines",
    "VideoPipelineOutput": "vgz.pipelines",
    "StyleGANVPipeline": "vgz.pipelines",
    "StyleInVPipeline": "vgz.pipelines",
    "StyleVideoGANPipeline": "vgz.pipelines",
    "export_video": "vgz.data.video",
    "read_video": "vgz.data.video",
    "tile_videos": "vgz.data.video",
    "VideoWriter": "vgz.data.video",
}

__all__ = ["__version__", *_LAZY]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


if TYPE_CHECKING:  # pragma: no cover
    from vgz.configs import ComponentConfig, ConfigError, config_field
    from vgz.data.video import VideoWriter, export_video, read_video, tile_videos
    from vgz.modeling import ModelMixin, WeightsError, load_component
    from vgz.pipelines import (StyleGANVPipeline, StyleInVPipeline, StyleVideoGANPipeline, VideoPipeline,
                               VideoPipelineOutput)
    from vgz.registry import (
        DuplicateComponentError,
        UnknownComponentError,
        broken_plugins,
        create,
        list_components,
        list_kinds,
        register,
        register_kind,
    )
