"""Recovered camera poses against published ones: `fieldfit process` output (its COLMAP model)
against a Blender-format or LLFF scene with known poses, after a similarity alignment.

    python scripts/bench_poses.py RECOVERED_DATA TRUE_SCENE

Prints registered/total, camera-centre errors (mean and max, as a fraction of the largest
distance between true centres) and rotation errors (degrees, after the alignment's rotation).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from fieldfit.scenes.colmap import OPENCV_TO_OPENGL, read_colmap_model

from fieldfit.process import align_similarity


def true_poses(scene: Path) -> dict[str, np.ndarray]:
    """Image name -> (4, 4) OpenGL camera-to-world of a Blender (train split) or LLFF scene."""
    if (scene / "transforms_train.json").exists():
        meta = json.loads((scene / "transforms_train.json").read_text())
        return {Path(f["file_path"]).name + ".png": np.array(f["transform_matrix"])
                for f in meta["frames"]}
    from fieldfit.scenes.llff import _image_files, read_poses_bounds

    array = read_poses_bounds(scene / "poses_bounds.npy")
    raw = array[:, :15].reshape(-1, 3, 5)
    poses = {}
    for f, m in zip(_image_files(scene, 8), raw, strict=True):
        pose = np.eye(4)
        pose[:3] = np.stack([m[:, 1], -m[:, 0], m[:, 2], m[:, 3]], axis=1)  # to OpenGL
        poses[f.name] = pose
    return poses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recovered", type=Path)
    parser.add_argument("truth", type=Path)
    args = parser.parse_args()
    truth = true_poses(args.truth)
    model = read_colmap_model(args.recovered / "sparse" / "0")
    names, rec = [], []
    for image in model.images.values():
        w2c = np.eye(4)
        w2c[:3] = image.cam_from_world().matrix()
        names.append(image.name)
        rec.append(np.linalg.inv(w2c) @ OPENCV_TO_OPENGL)
    rec, true = np.stack(rec), np.stack([truth[n] for n in names])
    scale, rotation, shift = align_similarity(rec[:, :3, 3], true[:, :3, 3])
    err = np.linalg.norm(scale * rec[:, :3, 3] @ rotation.T + shift - true[:, :3, 3], axis=1)
    centres = true[:, :3, 3]
    size = np.linalg.norm(centres[:, None] - centres[None], axis=-1).max()
    rel = rotation @ rec[:, :3, :3]
    cos = (np.einsum("nij,nij->n", rel, true[:, :3, :3]) - 1) / 2
    angles = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    print(f"registered {len(names)}/{len(truth)}; centre error mean {err.mean() / size:.2e}, "
          f"max {err.max() / size:.2e} of the scene size ({size:.3f}); rotation error mean "
          f"{angles.mean():.3f} deg, max {angles.max():.3f} deg")


if __name__ == "__main__":
    main()
