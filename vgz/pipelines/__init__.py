"""Pipelines: registered components combined into ready-to-call video generators.

    from vgz.pipelines import VideoPipeline
    pipe = VideoPipeline.from_pretrained("folder/or/org-name")
    frames = pipe(num_videos=2, num_frames=32, generator=0).frames   # [2, 32, 3, H, W] in [0, 1]
"""

from vgz.pipelines.base import MODEL_INDEX, VideoPipeline, VideoPipelineOutput
from vgz.pipelines.styleganv import StyleGANVPipeline, StyleGANVPipelineConfig
from vgz.pipelines.styleinv import StyleInVPipeline, StyleInVPipelineConfig
from vgz.pipelines.stylevideogan import StyleVideoGANPipeline, StyleVideoGANPipelineConfig

__all__ = ["MODEL_INDEX", "VideoPipeline", "VideoPipelineOutput", "StyleGANVPipeline", "StyleGANVPipelineConfig",
           "StyleInVPipeline", "StyleInVPipelineConfig", "StyleVideoGANPipeline", "StyleVideoGANPipelineConfig"]
