"""Configs of `stackgan evaluate` and `stackgan compare` (torch-free, so `--help` stays fast)."""

from __future__ import annotations

import dataclasses
from typing import Optional

from stackgan.config import Config, opt
from stackgan.errors import ConfigError
from stackgan.stackgan_config import PARTS_SENTENCES


@dataclasses.dataclass
class ProtocolOptions(Config):
    """Options shared by evaluate and compare: the real data, the classifier, the sample counts."""

    data: Optional[str] = opt(None, "data set folder to evaluate against [the run's --data]")
    held_out: float = opt(0.2, "fraction of each name's photos held out (used when the run did not hold any "
                               "out itself)", min=0.01, max=0.9)
    split_seed: int = opt(0, "seed of the train / held-out split", min=0)
    image_size: int = opt(64, "size the real photos are loaded at", min=16)
    n_per_name: int = opt(8, "generated pictures per name for faithfulness and diversity", min=2, max=999)
    max_names: int = opt(0, "training (and invented) names scored, a fixed random choice; 0: all of them", min=0)
    kid_subsets: int = opt(50, "KID: random subsets averaged", min=1)
    clf_size: int = opt(48, "classifier input size (pictures are resized to it)", min=16)
    clf_width: int = opt(24, "classifier width (channels of its first layer)", min=4)
    clf_epochs: int = opt(16, "classifier training epochs (trained once, then cached)", min=1)
    invented: Optional[str] = opt(None, "score the names of this file as the invented names, instead of the data "
                                        "set's invented.tsv: a TSV with the header name, base, topping, modifier "
                                        "(as invented.tsv) or just name (parts read from the name); names outside "
                                        "the menu vocabulary are listed in the report as not scorable")
    reader: bool = opt(True, "menu data sets: read the parts of pictures (faithfulness and its ceilings) with the "
                             "attribute reader trained on renders of every combination of the vocabulary "
                             "(trained once per machine, cached); --no-reader: with the photo classifier, "
                             "which saw only the training combinations")
    reader_renders: int = opt(16, "attribute reader: training renders per combination", min=1)
    reader_heldout: int = opt(2, "attribute reader: held-out renders per combination (other seeds)", min=1)
    reader_draw_size: int = opt(128, "attribute reader: size the renderer draws at (then resized to "
                                     "--image-size, as photos are)", min=16)
    reader_size: int = opt(64, "attribute reader: input size", min=16)
    reader_width: int = opt(24, "attribute reader: width (channels of its first layer)", min=4)
    reader_epochs: int = opt(10, "attribute reader: training epochs", min=1)
    reader_blur: float = opt(1.2, "attribute reader: blur its training renders at random (Gaussian, sigma 0.1 px "
                                  "up to this, on 60%% of the batches), so that it reads a soft picture (a stage II "
                                  "at 128 px) as it reads the same content at 64 px; 0: crisp renders only",
                             min=0.0, max=4.0)
    inception: Optional[str] = opt(None, "a local Inception weights file (.pth/.safetensors) for an Inception "
                                         "FID/KID as well; never downloaded. Either torchvision's inception_v3 "
                                         "ImageNet weights (numbers compare only with each other, not with papers) "
                                         "or the FID-Inception weights of published FIDs (pt_inception-2015-12-05-"
                                         "*.pth, needs pytorch-fid); the report says which")
    metrics: str = opt("all", "the metrics to compute, by name, comma-separated: faithfulness, fid_in_domain, "
                              "fid_detail, spectrum, patches, two_sample, fid_inception, diversity, memorisation, "
                              "rprecision, dprobe; all: every one that applies (see stackgan.metrics.registry)")
    detail_size: int = opt(0, "fid_detail: shrink pictures larger than this to it (as the photos are: Lanczos) "
                                 "before taking the crops, and load the held-out photos at it, so stage IIs of "
                                 "different sizes (128 and 256 px) are scored at one size; smaller pictures keep "
                                 "their own; 0: the pictures' own size", min=0)
    two_sample: int = opt(0, "two_sample: train a small CNN this many steps (batches of 32) to tell half of the "
                             "photos from as many generated pictures of the same names, and report its accuracy on "
                             "the other halves (0.5: it cannot tell them apart); sees the painterly look that the "
                             "FIDs miss; 500 on the menu (a few minutes at 128 px); 0: skip it", min=0)
    seed: int = opt(0, "seed of the generated pictures", min=0)
    device: str = opt("auto", "auto, cpu, cuda, ...")
    progress: bool = opt(True, "show progress")


