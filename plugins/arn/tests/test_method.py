"""The arn method on a tiny network: what each loss sees, gradient routing, the target's
labels, the pretrained stage and a few steps that learn."""

import copy
from collections.abc import Mapping

import pytest
import torch
from reidcore.api import ReidError, StepOptimizers
from reidcore.testing import method_context, resolve_recipe

from reid_plugin_arn.method import TINY_NETWORK

B = 8


def make_arn(registry, method=None, network=None, num_classes=4, requires=None, run_dir=None):
    raw = {"method": {"pretrained": "", "dropout": 0.0, **(method or {})},
           "generators": {"network": {**TINY_NETWORK, **(network or {})}},
           "data": {"source": [{"name": "synthetic", "size": "64x32"}],
                    "target": [{"name": "synthetic", "style": "real", "size": "64x32"}]},
           "loader": {"height": 64, "width": 32, "normalize": "tanh", "sampler": "random"},
           "train": {"optimizer": "sgd", "lr": 0.01, "schedule": "constant",
                     "warmup_epochs": 0},
           "reid:num_classes": num_classes}
    if requires:
        raw["requires"] = requires
    spec = registry.get("method", "arn")
    context = method_context(spec, raw)  # steps_per_epoch 2, the clock at step 0
    context.run_dir = run_dir
    torch.manual_seed(0)
    return spec.create(context.recipe.method.config, context=context)


def optimizers(arn):
    """What the engine hands ``training_step``: the method's optimizers (built once)."""
    return StepOptimizers(arn.configure_optimizers(), arn.context.precision)


def train_step(arn, batch, step=0, optim=None):
    return arn.training_step(batch, step, optim or optimizers(arn))


def values(metrics):
    return {key: value.item() for key, value in metrics.items()}


def make_batch(seed=1, target_seed=2):
    g = torch.Generator().manual_seed(seed)
    t = torch.Generator().manual_seed(target_seed)
    return {"images": torch.rand(B, 3, 64, 32, generator=g) * 2 - 1,
            "pids": torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]),
            "target": {"images": torch.rand(B, 3, 64, 32, generator=t) * 2 - 1}}


class NoLabels(Mapping):
    """A target batch whose labels fail the test when anything reads them."""

    def __init__(self, data):
        self.data = dict(data)

    def __getitem__(self, key):
        assert key != "pids", "the target's labels were read"
        return self.data[key]

    def __contains__(self, key):
        assert key != "pids", "the target's labels were looked for"
        return key in self.data

    def __iter__(self):
        return iter(k for k in self.data if k != "pids")

    def __len__(self):
        return len(self.data) - ("pids" in self.data)


def grads(module):
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def losses_and_grads(arn, batch):
    for p in [*arn.net.parameters(), *arn.classifier.parameters()]:
        p.grad = None
    torch.manual_seed(5)
    total, parts, _ = arn.losses(batch)
    total.backward()
    return parts, {"classifier": grads(arn.classifier), "source": grads(arn.net.private.source),
                   "target": grads(arn.net.private.target), "shared": grads(arn.net.shared)}


def test_target_labels_never_reach_a_loss(registry):
    arn = make_arn(registry)
    batch = make_batch()
    poisoned = {**batch, "target": NoLabels({**batch["target"], "pids": torch.arange(B)})}
    metrics = values(train_step(arn, poisoned))  # reads no target label
    assert {"loss/cls", "loss/rec", "loss/dif", "loss/mmd", "loss/ctr"} <= set(metrics)
    # and the loss does not depend on them either
    other = {**batch, "target": NoLabels({**batch["target"], "pids": torch.zeros(B)})}
    arn2 = make_arn(registry)
    assert values(train_step(arn2, other)) == metrics


