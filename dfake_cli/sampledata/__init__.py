"""The embedded sample data: a seeded generator of miniature dataset trees (see sample_data/README.md).

Public API (also used by tests elsewhere to build their own tiny trees in seconds):

    identities() -> list[str]                                  the identity catalogue, by index
    portrait(name_or_index) -> uint8 (H, W, 3)                 an identity's portrait (RGB)
    make_clip(identity, n_frames, size, seed) -> uint8 (N, size, size, 3)   camera motion over it
    render_clip(identity, n_frames, size, seed, key="") -> Clip(frames, landmarks (N, 5, 2))
    swap_face(target_frames, source_frames, recipe, seed, target_landmarks=None, source_landmarks=None,
              return_masks=False) -> fake frames (N_target, H, W, 3) [, masks uint8 (N, H, W)]
    write_ffpp_tree(root, ids, pairs_by_split, methods=FFPP_METHODS, n_frames=48, size=256, seed=0,
                    compression="c23", masks=False) -> list[Path]
    write_celebdf_tree(root, celeb_ids, youtube_ids, fake_pairs, held_out=(), n_frames=48, size=256,
                       seed=0, recipe="CelebDF") -> list[Path]

`recipe` is one of RECIPES: the FF++ methods Deepfakes, Face2Face, FaceSwap, NeuralTextures, and CelebDF.
Heavy dependencies load lazily: cv2 and facenet-pytorch (core), PyAV and scikit-image (the [sample] extra).
"""

from dfake_cli.sampledata.clips import Clip, make_clip, render_clip
from dfake_cli.sampledata.manipulate import FFPP_METHODS, RECIPES, swap_face
from dfake_cli.sampledata.portraits import identities, portrait
from dfake_cli.sampledata.trees import write_celebdf_tree, write_ffpp_tree

__all__ = [
    "Clip", "FFPP_METHODS", "RECIPES", "identities", "make_clip", "portrait", "render_clip", "swap_face",
    "write_celebdf_tree", "write_ffpp_tree",
]
