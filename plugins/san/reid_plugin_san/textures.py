"""Pseudo ground-truth textures: writing them with a trained SAN-PG, reading them back.

A texture folder holds one PNG per training image, at the image's path relative to the
dataset's image root with the suffix ``.png``, and ``manifest.json`` tying the folder to
the SAN-PG run that made it (run directory, checkpoint and its SHA-256, recipe) and to the
data (dataset, options, image root, texture and input sizes). Writing is resumable:
textures already on disk are skipped; a folder made by another SAN-PG checkpoint is
refused rather than mixed.

Texture resolution (the notes' inconsistency: the released script saves 64x64 textures
while training compares them with a 256x256 decoder output): textures are written at the
decoder's own output size (the SAN-PG recipe's ``loader.texture_height`` x
``texture_width``, 256x256 at 256x128 inputs), so nothing is down- and up-sampled again;
a reader resizes whatever it finds (e.g. the released 64x64 files) to its decoder's size.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from reidcore.api import ReidError, atomic_write_text, open_image, progress

MANIFEST = "manifest.json"
FORMAT = 1


def command_hint(run: str, dataset: str, out: Path) -> str:
    return f"`reid san-textures {run} --dataset {dataset} --out {out}`"


def normalise(images: torch.Tensor, mode: str) -> torch.Tensor:
    """[0, 1] images -> the recipe's ``loader.normalize`` (imagenet, tanh or none)."""
    if mode == "imagenet":
        mean = images.new_tensor([0.485, 0.456, 0.406])[:, None, None]
        std = images.new_tensor([0.229, 0.224, 0.225])[:, None, None]
        return (images - mean) / std
    if mode == "tanh":
        return images * 2 - 1
    return images


