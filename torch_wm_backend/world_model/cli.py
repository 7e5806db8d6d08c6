"""``tvm-wm collect`` and ``tvm-wm train``: build the world model's dataset and weights."""
from __future__ import annotations


def register(subparsers) -> None:
    from . import collect, trainer

    collect.add_parser(subparsers)
    trainer.add_parser(subparsers)
