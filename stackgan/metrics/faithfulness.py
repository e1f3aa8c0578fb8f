"""Text faithfulness: how often a classifier reads back, from a generated picture, the name it was made for.

* attribute faithfulness (menu): per name, the fraction of its pictures whose predicted base /
  topping / modifier equal the name's parts (and ``all``: every part right);
* class faithfulness (photo sets): per name, the fraction predicted as that name.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import torch

from stackgan.metrics.classifier import Classifier
from stackgan.metrics.realdata import norm_part

PARTS = ("base", "topping", "modifier")


def attribute_faithfulness(clf: Classifier, images: torch.Tensor, name_idx: torch.Tensor, names: Sequence[str],
                           parts: Sequence[dict]) -> dict:
    """``parts[i]`` holds the true ``base``/``topping``/``modifier`` of ``names[i]``.

    Overall scores are means over names (each name counts once). A part value the classifier never
    saw in training cannot be predicted; such names are counted in ``unseen_parts``, scored 0.
    Each row's ``read_as`` lists the (at most 2) commonest readings of its pictures that miss a part, as
    ``{"parts": "base / topping / modifier", "share": of its pictures}``: what a name is drawn as instead.
    """
    heads = [h for h in PARTS if h in clf.classes]
    pred = clf.predict(images)
    rows, unseen = [], 0
    for i, name in enumerate(names):
        sel = name_idx == i
        n = int(sel.sum())
        if n == 0:
            continue
        row: dict = {"name": name, "n": n}
        ok_all = torch.ones(n, dtype=torch.bool)
        missing = False
        for h in heads:
            want = norm_part(parts[i].get(h))
            if want in clf.classes[h]:
                hit = pred[h][sel] == clf.classes[h].index(want)
            else:
                hit = torch.zeros(n, dtype=torch.bool)
                missing = True
            row[h] = float(hit.float().mean())
            ok_all &= hit
        row["all"] = float(ok_all.float().mean())
        read = {h: pred[h][sel][~ok_all].tolist() for h in heads}  # the readings of the pictures missed
        wrong = [" / ".join(clf.classes[h][read[h][j]] for h in heads) for j in range(n - int(ok_all.sum()))]
        row["read_as"] = [{"parts": c, "share": k / n} for c, k in Counter(wrong).most_common(2)]
        unseen += missing
        rows.append(row)
    overall = {h: (sum(r[h] for r in rows) / len(rows) if rows else None) for h in [*heads, "all"]}
    return {"overall": overall, "per_name": rows, "names": len(rows), "unseen_parts": unseen,
            "images": int(sum(r["n"] for r in rows))}


def class_faithfulness(clf: Classifier, images: torch.Tensor, name_idx: torch.Tensor, names: Sequence[str],
                       head: str = "name") -> dict:
    """Per name, the fraction of its pictures the name classifier assigns to that name."""
    pred = clf.predict(images)[head]
    classes = clf.classes[head]
    rows = []
    for i, name in enumerate(names):
        sel = name_idx == i
        n = int(sel.sum())
        if n == 0:
            continue
        acc = float((pred[sel] == classes.index(name)).float().mean()) if name in classes else 0.0
        rows.append({"name": name, "n": n, "accuracy": acc})
    overall = sum(r["accuracy"] for r in rows) / len(rows) if rows else None
    return {"overall": overall, "per_name": rows, "names": len(rows), "images": int(sum(r["n"] for r in rows)),
            "chance": 1.0 / len(classes)}
