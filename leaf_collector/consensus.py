"""What the people who labelled a field photo agree it shows: the one rule the field pack and the page share.

A photo counts only when every label given to it is the same (one label is enough): a photo two
people see differently is a question for them, not a lesson for the model. "Unusable" teaches
nothing and is left out; the two other marks name the model's own classes for them.

Its background (the leaf on the plant, or picked and laid on paper or cloth) is agreed the same
way among those who said one; not saying is no vote. It is what lets a before/after show a model
that learned "paper means disease" (issue 9's shortcut) instead of a disease.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

UNUSABLE = "unusable"
MARK_CLASSES = {"not_a_leaf": "background__no_leaf", "other_plant": "other__plant"}
# The training pipeline's words for a field photo's background (models/pipeline/split.Entry.background).
ON_PLANT = "natural"
BACKGROUNDS = (ON_PLANT, "plain")

# One row per labelled photo: its labels in the order of who gave them (the same order as the names).
LABELS_BY_PHOTO = """
SELECT photo_sha256, array_agg(username ORDER BY username) AS labellers, array_agg(label ORDER BY username) AS given,
       array_agg(background ORDER BY username) AS backgrounds
FROM labels GROUP BY photo_sha256
"""

Kind = Literal["agreed", "disagreement", "unusable"]


@dataclass(frozen=True)
class Consensus:
    kind: Kind
    slug: str  # the model class the photo teaches; "" unless agreed
    labels: int  # how many were given
    agreeing: int  # how many name the most named label

    @property
    def agreement(self) -> str:
        return f"{self.agreeing}/{self.labels}"


def consensus(given: Sequence[str]) -> Consensus:
    """The photo's class when every label agrees; otherwise why it teaches nothing."""
    if not given:
        raise ValueError("a photo without labels has no consensus")
    agreeing = max(given.count(label) for label in set(given))
    if len(set(given)) > 1:
        return Consensus("disagreement", "", len(given), agreeing)
    label = given[0]
    if label == UNUSABLE:
        return Consensus("unusable", "", len(given), agreeing)
    return Consensus("agreed", MARK_CLASSES.get(label, label), len(given), agreeing)


def agreed_background(said: Sequence[str | None]) -> str:
    """The background everyone who said one agrees on; "" when nobody said or two people differ."""
    named = {b for b in said if b}
    return named.pop() if len(named) == 1 else ""
