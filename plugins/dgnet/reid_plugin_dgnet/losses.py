"""DG-Net's objectives: LSGAN with the R1 penalty, the teacher's KL, L1 reconstruction.

Values follow the official code (``configs/latest.yaml``): per scale the discriminator loss
is ``mean(D(fake)^2) + mean((D(real) - 1)^2) + r1_w * R1``, the generator's
``2 * mean((D(fake) - 1)^2)``; the teacher term is ``KL(p_T || softmax(student))`` summed
over classes and averaged over the batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F


def l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error against a detached target (every reconstruction term)."""
    return (output - target.detach()).abs().mean()


def r1_penalty(score: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Batch mean of ``sum_pixels |d sum(score) / d real|^2`` (``real`` requires grad);
    keeps the graph so the penalty itself trains D."""
    (grad,) = torch.autograd.grad(score.sum(), real, create_graph=True)
    return grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()


def discriminator_loss(discriminator: Callable[[torch.Tensor], list[torch.Tensor]],
                       fake: torch.Tensor, real: torch.Tensor, r1_w: float = 0.01
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """LSGAN loss of D for one (fake, real) pair, summed over scales, with the R1 penalty
    on the real images. Returns ``(loss including the penalty, penalty)``."""
    real = real.detach().requires_grad_(r1_w > 0)
    fakes, reals = discriminator(fake.detach()), discriminator(real)
    loss = fake.new_zeros(())
    penalty = fake.new_zeros(())
    for out_fake, out_real in zip(fakes, reals, strict=True):
        loss = loss + out_fake.pow(2).mean() + (out_real - 1).pow(2).mean()
        if r1_w > 0:
            penalty = penalty + r1_w * r1_penalty(out_real, real)
    return loss + penalty, penalty


def generator_loss(discriminator: Callable[[torch.Tensor], list[torch.Tensor]],
                   fake: torch.Tensor) -> torch.Tensor:
    """LSGAN loss of G for one generated batch: ``sum_scales 2 * mean((D(fake) - 1)^2)``."""
    return sum((2 * (out - 1).pow(2).mean() for out in discriminator(fake)),
               fake.new_zeros(()))


def teacher_kl(student_logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    """``sum_i sum_k p_T log(p_T / q)`` / batch: the primary head against the soft label."""
    log_q = F.log_softmax(student_logits.float(), 1)
    return F.kl_div(log_q, teacher_probs.float(), reduction="sum") / student_logits.shape[0]


def soft_label(logits: Callable[[torch.Tensor], torch.Tensor],
               images: torch.Tensor) -> torch.Tensor:
    """The teacher's dynamic soft label: the mean of the softmax of an image and of its
    horizontal mirror (sums to 1)."""
    with torch.no_grad():
        probs = F.softmax(logits(images).float(), 1) + F.softmax(
            logits(images.flip(3)).float(), 1)
    return probs / 2
