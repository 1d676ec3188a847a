"""Reading the values the chapters glue, for the pages built from them (the findings and the answer block): a
getter that raises `Missing` where a value is not glued, and the visible placeholder shown instead."""

from __future__ import annotations

import math


class Missing(Exception):
    """A statement's number is not glued in this build."""

    def __init__(self, chapter: str, name: str):
        super().__init__(f"{chapter}: {name}")
        self.chapter, self.name = chapter, name


def value_getter(values: dict[str, dict]):
    """get(chapter, name): a glued value, or raises Missing (not glued, None or not finite)."""
    def get(chapter: str, name: str):
        value = values.get(chapter, {}).get(name)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            raise Missing(chapter, name)
        return value

    return get


def placeholder_text(missing: Missing, values: dict[str, dict]) -> str:
    """The visible placeholder of a statement whose number is not glued: why, and the chapter to run."""
    why = (f"the chapter does not glue `{missing.name}` yet" if missing.chapter in values
           else "the chapter was not executed in this build")
    return f"*Not computed yet: {why}. Run `python -m qid.chapters.runner --only {missing.chapter}`, then `make site`.*"
