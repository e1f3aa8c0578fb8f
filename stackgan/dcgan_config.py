"""The configuration of `stackgan baseline-dcgan` (kept free of torch so that `--help` is fast).

Options mirror DCGAN-tensorflow (``--epochs 25 --lr 0.0002 --beta1 0.5 --batch-size 64 --z-dim 100
--image-size 64``) plus the baseline's extras; the run-folder options are those of `stackgan train`
(``--out``, ``--resume``, ``--ckpt-every``, ``--keep-ckpts``, ``--sample-every``, ``--log-every``,
``--lr-g`` / ``--lr-d``). The config is saved as ``config.json`` in the run folder and inside every
checkpoint; :func:`stackgan.train.dcgan.train_dcgan` runs it. Config files written under the old
names (``checkpoint_dir``, ``checkpoint_every``, ``keep_checkpoints``, ``lr``) still load.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional

from stackgan.config import LR_RENAMED, MAX_MINUTES_HELP, PRECISION_HELP, PRECISIONS, Config, opt
from stackgan.errors import ConfigError

LOSSES = ("bce", "hinge", "wgan-gp")
MIN_SIDE = 8  # 2 x the smallest first map (4): one up-convolution at least, see models.dcgan.plan_sizes

# Fields that may differ between a run and its resumption (the rest must match the checkpoint).
RESUMABLE_CHANGES = frozenset({
    "data", "pattern", "out", "sample_dir", "epochs", "max_steps", "max_minutes", "device", "precision",
    "ckpt_every", "keep_ckpts", "sample_every", "log_every", "resume",
})

# Old field (and option) names -> the names shared with `stackgan train`; run folders and command
# lines written with the old ones still work.
RENAMED = {"checkpoint_dir": ("out",), "checkpoint_every": ("ckpt_every",), "keep_checkpoints": ("keep_ckpts",),
           **LR_RENAMED}


def parse_size(text: str) -> tuple[int, int]:
    """``"64"`` -> (64, 64); ``"64x74"`` -> (64, 74) (height x width)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX×]\s*(\d+))?\s*", str(text))
    if not m:
        raise ConfigError(f"--image-size must be N or HxW (e.g. 64 or 64x74), got {text!r}")
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) else h
    return h, w


