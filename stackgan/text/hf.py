"""Any Hugging Face encoder (a local folder or a hub id): AutoTokenizer + AutoModel, mean pooling.

The prefix follows the model's own convention: a ``stackgan_text.json`` in the folder may set
``prefix`` (the converted e5 folder says ``query: ``); otherwise e5 models get ``query: `` and
ruri models the empty prefix (ruri-v3's prefix for semantic similarity), anything else none.

Characters the vocabulary does not know (XLM-R has no piece for most emoji) are not dropped:
before tokenising, such a character is replaced by its Unicode name (🍣 -> ``sushi``), so the
model still sees what it means; combining marks and format characters (variation selectors,
zero-width joiners) that are unknown on their own are left out.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from pathlib import Path

import torch

from stackgan.errors import UserError
from stackgan.text.base import TextEncoder
from stackgan.text.e5 import META_FILE, file_sha256

_HASHED = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_HASHED_EXT = (".safetensors", ".bin", ".model", ".txt", ".vocab")


def folder_hash(folder: Path) -> str:
    """sha256 over the weights, vocabulary and config files of a model folder."""
    h = hashlib.sha256()
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and (p.name in _HASHED or p.suffix in _HASHED_EXT))
    if not files:
        raise UserError(f"{folder} holds no model files (config.json, *.safetensors, tokenizer files)")
    for p in files:
        h.update(p.name.encode())
        h.update(file_sha256(p).encode())
    return h.hexdigest()


def default_prefix(name: str) -> str:
    """``query: `` for e5 models (``intfloat/multilingual-e5-small``), else the empty prefix."""
    words = re.split(r"[^a-z0-9]+", name.lower())
    if "e5" in words:
        return "query: "
    return ""  # ruri-v3 uses the empty prefix for semantic similarity; others have none


class HFTextEncoder(TextEncoder):
    def __init__(self, source: str | os.PathLike, spec: str | None = None, device: str | torch.device = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        self.device = torch.device(device)
        folder = Path(source).expanduser()
        is_dir = folder.is_dir()
        meta: dict = {}
        if is_dir and (folder / META_FILE).is_file():
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        kw = {"local_files_only": True} if is_dir else {}
        try:
            if meta and (folder / "tokenizer.json").is_file():
                # a folder written by stackgan (the converted e5): tokenizer.json holds the whole
                # tokenizer, and the generic loader reads it twice as fast as XLMRobertaTokenizer's
                from transformers import PreTrainedTokenizerFast

                self.tokenizer = PreTrainedTokenizerFast.from_pretrained(str(source), **kw)
            else:
                self.tokenizer = AutoTokenizer.from_pretrained(str(source), **kw)
            self.model = AutoModel.from_pretrained(str(source), **kw, **meta.get("model_kwargs", {}))
        except (OSError, ValueError) as exc:
            where = "folder" if is_dir else "hub id (needs the network, or the model in the local Hugging Face cache)"
            raise UserError(f"cannot load the text encoder from {source} as a Hugging Face {where}: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        self.model.eval().to(self.device)
        if not is_dir:  # a hub id: hash the files of the snapshot it resolved to
            folder = _snapshot_folder(str(source))
        self.folder = folder
        self.spec = spec or f"hf:{source}"
        name = meta.get("name") or (folder.name if is_dir else str(source))
        self.name = name
        if meta.get("id"):
            self.id = meta["id"]
        else:
            base = (str(source).rstrip("/").split("/")[-1] if not is_dir else folder.name) or "hf"
            self.id = f"{base}-{folder_hash(folder)[:12]}" if folder is not None else f"{base}-unhashed"
        self.prefix = meta["prefix"] if "prefix" in meta else default_prefix(str(source) if not is_dir else name)
        tok, cfg = self.tokenizer, self.model.config
        self.dim = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "d_model"))
        max_pos = getattr(cfg, "max_position_embeddings", None) or 512
        if getattr(cfg, "model_type", "") in ("xlm-roberta", "roberta", "camembert"):
            max_pos -= 2  # position ids start after the padding index
        tok_max = getattr(tok, "model_max_length", None)
        self.max_length = int(min(max_pos, tok_max) if tok_max and tok_max < 10**6 else max_pos)
        self.bos_id = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        self.eos_id = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        if self.bos_id is None or self.eos_id is None:
            raise UserError(f"tokenizer of {source} has no cls/bos or sep/eos token; cannot build inputs")
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        self.unk_id = tok.unk_token_id
        self._known: dict[str, bool] = {}
        stripped = self.prefix.rstrip()
        self.prefix_tokens = len(self._raw_ids([stripped])[0]) if stripped else 0

    def _raw_ids(self, texts: list[str]) -> list[list[int]]:
        # no truncation (long names are encoded in windows), and no warning about their length
        return self.tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]

    def _is_known(self, ch: str) -> bool:
        if ch not in self._known:
            ids = self._raw_ids([ch])[0]
            self._known[ch] = self.unk_id is None or self.unk_id not in ids
        return self._known[ch]

    def spell_unknown(self, name: str) -> str:
        """Replace characters the vocabulary lacks by their Unicode names (see the module doc)."""
        if all(ch.isspace() or self._is_known(ch) for ch in name):
            return name
        out = []
        for ch in name:
            if ch.isspace() or self._is_known(ch):
                out.append(ch)
                continue
            if unicodedata.category(ch) in ("Mn", "Me", "Cf"):
                continue
            uname = unicodedata.name(ch, "").lower()
            out.append(f" {uname} " if uname else f" u{ord(ch):04x} ")
        return " ".join("".join(out).split())

    def _content_ids(self, names: list[str]) -> list[list[int]]:
        ids = self._raw_ids([self.prefix + n for n in names])
        if self.unk_id is not None:
            for i, seq in enumerate(ids):
                if self.unk_id in seq:
                    ids[i] = self._raw_ids([self.prefix + self.spell_unknown(names[i])])[0]
        return ids

    def _hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _snapshot_folder(hub_id: str) -> Path | None:
    try:
        from transformers.utils import cached_file

        return Path(cached_file(hub_id, "config.json")).parent
    except Exception:  # noqa: BLE001 - only the id's hash suffers
        return None
