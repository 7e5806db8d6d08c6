"""``tvm-wm train`` (placeholder until the trainer lands)."""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train the world model")
    p.set_defaults(func=lambda args: 0)