def read_images(paths: Sequence[str], size: Sequence[int], interpolation: str = "bilinear",
                normalize: str = "none") -> torch.Tensor:
    """B x 3 x H x W: the images resized (no augmentation), to [0, 1], normalised."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    mode = InterpolationMode.BICUBIC if interpolation == "bicubic" else InterpolationMode.BILINEAR
    tensors = [TF.to_tensor(TF.resize(open_image(str(p)), [int(size[0]), int(size[1])], mode,
                                      antialias=True)) for p in paths]
    return normalise(torch.stack(tensors), normalize)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def image_root(paths: Sequence[str]) -> Path:
    """The deepest folder holding every image (textures mirror the layout below it)."""
    if not paths:
        raise ReidError("no training images to make textures for")
    return Path(os.path.commonpath([str(Path(p).resolve().parent) for p in paths]))


def texture_path(out: Path, root: Path, image: str) -> Path | None:
    try:
        relative = Path(image).resolve().relative_to(root)
    except ValueError:
        return None
    return (out / relative).with_suffix(".png")


# --- reading -------------------------------------------------------------------------------


class TextureFolder:
    """The textures of a folder written by ``reid san-textures`` (or by the ``san`` method),
    looked up by image path; ``load(paths, size)`` gives B x 3 x th x tw in [-1, 1]."""

    def __init__(self, folder: str | Path, dataset: str = "DATASET"):
        self.folder = Path(folder).expanduser()
        manifest_path = self.folder / MANIFEST
        if not manifest_path.is_file():
            raise ReidError(f"{self.folder} is not a texture folder (no {MANIFEST}); make it "
                            f"with {command_hint('SAN_PG_RUN', dataset, self.folder)}")
        try:
            self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            self.root = Path(self.manifest["image_root"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ReidError(f"{manifest_path} is not a texture manifest: {exc}") from None
        self.hint = command_hint(self.manifest.get("san_pg_run", "SAN_PG_RUN"),
                                 self.manifest.get("dataset", dataset), self.folder)

    def path_for(self, image: str) -> Path:
        path = texture_path(self.folder, self.root, image)
        if path is None:
            raise ReidError(f"no pseudo texture for {image}: it is not under the image root "
                            f"{self.root} that {self.folder / MANIFEST} was made for; make "
                            f"textures for this dataset with {self.hint}")
        if not path.is_file():
            raise ReidError(f"no pseudo texture for {image} (expected {path}); make the "
                            f"missing textures with {self.hint} (it skips those written)")
        return path

    def load(self, images: Sequence[str], size: Sequence[int]) -> torch.Tensor:
        paths = [str(self.path_for(image)) for image in images]
        return read_images(paths, size) * 2 - 1


# --- writing -------------------------------------------------------------------------------


def _check_manifest(out: Path, identity: Mapping[str, Any]) -> None:
    path = out / MANIFEST
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ReidError(f"{path} is not a texture manifest; remove it or choose another "
                        f"--out") from None
    differing = [key for key, value in identity.items() if old.get(key) != value]
    if differing:
        raise ReidError(f"{out} holds textures made differently ({', '.join(differing)} "
                        f"differ: {old.get(differing[0])!r} vs {identity[differing[0]]!r}); "
                        f"choose another --out or remove that folder, so textures of two "
                        f"SAN-PG runs are never mixed")


def write_textures(decode: Callable[[torch.Tensor], torch.Tensor], images: Sequence[str],
                   out: Path, *, input_size: Sequence[int], texture_size: Sequence[int],
                   normalize: str, interpolation: str = "bilinear",
                   identity: Mapping[str, Any], batch_size: int = 32,
                   device: torch.device | str = "cpu", desc: str = "textures") -> dict[str, Any]:
    """Write the texture of every image in ``images`` under ``out`` (skipping those
    written) and the manifest; returns the manifest. ``decode`` maps a normalised image
    batch to textures in [-1, 1] (B x 3 x th x tw). ``identity`` (the SAN-PG run, the data,
    the sizes) must match an existing manifest."""
    from torchvision.utils import save_image

    out = Path(out)
    images = sorted(dict.fromkeys(str(p) for p in images))
    root = image_root(images)
    identity = {"format": FORMAT, **identity, "image_root": str(root),
                "input_size": [int(v) for v in input_size],
                "texture_size": [int(v) for v in texture_size], "normalize": normalize}
    _check_manifest(out, identity)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {**identity, "images": len(images), "complete": False}
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    todo = [(image, texture_path(out, root, image)) for image in images]
    todo = [(image, path) for image, path in todo if path is not None and not path.is_file()]
    written = 0
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    for chunk in progress(batches, total=len(batches), desc=desc, unit="batch"):
        batch = read_images([image for image, _ in chunk], input_size, interpolation, normalize)
        with torch.no_grad():
            textures = decode(batch.to(device)).float().cpu()
        for (_, path), texture in zip(chunk, textures, strict=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.stem + ".tmp.png")
            save_image((texture * 0.5 + 0.5).clamp(0, 1), tmp)
            os.replace(tmp, path)  # a killed run never leaves a half-written texture
            written += 1
    manifest.update({"complete": True, "written": written,
                     "skipped": len(images) - written})
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def san_pg_decoder(loaded: Any) -> tuple[Callable[[torch.Tensor], torch.Tensor], dict[str, Any]]:
    """``decode(images) -> textures`` of a loaded ``san_pg`` run and its identity and sizes
    for the manifest (``loaded``: a :class:`reidcore.api.LoadedRun`)."""
    recipe = loaded.recipe
    if recipe.method.name != "san_pg":
        raise ReidError(f"{loaded.run_dir} is a '{recipe.method.name}' run; pseudo textures "
                        f"need a san_pg run (e.g. `reid run san-pg-pit`)")
    method = loaded.method
    loader = recipe.loader
    size = (loader.texture_height, loader.texture_width)

    def decode(images: torch.Tensor) -> torch.Tensor:
        return method.decode(images, size)

    info = {"san_pg_run": str(Path(loaded.run_dir).resolve()),
            "san_pg_checkpoint": str(Path(loaded.checkpoint).resolve()),
            "san_pg_sha256": file_digest(Path(loaded.checkpoint)),
            "san_pg_recipe": recipe.name}
    sizes = {"input_size": (loader.height, loader.width), "texture_size": size,
             "normalize": loader.normalize, "interpolation": loader.interpolation}
    return decode, {"identity": info, **sizes}
