"""Author-year labels in the bibliography ("Ouyang et al. 2024"), matching the author-year citations in the text.

sphinxcontrib-bibtex labels entries with pybtex's `alpha` style by default ([OGH+24]) while the book cites
`{cite:t}` author-year; this Sphinx extension registers a pybtex formatting style, `qid_author_year`, that uses
the unsrt entry format, author-year labels and author-year sorting. `_config.yml` selects it with
`bibtex_default_style`.
"""

from __future__ import annotations

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle


def _surname(person) -> str:
    return " ".join(part.replace("{", "").replace("}", "") for part in person.prelast_names + person.last_names)


class AuthorYearLabelStyle(BaseLabelStyle):
    """`Surname Year`, `First and Second Year`, or `First et al. Year`; a, b, ... where two labels coincide."""

    def format_labels(self, sorted_entries):
        labels = []
        for entry in sorted_entries:
            people = entry.persons.get("author") or entry.persons.get("editor") or []
            names = [_surname(person) for person in people if str(person) != "others"]
            more = len(people) > 2 or any(str(person) == "others" for person in people)
            if not names:
                author = entry.fields.get("title", entry.key)[:20]
            elif more:
                author = f"{names[0]} et al."
            else:
                author = " and ".join(names)
            labels.append(f"{author} {entry.fields.get('year', 'n.d.')}")
        for label in labels:
            if labels.count(label) > 1:
                suffix = iter("abcdefghijklmnopqrstuvwxyz")
                labels = [f"{item}{next(suffix)}" if item == label else item for item in labels]
        yield from labels


class AuthorYearStyle(UnsrtStyle):
    default_label_style = "qid_author_year"
    default_sorting_style = "author_year_title"


register_plugin("pybtex.style.labels", "qid_author_year", AuthorYearLabelStyle)
register_plugin("pybtex.style.formatting", "qid_author_year", AuthorYearStyle)


def setup(app):
    return {"parallel_read_safe": True, "parallel_write_safe": True}
