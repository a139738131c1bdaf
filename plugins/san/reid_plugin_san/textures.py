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
FORMAT = 2  # 2: a SHA-256 per texture ("textures") and the run named inside each PNG
PROVENANCE = ("san_pg_run", "san_pg_sha256")  # PNG text chunks: who wrote the texture


def option_text(value: Any) -> str:
    """A dataset option as ``--option KEY=<text>`` takes it (TOML scalar syntax, else the
    bare string), so that the text parses back to ``value``."""
    from reid_plugin_san.commands import parse_value

    if isinstance(value, str) and parse_value(value) == value:
        return value
    if isinstance(value, Path):
        return option_text(str(value))
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def repair_command(manifest: Mapping[str, Any], folder: Path) -> str | None:
    """The ``reid san-textures`` command that completes / repairs ``folder`` (verifies every
    texture, rewrites damaged or foreign ones), runnable as printed; None for a folder the
    command cannot remake (the san method's textures of several datasets)."""
    import shlex

    run, dataset = manifest.get("san_pg_run"), manifest.get("dataset")
    if not run or not dataset or "+" in str(dataset):
        return None
    words = ["reid", "san-textures", str(run), "--dataset", str(dataset)]
    for key, text in (manifest.get("dataset_options") or {}).items():
        words += ["--option", f"{key}={text}"]
    if Path(str(manifest.get("san_pg_checkpoint", ""))).name == "best.pt":
        words += ["--which", "best"]
    words += ["--out", str(Path(folder).resolve())]
    return shlex.join(words)


def how_to_repair(manifest: Mapping[str, Any], folder: Path) -> str:
    command = repair_command(manifest, folder)
    if command is None:
        return ("start the san run that wrote them again (it verifies its textures and "
                "rewrites damaged ones)")
    return f"run `{command}` (it verifies every texture and rewrites damaged ones)"


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


def provenance(path: Path) -> dict[str, str] | None:
    """The SAN-PG run and checkpoint digest written inside a texture PNG; None when the
    file is no readable PNG (truncated, damaged) or carries none."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()  # a truncated file fails here
            text = dict(getattr(image, "text", {}) or {})
    except (OSError, ValueError, SyntaxError):
        return None
    if not all(key in text for key in PROVENANCE):
        return None
    return {key: text[key] for key in PROVENANCE}


def texture_problem(path: Path, recorded: str | None, manifest: Mapping[str, Any]
                    ) -> tuple[str, str] | None:
    """None when ``path`` is this folder's texture (its SHA-256 as recorded; or, not yet
    recorded after a kill, a readable PNG naming this folder's SAN-PG checkpoint); else
    (kind, description), kind "missing", "damaged" or "foreign" (written by another run)."""
    if not path.is_file():
        return "missing", f"{path} is missing"
    if recorded is not None and file_digest(path) == recorded:
        return None
    origin = provenance(path)
    if origin is not None and origin["san_pg_sha256"] != manifest.get("san_pg_sha256"):
        return "foreign", (f"{path} was written by SAN-PG run {origin['san_pg_run']} "
                           f"(checkpoint SHA-256 {origin['san_pg_sha256'][:12]}...), but "
                           f"this folder holds the textures of SAN-PG run "
                           f"{manifest.get('san_pg_run')} (checkpoint SHA-256 "
                           f"{str(manifest.get('san_pg_sha256'))[:12]}...): the folder mixes "
                           f"two runs")
    if recorded is None and origin is not None:
        return None  # written (atomically) by this run before a kill, not yet recorded
    if recorded is None:
        return "damaged", (f"{path} is not a texture this folder's {MANIFEST} records "
                           f"(unreadable, or not written by a SAN-PG run)")
    return "damaged", (f"{path} is damaged: its SHA-256 differs from the one {MANIFEST} "
                       f"records (truncated or changed after it was written)")


# --- reading -------------------------------------------------------------------------------


class TextureFolder:
    """The textures of a folder written by ``reid san-textures`` (or by the ``san`` method),
    looked up by image path; ``load(paths, size)`` gives B x 3 x th x tw in [-1, 1]. Each
    texture is checked once per process against the manifest's SHA-256 (the file is read
    anyway; a damaged or foreign texture is an error saying how to repair the folder)."""

    def __init__(self, folder: str | Path, make_hint: str = ""):
        self.folder = Path(folder).expanduser()
        manifest_path = self.folder / MANIFEST
        if not manifest_path.is_file():
            raise ReidError(f"{self.folder} is not a texture folder (no {MANIFEST}); make it "
                            f"with {make_hint or '`reid san-textures` (see its --help)'}")
        try:
            self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            self.root = Path(self.manifest["image_root"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ReidError(f"{manifest_path} is not a texture manifest: {exc}") from None
        self.hint = how_to_repair(self.manifest, self.folder)
        self.digests: dict[str, str] = dict(self.manifest.get("textures") or {})
        if not self.manifest.get("complete", False):
            raise ReidError(f"the textures in {self.folder} are incomplete (their writing "
                            f"was interrupted); to complete them, {self.hint}")
        if int(self.manifest.get("format", 1)) < FORMAT:
            raise ReidError(f"{manifest_path} has no SHA-256 per texture (written by an "
                            f"older version), so its textures cannot be verified; to record "
                            f"them, {self.hint}")
        self._verified: set[str] = set()

    def path_for(self, image: str) -> Path:
        path = texture_path(self.folder, self.root, image)
        if path is None:
            raise ReidError(f"no pseudo texture for {image}: it is not under the image root "
                            f"{self.root} that {self.folder / MANIFEST} was made for; make "
                            f"textures for this dataset with `reid san-textures` into "
                            f"another folder")
        key = path.relative_to(self.folder).as_posix()
        if key in self._verified:
            return path
        if not path.is_file():
            raise ReidError(f"no pseudo texture for {image} (expected {path}); to write the "
                            f"missing textures, {self.hint}")
        problem = texture_problem(path, self.digests.get(key), self.manifest)
        if problem is not None:
            raise ReidError(f"{problem[1]}; to repair the folder, {self.hint}")
        self._verified.add(key)
        return path

    def load(self, images: Sequence[str], size: Sequence[int]) -> torch.Tensor:
        paths = [str(self.path_for(image)) for image in images]
        return read_images(paths, size) * 2 - 1


# --- writing -------------------------------------------------------------------------------


def _old_manifest(out: Path, identity: Mapping[str, Any]) -> dict[str, Any]:
    """The folder's manifest when it matches ``identity`` ({} for a new folder)."""
    path = out / MANIFEST
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ReidError(f"{path} is not a texture manifest; remove it or choose another "
                        f"--out") from None
    # a format-1 folder is upgraded: its textures are checked as unrecorded ones
    differing = [key for key, value in identity.items()
                 if key != "format" and old.get(key) != value]
    if differing:
        raise ReidError(f"{out} holds textures made differently ({', '.join(differing)} "
                        f"differ: {old.get(differing[0])!r} vs {identity[differing[0]]!r}); "
                        f"choose another --out or remove that folder, so textures of two "
                        f"SAN-PG runs are never mixed")
    return old


