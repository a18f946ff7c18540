# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""TRL's `_paper` entries (title, arXiv id, BibTeX citation), which the model card names and cites: each method's
`MethodSpec.paper` is one."""


def arxiv_paper(key: str, title: str, authors: str, arxiv_id: str, year: int = 2025) -> dict:
    """TRL's `_paper` entry of an arXiv paper, its citation a BibTeX `@article` with key `key`."""
    citation = (
        f"@article{{{key},\n"
        f"    title        = {{{{{title}}}}},\n"
        f"    author       = {{{authors}}},\n"
        f"    year         = {year},\n"
        f"    eprint       = {{arXiv:{arxiv_id}}},\n"
        "}"
    )
    return {"title": title, "id": arxiv_id, "citation": citation}


def citing_also(paper: dict, other: dict) -> dict:
    """`paper`'s entry, its citation followed by `other`'s (a trainer that combines two methods cites both)."""
    return {**paper, "citation": paper["citation"] + "\n\n" + other["citation"]}
