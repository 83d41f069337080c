"""Self-blended images (SBI): DiffusionFake training pairs made from real faces only.

One real face becomes a pseudo-fake by blending a transformed copy of itself (the *source*) into the face
(the *target*) under a soft face-shaped mask; source and target are known by construction, which is what
DiffusionFake's guide needs. `config.SBIConfig` holds every parameter, `blend.self_blend` makes one blend,
`landmarks` places a 68-point mean-face template from the cache's 5 landmarks, `preview` draws a check grid,
and `engine.prepare_sbi` builds a training cache (same schema as FF++'s) from a dataset's real videos.
"""

from dfake_cli.data.sbi.blend import SelfBlend, face_rng, self_blend
from dfake_cli.data.sbi.config import SBIConfig

__all__ = ["SBIConfig", "SelfBlend", "face_rng", "self_blend"]
