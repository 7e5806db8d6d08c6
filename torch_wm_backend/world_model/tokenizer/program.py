"""What the tokenizer's walk knows of the program a trace schedules: its blocks and their loop
nests (extents, reduction flags, the unscheduled loop each was split from), which blocks are the
root's children in program order, and which block reads what another writes. Instructions that
name blocks only through get_child_blocks, get_consumers or get_producers, and blocks moved under
another's loops, get their loops from here; what the walk cannot follow it marks unknown.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .parse import Inst


def log2p(x):
    if isinstance(x, np.ndarray):
        return np.log2(1.0 + np.abs(x))
    return math.log2(1.0 + abs(float(x)))


def initial_nest(name: str, info: dict) -> list:
    """The loops of the block ``name`` in the unscheduled program."""
    return [Loop(name, e, r, i) for i, (e, r) in enumerate(zip(info["extents"], info["reduce"]))]


def tile_of(inner: list, info: dict | None) -> list | None:
    """The extents of a consumer's own loops, moved under a producer's loop whose ``inner`` loops
    follow: one per spatial loop of the producer's nest (in its order), the product of the inner
    loops split from it. None where a loop's origin or extent is not known."""
    if info is None or any(lp.axis is None or lp.extent is None for lp in inner):
        return None
    return [math.prod([lp.extent for lp in inner if lp.axis == a], start=1)
            for a, r in enumerate(info["reduce"]) if r == 0.0]


@dataclass(eq=False)
class Loop:
    block: str | None
    extent: int | np.ndarray | None = None
    reduce: float = 0.5   # 1 reduction, 0 spatial, 0.5 unknown
    axis: int | None = None   # the loop of the unscheduled nest it was split from, where one


@dataclass(eq=False)
class Block:
    name: str
    index: int
    nest: list | None = None   # current list of Loop, None when unknown
    touched: bool = False
    partial: bool = False      # nest is only the outer loops (the block was moved under them)
    moved: bool = False        # moved under a sampled location: its outer loops are another's
    reshaped: bool = False     # its iterations are no longer the program's (rfactor)
    own: list | None = None    # a partial nest's own loops' extents, where known