@dataclasses.dataclass
class DCGANConfig(Config):
    """`stackgan baseline-dcgan`: an unconditional DCGAN, options as in DCGAN-tensorflow."""

    RENAMED = RENAMED

    data: str = opt("data/menu", "data set folder: any folder of pictures (no names needed: the DCGAN is "
                                 "unconditional), a names.tsv set or one folder per name")
    pattern: Optional[str] = opt(None, "only pictures whose file name matches this glob, e.g. '*.png' "
                                       "(DCGAN-tensorflow's --input_fname_pattern); a pattern with / matches the "
                                       "path in the folder")
    held_out: float = opt(0.0, "fraction of each name's photos held out of training (the same split as "
                               "`stackgan train --held-out` and `stackgan evaluate`)", min=0.0, max=0.9)
    split_seed: int = opt(0, "seed of the train / held-out split", min=0)
    out: Optional[str] = opt(None, "run folder for checkpoints, config, log and pictures [runs/dcgan/<data>-<H>x<W>]")
    resume: bool = opt(False, "continue from the latest checkpoint in --out (without it, a folder that holds "
                              "checkpoints is refused)")
    sample_dir: Optional[str] = opt(None, "folder for the fixed-noise grids [<out>/samples]")
    epochs: int = opt(25, "passes over the data set", min=1)
    max_steps: int = opt(0, "stop after this many steps (G updates) at the latest; 0: no limit. "
                            "Match a StackGAN run's steps x batch size to compare", min=0)
    max_minutes: float = opt(0.0, MAX_MINUTES_HELP, min=0.0)
    lr_g: float = opt(0.0002, "G learning rate (Adam); --lr sets both", min=0.0)
    lr_d: float = opt(0.0002, "D learning rate (Adam); --lr sets both", min=0.0)
    beta1: float = opt(0.5, "Adam beta1", min=0.0, max=1.0)
    beta2: float = opt(0.999, "Adam beta2", min=0.0, max=1.0)
    weight_decay: float = opt(0.0, "Adam L2 weight decay (G and D)", min=0.0)
    batch_size: int = opt(64, "images per batch", min=1)
    z_dim: int = opt(100, "size of the noise vector z", min=1)
    z_dist: str = opt("uniform", "distribution of z: uniform in [-1, 1] (the paper) or normal",
                      choices=("uniform", "normal"))
    image_size: str = opt("64", "output size N or HxW (e.g. 96, 64x74); any size >= 8, not only powers of 2")
    image_height: Optional[int] = opt(None, "output height (overrides --image-size)", min=8)
    image_width: Optional[int] = opt(None, "output width (overrides --image-size)", min=8)
    channels: int = opt(3, "1 grayscale, 3 RGB, 4 RGBA (e.g. transparent stickers)", choices=(1, 3, 4))
    ngf: int = opt(64, "width of G's last hidden layer (x2 per layer towards z, up to x8)", min=1)
    ndf: int = opt(64, "width of D's first layer (x2 per layer, up to x8)", min=1)
    kernel_size: int = opt(4, "convolution kernels: 4 (pytorch/examples) or 5 (the paper's code, DCGAN-tensorflow)",
                           choices=(4, 5))
    loss: str = opt("bce", "GAN loss: bce (the paper, non-saturating G), hinge or wgan-gp", choices=LOSSES)
    gp_weight: float = opt(10.0, "gradient penalty weight for --loss wgan-gp", min=0.0)
    n_critic: int = opt(1, "D updates per G update (5 is usual with wgan-gp)", min=1)
    d_norm: str = opt("auto", "normalisation in D: auto (batch; layer for wgan-gp), batch, layer, none",
                      choices=("auto", "batch", "layer", "none"))
    flip: bool = opt(False, "random horizontal flips of the real images")
    label_noise: float = opt(0.0, "one-sided label smoothing for bce: real targets are 1 - this (0.1 is usual)",
                             min=0.0, max=0.5)
    label_flip: float = opt(0.0, "for bce: probability of swapping the real/fake label of each image in D's step",
                            min=0.0, max=0.5)
    diffaugment: str = opt("none", "DiffAugment policy for D's inputs, real and fake (e.g. color,translation,"
                                   "cutout); none for the faithful baseline")
    seed: int = opt(0, "random seed (init, noise, data order)", min=0)
    device: str = opt("auto", "auto, cpu, cuda, cuda:1, ...")
    precision: str = opt("auto", PRECISION_HELP + "; a resumed run takes the precision given now", choices=PRECISIONS)
    sample_every: int = opt(0, "write the fixed-noise grid every N steps; 0: after every epoch", min=0)
    ckpt_every: int = opt(0, "write a checkpoint every N steps; 0: after every epoch (and at the end)", min=0)
    keep_ckpts: int = opt(3, "keep the newest N checkpoints", min=1)
    log_every: int = opt(1, "write losses to log.jsonl every N steps", min=1)

    def check(self) -> None:
        h, w = self.size
        if min(h, w) < MIN_SIDE:
            raise ConfigError(f"--image-size {h}x{w} is too small: each side must be >= {MIN_SIDE}")
        if max(h, w) > 1024:
            raise ConfigError(f"--image-size {h}x{w}: each side must be <= 1024")
        if self.loss != "bce" and (self.label_noise or self.label_flip):
            raise ConfigError("--label-noise and --label-flip apply to --loss bce only")
        if self.loss == "wgan-gp" and self.d_norm == "batch":
            raise ConfigError("--d-norm batch does not go with --loss wgan-gp (the gradient penalty is per "
                              "image); use layer or none")
        if not self.diffaugment.strip():
            raise ConfigError("--diffaugment must be a policy such as color,translation,cutout, or none")
        if not str(self.data).strip():
            raise ConfigError("--data must name a folder")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width): ``--image-size``, overridden by ``--image-height`` / ``--image-width``."""
        h, w = parse_size(self.image_size)
        return self.image_height or h, self.image_width or w

    @property
    def resolved_d_norm(self) -> str:
        if self.d_norm != "auto":
            return self.d_norm
        return "layer" if self.loss == "wgan-gp" else "batch"