def test_the_classifier_sees_only_source_features(registry):
    arn = make_arn(registry)
    seen = []
    arn.classifier.register_forward_hook(lambda m, args, out: seen.append(args[0].detach()))
    batch = make_batch()
    train_step(arn, batch)
    assert len(seen) == 1 and seen[0].shape == (B, arn.net.feature_dim)
    # classifier gradients do not change when only the target batch changes
    arn = make_arn(registry)
    _, g1 = losses_and_grads(arn, make_batch(target_seed=2))
    _, g2 = losses_and_grads(arn, make_batch(target_seed=3))
    for name in g1["classifier"]:
        assert torch.allclose(g1["classifier"][name], g2["classifier"][name], atol=1e-6)


def test_private_encoders_see_only_their_domain(registry):
    arn = make_arn(registry)
    _, base = losses_and_grads(arn, make_batch(seed=1, target_seed=2))
    _, new_target = losses_and_grads(arn, make_batch(seed=1, target_seed=3))
    _, new_source = losses_and_grads(arn, make_batch(seed=4, target_seed=2))
    assert base["source"] and base["target"]  # both private encoders get gradients
    for name, value in base["source"].items():  # E_S: unchanged by the target images
        assert torch.allclose(value, new_target["source"][name], atol=1e-6)
    for name, value in base["target"].items():  # E_T: unchanged by the source images
        assert torch.allclose(value, new_source["target"][name], atol=1e-6)
    # while the shared encoder sees both
    assert any(not torch.allclose(v, new_target["shared"][k]) for k, v in base["shared"].items())
    assert any(not torch.allclose(v, new_source["shared"][k]) for k, v in base["shared"].items())


def test_source_only_stage_trains_e_i_e_c_and_the_classifier(registry):
    arn = make_arn(registry, method={"source_only": True, "w_ctr": 0.0})
    names = {id(p) for p in arn.trained_parameters()["network"]}
    assert names == {id(p) for p in [*arn.net.trunk.parameters(), *arn.net.shared.parameters()]}
    batch = make_batch()
    del batch["target"]
    metrics = train_step(arn, batch)
    assert set(metrics) == {"loss/cls", "accuracy", "loss"}
    assert all(v.dim() == 0 and not v.requires_grad for v in metrics.values())
    assert all(p.grad is None for p in arn.net.private.parameters())
    assert all(p.grad is None for p in arn.net.decoder.parameters())


def test_weights_and_ablations(registry):
    arn = make_arn(registry, method={"w_mmd": 0.0}, network={"private": False})
    _, parts, _ = arn.losses(make_batch())
    assert set(parts) == {"loss/cls", "accuracy", "loss/ctr", "loss/rec", "features/shared_norm"}
    arn = make_arn(registry, method={"w_cls": 0, "w_rec": 0, "w_dif": 0, "w_ctr": 0,
                                     "w_mmd": 1.0})
    total, parts, _ = arn.losses(make_batch())
    assert total.item() == pytest.approx(parts["loss/mmd"].item())


def test_sgd_as_the_code(registry):
    recipe = resolve_recipe("arn-duke2market")
    t = recipe.train
    assert (t.optimizer, t.lr, t.momentum, t.weight_decay, t.schedule, t.warmup_epochs) == (
        "sgd", 1e-3, 0.9, 5e-4, "constant", 0)
    assert t.steps_per_epoch == 2000 and t.eval_every == 1 and t.checkpoint_every == 1
    assert recipe.loader.identities * recipe.loader.instances == 16
    assert recipe.loader.target_batch_size == 16
    c = recipe.method.config
    assert (c.w_rec, c.w_dif, c.w_mmd, c.w_ctr) == (0.1, 0.1, 0.1, 0.1)


def test_a_few_steps_learn(registry):
    arn = make_arn(registry)
    batch = make_batch()
    optim = optimizers(arn)
    first = train_step(arn, batch, 0, optim)
    for step in range(1, 15):
        last = train_step(arn, batch, step, optim)
    assert last["loss"] < 0.7 * first["loss"]
    assert last["loss/cls"] < first["loss/cls"]
    assert last["loss/rec"] < first["loss/rec"]


