"""The tokenizer's pass over the instructions shared by a set of traces.

The walk keeps the blocks and loops the instructions name (program.py: loop nests, extents,
reduction flags) and turns each scheduling instruction into one token. Decisions come from a table of decision
records, one row per trace, as numpy vectors over *all* the table's rows: a feature that depends
on a decision becomes a vector, written into each trace's tokens at the end. A table of one row
gives Python ints instead (the same values: float32 features of log2 agree bit for bit).
"""
from __future__ import annotations

import math
import numpy as np

from .parse import Inst, Misread, Ref, is_column
from .program import Loop, State, log2p as _log2p, tile_of
from .vocab import (ANN_FRACTION, ANN_VALUE, AT_INLINE, AT_LOOP, AT_ROOT, ATTR_IDS, BLOCK_ORDER,
                    BLOCK_REDUCTION, EXTENT_KNOWN, FACTOR_MISSING, FACTORS, GETTERS, KIND_IDS,
                    LITERAL, LOOP_EXTENT, LOOP_POSITION, LOOP_REDUCE, LOOPS_EXTENT, MAX_FACTORS,
                    NEST_DEPTH, NO_ATTR, NUM_FACTORS, NUM_FEATS, NUM_LOOPS, POSITION, POSTPROC, UNK,
                    UNK_ATTR, TokenizedTrace)

_CACHES = ("cache_read", "cache_write", "reindex_cache_read", "reindex_cache_write", "set_scope")


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


class Walk:
    """The pass over the traces ``rows`` of ``table`` (decision records [n, D]) that share the
    instructions walked so far."""

    def __init__(self, blocks_info: dict | None, table: np.ndarray, rows: np.ndarray):
        self.st = State(blocks_info or {})
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
        if k == "get_child_blocks":
            self.st.child_blocks(inst)
            return
        if k in ("get_consumers", "get_producers"):
            self.st.neighbours(inst)
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
        new = [Loop(lp.block if lp else None, v if _known(v) else None, red, lp.axis if lp else None)
               for v in vals]
        if lp is not None:
            st.replace_in_nests([lp], new)
        for o, nl in zip(inst.outs, new):
            st.loops[o] = nl

    def _fuse(self, inst: Inst, f: list, loop_refs: list):
        st = self.st
        olds = [st.loops[x] for x in loop_refs if x in st.loops]
        exts = [lp.extent for lp in olds]
        ext = math.prod(exts) if olds and all(e is not None for e in exts) else None
        axes = {lp.axis for lp in olds}
        nl = Loop(olds[0].block if olds else None, ext, max((lp.reduce for lp in olds), default=0.5),
                   axes.pop() if len(axes) == 1 else None)
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
        st, a, kw = self.st, inst.args, inst.kwargs
        loop = kw.get("loop", a[1] if len(a) > 1 else None)
        block = kw.get("block", a[0] if a else None)
        if loop in st.locs:
            d = st.locs[loop]
            if isinstance(d, np.ndarray):
                f[AT_ROOT], f[AT_INLINE], f[AT_LOOP] = ((d == -1) * 1.0, (d == -2) * 1.0,
                                                        _log2p(np.maximum(d, 0)))
                mine = d[self.rows]   # the table's other rows belong to other walks
                if (mine == -1).all():   # at the root: the block stays where it is
                    return
                if (mine == -2).all():
                    st.inline(block, False)
                elif (mine == -2).any() and block in st.blocks:   # inlined by some traces only
                    st.maybe.add(st.blocks[block].name)
                    st.flow = None
            else:
                f[AT_ROOT], f[AT_INLINE], f[AT_LOOP] = float(d == -1), float(d == -2), _log2p(max(d, 0))
                if d == -1:
                    return
                if d == -2:
                    st.inline(block, False)
        blk, lp = st.blocks.get(block), st.loops.get(loop)
        owner = next((b for b in st.blocks.values() if b.nest is not None and lp is not None
                      and lp in b.nest), None)
        if blk is not None and owner is not None and owner is not blk:
            # under a known loop: its nest is that loop's outer loops, then its own loops
            at = owner.nest.index(lp) + 1
            blk.nest, blk.partial, blk.touched = owner.nest[:at], True, True
            blk.own = tile_of(owner.nest[at:], st.blocks_info.get(owner.name)) if (
                inst.kind == "reverse_compute_at") else None
        else:
            self._forget_nest(block)
            if blk is not None and loop in st.locs:   # under a sampled location
                blk.moved = True

    def _inline(self, inst: Inst, f: list, loop_refs: list):
        self.st.inline(inst.kwargs.get("block"), inst.kind == "reverse_compute_inline")
        self._forget_nest(inst.kwargs.get("block"))

    def _forget_nest(self, ref) -> None:
        blk = self.st.blocks.get(ref)
        if blk is not None:
            blk.nest, blk.touched, blk.partial, blk.moved = None, True, False, False

    def _bind(self, inst: Inst, f: list, loop_refs: list):
        return _attr_id(inst.kwargs.get("thread_axis"))

    def _cache(self, inst: Inst, f: list, loop_refs: list):
        kw = inst.kwargs
        f[LITERAL] = _log2p(kw.get("read_buffer_index", kw.get("write_buffer_index", 0)) or 0)
        for o in inst.outs:
            self.st.block(o, f"{inst.kind}:{o}").touched = True
            # a read's copy runs before its consumer, a write's after its producer
            self.st.place(f"{inst.kind}:{o}", kw.get("block"), "write" in inst.kind)
            self.st.new_flow(f"{inst.kind}:{o}", kw.get("block"), inst.kind,
                             kw.get("read_buffer_index", kw.get("write_buffer_index", -1)))
        return _attr_id(kw.get("storage_scope"))

    def _other(self, inst: Inst, f: list, loop_refs: list):
        st, kw = self.st, inst.kwargs
        # decompose_reduction's init block and rfactor's block run before the block they split
        beside = (kw.get("block") if inst.kind == "decompose_reduction" else
                  next((r for r, b in st.blocks.items() if b.nest and st.loops.get(kw.get("loop"))
                        in b.nest), None) if inst.kind == "rfactor" else None)
        for o in inst.outs:
            if o.startswith("b"):
                new = st.block(o, f"{inst.kind}:{o}")
                if beside is None:
                    st.children = st.flow = None   # a block the walk cannot place
                    continue
                st.place(new.name, beside, False)
                st.new_flow(new.name, beside, inst.kind, -1)
                if inst.kind == "rfactor":   # the rfactor block takes the loops; the block gets new ones
                    old = st.blocks[beside]
                    new.nest, new.touched, old.nest, old.touched = old.nest, True, None, True
                    old.reshaped = True


_SAMPLERS = {"sample_perfect_tile": Walk._tile, "sample_partitioned_tile": Walk._tile,
             "sample_categorical": Walk._categorical, "sample_compute_location": Walk._location}
_HANDLERS = {"split": Walk._split, "fuse": Walk._fuse, "reorder": Walk._reorder,
             "annotate": Walk._annotate, "unannotate": Walk._annotate,
             "compute_at": Walk._compute_at, "reverse_compute_at": Walk._compute_at,
             "bind": Walk._bind, "compute_inline": Walk._inline, "reverse_compute_inline": Walk._inline,
             **{k: Walk._cache for k in _CACHES}}
