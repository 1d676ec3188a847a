"""The chapters' helpers: what the book's notebooks call so that their pages show findings, not wrangling.

Running the chapters with papermill and preparing the site (`runner`, `python -m qid.chapters.runner`), the
chapters' parameter schemas (`params`), the findings on the landing page (`findings`), tables and plots as
the pages show them (`tables`, `plots`), and the analyses of chapter 03 (`suite_analysis`), 05
(`suite_fits`) and 06 (`schedule_analysis`).
It may import every wing; nothing in the wings imports it.
"""
