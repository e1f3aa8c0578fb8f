"""The procedural cafeteria menu: the project's embedded training set (``stackgan make-menu``).

Names are ``modifier + topping + base`` (``ピリ辛サーモン丼``); every part has a visual
signature drawn by :func:`render_dish`; :func:`make_menu` writes the whole set.
"""

from stackgan.menu.make import INVENTED_COMBOS, TRAIN_COMBOS, check_menu, invented_names, make_menu, train_names
from stackgan.menu.parts import BASES, MODIFIERS, NONE, PARTS, TOPPINGS, Part, compose_name, parse_name, slug
from stackgan.menu.render import render_dish

__all__ = [
    "BASES", "TOPPINGS", "MODIFIERS", "NONE", "PARTS", "Part", "compose_name", "parse_name", "slug",
    "render_dish", "make_menu", "check_menu", "train_names", "invented_names", "TRAIN_COMBOS", "INVENTED_COMBOS",
]