@dataclass
class State:
    blocks_info: dict        # block name -> {"extents": [...], "reduce": [...], "is_reduction": bool}
    vals: dict = field(default_factory=dict)      # v-name -> int value
    cat_frac: dict = field(default_factory=dict)  # v-name -> decision / (n-1)
    locs: dict = field(default_factory=dict)      # l-name from sample_compute_location -> decision
    loops: dict = field(default_factory=dict)     # l-name -> Loop
    blocks: dict = field(default_factory=dict)    # b-name -> Block
    order: dict = field(default_factory=dict)     # block name -> first-seen index
    # the root's child blocks in program order (what get_child_blocks(root) returns); None once an
    # instruction made blocks the walk cannot place
    children: list | None = None
    maybe: set = field(default_factory=set)   # children inlined by some of the walk's traces only
    # block name -> (buffers it reads, buffers it writes): who consumes whom; None once unknown
    flow: dict | None = None

    def __post_init__(self):
        if self.children is None:
            self.children = list(self.blocks_info)
        if self.flow is None and all("reads" in b for b in self.blocks_info.values()):
            self.flow = {n: (tuple(b["reads"]), tuple(b["writes"])) for n, b in self.blocks_info.items()}

    def block(self, ref, name: str | None = None) -> Block:
        """The block ``ref`` names; one Block per block name, whatever refs name it."""
        if ref in self.blocks:
            return self.blocks[ref]
        b = next((b for b in self.blocks.values() if name is not None and b.name == name), None)
        if b is None:
            name = name or f"?{ref}"
            b = Block(name, self.order.setdefault(name, len(self.order)))
        self.blocks[ref] = b
        return b

    def child_blocks(self, inst: Inst) -> None:
        """get_child_blocks(root): the live blocks in program order, where their count is the
        outputs'; other blocks' children stay unknown."""
        parent = self.blocks.get(inst.args[0] if inst.args else inst.kwargs.get("block_or_loop"))
        names = [None] * len(inst.outs)
        if parent is not None and parent.name == "root" and self.children is not None:
            # the traces here are those whose instructions agree so far: their outputs' count
            # says whether the blocks some of them inlined are still there
            sure = [c for c in self.children if c not in self.maybe]
            names = next((c for c in (self.children, sure) if len(c) == len(inst.outs)), names)
        for o, name in zip(inst.outs, names):
            self.block(o, name)

    def neighbours(self, inst: Inst) -> None:
        """get_consumers / get_producers: the blocks that read what the block writes (write what
        it reads), in program order, where their count is the outputs'."""
        blk = self.blocks.get(inst.kwargs.get("block", inst.args[0] if inst.args else None))
        names = [None] * len(inst.outs)
        if self.flow is not None and blk is not None and blk.name in self.flow:
            reads, writes = self.flow[blk.name]
            mine, theirs = (writes, 0) if inst.kind == "get_consumers" else (reads, 1)
            found = [n for n in (self.children or self.flow) if n != blk.name and n in self.flow
                     and set(self.flow[n][theirs]) & set(mine)]
            names = found if len(found) == len(inst.outs) else names
        for o, name in zip(inst.outs, names):
            self.block(o, name)

    def inline(self, ref, reverse: bool) -> None:
        """The block ``ref`` names is inlined into its consumers (``reverse``: its producer)."""
        self.drop(ref)
        blk = self.blocks.get(ref)
        if self.flow is None or blk is None or blk.name not in self.flow:
            self.flow = None
            return
        reads, writes = self.flow.pop(blk.name)
        for n, (r, w) in list(self.flow.items()):
            if not reverse and set(r) & set(writes):
                self.flow[n] = (tuple(x for x in r if x not in writes) + reads, w)
            elif reverse and set(w) & set(reads):
                self.flow[n] = (r + tuple(x for x in reads if x not in w),
                                tuple(x for x in w if x not in reads) + writes)

    def new_flow(self, name: str, beside, kind: str, index: int) -> None:
        """The reads and writes of a block that ``kind`` (a cache, rfactor, decompose_reduction)
        made beside the block ``beside`` names, and the change to that block's."""
        blk = self.blocks.get(beside)
        if self.flow is None or blk is None or blk.name not in self.flow:
            self.flow = None
            return
        reads, writes = self.flow[blk.name]
        side = reads if "read" in kind else writes
        if "cache" in kind and not 0 <= index < len(side):
            self.flow = None
            return
        if "cache" in kind:   # the copy goes between the block and the buffer
            buf, copy = side[index], f"{side[index]}@{name}"
            swapped = side[:index] + (copy,) + side[index + 1:]
            self.flow[name] = ((buf,), (copy,)) if "read" in kind else ((copy,), (buf,))
            self.flow[blk.name] = (swapped, writes) if "read" in kind else (reads, swapped)
        elif kind == "rfactor":   # the rfactor block reduces what the block read into a buffer of its own
            self.flow[name] = (reads, (f"rf@{name}",))
            self.flow[blk.name] = ((f"rf@{name}",), writes)
        else:   # decompose_reduction's init block
            self.flow[name] = ((), writes)

    def place(self, new: str, beside, after: bool) -> None:
        """Block ``new`` enters the program just before (after) the block ``beside`` names."""
        if self.children is None:
            return
        blk = self.blocks.get(beside)
        if blk is None or blk.name not in self.children:
            self.children = None
            return
        self.children.insert(self.children.index(blk.name) + after, new)

    def drop(self, ref) -> None:
        """The block ``ref`` names leaves the program (inlined)."""
        blk = self.blocks.get(ref)
        if self.children is not None and blk is not None and blk.name in self.children:
            self.children.remove(blk.name)
        elif self.children is not None:
            self.children = None

    def get_loops(self, inst: Inst) -> None:
        blk = self.block(inst.kwargs.get("block", inst.args[0] if inst.args else None))
        n = len(inst.outs)
        info = self.blocks_info.get(blk.name)
        if blk.nest is not None and len(blk.nest) == n and not blk.partial:
            nest = blk.nest
        elif blk.nest is not None and blk.partial and len(blk.nest) <= n:
            own = blk.own if blk.own is not None and len(blk.own) == n - len(blk.nest) else [None] * (
                n - len(blk.nest))
            nest = blk.nest + [Loop(blk.name, e, 0.0 if e is not None else 0.5) for e in own]
        elif (blk.nest is None and blk.moved and not blk.reshaped and info is not None
              and len(info["extents"]) <= n):
            nest = self.under(blk, n - len(info["extents"]), n)
        elif not blk.touched and info is not None and len(info["extents"]) == n:
            nest = initial_nest(blk.name, info)
        else:
            nest = [Loop(blk.name) for _ in range(n)]
        blk.nest, blk.partial, blk.moved = list(nest), False, False
        for o, lp in zip(inst.outs, nest):
            self.loops[o] = lp

    def under(self, blk: Block, outer: int, n: int) -> list:
        """The n loops of ``blk``, moved to a sampled location under ``outer`` loops (its own loops
        follow them, one per loop it had): those of the next block in program order whose nest is
        known (a producer is moved under its consumer, which follows it)."""
        info = self.blocks_info[blk.name]
        if outer == 0:   # at the root after all
            return initial_nest(blk.name, info)
        after = self.children[self.children.index(blk.name) + 1:] if (
            self.children is not None and blk.name in self.children) else []
        named = {b.name: b for b in self.blocks.values()}
        owner = self.nest_of(after[0], named.get(after[0])) if after else None
        if owner is None or len(owner) < outer:
            return [Loop(blk.name) for _ in range(n)]
        return owner[:outer] + [Loop(blk.name) for _ in range(n - outer)]

    def nest_of(self, name: str, blk: Block | None) -> list | None:
        """The whole nest of the block ``name`` where known: tracked, or its loops in the
        unscheduled program where no instruction has touched it (made its nest then)."""
        if blk is not None and (blk.nest is not None or blk.touched):
            return None if blk.partial else blk.nest
        info = self.blocks_info.get(name)
        if info is None:
            return None
        if blk is None:
            blk = self.block(f"#{name}", name)   # a ref no trace names
        blk.nest = initial_nest(name, info)
        return blk.nest

    def loop_context(self, ref) -> tuple:
        """(position in its nest, log2p nest length, log2p extent, reduce, extent known)."""
        lp = self.loops.get(ref)
        if lp is None:
            return 0.0, 0.0, 0.0, 0.5, 0.0
        # Loop compares by identity (eq=False): ``in`` and ``index`` are identity tests at C speed
        blk = next((b for b in self.blocks.values() if b.nest is not None and lp in b.nest), None)
        pos, n = (blk.nest.index(lp), len(blk.nest)) if blk is not None else (0, 0)
        known = lp.extent is not None
        return (pos / max(n, 1), log2p(n), log2p(lp.extent) if known else 0.0, lp.reduce,
                1.0 if known else 0.0)

    def replace_in_nests(self, old: list, new: list) -> None:
        for b in self.blocks.values():
            if b.nest is None:
                continue
            idx = [i for i, lp in enumerate(b.nest) if lp in old]
            if idx:
                b.nest = b.nest[: idx[0]] + new + [lp for lp in b.nest[idx[0]:] if lp not in old]
                b.touched = True

    def copy(self) -> "State":
        """Loops are never changed once made, so they are shared; blocks are (their nests), so
        they are copied."""
        blocks: dict = {}

        def block(b):
            if id(b) not in blocks:
                blocks[id(b)] = Block(b.name, b.index, None if b.nest is None else list(b.nest),
                                       b.touched, b.partial, b.moved, b.reshaped, b.own)
            return blocks[id(b)]

        return State(self.blocks_info, dict(self.vals), dict(self.cat_frac), dict(self.locs),
                      dict(self.loops), {k: block(v) for k, v in self.blocks.items()},
                      dict(self.order), None if self.children is None else list(self.children),
                      set(self.maybe), None if self.flow is None else dict(self.flow))
