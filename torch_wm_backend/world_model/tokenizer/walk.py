"""The tokenizer's pass over the instructions shared by a set of traces.

The walk keeps the blocks and loops the instructions name (loop nests, extents, reduction flags)
and turns each scheduling instruction into one token. Decisions come from a table of decision
records, one row per trace, as numpy vectors over *all* the table's rows: a feature that depends
on a decision becomes a vector, written into each trace's tokens at the end. A table of one row
gives Python ints instead (the same values: float32 features of log2 agree bit for bit).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .parse import Inst, Misread, Ref, is_column
from .vocab import (ANN_FRACTION, ANN_VALUE, AT_INLINE, AT_LOOP, AT_ROOT, ATTR_IDS, BLOCK_ORDER,
                    BLOCK_REDUCTION, EXTENT_KNOWN, FACTOR_MISSING, FACTORS, GETTERS, KIND_IDS,
                    LITERAL, LOOP_EXTENT, LOOP_POSITION, LOOP_REDUCE, LOOPS_EXTENT, MAX_FACTORS,
                    NEST_DEPTH, NO_ATTR, NUM_FACTORS, NUM_FEATS, NUM_LOOPS, POSITION, POSTPROC, UNK,
                    UNK_ATTR, TokenizedTrace)

_CACHES = ("cache_read", "cache_write", "reindex_cache_read", "reindex_cache_write", "set_scope")


def _log2p(x):
    if isinstance(x, np.ndarray):
        return np.log2(1.0 + np.abs(x))
    return math.log2(1.0 + abs(float(x)))


def _log2_factor(v):
    """log2 of a tile factor; 0 for an unknown (None) or non-positive one."""
    if isinstance(v, np.ndarray):
        return np.log2(np.maximum(v, 1))
    return math.log2(v) if isinstance(v, int) and v > 0 else 0.0


def _known(v) -> bool:
    return isinstance(v, (int, np.ndarray)) and not isinstance(v, bool)


def _attr_id(s) -> int:
    if not isinstance(s, str) or isinstance(s, Ref):
        return NO_ATTR
    return ATTR_IDS.get(s, UNK_ATTR)


@dataclass(eq=False)
class _Loop:
    block: str | None
    extent: int | np.ndarray | None = None
    reduce: float = 0.5   # 1 reduction, 0 spatial, 0.5 unknown


@dataclass(eq=False)
class _Block:
    name: str
    index: int
    nest: list | None = None   # current list of _Loop, None when unknown
    touched: bool = False


@dataclass
class _State:
    blocks_info: dict        # block name -> {"extents": [...], "reduce": [...], "is_reduction": bool}
    vals: dict = field(default_factory=dict)      # v-name -> int value
    cat_frac: dict = field(default_factory=dict)  # v-name -> decision / (n-1)
    locs: dict = field(default_factory=dict)      # l-name from sample_compute_location -> decision
    loops: dict = field(default_factory=dict)     # l-name -> _Loop
    blocks: dict = field(default_factory=dict)    # b-name -> _Block
    order: dict = field(default_factory=dict)     # block name -> first-seen index

    def block(self, ref, name: str | None = None) -> _Block:
        if ref in self.blocks:
            return self.blocks[ref]
        name = name or f"?{ref}"
        b = _Block(name, self.order.setdefault(name, len(self.order)))
        self.blocks[ref] = b
        return b

    def get_loops(self, inst: Inst) -> None:
        blk = self.block(inst.kwargs.get("block", inst.args[0] if inst.args else None))
        n = len(inst.outs)
        info = self.blocks_info.get(blk.name)
        if blk.nest is not None and len(blk.nest) == n:
            nest = blk.nest
        elif not blk.touched and info is not None and len(info["extents"]) == n:
            nest = [_Loop(blk.name, e, r) for e, r in zip(info["extents"], info["reduce"])]
        else:
            nest = [_Loop(blk.name) for _ in range(n)]
        blk.nest = list(nest)
        for o, lp in zip(inst.outs, nest):
            self.loops[o] = lp

    def loop_context(self, ref) -> tuple:
        """(position in its nest, log2p nest length, log2p extent, reduce, extent known)."""
        lp = self.loops.get(ref)
        if lp is None:
            return 0.0, 0.0, 0.0, 0.5, 0.0
        # _Loop compares by identity (eq=False): ``in`` and ``index`` are identity tests at C speed
        blk = next((b for b in self.blocks.values() if b.nest is not None and lp in b.nest), None)
        pos, n = (blk.nest.index(lp), len(blk.nest)) if blk is not None else (0, 0)
        known = lp.extent is not None
        return (pos / max(n, 1), _log2p(n), _log2p(lp.extent) if known else 0.0, lp.reduce,
                1.0 if known else 0.0)

    def replace_in_nests(self, old: list, new: list) -> None:
        for b in self.blocks.values():
            if b.nest is None:
                continue
            idx = [i for i, lp in enumerate(b.nest) if lp in old]
            if idx:
                b.nest = b.nest[: idx[0]] + new + [lp for lp in b.nest[idx[0]:] if lp not in old]
                b.touched = True

    def copy(self) -> "_State":
        """Loops are never changed once made, so they are shared; blocks are (their nests), so
        they are copied."""
        blocks: dict = {}

        def block(b):
            if id(b) not in blocks:
                blocks[id(b)] = _Block(b.name, b.index, None if b.nest is None else list(b.nest),
                                       b.touched)
            return blocks[id(b)]

        return _State(self.blocks_info, dict(self.vals), dict(self.cat_frac), dict(self.locs),
                      dict(self.loops), {k: block(v) for k, v in self.blocks.items()},
                      dict(self.order))


class Walk:
    """The pass over the traces ``rows`` of ``table`` (decision records [n, D]) that share the
    instructions walked so far."""

    def __init__(self, blocks_info: dict | None, table: np.ndarray, rows: np.ndarray):
        self.st = _State(blocks_info or {})
        self.table, self.rows, self.pos = table, rows, 0
        self.vectors = len(table) > 1   # decisions as vectors over the table's rows
        self.kinds, self.attrs, self.feats, self.where = [], [], [], []
        self.varying = []    # (token, slot, vector over the table's rows)
        self.postproc, self.unknown = 0.0, 0

    def decision(self, kw):
        d = kw.get("decision")
        if not is_column(d):
            return d
        w = len(d) if isinstance(d, list) else 0
        at = self.pos
        if at + 1 + max(w, 1) > self.table.shape[1]:
            raise Misread
        self.pos = at + 1 + max(w, 1)
        if not self.vectors:   # one trace: Python ints, cheaper than vectors of one
            if self.table[0, at] != w:
                raise Misread
            return int(self.table[0, at + 1]) if w == 0 else self.table[0, at + 1:at + 1 + w].tolist()
        if (self.table[self.rows, at] != w).any():
            raise Misread
        # Other walks' rows hold other decisions here: their values are computed on, never read.
        return self.table[:, at + 1] if w == 0 else self.table[:, at + 1:at + 1 + w]

    def fork(self, local: np.ndarray) -> "Walk":
        """A copy for the traces ``local`` (positions among this walk's rows)."""
        new = Walk.__new__(Walk)
        new.st = self.st.copy()
        new.table, new.rows, new.pos, new.vectors = self.table, self.rows[local], self.pos, self.vectors
        new.kinds, new.attrs, new.feats, new.where = (list(self.kinds), list(self.attrs),
                                                      list(self.feats), list(self.where))
        new.varying = list(self.varying)
        new.postproc, new.unknown = self.postproc, self.unknown
        return new

    def finish(self, total: int, width: int, local: np.ndarray) -> list:
        """The tokens of the traces ``local`` (positions among this walk's rows), whose traces have
        ``total`` instructions and ``width`` decision record entries."""
        if self.pos != width:
            raise Misread
        kinds, attrs = np.asarray(self.kinds, np.int64), np.asarray(self.attrs, np.int64)
        where = np.asarray(self.where, np.int64)
        base = (np.asarray(self.feats, np.float32) if self.feats
                else np.zeros((0, NUM_FEATS), np.float32))
        if len(base):
            base[:, POSITION] = where / max(total, 1)
        many = np.repeat(base[None], len(local), 0)
        rows = self.rows[local]
        for t, j, x in self.varying:
            many[:, t, j] = x[rows]
        return [TokenizedTrace(kinds, attrs, many[i], where, self.unknown) for i in range(len(local))]

    # -- instructions -----------------------------------------------------------------------
    def step(self, inst: Inst) -> None:
        k = inst.kind
        sampler = _SAMPLERS.get(k)
        if sampler is not None:
            sampler(self, inst)
            return
        if k == "get_sblock":
            name = inst.kwargs.get("name", inst.args[0] if inst.args else None)
            for o in inst.outs:
                self.st.block(o, name)
            return
        if k == "get_loops":
            self.st.get_loops(inst)
            return
        if k in GETTERS:
            for o in inst.outs:
                self.st.block(o)
            return
        self._token(inst)

    def _tile(self, inst: Inst) -> None:
        d = self.decision(inst.kwargs)
        if isinstance(d, np.ndarray):
            d = list(d.T)
        for o, v in zip(inst.outs, d or []):
            self.st.vals[o] = v

    def _categorical(self, inst: Inst) -> None:
        cands, d = inst.kwargs.get("candidates") or [], self.decision(inst.kwargs)
        if not inst.outs or not cands:
            return
        if isinstance(d, np.ndarray):
            self.st.vals[inst.outs[0]] = np.asarray(cands)[np.clip(d, 0, len(cands) - 1)]
        elif isinstance(d, int) and not isinstance(d, bool):
            self.st.vals[inst.outs[0]] = cands[min(max(d, 0), len(cands) - 1)]
        else:   # no decision
            return
        self.st.cat_frac[inst.outs[0]] = d / max(len(cands) - 1, 1)

    def _location(self, inst: Inst) -> None:
        d = self.decision(inst.kwargs)
        if inst.outs:
            self.st.locs[inst.outs[0]] = 0 if d is None else d

    def _token(self, inst: Inst) -> None:
        st, k, a, kw = self.st, inst.kind, inst.args, inst.kwargs
        if k == "enter_postproc":
            self.postproc = 1.0
        f = [0.0] * NUM_FEATS   # a list: numpy's per-element stores cost more than the rest
        f[POSTPROC] = self.postproc   # f[POSITION]: set by finish()
        kid = KIND_IDS.get(k, UNK)
        self.unknown += kid == UNK
        refs = [x for x in (*a, *kw.values()) if isinstance(x, Ref)]
        if k == "fuse" or k == "reorder":
            loop_refs = [x for x in a if isinstance(x, Ref)]
        else:
            loop_refs = [x for x in refs if x in st.loops]
        block_refs = [x for x in refs if x in st.blocks]
        if loop_refs:
            (f[LOOP_POSITION], f[NEST_DEPTH], f[LOOP_EXTENT], f[LOOP_REDUCE],
             f[EXTENT_KNOWN]) = st.loop_context(loop_refs[0])
            exts = [st.loops[x].extent for x in loop_refs if x in st.loops]
            f[LOOPS_EXTENT] = (_log2p(math.prod(exts)) if exts and all(e is not None for e in exts)
                               else 0.0)
        if block_refs:
            b = st.blocks[block_refs[0]]
            f[BLOCK_ORDER] = b.index / max(len(st.order), 1)
            info = st.blocks_info.get(b.name)
            f[BLOCK_REDUCTION] = float(info["is_reduction"]) if info else 0.5
        f[NUM_LOOPS] = _log2p(len(loop_refs))
        handler = _HANDLERS.get(k, Walk._other)
        attr = handler(self, inst, f, loop_refs)
        self.kinds.append(kid)
        self.attrs.append(NO_ATTR if attr is None else attr)
        if self.vectors and np.ndarray in map(type, f):   # slots that depend on decisions
            for j, x in enumerate(f):
                if isinstance(x, np.ndarray):
                    self.varying.append((len(self.feats), j, x))
                    f[j] = 0.0
        self.feats.append(f)
        self.where.append(inst.index)

    # Each handler writes its kind's slots of ``f``, updates the state and returns the token's
    # attribute id (None: no attribute).
    def _split(self, inst: Inst, f: list, loop_refs: list):
        st, a, kw = self.st, inst.args, inst.kwargs
        loop = kw.get("loop", a[0] if a else None)
        factors = kw.get("factors", a[1] if len(a) > 1 else [])
        vals = [st.vals.get(x) if isinstance(x, Ref) else x for x in factors]
        lp = st.loops.get(loop)
        known = [v for v in vals if _known(v)]
        missing = any(v is None for v in vals)
        if lp is not None and lp.extent is not None and missing and known:
            p = math.prod(known)
            inferred = -(-lp.extent // (np.maximum(p, 1) if isinstance(p, np.ndarray) else max(p, 1)))
            vals = [inferred if v is None else v for v in vals]
        for i, v in enumerate(vals[:MAX_FACTORS]):
            f[FACTORS + i] = _log2_factor(v)
        f[NUM_FACTORS], f[FACTOR_MISSING] = len(vals) / MAX_FACTORS, float(missing)
        red = lp.reduce if lp is not None else 0.5
        new = [_Loop(lp.block if lp else None, v if _known(v) else None, red) for v in vals]
        if lp is not None:
            st.replace_in_nests([lp], new)
        for o, nl in zip(inst.outs, new):
            st.loops[o] = nl

    def _fuse(self, inst: Inst, f: list, loop_refs: list):
        st = self.st
        olds = [st.loops[x] for x in loop_refs if x in st.loops]
        exts = [lp.extent for lp in olds]
        ext = math.prod(exts) if olds and all(e is not None for e in exts) else None
        nl = _Loop(olds[0].block if olds else None, ext, max((lp.reduce for lp in olds), default=0.5))
        if olds:
            st.replace_in_nests(olds, [nl])
        for o in inst.outs:
            st.loops[o] = nl

    def _reorder(self, inst: Inst, f: list, loop_refs: list):
        olds = [self.st.loops[x] for x in loop_refs if x in self.st.loops]
        for b in self.st.blocks.values():
            if b.nest is not None:
                slots = [i for i, lp in enumerate(b.nest) if lp in olds]
                mine = [o for o in olds if o in b.nest]
                for i, o in zip(slots, mine):
                    b.nest[i] = o

    def _annotate(self, inst: Inst, f: list, loop_refs: list):
        v = inst.kwargs.get("ann_val")
        if isinstance(v, Ref):
            f[ANN_VALUE] = _log2p(self.st.vals.get(v, 0))
            f[ANN_FRACTION] = self.st.cat_frac.get(v, 0.0)
        elif isinstance(v, bool):
            f[LITERAL] = float(v)
        elif isinstance(v, (int, float)):
            f[LITERAL] = _log2p(v)
        elif isinstance(v, list):
            f[LITERAL] = _log2p(len(v))
        return _attr_id(inst.kwargs.get("ann_key"))

    def _compute_at(self, inst: Inst, f: list, loop_refs: list):
        a, kw = inst.args, inst.kwargs
        loop = kw.get("loop", a[1] if len(a) > 1 else None)
        if loop in self.st.locs:
            d = self.st.locs[loop]
            if isinstance(d, np.ndarray):
                f[AT_ROOT], f[AT_INLINE], f[AT_LOOP] = ((d == -1) * 1.0, (d == -2) * 1.0,
                                                        _log2p(np.maximum(d, 0)))
            else:
                f[AT_ROOT], f[AT_INLINE], f[AT_LOOP] = float(d == -1), float(d == -2), _log2p(max(d, 0))
        self._forget_nest(kw.get("block"))

    def _inline(self, inst: Inst, f: list, loop_refs: list):
        self._forget_nest(inst.kwargs.get("block"))

    def _forget_nest(self, ref) -> None:
        blk = self.st.blocks.get(ref)
        if blk is not None:
            blk.nest, blk.touched = None, True

    def _bind(self, inst: Inst, f: list, loop_refs: list):
        return _attr_id(inst.kwargs.get("thread_axis"))

    def _cache(self, inst: Inst, f: list, loop_refs: list):
        kw = inst.kwargs
        f[LITERAL] = _log2p(kw.get("read_buffer_index", kw.get("write_buffer_index", 0)) or 0)
        for o in inst.outs:
            self.st.block(o, f"{inst.kind}:{o}").touched = True
        return _attr_id(kw.get("storage_scope"))

    def _other(self, inst: Inst, f: list, loop_refs: list):
        for o in inst.outs:
            if o.startswith("b"):
                self.st.block(o, f"{inst.kind}:{o}")


_SAMPLERS = {"sample_perfect_tile": Walk._tile, "sample_partitioned_tile": Walk._tile,
             "sample_categorical": Walk._categorical, "sample_compute_location": Walk._location}
_HANDLERS = {"split": Walk._split, "fuse": Walk._fuse, "reorder": Walk._reorder,
             "annotate": Walk._annotate, "unannotate": Walk._annotate,
             "compute_at": Walk._compute_at, "reverse_compute_at": Walk._compute_at,
             "bind": Walk._bind, "compute_inline": Walk._inline, "reverse_compute_inline": Walk._inline,
             **{k: Walk._cache for k in _CACHES}}
