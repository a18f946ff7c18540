# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The papers the trainers implement, as TRL's `_paper` entries (title, arXiv id, BibTeX citation), which the model
card names and cites."""


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


RL_ZVP = arxiv_paper(
    "le2025noprompt",
    "No Prompt Left Behind: Exploiting Zero-Variance Prompts in LLM Reinforcement Learning via Entropy-Guided Advantage Shaping",
    "Thanh-Long V. Le and Myeongho Jeon and Kim Vu and Viet Lai and Eunho Yang",
    "2509.21880",
)

ERPO = arxiv_paper(
    "liu2025erpo",
    "Explore Data Left Behind in Reinforcement Learning for Reasoning Language Models",
    "Chenxi Liu and Junjie Liang and Yuqi Jia and Bochuan Cao and Yang Bai and Heng Huang and Xun Chen",
    "2511.04800",
)

EXGRPO = arxiv_paper(
    "zhan2025exgrpo",
    "ExGRPO: Learning to Reason from Experience",
    "Runzhe Zhan and Yafu Li and Zhi Wang and Xiaoye Qu and Dongrui Liu and Jing Shao and Derek F. Wong and Yu Cheng",
    "2510.02245",
)

GRESO = arxiv_paper(
    "zheng2025greso",
    "Act Only When It Pays: Efficient Reinforcement Learning for LLM Reasoning via Selective Rollouts",
    "Haizhong Zheng and Yang Zhou and Brian R. Bartoldson and Bhavya Kailkhura and Fan Lai and Jiawei Zhao and Beidi Chen",
    "2506.02177",
)

DAPO = arxiv_paper(
    "yu2025dapo",
    "DAPO: An Open-Source LLM Reinforcement Learning System at Scale",
    "Qiying Yu and Zheng Zhang and Ruofei Zhu and Yufeng Yuan and Xiaochen Zuo and Yu Yue and Tiantian Fan and Gaohong Liu and Lingjun Liu and Xin Liu and Haibin Lin and Zhiqi Lin and Bole Ma and Guangming Sheng and Yuxuan Tong and Chi Zhang and Mofan Zhang and Wang Zhang and Hang Zhu and Jinhua Zhu and Jiaze Chen and Jiangjie Chen and Chengyi Wang and Hongli Yu and Weinan Dai and Yuxuan Song and Xiangpeng Wei and Hao Zhou and Jingjing Liu and Wei-Ying Ma and Ya-Qin Zhang and Lin Yan and Mu Qiao and Yonghui Wu and Mingxuan Wang",
    "2503.14476",
)
