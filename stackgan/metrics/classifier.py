"""Small in-domain CNN classifiers, trained once and cached.

Two uses, one network: the *attribute classifier* (heads ``base``, ``topping``, ``modifier``) on
the menu renders, and the *name classifier* (one head ``name``) on a photo set. Their held-out
accuracy on real pictures is the ceiling for the faithfulness of generated ones, and their
penultimate layer is the in-domain feature space for FID/KID, diversity and memorisation.

Trained weights go to ``$STACKGAN_CACHE/classifiers`` (default ``~/.cache/stackgan``) as
safetensors, keyed by a hash of the training images, targets and config, so a second
evaluation of the same data reuses them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from stackgan.errors import CheckpointError, DataError
from stackgan.metrics.features import batched, prepare

MODEL_VERSION = "2"  # bump when SmallCNN or the training recipe changes: invalidates the cache


def cache_root() -> Path:
    env = os.environ.get("STACKGAN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "stackgan"


@dataclasses.dataclass
class ClassifierConfig:
    image_size: int = 64
    channels: int = 3
    width: int = 32
    feat_dim: int = 128
    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    augment: bool = True
    seed: int = 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


class SmallCNN(nn.Module):
    """Four conv-BN-ReLU-maxpool stages, global average pool, a ``feat_dim`` layer, one linear head per task."""

    def __init__(self, channels: int, heads: dict[str, int], width: int = 32, feat_dim: int = 128):
        super().__init__()
        chans = [channels, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
        self.body = nn.Sequential(*layers)
        self.embed = nn.Sequential(nn.Linear(chans[-1], feat_dim), nn.ReLU(inplace=True))
        self.heads = nn.ModuleDict({k: nn.Linear(feat_dim, n) for k, n in heads.items()})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.embed(h.mean((2, 3)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {k: head(f) for k, head in self.heads.items()}


class Classifier:
    """A trained :class:`SmallCNN` with its class labels, config and held-out accuracy."""

    def __init__(self, net: SmallCNN, classes: dict[str, list[str]], config: ClassifierConfig,
                 metrics: dict | None = None, key: str = "", device: torch.device | str = "cpu"):
        self.net = net.eval().to(device)
        self.classes = classes
        self.config = config
        self.metrics = metrics or {}
        self.key = key
        self.device = torch.device(device)
        self.path: Path | None = None

    @property
    def feat_dim(self) -> int:
        return self.config.feat_dim

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        return prepare(x, self.config.image_size, self.config.channels)

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Penultimate features [N, feat_dim] of images (uint8 or [-1, 1], any size)."""
        return batched(lambda x: self.net.features(self._prep(x)), images, batch_size, self.device)

    @torch.no_grad()
    def logits(self, images: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:
        heads = list(self.classes)
        cat = batched(lambda x: torch.cat([self.net(self._prep(x))[h] for h in heads], 1), images, batch_size,
                      self.device)
        out, i = {}, 0
        for h in heads:
            n = len(self.classes[h])
            out[h] = cat[:, i:i + n]
            i += n
        return out

    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predicted class index per head."""
        return {h: v.argmax(1) for h, v in self.logits(images).items()}

    def predict_labels(self, images: torch.Tensor) -> dict[str, list[str]]:
        return {h: [self.classes[h][i] for i in idx.tolist()] for h, idx in self.predict(images).items()}

    def accuracy(self, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> dict[str, float]:
        """Per-head accuracy and ``all`` (every head right) on labelled images."""
        pred = self.predict(images)
        ok = torch.ones(len(images), dtype=torch.bool)
        out = {}
        for h, t in targets.items():
            hit = pred[h] == t.cpu()
            out[h] = float(hit.float().mean())
            ok &= hit
        if len(targets) > 1:
            out["all"] = float(ok.float().mean())
        return out

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        from stackgan.utils.io import atomic_save_safetensors

        meta = {"config": self.config.to_json(), "classes": json.dumps(self.classes, ensure_ascii=False),
                "metrics": json.dumps(self.metrics), "key": self.key, "version": MODEL_VERSION}
        self.path = atomic_save_safetensors(self.net.state_dict(), path, metadata=meta)
        return self.path

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> "Classifier":
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"classifier weights not found: {path}")
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
            state = load_file(str(path))
            config = ClassifierConfig(**json.loads(meta["config"]))
            classes = json.loads(meta["classes"])
            net = SmallCNN(config.channels, {h: len(c) for h, c in classes.items()}, config.width, config.feat_dim)
            net.load_state_dict(state)
        except (SafetensorError, KeyError, ValueError, RuntimeError, OSError) as exc:
            raise CheckpointError(f"cannot read classifier {path}: {exc}") from None
        clf = cls(net, classes, config, json.loads(meta.get("metrics", "{}")), meta.get("key", ""), device)
        clf.path = path
        return clf

    @classmethod
    def cached(cls, path: Path | None, key: str, device: torch.device | str = "cpu") -> "Classifier | None":
        """The classifier cached at ``path`` if it is there, readable and trained for ``key``; else None
        (a corrupt or stale entry is trained again and overwritten by the caller)."""
        if path is None or not path.is_file():
            return None
        try:
            clf = cls.load(path, device)
        except CheckpointError:
            return None
        return clf if clf.key == key else None


def cache_key(kind: str, images: torch.Tensor, targets: dict[str, torch.Tensor], classes: dict[str, list[str]],
              config: ClassifierConfig, val_images: torch.Tensor | None = None) -> str:
    h = hashlib.sha256()
    h.update(f"{kind}|{MODEL_VERSION}|{config.to_json()}|".encode())
    h.update(json.dumps(classes, ensure_ascii=False, sort_keys=True).encode())
    for t in [images, *(targets[k] for k in sorted(targets))] + ([val_images] if val_images is not None else []):
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _augmenter(size: int):
    import kornia.augmentation as K

    return nn.Sequential(K.RandomHorizontalFlip(),
                         K.RandomAffine(degrees=0, translate=(0.06, 0.06), scale=(0.95, 1.05), p=0.8,
                                        padding_mode="reflection"))


def train_classifier(images: torch.Tensor, targets: dict[str, torch.Tensor], classes: dict[str, list[str]],
                     config: ClassifierConfig | None = None, val_images: torch.Tensor | None = None,
                     val_targets: dict[str, torch.Tensor] | None = None, kind: str = "classifier",
                     cache: bool | str | os.PathLike = True, device: torch.device | str = "cpu",
                     progress: bool = True, augmenter: nn.Module | None = None) -> Classifier:
    """Train (or load from the cache) a multi-head classifier.

    ``images``: uint8 or [-1, 1] float ``[N, C, H, W]``; ``targets[head]``: long ``[N]`` indexing
    ``classes[head]``. Held-out accuracy on ``val_images`` is stored with the weights.
    ``cache``: True for the default cache folder, a folder, or False to always train.
    ``augmenter``: an augmentation of the training batches instead of the config's (flips and a small
    affine when ``config.augment``); the cache key does not know it, so train with ``cache=False``.
    """
    if augmenter is not None and cache:
        raise ValueError("a classifier trained with its own augmenter cannot be cached: give cache=False")
    config = config or ClassifierConfig()
    if len(images) < 2:
        raise DataError(f"need at least 2 images to train the {kind}, got {len(images)}")
    for h, t in targets.items():
        if h not in classes:
            raise ValueError(f"target head {h!r} has no class list")
        if len(t) != len(images):
            raise ValueError(f"head {h!r}: {len(t)} targets for {len(images)} images")
        if len(t) and (int(t.min()) < 0 or int(t.max()) >= len(classes[h])):
            raise ValueError(f"head {h!r}: target index out of range 0..{len(classes[h]) - 1}")
    key = cache_key(kind, images, targets, classes, config, val_images)
    path = None
    if cache:
        folder = (cache_root() if cache is True else Path(cache)) / "classifiers"
        path = folder / f"{kind}-{key[:20]}.safetensors"
        clf = Classifier.cached(path, key, device)
        if clf is not None:
            return clf

    dev = torch.device(device)
    heads = list(targets)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(config.seed)
        net = SmallCNN(config.channels, {h: len(classes[h]) for h in heads}, config.width, config.feat_dim).to(dev)
        x_all = prepare(images, config.image_size, config.channels)
        y_all = torch.stack([targets[h].long() for h in heads], 1)
        aug = augmenter.to(dev) if augmenter is not None else (
            _augmenter(config.image_size).to(dev) if config.augment else None)
        opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        steps_per_epoch = max(1, -(-len(x_all) // config.batch_size))
        total = config.epochs * steps_per_epoch
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total, pct_start=0.15)
        gen = torch.Generator().manual_seed(config.seed)
        from tqdm import tqdm

        t0 = time.perf_counter()
        bar = tqdm(total=total, desc=f"training {kind}", disable=not progress, leave=False)
        net.train()
        for _ in range(config.epochs):
            perm = torch.randperm(len(x_all), generator=gen)
            for i in range(0, len(perm), config.batch_size):
                j = perm[i:i + config.batch_size]
                if len(j) < 2:
                    continue  # BatchNorm needs two samples
                x = x_all[j].to(dev)
                if aug is not None:
                    x = aug(x)
                out = net(x)
                y = y_all[j].to(dev)
                loss = sum(F.cross_entropy(out[h], y[:, k]) for k, h in enumerate(heads))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
        net.eval()
    metrics = {"train_images": int(len(images)), "train_seconds": round(time.perf_counter() - t0, 2)}
    clf = Classifier(net, {h: list(classes[h]) for h in heads}, config, metrics, key, dev)
    clf.metrics["train_accuracy"] = clf.accuracy(images, targets)
    if val_images is not None and val_targets is not None and len(val_images):
        clf.metrics["heldout_accuracy"] = clf.accuracy(val_images, val_targets)
        clf.metrics["heldout_images"] = int(len(val_images))
    if path is not None:
        clf.save(path)
    return clf


def encode_labels(values: Sequence[str], classes: Sequence[str] | None = None) -> tuple[torch.Tensor, list[str]]:
    """Strings -> (long indices, sorted class list). With ``classes`` given, unknown values are an error."""
    cls = list(classes) if classes is not None else sorted(set(values))
    index = {c: i for i, c in enumerate(cls)}
    try:
        return torch.tensor([index[v] for v in values], dtype=torch.long), cls
    except KeyError as exc:
        raise DataError(f"label {exc.args[0]!r} is not one of the known classes") from None
