"""What a method's build function receives: :class:`MethodContext`.

A method spec's build function (or class) is called as ``build(config,
context=MethodContext(...))``. The context gives the resolved recipe, the registry, the
number of training identities, the device, the clock and builders for the recipe's other
sections, so a method never parses the recipe itself::

    class MyMethod:
        def __init__(self, config: MyConfig, context: MethodContext):
            self.backbone = context.build_backbone()          # [backbone] (or its default)
            self.losses = context.build_losses(self.backbone.feature_dim)  # [[losses]]
            self.decoder = context.build_generator("decoder")  # a role the spec declares

        def configure_optimizers(self) -> Optimization:
            main = context.make_optimizer({"backbone": ..., "head": ...})  # [train] settings
            return Optimization({"main": main}, {"main": context.make_scheduler(main)})

        def training_step(self, batch, step, optim):
            images, pids = context.inputs(batch, "images", "pids")
            with context.precision.autocast():
                loss = ...
            optim.update("main", loss)     # zero_grad, backward, DDP sync, clip, step
            return {"loss": loss.detach()}

Every optimizer is built by the core (``make_optimizer``: the recipe's ``lr_mult``,
``freeze`` and ``optimizer_impl`` apply to it) and every LR schedule reads the engine's
clock (``make_scheduler`` for the ``[train]`` one, ``schedule`` for a method's own). What
more a method needs from its run is here too: ``inputs(batch, ...)`` (the tensors of a
batch on the device), ``wrap`` (DDP around the module it calls forward on), ``load_run``
(another run's networks, frozen: a teacher, a pretraining stage), and ``log_images`` (a
grid of generated images in TensorBoard and as a PNG in the run directory).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import torch
from torch import nn

from reidcore.engine.optim import Clock, ClockLR
from reidcore.registry import Kind, Registry
from reidcore.train_config import TrainConfig

if TYPE_CHECKING:
    from reidcore.engine.logging import RunLogger
    from reidcore.losses.losses import WeightedLoss
    from reidcore.recipe import Recipe


@attrs.define(eq=False)
class Precision:
    """Autocast, (scaled) backward and (clipped) optimizer steps for one run.

    ``skip_nonfinite`` (``train.nonfinite = "skip"``): an optimizer whose gradients are not
    all finite does not step, as the fp16 gradient scaler does (which checks them itself);
    ``skipped`` counts such steps. The check costs one device-to-host sync per step."""

    device: torch.device = attrs.field(factory=lambda: torch.device("cpu"))
    mode: str = "fp32"
    clip_grad_norm: float = 0.0
    scaler: Any = None
    skip_nonfinite: bool = False
    skipped: int = 0

    @classmethod
    def create(cls, device: torch.device, mode: str, clip_grad_norm: float = 0.0,
               skip_nonfinite: bool = False) -> Precision:
        if device.type != "cuda":
            mode = "fp32"  # CPU autocast is slower than fp32 for these networks
        scaler = torch.amp.GradScaler("cuda") if mode == "fp16" else None
        return cls(device, mode, clip_grad_norm, scaler, skip_nonfinite)

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.mode)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """``loss`` as its backward must see it: scaled by the fp16 gradient scaler."""
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def backward(self, loss: torch.Tensor, retain_graph: bool = False) -> None:
        self.scale(loss).backward(retain_graph=retain_graph)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        elif self.skip_nonfinite and not _gradients_finite(optimizer):
            self.skipped += 1
            return
        if self.clip_grad_norm > 0:
            params = [p for group in optimizer.param_groups for p in group["params"]
                      if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.clip_grad_norm)
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """Called by the engine once after every training step."""
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])


def _gradients_finite(optimizer: torch.optim.Optimizer) -> bool:
    grads = [p.grad for group in optimizer.param_groups for p in group["params"]
             if p.grad is not None]
    if not grads:
        return True
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


@attrs.define(eq=False)
class MethodContext:
    """The run as a method's build function sees it (see the module docstring)."""

    recipe: Recipe
    registry: Registry
    num_classes: int
    steps_per_epoch: int = 1
    device: torch.device = attrs.field(factory=lambda: torch.device("cpu"))
    precision: Precision = attrs.field(factory=Precision)
    rank: int = 0
    world_size: int = 1
    clock: Clock = attrs.field(default=None)
    """The engine's :class:`~reidcore.engine.optim.Clock`, always set: LR schedules and
    loss-weight ramps read it; the engine moves it."""
    meta: bool = False
    """True when built for ``reid check --build`` (meta device: no memory, no data)."""
    run_dir: Path | None = None
    """The run's directory (None outside a run, e.g. in contract checks)."""
    logger: RunLogger | None = None
    """The engine's run logger (``image(tag, hxwx3, step)``); None outside a run."""
    source_datasets: dict[str, str] | None = None
    """This run's ``[[data.source]]`` fingerprints as manifest.json records them (None
    outside a run): a run loaded for a ``RunOption(same_source=True)`` must match them."""
    legacy_source_datasets: dict[str, str] | None = None
    """The same in the absolute-path form that manifests recorded before paths were made
    relative to the data's folder: compared with a loaded run's manifest of that form."""
    _ddp_parameters: set[int] = attrs.field(factory=set, init=False)
    """Parameters of modules :meth:`wrap` put in DDP (their gradients are synced there)."""

    def __attrs_post_init__(self) -> None:
        if self.clock is None:
            self.clock = Clock(length=self.steps_per_epoch)

    @property
    def train(self) -> TrainConfig:
        return self.recipe.train

    def _create(self, kind: Kind, section: Any, default_name: str | None = None, /,
                **context: Any) -> Any:
        if section is None:
            if default_name is None:
                raise ValueError(f"the recipe has no {kind.value} section")
            return self.registry.get(kind, default_name).create(**context)
        return self.registry.get(kind, section.name).create(section.config, **context)

    def build_backbone(self, default: str = "timm") -> Any:
        """The recipe's ``[backbone]`` (the ``default`` component with defaults if absent):
        an ``nn.Module`` with the :class:`~reidcore.interfaces.Backbone` contract
        (``feature_dim``, ``forward_features``)."""
        return self._create(Kind.BACKBONE, self.recipe.backbone, default)

    def build_generator(self, role: str) -> Any:
        """The recipe's ``[generators.<role>]``, or the default component the method's
        spec declares for ``role`` (``MethodNeeds.roles``) with its default options."""
        needs = self.registry.get(Kind.METHOD, self.recipe.method.name).needs
        if role not in needs.roles:
            raise ValueError(f"method '{self.recipe.method.name}' declares no generator role "
                             f"'{role}' in its spec's MethodNeeds.roles")
        return self._create(Kind.GENERATOR, self.recipe.generators.get(role),
                            needs.roles[role])

    def build_loss(self, name: str, feature_dim: int = 0, **options: Any) -> Any:
        """One loss component by name with ``options`` (e.g. a method's default losses when
        the recipe lists none); invalid options are a ReidError naming the loss."""
        from reidcore.errors import ReidError

        spec = self.registry.get(Kind.LOSS, name)
        try:
            config = spec.config(**options)
        except (TypeError, ValueError) as exc:
            raise ReidError(f"loss '{name}': invalid options {options}: {exc}") from None
        return spec.create(config, num_classes=self.num_classes, feature_dim=feature_dim)

    def build_losses(self, feature_dim: int,
                     default: Sequence[tuple[str, float] | tuple[str, float, Mapping[str, Any]]]
                     = ()) -> WeightedLoss:
        """The recipe's ``[[losses]]`` as a :class:`~reidcore.losses.losses.WeightedLoss`;
        when there are none, the ``default`` entries ``(name, weight)`` or
        ``(name, weight, options)``. Each loss is built with the context ``num_classes``
        and ``feature_dim``."""
        from reidcore.losses.losses import WeightedLoss

        names, losses, weights = [], [], []
        context = {"num_classes": self.num_classes, "feature_dim": feature_dim}
        if self.recipe.losses:
            for section in self.recipe.losses:
                names.append(section.name)
                weights.append(section.weight)
                losses.append(self._create(Kind.LOSS, section, **context))
        else:
            for name, weight, *options in default:
                names.append(name)
                weights.append(weight)
                losses.append(self.build_loss(name, feature_dim, **(options[0] if options
                                                                    else {})))
        return WeightedLoss(names, losses, weights)

    def make_optimizer(self, groups: Mapping[str, Any], **options: Any) -> torch.optim.Optimizer:
        """An optimizer over named parameter groups, built by the core so that
        ``train.lr_mult``, ``train.freeze`` and ``train.optimizer_impl`` apply to every
        method: see :func:`~reidcore.engine.optim.make_optimizer` for ``groups`` (a list of
        parameters, or ``{"params": ..., "lr_mult": ..., "weight_decay": ...}``) and the
        ``options`` (``kind``, ``lr``, ``weight_decay``, ``momentum``, ``nesterov``,
        ``betas``, ``eps``, ``amsgrad``), which default to the recipe's ``[train]``."""
        from reidcore.engine.optim import make_optimizer

        return make_optimizer(groups, self.train, **options)

    def make_scheduler(self, optimizer: torch.optim.Optimizer) -> ClockLR:
        """The ``[train]`` LR schedule (warm-up, multistep/cosine/constant) for ``optimizer``."""
        from reidcore.engine.optim import make_scheduler

        return make_scheduler(optimizer, self.train, self.clock)

    def schedule(self, optimizer: torch.optim.Optimizer,
                 factor: Callable[[Clock], float]) -> ClockLR:
        """A method's own LR schedule: every group's LR is ``initial * factor(clock)``
        (e.g. a paper's step decay by iteration: ``lambda clock: 0.1 ** (clock.step //
        40000)``); stateless, so a resumed run gets the same LRs."""
        return ClockLR(optimizer, factor, self.clock)

    def wrap(self, module: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        """``module`` itself, or DistributedDataParallel around it in a multi-process run.
        Keep the unwrapped module for ``modules()`` (checkpoints use its keys).

        ``find_unused_parameters``: set it when some parameters get no gradient in some
        steps, e.g. a backbone frozen for the first epochs (DDP would otherwise wait for
        their gradients forever and fail). The step's ``optim.update`` does not average
        a wrapped module's gradients again."""
        if self.world_size <= 1 or self.meta:
            return module
        from torch.nn.parallel import DistributedDataParallel

        self._ddp_parameters.update(id(p) for p in module.parameters())
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids,
                                       find_unused_parameters=find_unused_parameters)

    def sync_gradients(self, params: Iterable[nn.Parameter]) -> None:
        """Average the gradients of ``params`` over the processes of a multi-process run
        (a no-op in one process), except those of modules :meth:`wrap` put in DDP. The
        step's ``optim.update`` and ``optim.step`` call it; parameters without a gradient
        count as zero on that rank."""
        if self.world_size <= 1 or self.meta:
            return
        import torch.distributed as dist

        grads = []
        for param in params:
            if param.requires_grad and id(param) not in self._ddp_parameters:
                if param.grad is None:
                    param.grad = torch.zeros_like(param)
                grads.append(param.grad)
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
            offset += grad.numel()

    def inputs(self, batch: Mapping[str, Any], *keys: str) -> tuple[torch.Tensor, ...]:
        """The tensors ``batch[key]`` on the run's device, in the order of ``keys``; a key
        may go one level down (``"target.images"``). Image batches (4-D floating point)
        take ``channels_last`` when ``train.channels_last`` says so. The preamble of every
        training step in one call::

            images, pids = context.inputs(batch, "images", "pids")
        """
        from reidcore.errors import ReidError

        channels_last = bool(getattr(self.train, "channels_last", False))
        out = []
        for key in keys:
            value: Any = batch
            for part in key.split("."):
                if not isinstance(value, Mapping) or part not in value:
                    available = ", ".join(sorted(value)) if isinstance(value, Mapping) else ""
                    raise ReidError(f"the training batch has no '{key}' (keys: {available}); "
                                    f"see the loader options (e.g. loader.positive, "
                                    f"loader.textures, [[data.target]])")
                value = value[part]
            tensor = torch.as_tensor(value).to(self.device, non_blocking=True)
            if channels_last and tensor.dim() == 4 and tensor.is_floating_point():
                tensor = tensor.contiguous(memory_format=torch.channels_last)
            out.append(tensor)
        return tuple(out)

    def load_run(self, ref: str | Path, modules: Sequence[str] | None = None,
                 which: str = "last") -> Any:
        """Another run's networks, frozen (eval mode, no gradients), on this run's device:
        a :class:`~reidcore.engine.runs.LoadedRun`. ``ref`` is a role of the recipe's
        ``[requires.<role>]`` (trained first by ``reid run``), a run directory or a
        checkpoint file. A run that is missing is a ReidError saying how to train it."""
        from reidcore.engine.rundir import RunDirectory
        from reidcore.engine.runs import MissingRunError

        requirement = getattr(self.recipe, "requires", {}).get(str(ref))
        if requirement is None:
            loaded = load_run(Path(ref), self.registry, device=self.device, modules=modules,
                              which=which)
            self._check_same_source(str(ref), loaded)
            return loaded
        if requirement.run:
            path = Path(requirement.run)
        elif self.run_dir is not None:
            path = RunDirectory(self.run_dir).requirement(str(ref)).path
        else:
            raise MissingRunError(f"[requires.{ref}] names recipe '{requirement.recipe}': its "
                                  f"run is found beside this run's directory, and this "
                                  f"method is not being built inside a run")
        try:
            loaded = load_run(path, self.registry, device=self.device, modules=modules,
                              which=which)
        except MissingRunError as exc:
            how = (f"train it with `reid run {requirement.recipe} --out {path}` (`reid run` "
                   f"on this recipe trains it first)" if requirement.recipe
                   else f"[requires.{ref}].run = '{requirement.run}' must name a trained run")
            raise MissingRunError(f"required run '{ref}' is missing: {exc}; {how}") from None
        self._check_same_source(str(ref), loaded)
        return loaded

    def _check_same_source(self, ref: str, loaded: Any) -> None:
        """A run loaded for a ``RunOption(same_source=True)`` (DG-Net's teacher) trained on
        this run's source data, compared by dataset fingerprint (records, pids and camids:
        the label mapping follows from them); counts alone let 40 other identities pass."""
        from reidcore.engine.run_match import check_same_source

        if self.source_datasets is None or (Kind.METHOD, self.recipe.method.name) \
                not in self.registry:
            return
        needs = self.registry.get(Kind.METHOD, self.recipe.method.name).needs
        if any(option.same_source and getattr(self.recipe.method.config, name, None) == ref
               for name, option in needs.runs.items()):
            check_same_source(ref, loaded.run_dir, self.source_datasets, self.recipe,
                              legacy=self.legacy_source_datasets)

    def log_images(self, tag: str, rows: Mapping[str, torch.Tensor] | Sequence[torch.Tensor],
                   step: int, value_range: tuple[float, float] = (-1.0, 1.0),
                   limit: int = 8) -> Path | None:
        """A grid of image batches, one row each (:func:`~reidcore.engine.images.image_grid`),
        written to TensorBoard as ``images/<tag>`` and to ``<run dir>/images/<tag>/
        step-<step>.png``; returns the PNG's path. Only the first process of a run writes;
        outside a run (no run directory) nothing is written and None is returned."""
        if self.run_dir is None or self.rank != 0 or self.meta:
            return None
        from reidcore.engine.images import image_grid, save_png
        from reidcore.engine.rundir import RunDirectory

        picture = image_grid(rows, value_range, limit)
        if self.logger is not None:
            self.logger.image(f"images/{tag}", picture, step)
        return save_png(picture, RunDirectory(self.run_dir).image_file(tag, step))


