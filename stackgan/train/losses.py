"""The GAN losses of both trainers, as free functions (as DF-GAN writes them), and StackGAN's two phases.

Adversarial terms, on logits (``kind``: ``bce`` non-saturating, ``hinge``; the DCGAN also ``wgan-gp``):

    d_adv(kind, real, fake, real_target=None, fake_target=None)     one real and one fake batch (DCGAN)
    g_adv(kind, fake)
    matching_aware_d(kind, real_c, real_u, wrong_c, fake_c, fake_u)  StackGAN: real photo + its own name
                      against (fake + its name, real + another dish's name), plus the unconditional logits
    matching_aware_g(kind, fake_c, fake_u)

Regularisers and other terms:

    wgan_gradient_penalty(D, real, fake)   WGAN-GP on interpolates (DCGAN --loss wgan-gp)
    matching_aware_gp(...)                 DF-GAN's MA-GP on (real photo, its name's code)
    r1_penalty(logits, real)               R1 on real photos (lazy in the trainer)
    kl_divergence(mu, logvar)              conditioning augmentation's KL
    mode_seeking_term(a, b, za, zb)        MSGAN
    PatchPrior(photos)(fake, seed)         --patch-prior: fakes' patches outside the photos' patch manifold
    name_classification(logits, labels)    which of all the training names is this picture's
    part_classification(logits, codes, sizes)  which value of each part (base, topping, ...) it shows
    low_res_consistency(img, low)          stage II: the picture, pooled to stage I's size, against stage I's
    paired_reconstruction(rec, real)       stage II: a real photo redrawn from its pooled copy, against the photo
    d_reconstruction(whole, part, real, quarter)  FastGAN's self-supervised D: D's features redraw the photo
    balanced_consistency(pairs)            bCR: D's logits on two augmented views of the same pictures agree

:class:`StackGANLoss` puts them together as the two phases of one StackGAN step (``d_phase`` and
``g_phase``, each a loss and its parts), as stylegan2-ada's ``Loss.accumulate_gradients(phase)`` does;
the trainer only sequences them (and owns the optimisers, the NaN recovery and the EMA).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from stackgan.metrics.features import to_float
from stackgan.metrics.patches import knn_radii, patch_vectors
from stackgan.models.stackgan import kl_divergence, quarter_of
from stackgan.stackgan_config import STAGE_DEFAULTS, StackGANConfig

__all__ = ["d_adv", "g_adv", "matching_aware_d", "matching_aware_g", "wgan_gradient_penalty", "matching_aware_gp",
           "r1_penalty", "kl_divergence", "mode_seeking_term", "PatchPrior", "name_classification",
           "low_res_consistency", "paired_reconstruction", "d_reconstruction", "balanced_consistency", "StackGANLoss"]


# -- adversarial terms ---------------------------------------------------------------------------------
def d_adv(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor,
          real_target: torch.Tensor | None = None, fake_target: torch.Tensor | None = None) -> torch.Tensor:
    """D's loss on one real and one fake batch (targets: BCE only, for label smoothing / flips)."""
    if kind == "bce":
        if real_target is None:
            real_target = torch.ones_like(real_logits)
        if fake_target is None:
            fake_target = torch.zeros_like(fake_logits)
        return (F.binary_cross_entropy_with_logits(real_logits, real_target)
                + F.binary_cross_entropy_with_logits(fake_logits, fake_target))
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    if kind == "wgan-gp":
        return fake_logits.mean() - real_logits.mean()
    raise ValueError(f"unknown loss {kind!r}")