@dataclasses.dataclass
class EvaluateConfig(ProtocolOptions):
    """`stackgan evaluate RUN`: score one trained run (StackGAN or DCGAN)."""

    run: str = opt("", "run folder or checkpoint", cli=False)
    out: Optional[str] = opt(None, "report folder [RUN/eval]")
    stage: str = opt("auto", "StackGAN stage to score: auto (II when the run has it), 1 or 2",
                     choices=("auto", "1", "2"))
    checkpoints: int = opt(4, "also score up to N checkpoints of the run (FID and faithfulness only), 0: none",
                           min=0)
    truncation: float = opt(1.0, "StackGAN only: scale z and the CA noise towards their mean (< 1: safer, less "
                                 "varied pictures; 1: none), as `stackgan generate --truncation`", min=0.0, max=2.0)
    parts_sentence: Optional[str] = opt(None, "a --parts StackGAN only: how names outside training that the "
                                              "parts vocabulary reads whole get their sentence vector: own "
                                              "(their encoding) or parts (predicted from their parts); "
                                              "[the run's --parts-sentence]")
    dprobe_steps: int = opt(150, "steps of D activation maximisation (0: skip)", min=0)
    dprobe_names: int = opt(4, "names probed", min=1)
    write_run_metrics: bool = opt(True, "also write a compact metrics.json into the run folder "
                                        "(read by /api/model)")

    def check(self) -> None:
        if not self.run:
            raise ConfigError("give the run folder or checkpoint to evaluate")
        if self.parts_sentence not in (None, *PARTS_SENTENCES):
            raise ConfigError(f"--parts-sentence must be own or parts, got {self.parts_sentence!r}")


MODELS = ("stackgan", "dcgan", "no-diffaugment", "no-ca")


@dataclasses.dataclass
class CompareConfig(ProtocolOptions):
    """`stackgan compare`: StackGAN vs the DCGAN baseline and ablations, same data, same budget."""

    data: Optional[str] = opt(None, "data set folder (all models train and are scored on it) "
                                    "[the --stackgan run's data, else data/menu]")
    out: str = opt("runs/compare", "folder for the runs and the report")
    models: tuple[str, ...] = opt(MODELS, f"models to compare, from: {', '.join(MODELS)}")
    steps: int = opt(2000, "training steps of every model", min=1)
    max_minutes: float = opt(0.0, "a time budget instead: every model trains this many minutes (then --steps is "
                                  "ignored; with --stackgan, the ablations and the DCGAN get these minutes)", min=0.0)
    batch_size: int = opt(64, "batch size of every model (budget = steps x batch)", min=2)
    train_size: int = opt(64, "picture size trained (StackGAN stage I: 16, 32 or 64)", choices=(16, 32, 64))
    ngf: int = opt(64, "G width of every model", min=4)
    ndf: int = opt(64, "D width of every model", min=4)
    text_encoder: str = opt("e5", "StackGAN's text encoder")
    stackgan: Optional[str] = opt(None, "use this trained StackGAN run instead of training one")
    dcgan: Optional[str] = opt(None, "use this trained DCGAN run instead of training one")
    retrain: bool = opt(False, "train again even when --out already holds a finished run of a model")

    def check(self) -> None:
        bad = [m for m in self.models if m not in MODELS]
        if bad:
            raise ConfigError(f"--models: unknown {', '.join(bad)}; choose from {', '.join(MODELS)}")
        if not self.models:
            raise ConfigError("--models: give at least one model")