def build_method(recipe: Any, registry: Registry, num_classes: int, *, meta: bool = True,
                 device: torch.device | None = None, run_dir: Path | None = None) -> Any:
    """The recipe's method, on the meta device by default (no memory, no data, and no
    weights read or downloaded: see :func:`~reidcore.models.weights.no_weight_loading`).
    ``run_dir``: the run it belongs to, where ``load_run`` finds its required runs."""
    from reidcore.models.weights import no_weight_loading

    device = torch.device("meta") if meta else (device or torch.device("cpu"))
    context = MethodContext(recipe=recipe, registry=registry, num_classes=num_classes,
                            device=device, meta=meta, run_dir=run_dir)
    spec = registry.get(Kind.METHOD, recipe.method.name)
    if meta:
        with torch.device("meta"), no_weight_loading():
            return spec.create(recipe.method.config, context=context)
    return spec.create(recipe.method.config, context=context)


def load_run(ref: str | Path, registry: Registry, *, device: torch.device | str = "cpu",
             modules: Sequence[str] | None = None, which: str = "last") -> Any:
    """Rebuild the run at ``ref`` (a run directory or one of its checkpoints) from its own
    recipe and load its weights (``weights_only``; every missing or unexpected key
    reported): all of its method's modules, or those named in ``modules``, frozen. Returns
    a :class:`~reidcore.engine.runs.LoadedRun`. ``which``: the last epoch's checkpoint (the
    trained network) or ``"best"``."""
    from reidcore.engine.rundir import RunDirectory
    from reidcore.engine.runs import find_checkpoint, load_into
    from reidcore.models.weights import no_weight_loading
    from reidcore.recipe import read_toml, resolve

    run_dir, path = find_checkpoint(Path(ref), which)  # type: ignore[arg-type]
    run = RunDirectory(run_dir)
    recipe_path = run.written_recipe_file()
    recipe = resolve(read_toml(recipe_path), str(recipe_path), registry)
    with no_weight_loading():  # the checkpoint holds every weight: read no pretrained file
        method = build_method(recipe, registry, run.num_classes(), meta=False)
    return load_into(method, run_dir, path, recipe, modules, device)