def g_adv(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """G's loss on one fake batch: the non-saturating -log D(G(z)) for BCE, -D(G(z)) otherwise."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if kind in ("hinge", "wgan-gp"):
        return -fake_logits.mean()
    raise ValueError(f"unknown loss {kind!r}")


def _mean(t: torch.Tensor) -> torch.Tensor:
    """The mean, 0 for an empty tensor (a batch in which no fake meets the conditional term)."""
    return t.mean() if t.numel() else t.sum()


def matching_aware_d(kind: str, real_c: torch.Tensor, real_u: torch.Tensor, wrong_c: torch.Tensor,
                     fake_c: torch.Tensor, fake_u: torch.Tensor) -> torch.Tensor:
    """StackGAN's D loss: the real side (a photo with its own name, and unconditionally) averaged, the
    fake side (a fake with its name, a photo with another dish's name, a fake unconditionally) averaged.
    ``fake_c`` may hold fewer rows than ``fake_u`` (``--no-part-mix-cond``), or none."""
    if kind == "bce":
        one = lambda t: _mean(F.binary_cross_entropy_with_logits(t, torch.ones_like(t), reduction="none"))  # noqa: E731
        zero = lambda t: _mean(F.binary_cross_entropy_with_logits(t, torch.zeros_like(t), reduction="none"))  # noqa: E731
        return (one(real_c) + one(real_u)) / 2 + (zero(fake_c) + zero(wrong_c) + zero(fake_u)) / 3
    if kind == "hinge":
        return ((_mean(F.relu(1 - real_c)) + _mean(F.relu(1 - real_u))) / 2
                + (_mean(F.relu(1 + fake_c)) + _mean(F.relu(1 + wrong_c)) + _mean(F.relu(1 + fake_u))) / 3)
    raise ValueError(f"unknown loss {kind!r}")


def matching_aware_g(kind: str, fake_c: torch.Tensor, fake_u: torch.Tensor) -> torch.Tensor:
    """StackGAN's G loss: the fake must pass with its name and unconditionally (``fake_c`` may hold fewer
    rows than ``fake_u``, or none)."""
    if kind == "bce":
        return (_mean(F.binary_cross_entropy_with_logits(fake_c, torch.ones_like(fake_c), reduction="none"))
                + F.binary_cross_entropy_with_logits(fake_u, torch.ones_like(fake_u)))
    if kind == "hinge":
        return -(_mean(fake_c) + fake_u.mean())
    raise ValueError(f"unknown loss {kind!r}")


# -- regularisers and other terms ----------------------------------------------------------------------
def wgan_gradient_penalty(D: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                          fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): (||grad D(x_hat)|| - 1)^2 on random interpolates."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = D(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def matching_aware_gp(real_c: torch.Tensor, real: torch.Tensor, code: torch.Tensor, power: float) -> torch.Tensor:
    """DF-GAN's matching-aware gradient penalty: E ||grad_(x, c) D(x, c)||^power on real photos with
    their own names' codes (``real`` and ``code`` must require grad and have produced ``real_c``)."""
    gi, gc = torch.autograd.grad(real_c.float().sum(), (real, code), create_graph=True)
    gnorm = torch.cat([gi.flatten(1), gc.flatten(1)], dim=1).float().norm(dim=1)
    return gnorm.pow(power).mean()


def r1_penalty(logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E ||grad_x D(x)||^2 on real photos (``real`` requires grad)."""
    (grad,) = torch.autograd.grad(logits.float().sum(), real, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()


def mode_seeking_term(a: torch.Tensor, b: torch.Tensor, za: torch.Tensor, zb: torch.Tensor,
                      eps: float = 1e-5) -> torch.Tensor:
    """MSGAN's mode-seeking loss (Mao et al., CVPR 2019) for pairs of fakes of the same names:
    ``1 / (mean|a - b| / mean|za - zb| + eps)``, per pair then averaged. It is small when different
    noise gives different pictures, and grows without bound as the generator collapses."""
    ratio = (a.float() - b.float()).abs().flatten(1).mean(1) / (za.float() - zb.float()).abs().mean(1)
    return (1.0 / (ratio + eps)).mean()


class PatchPrior:
    """``--patch-prior``: the training photos' patch manifold, as the ``patches`` metric builds it (Kynkäänniemi et
    al. 2019 on raw ``patch`` px patches: ``bank`` of them, each the centre of a ball as wide as its ``k``-th nearest
    neighbour), and a term on G's pictures: each of ``n`` patches drawn from them costs its squared distance past the
    edge of the ball whose edge is nearest (0 inside any ball), per value, averaged. Patches the photos have (inside
    the manifold: what precision counts) cost nothing, so the term presses only on strokes and smears no photo has,
    towards the nearest photo patch, and leaves the rest to the adversarial terms."""

    def __init__(self, photos: torch.Tensor, patch: int = 8, bank: int = 16_384, k: int = 3, n: int = 512,
                 seed: int = 0, chunk: int = 64):
        """``photos``: uint8 [0, 255] or float [-1, 1] [N, C, H, W]; read ``chunk`` at a time, each giving its share
        of the ``bank``, so a large set at 128 or 256 px is never cut into all its patches at once."""
        self.patch, self.n = int(patch), int(n)
        parts = photos.split(chunk)
        share = [len(c) * bank // len(photos) for c in parts]
        left = bank - sum(share)  # one more each to the first chunks: ``bank`` in all
        share = [m + (i < left) for i, m in enumerate(share)]
        self.bank = torch.cat([patch_vectors(to_float(c), self.patch, m, seed + i)
                               for i, (c, m) in enumerate(zip(parts, share))])  # [bank, C*p*p]
        self.radii = knn_radii(self.bank, k)  # squared
        self.bank_sq = self.bank.square().sum(1)

    def __call__(self, fake: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """The term on pictures ``fake`` [N, C, H, W] in [-1, 1] (differentiable in ``fake``); ``seed`` draws
        which patches (the trainer's step, so each step reads others)."""
        with torch.autocast(fake.device.type, enabled=False):
            p = patch_vectors(fake.float(), self.patch, self.n, seed)
            if p.shape[1] != self.bank.shape[1]:
                raise ValueError(f"--patch-prior: pictures of {fake.shape[1]} channels against photos' patches of "
                                 f"{self.bank.shape[1]} values")
            with torch.no_grad():  # which ball: the one whose edge is nearest (most negative inside one)
                j = (p.square().sum(1, keepdim=True) + self.bank_sq[None] - 2 * p @ self.bank.T
                     - self.radii[None]).argmin(1)
            past = (p - self.bank[j]).square().sum(1) - self.radii[j]
            return past.clamp_min(0).mean() / p.shape[1]


def name_classification(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of [B, K] name logits (one per training name) against the pictures' names."""
    return F.cross_entropy(logits.float(), labels)


def part_classification(logits: torch.Tensor, codes: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Cross-entropy of [B, P] part logits against the parts codes [B, P] (:mod:`stackgan.text.parts`: one
    block per part, one-hot, all zeros where the part is unknown), one softmax per block, averaged over the
    parts that are known; 0 when none is."""
    total, count = logits.new_zeros((), dtype=torch.float32), 0
    at = 0
    for size in sizes:
        block, target = logits[:, at:at + size].float(), codes[:, at:at + size]
        known = target.sum(dim=1) > 0
        if known.any():
            total = total + F.cross_entropy(block[known], target[known].argmax(dim=1), reduction="sum")
            count += int(known.sum())
        at += size
    return total / max(count, 1)


def low_res_consistency(img: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between ``img`` average-pooled to ``low``'s size and ``low``: stage II may add
    detail, but what it draws must still look like the stage-I picture from afar (the layout and colours that
    carry the name), as super-resolution models tie their output to the low-resolution input."""
    k = img.shape[-1] // low.shape[-1]
    return (F.avg_pool2d(img.float(), k) - low.float()).abs().mean()


def paired_reconstruction(rec: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between stage II's picture ``rec``, drawn from a real photo average-pooled to
    the stage-I size, and that photo: the content term of a super-resolution GAN (SRGAN, ESRGAN), which
    teaches the detail from pairs instead of only through D."""
    if rec.shape != real.shape:
        raise ValueError(f"the redrawn photos {tuple(rec.shape)} and the photos {tuple(real.shape)} differ in shape")
    return (rec.float() - real.float()).abs().mean()


def d_reconstruction(whole: torch.Tensor, part: torch.Tensor, real: torch.Tensor, quarter: int) -> torch.Tensor:
    """FastGAN's self-supervised D: the mean squared error of D's redrawing of the picture ``real`` it was
    shown, ``whole`` (at half size) against ``real`` average-pooled to it, plus ``part`` against quarter
    ``quarter`` (0-3: top left, top right, bottom left, bottom right) of ``real`` at full size. FastGAN
    measures it with LPIPS; its weights cannot be downloaded here, so pixels, as lightweight-gan does."""
    s = real.shape[-1]
    if whole.shape[-1] * 2 != s or part.shape[-1] * 2 != s:
        raise ValueError(f"D's redrawings ({whole.shape[-1]} and {part.shape[-1]} px) must be half the {s} px "
                         f"pictures")
    target = real.float()
    return F.mse_loss(whole.float(), F.avg_pool2d(target, 2)) + F.mse_loss(part.float(), quarter_of(target, quarter))


def balanced_consistency(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Consistency regularisation (Zhang et al. 2020; balanced, on reals and fakes, Zhao et al. 2021): the
    sum over ``pairs`` of the mean squared difference between D's logits on one view of some pictures and
    on another augmented view of the same pictures. Gradients flow through both views, as in the papers."""
    if not pairs:
        raise ValueError("balanced_consistency needs at least one pair of logits")
    total = torch.zeros((), device=pairs[0][0].device)
    for a, b in pairs:
        if a.shape != b.shape:
            raise ValueError(f"logits of two views differ in shape: {tuple(a.shape)} and {tuple(b.shape)}")
        total = total + F.mse_loss(a.float(), b.float())
    return total


# -- StackGAN: the two phases of a step ----------------------------------------------------------------
class StackGANLoss:
    """The D and G phases of a StackGAN step for ``cfg`` (loss kind, weights) on discriminator ``D``,
    with ``augment`` applied to every picture D sees (DiffAugment / ADA: the same op on reals and fakes).

    Codes ``c`` are the conditioning-augmentation means of the names (detached: D conditions on them,
    it does not train the text side). Each phase returns ``(loss, parts)``; ``parts`` holds the terms
    and the logits the trainer logs.
    """

    def __init__(self, cfg: StackGANConfig, D: torch.nn.Module, augment: Callable[[torch.Tensor], torch.Tensor],
                 part_sizes: Sequence[int] = (), patch_prior: PatchPrior | None = None):
        unset = [name for name in STAGE_DEFAULTS if getattr(cfg, name) is None]
        if unset:  # validate() fills the options whose default depends on the stage
            raise ValueError(f"StackGANLoss needs a validated config ({', '.join(unset)} not set): call cfg.validate()")
        self.cfg, self.D, self.augment = cfg, D, augment
        self.part_sizes = tuple(part_sizes)  # --part-loss: the width of each part's block of the codes
        if cfg.patch_prior > 0 and patch_prior is None:
            raise ValueError("--patch-prior needs the photos' patch manifold (patch_prior=PatchPrior(photos))")
        self.patch_prior = patch_prior

    def cond_fakes(self, y_fake: torch.Tensor) -> torch.Tensor | None:
        """The fakes that meet the conditional (matching-aware) term: all (None), or with
        ``--no-part-mix-cond`` those of a training name (``y_fake`` >= 0), the same rows in D's and G's phase."""
        return None if self.cfg.part_mix_cond else y_fake >= 0

    def r1_due(self, step: int) -> bool:
        return self.cfg.r1 > 0 and step % self.cfg.r1_every == 0

    def vision_due(self, step: int | None) -> bool:
        """--d-vision's verdicts this step: every --d-vision-every steps (``step`` None: always)."""
        return self.cfg.d_vision > 0 and (step is None or step % self.cfg.d_vision_every == 0)

    def vision_weight(self, step: int | None) -> float:
        """--d-vision's weight on a step it is due: scaled up by --d-vision-every (lazy, as R1); plain for None."""
        return self.cfg.d_vision * (1 if step is None else self.cfg.d_vision_every)

    def d_phase(self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor, c: torch.Tensor,
                c_wrong: torch.Tensor, c_real: torch.Tensor, c_all: torch.Tensor | None,
                step: int, parts_real: torch.Tensor | None = None,
                cond_fakes: torch.Tensor | None = None,
                parts_fake: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """D: a real photo with its own name's code ``c_real``, the same photo with another dish's
        ``c_wrong``, a (detached) fake with its own ``c`` (only the fakes of mask ``cond_fakes``, when
        given); plus the GP (hinge), lazy R1, the patch verdict (--d-patch), the name term and the parts term
        (``parts_real``: the real photos' parts codes; with --part-twin the twin head also learns to read the
        fakes' ``parts_fake``)."""
        cfg, D = self.cfg, self.D
        zero = torch.zeros((), device=real.device)
        real_aug = self.augment(real)
        fake_aug = self.augment(fake.detach())
        ma_gp = cfg.loss == "hinge" and cfg.gp_weight > 0
        do_r1 = self.r1_due(step)
        if ma_gp or do_r1:
            real_aug = real_aug.detach().requires_grad_(True)
        c_gp = c_real.clone().requires_grad_(True) if ma_gp else c_real
        with_maps = cfg.d_recon > 0 or cfg.d_patch > 0
        fr, maps = D.features_with_maps(real_aug) if with_maps else (D.features(real_aug), None)
        ff, fake_maps = D.features_with_maps(fake_aug) if cfg.d_patch > 0 else (D.features(fake_aug), None)
        real_c, real_u = D.cond(fr, c_gp), D.uncond(fr)
        wrong_c = D.cond(fr, c_wrong)
        fake_u = D.uncond(ff)
        def fake_cond(feats: torch.Tensor) -> torch.Tensor:  # the fakes that meet the conditional term
            return D.cond(feats, c) if cond_fakes is None else D.cond(feats[cond_fakes], c[cond_fakes])

        fake_c = fake_cond(ff)
        loss = matching_aware_d(cfg.loss, real_c.float(), real_u.float(), wrong_c.float(), fake_c.float(),
                                fake_u.float())
        gp = r1 = name_d = part_d = twin_d = recon = cr = patch = vision = zero
        if self.vision_due(step):  # the same matching-aware verdicts, read from a frozen ImageNet network's maps
            with torch.no_grad():  # the network is frozen: D's phase trains only the heads
                vr, vf = D.vision_net(real_aug.detach()), D.vision_net(fake_aug)
            hr, hf, V = D.vision_heads.features(vr), D.vision_heads.features(vf), D.vision_heads
            vision = matching_aware_d(cfg.loss, V(hr, c_real).float(), V(hr).float(), V(hr, c_wrong).float(),
                                      V(hf, c if cond_fakes is None else c[cond_fakes], cond_fakes).float(),
                                      V(hf).float())
            loss = loss + self.vision_weight(step) * vision
        if cfg.d_patch > 0:  # PatchGAN: real or fake at every place of the 16x16 map
            patch = d_adv(cfg.loss, D.patch_logits(maps).float(), D.patch_logits(fake_maps).float())
            loss = loss + cfg.d_patch * patch
        if cfg.bcr > 0:  # bCR: a second draw of the augmentation ops must not change D's verdicts
            fr2, ff2 = D.features(self.augment(real)), D.features(self.augment(fake.detach()))
            cr = balanced_consistency([(real_u, D.uncond(fr2)), (real_c, D.cond(fr2, c_real)),
                                       (fake_u, D.uncond(ff2)), (fake_c, fake_cond(ff2))])
            loss = loss + cfg.bcr * cr
        if cfg.d_recon > 0:  # D must redraw the real picture from its features (a quarter in turn, by step)
            recon = d_reconstruction(*D.reconstruct(maps, step % 4), real_aug, step % 4)
            loss = loss + cfg.d_recon * recon
        if ma_gp:
            gp = cfg.gp_weight * matching_aware_gp(real_c, real_aug, c_gp, cfg.gp_power)
            loss = loss + gp
        if do_r1:  # lazy R1 (StyleGAN2): every r1_every steps, scaled up by r1_every
            r1 = r1_penalty(real_c.float() + real_u.float(), real_aug)
            loss = loss + (cfg.r1 / 2 * cfg.r1_every) * r1
        if cfg.name_loss > 0:  # D: which of all the names is this photo's?
            name_d = name_classification(D.cond_head.name_logits(fr, c_all), y)
            loss = loss + cfg.name_loss * name_d
        if cfg.part_loss > 0 and parts_real is not None:  # D: which parts does this photo's name have?
            part_d = part_classification(D.part_logits(fr), parts_real, self.part_sizes)
            loss = loss + cfg.part_loss * part_d
        if cfg.part_twin and parts_fake is not None:  # the twin: which parts was it drawn for?
            twin_d = part_classification(D.part_logits(ff, twin=True), parts_fake, self.part_sizes)
            loss = loss + cfg.part_loss * twin_d
        return loss, {"gp": gp, "r1": r1, "name_d": name_d, "part_d": part_d, "twin_d": twin_d, "d_recon": recon,
                      "bcr": cr, "d_patch": patch, "d_vision": vision, "real_c": real_c, "real_u": real_u,
                      "wrong_c": wrong_c, "fake_c": fake_c, "fake_u": fake_u}

    def g_phase(self, fake: torch.Tensor, y_fake: torch.Tensor, c: torch.Tensor, mu: torch.Tensor,
                logvar: torch.Tensor | None, c_all: torch.Tensor | None, z: torch.Tensor,
                pairs: int, low: torch.Tensor | None = None, parts_fake: torch.Tensor | None = None,
                paired: tuple[torch.Tensor, torch.Tensor] | None = None,
                step: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """G: the fake must pass D with its name and unconditionally; the CA's KL; the name term (a
        fake must be read as its own name; ``y_fake`` < 0: a fake of no training name, left out); the
        parts term (read as the parts ``parts_fake`` it was drawn for, less the twin head's term with
        --part-twin: TAC-GAN's unbiased auxiliary classifier); mode seeking over the first
        ``pairs`` x 2 fakes; stage II: the fake pooled to the stage-I picture ``low``'s size must match it, and
        with --stage2-paired ``paired`` = (real photos redrawn from their pooled copies, the photos) must match.
        With --d-patch every place of D's 16x16 map must also pass. With ``--no-part-mix-cond`` the fakes of no
        training name skip the conditional adversarial term. ``step`` (the trainer's) spaces the --d-vision term
        by --d-vision-every; None computes it at its plain weight."""
        cfg, D = self.cfg, self.D
        zero = torch.zeros((), device=fake.device)
        fake_aug = self.augment(fake)
        ffg, maps = D.features_with_maps(fake_aug) if cfg.d_patch > 0 else (D.features(fake_aug), None)
        fake_u = D.uncond(ffg)
        keep = self.cond_fakes(y_fake)
        fake_c = D.cond(ffg, c) if keep is None else D.cond(ffg[keep], c[keep])
        adv = matching_aware_g(cfg.loss, fake_c.float(), fake_u.float())
        kl = kl_divergence(mu.float(), logvar.float()) if logvar is not None else zero
        loss = adv + cfg.kl * kl
        name_g = ms = part_g = twin_g = patch = vision = zero
        if self.vision_due(step):  # the same, through the frozen network's maps (gradients flow through it to G)
            hf, V = D.vision_features(fake_aug), D.vision_heads
            vision = matching_aware_g(cfg.loss, V(hf, c if keep is None else c[keep], keep).float(), V(hf).float())
            loss = loss + self.vision_weight(step) * vision
        if cfg.d_patch > 0:  # PatchGAN: every place of the fake must pass
            patch = g_adv(cfg.loss, D.patch_logits(maps).float())
            loss = loss + cfg.d_patch * patch
        named = y_fake >= 0
        if cfg.name_loss > 0 and bool(named.any()):
            name_g = name_classification(D.cond_head.name_logits(ffg[named], c_all), y_fake[named])
            loss = loss + cfg.name_loss * name_g
        if cfg.part_loss > 0 and parts_fake is not None:
            part_g = part_classification(D.part_logits(ffg), parts_fake, self.part_sizes)
            loss = loss + cfg.part_loss * part_g
            if cfg.part_twin:
                twin_g = part_classification(D.part_logits(ffg, twin=True), parts_fake, self.part_sizes)
                loss = loss - cfg.part_loss * twin_g
        if cfg.mode_seeking > 0:
            ms = mode_seeking_term(fake[:pairs], fake[pairs:2 * pairs], z[:pairs], z[pairs:2 * pairs])
            loss = loss + cfg.mode_seeking * ms
        prior = zero
        if cfg.patch_prior > 0:
            prior = self.patch_prior(fake, seed=step or 0)
            loss = loss + cfg.patch_prior * prior
        cons = zero
        if cfg.stage2_consistency > 0 and low is not None:
            cons = low_res_consistency(fake, low)
            loss = loss + cfg.stage2_consistency * cons
        rec = zero
        if cfg.stage2_paired > 0:
            if paired is None:
                raise ValueError("--stage2-paired needs the redrawn real photos and the photos (paired=)")
            rec = paired_reconstruction(*paired)
            loss = loss + cfg.stage2_paired * rec
        return loss, {"g_adv": adv, "kl": kl, "name_g": name_g, "ms": ms, "cons": cons, "part_g": part_g,
                      "twin_g": twin_g, "paired": rec, "g_patch": patch, "g_vision": vision, "patch_prior": prior}