def encode_png(texture: torch.Tensor, origin: Mapping[str, str]) -> bytes:
    """A 3 x H x W texture in [0, 1] as PNG bytes (rounded as torchvision's save_image),
    with the SAN-PG run and checkpoint digest as text chunks."""
    import io

    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    array = texture.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
    info = PngInfo()
    for key in PROVENANCE:
        info.add_text(key, str(origin[key]))
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def write_file_atomically(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` whole or not at all; the temporary name (``<name>.part``)
    matches no ``*.png`` pattern and is removed when the write fails."""
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_textures(decode: Callable[[torch.Tensor], torch.Tensor], images: Sequence[str],
                   out: Path, *, input_size: Sequence[int], texture_size: Sequence[int],
                   normalize: str, interpolation: str = "bilinear",
                   identity: Mapping[str, Any], batch_size: int = 32,
                   device: torch.device | str = "cpu", desc: str = "textures") -> dict[str, Any]:
    """Write the texture of every image in ``images`` under ``out`` and the manifest (a
    SHA-256 per texture); returns the manifest with ``written``, ``skipped`` (verified and
    kept), ``damaged`` and ``foreign`` (rewritten: changed since written, or written by
    another SAN-PG run). ``decode`` maps a normalised image batch to textures in [-1, 1]
    (B x 3 x th x tw). ``identity`` (the SAN-PG run, the data, the sizes) must match an
    existing manifest."""
    out = Path(out)
    images = sorted(dict.fromkeys(str(p) for p in images))
    root = image_root(images)
    identity = {"format": FORMAT, **identity, "image_root": str(root),
                "input_size": [int(v) for v in input_size],
                "texture_size": [int(v) for v in texture_size], "normalize": normalize}
    old = _old_manifest(out, identity)
    recorded: dict[str, str] = dict(old.get("textures") or {})
    origin = {key: str(identity[key]) for key in PROVENANCE}
    manifest: dict[str, Any] = {**identity, "images": len(images), "complete": False}
    try:
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.rglob("*.png.part"):  # left by a process killed mid-write
            stale.unlink()
        atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    except OSError as exc:
        raise ReidError(f"cannot write texture manifest {out / MANIFEST}: {exc}") from None

    digests: dict[str, str] = {}
    counts = {"damaged": 0, "foreign": 0}
    todo = []
    for image in images:
        path = texture_path(out, root, image)
        if path is None:
            continue
        key = path.relative_to(out).as_posix()
        problem = texture_problem(path, recorded.get(key), identity)
        if problem is None:
            digests[key] = recorded.get(key) or file_digest(path)
            continue
        if problem[0] in counts:
            counts[problem[0]] += 1
        todo.append((image, path, key))

    written = 0
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    try:
        for chunk in progress(batches, total=len(batches), desc=desc, unit="batch"):
            batch = read_images([image for image, _, _ in chunk], input_size, interpolation,
                                normalize)
            with torch.no_grad():
                textures = decode(batch.to(device)).float().cpu()
            for (_, path, key), texture in zip(chunk, textures, strict=True):
                path.parent.mkdir(parents=True, exist_ok=True)
                data = encode_png((texture * 0.5 + 0.5).clamp(0, 1), origin)
                write_file_atomically(path, data)  # a kill never leaves half a texture
                digests[key] = hashlib.sha256(data).hexdigest()
                written += 1
        manifest.update({"complete": True, "written": written,
                         "skipped": len(images) - written, **counts,
                         "textures": dict(sorted(digests.items()))})
        atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    except OSError as exc:
        raise ReidError(f"writing textures into {out} failed after {written} of "
                        f"{len(todo)}: {exc}; free space (or fix the folder's permissions) "
                        f"and run the same command again: it keeps the textures written "
                        f"and completes the rest") from None
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
