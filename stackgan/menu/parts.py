"""The vocabulary of the cafeteria menu: bases, toppings and modifiers, and how names are built.

A dish name is ``modifier + topping + base`` written together, as Japanese menus do:
``ピリ辛`` + ``サーモン`` + ``丼`` = ``ピリ辛サーモン丼``; ``冷やし`` + ``きつね`` + ``うどん``;
``カツ`` + ``カレー``; ``味噌ラーメン`` (no modifier, no topping). The ramen broth is part of the
base (``醤油ラーメン``, ``味噌ラーメン``, ``塩ラーメン``, ``豚骨ラーメン``), so every name has
exactly one base, at most one topping and at most one modifier.

Every part has its own visual signature (``Part.looks``), drawn by :mod:`stackgan.menu.render`.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

#: How "no topping" / "no modifier" is written in ``attributes.tsv`` and ``invented.tsv``.
NONE = "-"


@dataclass(frozen=True)
class Part:
    """One part of a dish name."""

    text: str  # as written in names
    kind: str  # "base", "topping" or "modifier"
    slug: str  # ASCII, used in file names
    looks: str  # its visual signature
    aliases: tuple[str, ...] = ()  # other spellings accepted by parse_name


BASE_PARTS: tuple[Part, ...] = (
    Part("丼", "base", "don", "a deep bowl of white rice covered with the topping", ("どんぶり",)),
    Part("カレー", "base", "curry", "an oval plate: white rice on the left, glossy brown roux with potato and "
         "carrot on the right", ("カレーライス", "ライスカレー")),
    Part("うどん", "base", "udon", "a dark bowl: thick white noodles in pale amber broth", ("ウドン", "饂飩")),
    Part("そば", "base", "soba", "a dark bowl: many thin grey-brown noodles in dark brown broth", ("ソバ", "蕎麦")),
    Part("醤油ラーメン", "base", "shoyu-ramen", "a white ramen bowl with a red band: yellow wavy noodles in clear "
         "reddish-brown broth with oil drops", ("しょうゆラーメン", "しょう油ラーメン")),
    Part("味噌ラーメン", "base", "miso-ramen", "a white ramen bowl: yellow wavy noodles in opaque orange-tan broth",
         ("みそラーメン",)),
    Part("塩ラーメン", "base", "shio-ramen", "a white ramen bowl: yellow wavy noodles in clear pale golden broth",
         ("しおラーメン",)),
    Part("豚骨ラーメン", "base", "tonkotsu-ramen", "a white ramen bowl: yellow wavy noodles in milky cream broth",
         ("とんこつラーメン", "トンコツラーメン")),
    Part("定食", "base", "teishoku", "a tray with a rice bowl (front left), red miso soup bowl (front right) and "
         "a main plate with shredded cabbage and the topping (back)"),
    Part("チャーハン", "base", "chahan", "a golden dome of fried rice with egg and green specks on a round plate",
         ("炒飯", "焼き飯", "焼飯")),
)

TOPPING_PARTS: tuple[Part, ...] = (
    Part("サーモン", "topping", "salmon", "orange slices with white fat stripes, fanned out"),
    Part("カツ", "topping", "katsu", "a golden-brown breaded cutlet cut into parallel strips",
         ("とんかつ", "トンカツ", "かつ")),
    Part("唐揚げ", "topping", "karaage", "a few irregular dark golden-brown fried lumps",
         ("からあげ", "から揚げ", "唐揚", "カラアゲ")),
    Part("えび天", "topping", "ebiten", "two long curled shrimp in pale golden batter with red tails",
         ("エビ天", "海老天", "天ぷら", "天")),
    Part("月見", "topping", "tsukimi", "a raw egg: a round orange-yellow yolk on translucent white"),
    Part("親子", "topping", "oyako", "soft yellow egg covering pale chicken pieces"),
    Part("牛", "topping", "gyu", "thin dark-brown beef slices with onion, glossy"),
    Part("豚キムチ", "topping", "butakimchi", "red-orange kimchi cabbage mixed with pale pink pork",
         ("豚きむち",)),
    Part("きつね", "topping", "kitsune", "one big tan rectangle of sweet fried tofu", ("キツネ",)),
    Part("わかめ", "topping", "wakame", "dark green glossy seaweed ribbons", ("ワカメ", "若布")),
    Part("ねぎ", "topping", "negi", "a heap of small bright green onion rings", ("ネギ", "葱")),
    Part("チャーシュー", "topping", "chashu", "round pink-brown pork slices with a dark rim", ("叉焼",)),
    Part("コーン", "topping", "corn", "a heap of small yellow corn kernels"),
)

MODIFIER_PARTS: tuple[Part, ...] = (
    Part("ピリ辛", "modifier", "pirikara", "red chili flakes and red oil drops over the normal dish"),
    Part("激辛", "modifier", "gekikara", "the whole dish turned deep red, heavy chili flakes and red peppers"),
    Part("大盛り", "modifier", "oomori", "a bigger vessel with the food heaped high above the rim", ("大盛",)),
    Part("冷やし", "modifier", "hiyashi", "a clear glass vessel with ice cubes on the food", ("冷し",)),
)

BASES: tuple[str, ...] = tuple(p.text for p in BASE_PARTS)
TOPPINGS: tuple[str, ...] = tuple(p.text for p in TOPPING_PARTS)
MODIFIERS: tuple[str, ...] = tuple(p.text for p in MODIFIER_PARTS)
PARTS: dict[str, Part] = {p.text: p for p in (*BASE_PARTS, *TOPPING_PARTS, *MODIFIER_PARTS)}


def _none(value: str | None) -> str | None:
    return None if value in (None, "", NONE) else value


def _check(value: str | None, allowed: tuple[str, ...], kind: str, optional: bool) -> str | None:
    value = _none(value)
    if value is None:
        if optional:
            return None
        raise ValueError(f"a dish needs a {kind}")
    if value not in allowed:
        raise ValueError(f"unknown {kind} {value!r}; known: {' '.join(allowed)}")
    return value


def compose_name(base: str, topping: str | None = None, modifier: str | None = None) -> str:
    """``modifier + topping + base``; ``None``, ``""`` or ``"-"`` mean no topping / modifier."""
    base = _check(base, BASES, "base", optional=False)
    topping = _check(topping, TOPPINGS, "topping", optional=True)
    modifier = _check(modifier, MODIFIERS, "modifier", optional=True)
    return f"{modifier or ''}{topping or ''}{base}"


def slug(base: str, topping: str | None = None, modifier: str | None = None) -> str:
    """ASCII id of a dish, e.g. ``pirikara-salmon-don``."""
    parts = [p for p in (_none(modifier), _none(topping), base) if p]
    return "-".join(PARTS[p].slug for p in parts)


def _spellings(parts: tuple[Part, ...]) -> list[tuple[str, str]]:
    """(spelling, canonical) pairs, longest spelling first."""
    pairs = []
    for p in parts:
        for s in (p.text, *p.aliases):
            pairs.append((unicodedata.normalize("NFKC", s), p.text))
    return sorted(pairs, key=lambda sc: -len(sc[0]))


_BASE_SP = _spellings(BASE_PARTS)
_TOPPING_SP = dict(_spellings(TOPPING_PARTS))
_MODIFIER_SP = _spellings(MODIFIER_PARTS)


def parse_name(name: str) -> tuple[str, str | None, str | None]:
    """Split a menu name into ``(base, topping, modifier)`` (``None`` where absent).

    Best effort for names built from the vocabulary (common other spellings such as
    ``とんかつ`` or ``ネギ`` are accepted); raises :class:`ValueError` for anything else.
    """
    s = unicodedata.normalize("NFKC", str(name)).strip().replace(" ", "").replace("\u3000", "")
    if not s:
        raise ValueError("empty dish name")
    for base_sp, base in _BASE_SP:
        if not s.endswith(base_sp):
            continue
        rest = s[: len(s) - len(base_sp)]
        for mod_sp, modifier in [*_MODIFIER_SP, ("", None)]:
            if not rest.startswith(mod_sp):
                continue
            middle = rest[len(mod_sp):]
            if middle == "":
                return base, None, modifier
            if middle in _TOPPING_SP:
                return base, _TOPPING_SP[middle], modifier
    raise ValueError(
        f"{name!r} is not a menu name (modifier + topping + base from the vocabulary: "
        f"bases {' '.join(BASES)}; toppings {' '.join(TOPPINGS)}; modifiers {' '.join(MODIFIERS)})"
    )