def test_missing_pretrained_run_is_a_clear_error(registry, tmp_path):
    with pytest.raises(ReidError, match=r"required run 'pretrained' is missing.*reid run"):
        make_arn(registry, method={"pretrained": "pretrained"},
                 requires={"pretrained": {"recipe": "arn-synthetic-pretrain"}},
                 run_dir=tmp_path / "run")
    with pytest.raises(ReidError, match=r"method.pretrained.*neither a \[requires"):
        resolve_recipe("arn-synthetic", ["method.pretrained=teacher"])


def test_identity_pose_network_trains_through_the_same_method(registry):
    arn = make_arn(registry, network={"name": "identity_pose_network",
                                      "decoder_channels": [32, 16, 16, 8, 3]})
    metrics = train_step(arn, make_batch())
    assert {"loss/cls", "loss/rec", "loss/dif", "loss/mmd", "loss/ctr"} <= set(metrics)
    assert all(torch.isfinite(v) for v in metrics.values())
    assert arn.embed(torch.randn(2, 3, 64, 32)).shape == (2, 64)


def batch_norm_buffers(module):
    return {name: buffer.clone() for name, buffer in module.named_buffers()
            if name.endswith(("running_mean", "running_var"))}


def official_iteration(net, batch):
    """The official ARN forward (reid_network.AdaptReID_model.forward), written out: the
    target batch first, then the source; each stage-4 encoder is called twice on the same
    input (the map, then the pooled vector); the decoder reads e_c + e_p."""
    for images, domain in ((batch["target"]["images"], "target"), (batch["images"], "source")):
        base = net.trunk(images)
        private = net.private[domain](base)
        net.private[domain](base)
        shared = net.shared(base)
        net.shared(base)
        net.decoder(shared + private)


def test_batch_norm_statistics_follow_the_official_iteration(registry):
    arn = make_arn(registry)
    official = copy.deepcopy(arn.net)
    for norm in official.modules():  # PyTorch's default momentum, as the official modules
        if isinstance(norm, torch.nn.BatchNorm2d):
            norm.momentum = 0.1
    swapped = copy.deepcopy(official)
    batch = make_batch()
    with torch.no_grad():
        arn.losses(batch)
        official_iteration(official, batch)
        official_iteration(swapped, {"images": batch["target"]["images"],
                                     "target": {"images": batch["images"]}})
    ours, theirs, other = (batch_norm_buffers(m) for m in (arn.net, official, swapped))
    assert ours.keys() == theirs.keys() and any(k.startswith("shared.") for k in ours)
    for name in ours:
        assert torch.allclose(ours[name], theirs[name], rtol=1e-5, atol=1e-6), name
    # the order matters: the domains the other way round give other statistics
    assert any(not torch.allclose(ours[k], other[k], rtol=1e-3) for k in ours)


def test_the_source_only_stage_keeps_one_update_per_pass(registry):
    arn = make_arn(registry, method={"source_only": True, "w_ctr": 0.0})
    assert {m.momentum for m in arn.net.modules() if isinstance(m, torch.nn.BatchNorm2d)} \
        == {0.1}
    adapting = make_arn(registry).net  # E_C, E_S, E_T: two updates per batch, 1 - 0.9^2
    for part, momentum in ((adapting.shared, 1 - 0.9 ** 2), (adapting.private, 1 - 0.9 ** 2),
                           (adapting.trunk, 0.1), (adapting.decoder, 0.1)):
        assert {m.momentum for m in part.modules() if isinstance(m, torch.nn.BatchNorm2d)} \
            == {momentum}


def test_feature_norms_are_logged(registry):
    # what shows the collapse: the mean L2 norm of the pooled shared and private features
    arn = make_arn(registry)
    batch = make_batch()
    with torch.no_grad():
        _, metrics, _ = arn.losses(batch)
        f = torch.cat([arn.net.embed(batch["images"]), arn.net.embed(batch["target"]["images"])])
    assert metrics["features/shared_norm"].item() == pytest.approx(f.norm(dim=1).mean().item(),
                                                                   rel=1e-4)
    assert metrics["features/private_norm"].item() > 0
