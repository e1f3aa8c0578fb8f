"""The from-scratch text encoder: a sentencepiece unigram model + a small BERT, trained DAMSM-style.

Training (:func:`train_scratch_encoder`) on a data set of named photos:

- a sentencepiece **unigram** model is trained on the data set's names (NFKC, byte fallback on,
  so no character is ever unknown; the vocabulary size follows the amount of text and is a
  soft limit);
- a ``transformers`` ``BertModel`` (2-4 layers, hidden 128-256) and a linear projection give
  per-token features; the sentence vector is their mean, L2-normalised;
- a small CNN image encoder maps a photo into the same space;
- the loss is InfoNCE over the batch in both directions (name -> photo and photo -> name), with
  the other pairs of the batch as negatives, except pairs that carry the *same* name (masked:
  they are not negatives), and a learned temperature.

Photos of every name are split into train / held-out (``ImageDataset.split``); the held-out
photos measure retrieval: R-precision (top-1 among the true name + up to 99 other names) and
top-1 / top-5 among all names.

The folder (``scratch:FOLDER`` reloads it) holds ``spm.model``, ``config.json`` (the
``BertConfig``), ``model.safetensors`` (the BERT), ``head.safetensors`` (the projection),
``image_encoder.safetensors`` (the CNN, for image-text metrics), ``stackgan_text.json`` (id,
dimensions, training config and the measured retrieval numbers) and ``log.jsonl``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from stackgan.errors import UserError
from stackgan.text.base import TextEncoder, normalize_names
from stackgan.text.config import ScratchConfig
from stackgan.text.e5 import META_FILE, file_sha256

SPM_FILE = "spm.model"
BERT_FILE = "model.safetensors"
HEAD_FILE = "head.safetensors"
IMAGE_FILE = "image_encoder.safetensors"
UNK, BOS, EOS, PAD = 0, 1, 2, 3


# -- sentencepiece --------------------------------------------------------------------------------


def train_sentencepiece(names: list[str], vocab_size: int = 0) -> bytes:
    """A unigram sentencepiece model (bytes) for ``names``: NFKC, byte fallback, soft vocab size."""
    import sentencepiece as spm

    chars = {c for n in names for c in n}
    if vocab_size <= 0:  # specials + 256 bytes + every character + room for longer pieces
        vocab_size = 4 + 256 + len(chars) + min(4000, max(32, 2 * len(set(names))))
    w = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(names), model_writer=w, model_type="unigram", vocab_size=vocab_size,
            hard_vocab_limit=False, byte_fallback=True, character_coverage=1.0,
            normalization_rule_name="nmt_nfkc", unk_id=UNK, bos_id=BOS, eos_id=EOS, pad_id=PAD,
            split_digits=False, max_sentencepiece_length=8, num_threads=1, minloglevel=2,
            train_extremely_large_corpus=False)
    except RuntimeError as exc:
        raise UserError(f"cannot train the sentencepiece model on {len(names)} names: {exc}") from None
    return w.getvalue()


def _bert_config(cfg: ScratchConfig, vocab_size: int):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
                      num_attention_heads=cfg.heads, intermediate_size=4 * cfg.hidden,
                      max_position_embeddings=cfg.max_positions, type_vocab_size=1,
                      hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
                      pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS, architectures=["BertModel"])


# -- networks -------------------------------------------------------------------------------------


class TextTower(nn.Module):
    """BERT + linear projection: ids -> per-token features in the joint space."""

    def __init__(self, bert_config, dim: int):
        super().__init__()
        from transformers import BertModel

        self.bert = BertModel(bert_config, add_pooling_layer=False)
        self.proj = nn.Linear(bert_config.hidden_size, dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.proj(h)

    def sentence(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tok = self(input_ids, attention_mask)
        m = attention_mask.unsqueeze(-1).to(tok.dtype)
        return F.normalize((tok * m).sum(1) / m.sum(1).clamp_min(1), dim=-1)


class ImageEncoder(nn.Module):
    """A small CNN: [-1, 1] photos [B, 3, H, W] -> L2-normalised vectors [B, dim]."""

    def __init__(self, dim: int, width: int = 32, image_size: int = 32, channels: int = 3):
        super().__init__()
        self.image_size = image_size
        self.channels = channels

        def block(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.GELU())

        w = width  # one full-resolution conv, then three that halve the size (cheap on a CPU)
        self.net = nn.Sequential(
            block(channels, w, 1), block(w, 2 * w, 2), block(2 * w, 4 * w, 2), block(4 * w, 8 * w, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(8 * w, dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   antialias=True, align_corners=False)
        return F.normalize(self.head(self.net(images)), dim=-1)


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of (photo, name) pairs; pairs that share a name are not
    negatives of each other (masked), only the pair itself is the positive."""
    logits = scale * img @ txt.T  # [B, B]: photo i vs name of pair j
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    logits = logits.masked_fill(same & ~eye, float("-inf"))
    target = torch.arange(len(labels), device=labels.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


# -- the encoder ----------------------------------------------------------------------------------


def folder_id(folder: Path) -> str:
    h = hashlib.sha256()
    for name in (SPM_FILE, BERT_FILE, HEAD_FILE):
        h.update(file_sha256(folder / name).encode())
    return f"scratch-{h.hexdigest()[:12]}"


class ScratchTextEncoder(TextEncoder):
    def __init__(self, folder: str | os.PathLike, device: str | torch.device = "cpu", spec: str | None = None):
        import sentencepiece as spm
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        from transformers import BertConfig

        folder = Path(folder).expanduser()
        self.spec = spec or f"scratch:{folder}"
        missing = [f for f in (SPM_FILE, "config.json", BERT_FILE, HEAD_FILE, META_FILE) if not (folder / f).is_file()]
        if not folder.is_dir() or missing:
            raise UserError(f"{folder} is not a trained scratch text encoder"
                            + (f" (missing {', '.join(missing)})" if folder.is_dir() else " (no such folder)")
                            + "; train one with `stackgan text train-scratch --data DIR --out FOLDER`")
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
            self.sp = spm.SentencePieceProcessor(model_file=str(folder / SPM_FILE))
            bert_config = BertConfig.from_pretrained(str(folder), local_files_only=True)
            tower = TextTower(bert_config, int(meta["dim"]))
            tower.bert.load_state_dict(load_file(str(folder / BERT_FILE)))
            tower.proj.load_state_dict(load_file(str(folder / HEAD_FILE)))
        except (SafetensorError, OSError, RuntimeError, ValueError, KeyError) as exc:
            raise UserError(f"cannot load the scratch text encoder in {folder}: {exc}") from None
        self.folder = folder
        self.meta = meta
        self.device = torch.device(device)
        self.tower = tower.eval().to(self.device)
        self.dim = int(meta["dim"])
        self.max_length = int(bert_config.max_position_embeddings)
        self.bos_id, self.eos_id, self.pad_id = BOS, EOS, PAD
        self.prefix_tokens = 0
        self.id = folder_id(folder)
        self._image_encoder: ImageEncoder | None = None

    def _content_ids(self, names: list[str]) -> list[list[int]]:
        return self.sp.encode(names)

    def _hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.tower(input_ids, attention_mask)

    def image_encoder(self) -> ImageEncoder:
        """The CNN trained alongside (for image-text retrieval metrics), loaded on first use."""
        if self._image_encoder is None:
            self._image_encoder = load_image_encoder(self.folder, self.device)
        return self._image_encoder

    @torch.inference_mode()
    def encode_images(self, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """Photos in the joint space: ``[N, C, H, W]`` float in [-1, 1] (or uint8) -> L2-normalised
        float32 ``[N, dim]`` on the CPU, comparable with :meth:`encode` by cosine."""
        enc = self.image_encoder()
        if images.dim() != 4 or images.shape[1] != enc.channels:
            raise UserError(f"encode_images wants [N, {enc.channels}, H, W] images, got {tuple(images.shape)}")
        out = []
        for a in range(0, len(images), batch):
            x = images[a:a + batch].to(self.device)
            x = x.float().div(127.5).sub(1.0) if x.dtype == torch.uint8 else x.float()
            out.append(enc(x).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.dim)


def load_image_encoder(folder: str | os.PathLike, device: str | torch.device = "cpu") -> ImageEncoder:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        ie = meta["image_encoder"]
        enc = ImageEncoder(int(meta["dim"]), int(ie["width"]), int(ie["image_size"]), int(ie["channels"]))
        enc.load_state_dict(load_file(str(folder / IMAGE_FILE)))
    except (SafetensorError, OSError, KeyError, RuntimeError, ValueError) as exc:
        raise UserError(f"{folder} has no usable image encoder: {exc}") from None
    return enc.eval().to(torch.device(device))


# -- training -------------------------------------------------------------------------------------


def _pad_batch(seqs: list[list[int]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    seqs = [[BOS, *s[:max_len - 2], EOS] for s in seqs]
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), PAD, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return ids, mask


@torch.no_grad()
def retrieval_metrics(img_emb: torch.Tensor, labels: torch.Tensor, txt_emb: torch.Tensor, others: int = 99,
                      seed: int = 0) -> dict[str, Any]:
    """Photo -> name retrieval: R-precision (true name ranked first among it + up to ``others``
    random other names, R = 1), and top-1 / top-5 accuracy among all names, with chance levels."""
    sims = img_emb @ txt_emb.T  # [N, K]
    k = txt_emb.shape[0]
    n_others = min(others, k - 1)
    g = torch.Generator().manual_seed(seed)
    hits = 0
    for i in range(len(img_emb)):
        t = int(labels[i])
        pool = torch.cat([torch.arange(t), torch.arange(t + 1, k)])
        cand = pool[torch.randperm(len(pool), generator=g)[:n_others]]
        hits += int(sims[i, t] > sims[i, cand].max()) if n_others else 1
    true = sims.gather(1, labels[:, None])
    rank = (sims > true).sum(1)  # 0 = first
    return {
        "photos": int(len(img_emb)), "names": int(k),
        "r_precision": hits / max(len(img_emb), 1), "r_candidates": n_others + 1,
        "r_chance": 1.0 / (n_others + 1),
        "top1": float((rank < 1).float().mean()), "top5": float((rank < 5).float().mean()),
        "top1_chance": 1.0 / k, "top5_chance": min(5, k) / k,
    }


def _embed_images(encoder: ImageEncoder, images_u8: torch.Tensor, device: torch.device, batch: int = 256) -> torch.Tensor:
    out = []
    for a in range(0, len(images_u8), batch):
        x = images_u8[a:a + batch].to(device).float().div(127.5).sub(1.0)
        out.append(encoder(x).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, encoder.head.out_features)


def _augmenter(height: int, width: int):
    """Mild augmentation at the photos' own size (the image encoder then resizes, as it does at
    test time, so augmented and plain photos have the same sharpness); half the crops are the
    whole photo."""
    import kornia.augmentation as K

    return nn.Sequential(
        K.RandomResizedCrop((height, width), scale=(0.6, 1.0), ratio=(0.85, 1.18), p=0.5),
        K.RandomHorizontalFlip(),
        K.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.0, p=0.5),
    )


def _replace_folder(src: Path, dst: Path) -> None:
    """Move the finished folder ``src`` to ``dst``; a previous ``dst`` is removed only after."""
    if not dst.exists():
        os.rename(src, dst)
        return
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
    os.rename(dst, old)
    try:
        os.rename(src, dst)
    except OSError:
        os.rename(old, dst)
        raise
    shutil.rmtree(old, ignore_errors=True)


def train_scratch_encoder(dataset, out_dir: str | os.PathLike, config: ScratchConfig | None = None,
                          device: str | torch.device = "cpu", progress: bool = True,
                          **overrides: Any) -> dict[str, Any]:
    """Train the scratch text encoder on ``dataset`` (a ``stackgan.data.ImageDataset``) into
    ``out_dir``; returns a summary with the held-out retrieval metrics and the folder's spec.

    ``config`` (or keyword overrides such as ``minutes=2``, ``steps=300``, ``seed=1``) sets the
    budget and sizes; see :class:`ScratchConfig`. The folder is written in a temporary sibling
    and moved into place at the end: an interrupted run leaves a previous ``out_dir`` as it was.
    """
    from stackgan.utils.io import seed_everything

    cfg = dataclasses.replace(config or ScratchConfig(), **overrides).validate()
    device = torch.device(device)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the text encoder")
    if out.is_dir() and any(out.iterdir()) and not (out / META_FILE).is_file():
        raise UserError(f"--out {out} is a non-empty folder that is not a scratch text encoder; "
                        "choose a new or empty folder (nothing was written)")
    names = normalize_names(dataset.names)
    if len(set(names)) < 2:
        raise UserError(f"the scratch text encoder needs at least 2 names to contrast, the data set has {len(names)}")
    if len(dataset) < 2:
        raise UserError("the data set has fewer than 2 photos")

    seed_everything(cfg.seed)
    train_ds, test_ds = dataset.split(cfg.held_out, seed=cfg.seed) if cfg.held_out > 0 else (dataset, None)
    if test_ds is not None and len(test_ds) == 0:
        test_ds = None

    import sentencepiece as spm

    spm_bytes = train_sentencepiece(names, cfg.vocab_size)
    sp = spm.SentencePieceProcessor(model_proto=spm_bytes)
    all_ids, all_mask = _pad_batch(sp.encode(names), cfg.max_positions)
    bert_config = _bert_config(cfg, sp.get_piece_size())
    text = TextTower(bert_config, cfg.dim).to(device)
    image = ImageEncoder(cfg.dim, cfg.image_width, cfg.image_size, int(dataset.images.shape[1])).to(device)

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        fit = _fit(text, image, train_ds, all_ids, all_mask, cfg, device, work / "log.jsonl", progress)
        text.eval()
        image.eval()
        with torch.no_grad():
            txt_all = torch.cat([text.sentence(all_ids[a:a + 256].to(device), all_mask[a:a + 256].to(device)).cpu()
                                 for a in range(0, len(names), 256)]).float()
            metrics = {"train": retrieval_metrics(_embed_images(image, train_ds.images, device), train_ds.labels,
                                                  txt_all, seed=cfg.seed)}
            if test_ds is not None:
                metrics["held_out"] = retrieval_metrics(_embed_images(image, test_ds.images, device),
                                                        test_ds.labels, txt_all, seed=cfg.seed)
        summary = {
            "kind": "scratch",
            "dim": cfg.dim,
            "vocab_size": sp.get_piece_size(),
            "names": len(names),
            "photos": {"train": len(train_ds), "held_out": len(test_ds) if test_ds is not None else 0},
            **fit,
            "image_encoder": {"width": cfg.image_width, "image_size": cfg.image_size,
                              "channels": int(dataset.images.shape[1])},
            "config": dataclasses.asdict(cfg),
            "data": Path(str(getattr(dataset, "root", ""))).name,  # no machine paths in the folder
            "metrics": metrics,
        }
        _save(work, spm_bytes, bert_config, text.cpu(), image.cpu(), summary)
        _replace_folder(work, out)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    summary["spec"] = f"scratch:{out}"
    summary["folder"] = str(out)
    return summary


def _fit(text: TextTower, image: ImageEncoder, train_ds, all_ids: torch.Tensor, all_mask: torch.Tensor,
         cfg: ScratchConfig, device: torch.device, log_path: Path, progress: bool) -> dict[str, Any]:
    """The contrastive training loop, until the step count or the time budget is reached."""
    from tqdm import tqdm

    from stackgan.utils.runlog import JsonlLog

    log_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.init_temperature), device=device))
    params = [*text.parameters(), *image.parameters(), log_scale]
    optim = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    augment = _augmenter(int(train_ds.images.shape[2]), int(train_ds.images.shape[3])).to(device)
    log = JsonlLog(log_path)
    n_train = len(train_ds)
    bs = min(cfg.batch_size, n_train)
    g = torch.Generator().manual_seed(cfg.seed)
    total_steps = cfg.steps if cfg.steps > 0 else None
    deadline = time.monotonic() + cfg.minutes * 60 if cfg.minutes > 0 else None
    warmup = 50
    t0 = time.monotonic()
    bar = tqdm(total=total_steps, disable=not progress, desc="train-scratch", unit="step", leave=False)
    step, ema = 0, float("nan")
    perm, pos = torch.randperm(n_train, generator=g), 0
    text.train()
    image.train()
    while (total_steps is None or step < total_steps) and (deadline is None or time.monotonic() < deadline):
        if pos + bs > n_train:
            perm, pos = torch.randperm(n_train, generator=g), 0
        idx = perm[pos:pos + bs]
        pos += bs
        labels = train_ds.labels[idx].to(device)
        x = augment(train_ds.images[idx].to(device).float().div(255.0)).mul(2.0).sub(1.0)
        uniq, inverse = torch.unique(labels, return_inverse=True)  # each name encoded once
        ids, mask = all_ids[uniq.cpu()].to(device), all_mask[uniq.cpu()].to(device)
        keep = int(mask.sum(1).max())
        txt = text.sentence(ids[:, :keep], mask[:, :keep])[inverse]
        loss = contrastive_loss(image(x), txt, labels, log_scale.exp().clamp(max=100.0))
        for group in optim.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / warmup)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        optim.step()
        step += 1
        v = float(loss.detach())
        if not math.isfinite(v):
            raise UserError(f"the contrastive loss became {v} at step {step}; try a lower --lr")
        ema = v if step == 1 else 0.95 * ema + 0.05 * v
        if step % 10 == 0 or step == 1:
            log.write(step=step, loss=v, loss_ema=ema, temperature=float(1 / log_scale.detach().exp()),
                      seconds=round(time.monotonic() - t0, 2))
        bar.update(1)
        bar.set_postfix(loss=f"{ema:.3f}")
    bar.close()
    return {"steps": step, "seconds": round(time.monotonic() - t0, 1), "final_loss_ema": ema,
            "temperature": float(1 / log_scale.detach().exp())}


def _save(work: Path, spm_bytes: bytes, bert_config, text: TextTower, image: ImageEncoder,
          summary: dict[str, Any]) -> None:
    from safetensors.torch import save

    def st(module: nn.Module, **meta: str) -> bytes:
        return save({k: v.detach().contiguous() for k, v in module.state_dict().items()}, metadata=meta or None)

    (work / SPM_FILE).write_bytes(spm_bytes)
    bert_config.save_pretrained(str(work))
    (work / BERT_FILE).write_bytes(st(text.bert, format="pt"))
    (work / HEAD_FILE).write_bytes(st(text.proj))
    (work / IMAGE_FILE).write_bytes(st(image))
    summary["id"] = folder_id(work)
    (work / META_FILE).write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
