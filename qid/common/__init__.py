"""The ground floor: what every wing needs and nothing of the book's science.

Atomic file writes (`atomicio`), the repository's paths (`paths`), provenance of results (`provenance`: git
commit, package versions, machine, checksums), checked CSV loading (`csvtables`), compute device and dtype
(`runtime`), checks of user-named output files (`outputs`), reading the committed corpus splits
(`corpus_files`), and the Ray cluster shared by the sweep and training runners (`raycluster`).
It imports nothing from the rest of `qid`.
"""
