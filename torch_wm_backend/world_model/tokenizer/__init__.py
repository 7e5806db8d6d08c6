"""MetaSchedule trace -> action tokens.

A trace is read from its printed text (``str(trace)``): one FFI call, then pure Python. Database
records and live candidates go through the same path, so training and tuning see the same tokens.

One token per scheduling instruction. Pure getters (get_sblock, get_loops, ...) emit no token: they only
name the blocks and loops later instructions act on. Sampling instructions emit no token either: their
decision is folded into the instruction that consumes the sampled value (tile factors into ``split`` as
log2, the categorical *value* into ``annotate``, the compute location into ``compute_at``). Everything
after ``enter_postproc`` is flagged: it holds the final parallel / vectorize / unroll / bind.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

PAD, UNK = 0, 1
KINDS = (
    "split", "fuse", "reorder", "merge", "loop_partition", "reorder_block_iter_var", "add_unit_loop",
    "parallel", "vectorize", "bind", "unroll",
    "cache_read", "cache_write", "reindex_cache_read", "reindex_cache_write", "cache_inplace",
    "cache_index", "reindex", "read_at", "write_at",
    "compute_at", "reverse_compute_at", "compute_inline", "reverse_compute_inline",
    "decompose_reduction", "rfactor", "storage_align", "set_scope", "unsafe_set_dtype",
    "blockize", "tensorize", "annotate", "unannotate", "transform_layout", "transform_block_layout",
    "set_axis_separator", "decompose_padding", "pad_einsum", "rolling_buffer", "enter_postproc",
    "unsafe_hide_buffer_access", "annotate_buffer_access", "fuse_reduction_epilogue",
)
KIND_IDS = {k: i + 2 for i, k in enumerate(KINDS)}
NUM_KINDS = len(KINDS) + 2

GETTERS = frozenset({
    "get_sblock", "get_loops", "get_child_blocks", "get_producers", "get_consumers",
    "get_output_blocks",
})
SAMPLERS = frozenset({
    "sample_perfect_tile", "sample_partitioned_tile", "sample_categorical", "sample_compute_location",
})

ATTRS = (
    "meta_schedule.parallel", "meta_schedule.vectorize", "meta_schedule.unroll_explicit",
    "meta_schedule.unroll_implicit", "meta_schedule.cooperative_fetch",
    "meta_schedule.tiling_structure", "meta_schedule.thread_extent_low_inclusive",
    "meta_schedule.thread_extent_high_inclusive", "meta_schedule.auto_tensorize",
    "meta_schedule.auto_tensorize_init", "meta_schedule.layout_rewrite_preproc",
    "meta_schedule.random_compute_producer", "meta_schedule.inline_rule",
    "software_pipeline_stage", "software_pipeline_order", "software_pipeline_async_stages",
    "pragma_auto_unroll_max_step", "pragma_unroll_explicit",
    "blockIdx.x", "blockIdx.y", "blockIdx.z", "threadIdx.x", "threadIdx.y", "threadIdx.z",
    "vthread.x", "vthread.y", "vthread.z",
    "global", "shared", "shared.dyn", "local", "warp",
    "wmma.matrix_a", "wmma.matrix_b", "wmma.accumulator",
)
ATTR_IDS = {a: i + 2 for i, a in enumerate(ATTRS)}
NUM_ATTRS = len(ATTRS) + 2
NO_ATTR, UNK_ATTR = 0, 1

NUM_FEATS = 24
_MAX_FACTORS = 5


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


# --- parsing the printed trace ---------------------------------------------------------------
_LINE = re.compile(r"^\s*(?:(?P<outs>[\w, ]+?)\s*=\s*)?sch\.(?P<kind>\w+)\((?P<args>.*)\)\s*$")
_FLOAT_CALL = re.compile(r"^T\.\w+\((.*)\)$")
# One argument: optional keyword, then a flat list, a string or a bare token. Nested lists fall back
# to the slow bracket-counting splitter.
_ARG = re.compile(r'\s*(?:(\w+)=)?(\[[^\[\]]*\]|"[^"]*"|[^,\[\]"]+)\s*(?:,|$)')


def _split_top(s: str) -> list[str]:
    parts, depth, cur, quote = [], 0, [], False
    for ch in s:
        if ch == '"':
            quote = not quote
        elif not quote:
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append("".join(cur).strip())
                cur = []
                continue
        cur.append(ch)
    tail = "".join(cur).strip()
    if tail:
        parts.append(tail)
    return parts


class Ref(str):
    """A random-variable name (b3, l7, v12) in the trace text."""


def _value(s: str):
    if not s:
        return None
    c = s[0]
    if c in "blv" and s[1:].isdigit():
        return Ref(s)
    if c.isdigit() or (c == "-" and s[1:].isdigit()):
        if s.lstrip("-").isdigit():
            return int(s)
    if s[0] == '"':
        return s[1:-1]
    if s[0] == "[" or s[0] == "(":
        return [_value(p) for p in _split_top(s[1:-1])]
    if s in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[s]
    m = _FLOAT_CALL.match(s)
    if m:
        return _value(m.group(1))
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        return Ref(s)


@dataclass
class Inst:
    kind: str
    args: list            # positional
    kwargs: dict
    outs: list[str]
    index: int            # position among all instructions of the trace


def _parse_args(text: str) -> tuple[list, dict]:
    args, kwargs, used = [], {}, 0
    for m in _ARG.finditer(text):
        if m.start() != used:
            break
        used = m.end()
        val = _fast_value(m.group(2).strip())
        if m.group(1):
            kwargs[m.group(1)] = val
        else:
            args.append(val)
    if used == len(text):
        return args, kwargs
    args, kwargs = [], {}
    for part in _split_top(text):
        key, eq, val = part.partition("=")
        if eq and re.fullmatch(r"\w+", key.strip()):
            kwargs[key.strip()] = _value(val.strip())
        else:
            args.append(_value(part))
    return args, kwargs


def _fast_value(s: str):
    if s[:1] == "[":
        return [_value(p.strip()) for p in s[1:-1].split(",") if p.strip()]
    return _value(s)


_PARSED: dict = {}  # line -> (kind, args, kwargs, outs) or None; read-only once stored
_PARSED_MAX = 200_000


def _parse_line(line: str):
    m = _LINE.match(line)
    if m is None:
        return None
    args, kwargs = _parse_args(m.group("args"))
    outs = [o.strip() for o in (m.group("outs") or "").split(",") if o.strip()]
    return m.group("kind"), args, kwargs, outs


def _lines(text: str):
    """(line, parsed line) for each instruction of ``text``."""
    if len(_PARSED) > _PARSED_MAX:
        _PARSED.clear()
    for line in text.splitlines():
        parsed = _PARSED.get(line, False)
        if parsed is False:
            parsed = _PARSED[line] = _parse_line(line)
        if parsed is not None:
            yield line, parsed


def parse_trace_text(text: str) -> list[Inst]:
    """The trace's instructions. Candidates of one task share most of their lines (the same
    getters, splits with other decisions...), so each distinct line is parsed once; the parsed
    values are shared between traces and must not be changed."""
    insts = []
    for _, parsed in _lines(text):
        insts.append(Inst(*parsed, len(insts)))
    return insts


# --- operand context ---------------------------------------------------------------------------
@dataclass(eq=False)
class _Loop:
    block: str | None
    extent: int | None = None
    reduce: float = 0.5   # 1 reduction, 0 spatial, 0.5 unknown


@dataclass(eq=False)
class _Block:
    name: str
    index: int
    nest: list | None = None   # current list of _Loop, None when unknown
    touched: bool = False


@dataclass
class TokenizedTrace:
    kinds: np.ndarray      # int64 [L]
    attrs: np.ndarray      # int64 [L]
    feats: np.ndarray      # float32 [L, NUM_FEATS]
    inst_index: np.ndarray  # int64 [L]: index of the instruction each token came from
    num_unknown: int = 0

    def __len__(self) -> int:
        return len(self.kinds)


@dataclass
class _State:
    blocks_info: dict        # block name -> {"extents": [...], "reduce": [...], "is_reduction": bool}
    vals: dict = field(default_factory=dict)      # v-name -> int value
    cat_frac: dict = field(default_factory=dict)  # v-name -> decision / (n-1)
    locs: dict = field(default_factory=dict)      # l-name from sample_compute_location -> decision
    loops: dict = field(default_factory=dict)     # l-name -> _Loop
    blocks: dict = field(default_factory=dict)    # b-name -> _Block
    order: dict = field(default_factory=dict)     # block name -> first-seen index


def _block(st: _State, ref, name: str | None = None) -> _Block:
    if ref in st.blocks:
        return st.blocks[ref]
    name = name or f"?{ref}"
    idx = st.order.setdefault(name, len(st.order))
    b = _Block(name, idx)
    st.blocks[ref] = b
    return b


def _get_loops(st: _State, inst: Inst) -> None:
    ref = inst.kwargs.get("block", inst.args[0] if inst.args else None)
    blk = _block(st, ref)
    n = len(inst.outs)
    info = st.blocks_info.get(blk.name)
    if blk.nest is not None and len(blk.nest) == n:
        nest = blk.nest
    elif not blk.touched and info is not None and len(info["extents"]) == n:
        nest = [_Loop(blk.name, e, r) for e, r in zip(info["extents"], info["reduce"])]
    else:
        nest = [_Loop(blk.name) for _ in range(n)]
    blk.nest = list(nest)
    for o, lp in zip(inst.outs, nest):
        st.loops[o] = lp


def _loop_ctx(st: _State, ref) -> tuple[float, float, float, float, float]:
    lp = st.loops.get(ref)
    if lp is None:
        return 0.0, 0.0, 0.0, 0.5, 0.0
    # _Loop compares by identity (eq=False), so ``in`` and ``index`` are identity tests at C speed
    blk = next((b for b in st.blocks.values() if b.nest is not None and lp in b.nest), None)
    pos, n = (blk.nest.index(lp), len(blk.nest)) if blk is not None else (0, 0)
    known = lp.extent is not None
    return (pos / max(n, 1), _log2p(n), _log2p(lp.extent) if known else 0.0, lp.reduce,
            1.0 if known else 0.0)


def _replace_in_nest(st: _State, old: list, new: list) -> None:
    for b in st.blocks.values():
        if b.nest is None:
            continue
        idx = [i for i, lp in enumerate(b.nest) if lp in old]
        if idx:
            b.nest = b.nest[: idx[0]] + new + [lp for lp in b.nest[idx[0]:] if lp not in old]
            b.touched = True


def _attr_id(s) -> int:
    if not isinstance(s, str) or isinstance(s, Ref):
        return NO_ATTR
    return ATTR_IDS.get(s, UNK_ATTR)


def tokenize(text: str, blocks_info: dict | None = None) -> TokenizedTrace:
    """Tokenize the printed trace ``text``. ``blocks_info`` (from state.task_info) gives the loop
    extents of the unscheduled blocks; without it loop extents are unknown but tokens still form."""
    walk = _Walk(blocks_info, None, np.zeros(1, np.int64))
    insts = parse_trace_text(text)
    for inst in insts:
        walk.step(inst)
    return walk.finish(len(insts), None, np.arange(1))[0]


_DECISION = re.compile(r"decision=(\[[^\]\[]*\]|-?\d+)")


def tokenize_many(texts: list, blocks_info: dict | None = None) -> list:
    """``[tokenize(t, blocks_info) for t in texts]``, computed once per trace *structure*. Traces of
    one task differ mostly in their sampling decisions (tile sizes, unroll, compute location): those
    with the same text but for the decisions share one pass, their decisions as numpy columns."""
    groups: dict = {}
    for i, text in enumerate(texts):
        parts = _DECISION.split(text)
        groups.setdefault("\0".join(parts[0::2]), []).append((i, parts[1::2]))
    reps, records, odd = [], [], []
    for members in groups.values():
        try:
            records.append(decision_records([decs for _, decs in members]))
            reps.append(members)
        except _Misread:  # decisions the pattern does not read as the parser does: one by one
            odd.extend(i for i, _ in members)
    out: list = [None] * len(texts)
    for members, toks in zip(reps, tokenize_structures([texts[m[0][0]] for m in reps], records,
                                                        blocks_info)):
        if toks is None:
            odd.extend(i for i, _ in members)
            continue
        for (i, _), tok in zip(members, toks):
            out[i] = tok
    for i in odd:
        out[i] = tokenize(texts[i], blocks_info)
    return out


def decision_records(decisions: list) -> np.ndarray:
    """Printed decisions of n traces (n lists of strings, "[4, 16]" or "2") -> records [n, D] in
    trace_reader's layout: per decision 0, value (a scalar) or width, values (a list)."""
    flat = ",".join(",".join(f"{d.count(',') + 1},{d[1:-1]}" if d[0] == "[" else f"0,{d}"
                             for d in decs) for decs in decisions)
    try:
        return np.array(flat.split(","), dtype=np.int64).reshape(len(decisions), -1)
    except ValueError as err:  # not integers, or not the same count in every trace
        raise _Misread from err


def tokenize_structures(texts: list, records: list, blocks_info: dict | None = None) -> list:
    """Tokens of the traces of several structures: structure s prints as ``texts[s]`` but for its
    traces' decisions, ``records[s]`` ([n_s, D_s], one row per trace, decision_records' layout).
    Returns one list of n_s tokenized traces per structure, None for a structure whose records do
    not match its text's decisions (tokenize those traces one by one from their own text).

    Structures of one task share most of their instructions (they part where a sketch or a
    postprocessor did something else): they are walked as a prefix tree, each shared instruction
    once for all their traces."""
    seqs = [_keyed_insts(t) for t in texts]
    sizes = [len(r) for r in records]
    width = max((r.shape[1] for r in records), default=0)
    table = np.zeros((sum(sizes), width), np.int64)
    starts = np.cumsum([0] + sizes)
    for s, r in enumerate(records):
        table[starts[s]:starts[s + 1], :r.shape[1]] = r
    try:
        return _walk_tree(seqs, records, table, starts, blocks_info)
    except _Misread:   # a bad record somewhere under a shared prefix: structure by structure
        pass
    out = []
    for seq, rec in zip(seqs, records):
        try:
            out.append(_walk_tree([seq], [rec], rec, np.array([0, len(rec)]), blocks_info)[0])
        except _Misread:
            out.append(None)
    return out


def _keyed_insts(text: str) -> list:
    """(line without its decision values, parsed line) for each instruction of ``text``."""
    out = []
    for line, parsed in _lines(text):
        key = _DECISION.sub("decision=", line) if "decision=" in line else line
        out.append((key, parsed))
    return out


def _walk_tree(seqs: list, records: list, table: np.ndarray, starts: np.ndarray, blocks_info) -> list:
    out: list = [None] * len(seqs)
    stack = [(_Walk(blocks_info, table, np.arange(len(table))), list(range(len(seqs))), 0)]
    while stack:
        walk, ids, depth = stack.pop()
        while True:
            live: dict = {}
            ended = []
            for s in ids:
                if len(seqs[s]) == depth:
                    ended.append(s)
                else:
                    live.setdefault(seqs[s][depth][0], []).append(s)
            if not ended and len(live) == 1:
                walk.step(Inst(*seqs[ids[0]][depth][1], depth))
                depth += 1
                continue
            at, local = 0, {}
            for s in ids:   # each structure's rows within this walk
                n = int(starts[s + 1] - starts[s])
                local[s] = np.arange(at, at + n)
                at += n
            for s in ended:
                out[s] = walk.finish(depth, records[s].shape[1], local[s])
            for group in live.values():
                rows = np.concatenate([local[s] for s in group])
                stack.append((walk.fork(rows) if len(live) > 1 or ended else walk, group, depth))
            break
    return out


class _Misread(ValueError):
    pass


class _Walk:
    """The tokenizer's pass over the traces that share the instructions walked so far. Decisions
    come from ``table`` (decision records, one row per trace) as numpy vectors over *all* its rows
    (so a fork copies no arrays; only the walk's ``rows`` are read out at the end), or with no
    table from the text (one trace)."""

    def __init__(self, blocks_info: dict | None, table: np.ndarray | None, rows: np.ndarray):
        self.st = _State(blocks_info or {})
        self.table, self.rows, self.pos = table, rows, 0
        self.kinds, self.attrs, self.feats, self.where, self.varying = [], [], [], [], []
        self.postproc, self.unknown = 0.0, 0

    def decision(self, kw):
        d = kw.get("decision")
        if self.table is None or not (isinstance(d, list) or (isinstance(d, int) and not isinstance(d, bool))):
            return d
        w = len(d) if isinstance(d, list) else 0
        at = self.pos
        if at + 1 + max(w, 1) > self.table.shape[1] or (self.table[self.rows, at] != w).any():
            raise _Misread
        self.pos = at + 1 + max(w, 1)
        # Other walks' rows hold other decisions here: their values are computed on, never read.
        return self.table[:, at + 1] if w == 0 else self.table[:, at + 1:at + 1 + w]

    def fork(self, local: np.ndarray) -> "_Walk":
        """A copy for the traces ``local`` (positions among this walk's rows). Loops are never
        changed once made, so they are shared; blocks are (their nests), so they are copied."""
        st, blocks = self.st, {}

        def block(b):
            if id(b) not in blocks:
                blocks[id(b)] = _Block(b.name, b.index, None if b.nest is None else list(b.nest),
                                       b.touched)
            return blocks[id(b)]

        new = _Walk.__new__(_Walk)
        new.st = _State(st.blocks_info, dict(st.vals), dict(st.cat_frac), dict(st.locs),
                        dict(st.loops), {k: block(v) for k, v in st.blocks.items()}, dict(st.order))
        new.table, new.rows, new.pos = self.table, self.rows[local], self.pos
        new.kinds, new.attrs, new.feats, new.where = (list(self.kinds), list(self.attrs),
                                                      list(self.feats), list(self.where))
        new.varying = list(self.varying)
        new.postproc, new.unknown = self.postproc, self.unknown
        return new

    def finish(self, total: int, width: int | None, local: np.ndarray) -> list:
        """The tokens of the traces ``local`` (positions among this walk's rows), whose traces have
        ``total`` instructions and ``width`` decision record entries (None: read from the text)."""
        if width is not None and self.pos != width:
            raise _Misread
        kinds, attrs = np.asarray(self.kinds, np.int64), np.asarray(self.attrs, np.int64)
        where = np.asarray(self.where, np.int64)
        base = (np.asarray(self.feats, np.float32) if self.feats
                else np.zeros((0, NUM_FEATS), np.float32))
        if len(base):
            base[:, 1] = where / max(total, 1)
        many = np.repeat(base[None], len(local), 0)
        rows = self.rows[local]
        for t, j, x in self.varying:
            many[:, t, j] = x[rows]
        return [TokenizedTrace(kinds, attrs, many[i], where, self.unknown) for i in range(len(local))]

    def step(self, inst: Inst) -> None:
        st = self.st
        k, kw, a = inst.kind, inst.kwargs, inst.args
        if k == "get_sblock":
            name = kw.get("name", a[0] if a else None)
            for o in inst.outs:
                _block(st, o, name)
            return
        if k == "get_loops":
            _get_loops(st, inst)
            return
        if k in GETTERS:
            for o in inst.outs:
                _block(st, o)
            return
        if k in ("sample_perfect_tile", "sample_partitioned_tile"):
            d = self.decision(kw)
            if isinstance(d, np.ndarray):
                d = list(d.T)
            for o, v in zip(inst.outs, d or []):
                st.vals[o] = v
            return
        if k == "sample_categorical":
            cands, d = kw.get("candidates") or [], self.decision(kw)
            if isinstance(d, np.ndarray) and inst.outs and cands:
                st.vals[inst.outs[0]] = np.asarray(cands)[np.clip(d, 0, len(cands) - 1)]
                st.cat_frac[inst.outs[0]] = d / max(len(cands) - 1, 1)
            elif inst.outs and d is not None and 0 <= d < len(cands):
                st.vals[inst.outs[0]] = cands[d]
                st.cat_frac[inst.outs[0]] = d / max(len(cands) - 1, 1)
            return
        if k == "sample_compute_location":
            d = self.decision(kw)
            if inst.outs:
                st.locs[inst.outs[0]] = 0 if d is None else d
            return
        if k == "enter_postproc":
            self.postproc = 1.0
        f = [0.0] * NUM_FEATS   # a list: numpy's per-element stores cost more than the rest
        f[0] = self.postproc    # f[1], the instruction's position in the trace: set by finish()
        attr = NO_ATTR
        kid = KIND_IDS.get(k, UNK)
        self.unknown += kid == UNK
        refs = [x for x in (*a, *kw.values()) if isinstance(x, Ref)]
        if k == "fuse" or k == "reorder":
            loop_refs = [x for x in a if isinstance(x, Ref)]
        else:
            loop_refs = [x for x in refs if x in st.loops]
        block_refs = [x for x in refs if x in st.blocks]
        if loop_refs:
            f[15], f[16], f[17], f[18], f[23] = _loop_ctx(st, loop_refs[0])
            exts = [st.loops[x].extent for x in loop_refs if x in st.loops]
            f[22] = _log2p(math.prod(exts)) if exts and all(e is not None for e in exts) else 0.0
        if block_refs:
            b = st.blocks[block_refs[0]]
            f[19] = b.index / max(len(st.order), 1)
            info = st.blocks_info.get(b.name)
            f[20] = float(info["is_reduction"]) if info else 0.5
        f[21] = _log2p(len(loop_refs))
        if k == "split":
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
            for i, v in enumerate(vals[:_MAX_FACTORS]):
                f[2 + i] = _log2_factor(v)
            f[7], f[8] = len(vals) / _MAX_FACTORS, float(missing)
            red = lp.reduce if lp is not None else 0.5
            new = [_Loop(lp.block if lp else None, v if _known(v) else None, red) for v in vals]
            if lp is not None:
                _replace_in_nest(st, [lp], new)
            for o, nl in zip(inst.outs, new):
                st.loops[o] = nl
        elif k == "fuse":
            olds = [st.loops[x] for x in loop_refs if x in st.loops]
            exts = [lp.extent for lp in olds]
            ext = math.prod(exts) if olds and all(e is not None for e in exts) else None
            red = max((lp.reduce for lp in olds), default=0.5)
            nl = _Loop(olds[0].block if olds else None, ext, red)
            if olds:
                _replace_in_nest(st, olds, [nl])
            for o in inst.outs:
                st.loops[o] = nl
        elif k == "reorder":
            olds = [st.loops[x] for x in loop_refs if x in st.loops]
            for b in st.blocks.values():
                if b.nest is not None:
                    slots = [i for i, lp in enumerate(b.nest) if lp in olds]
                    mine = [o for o in olds if o in b.nest]
                    for i, o in zip(slots, mine):
                        b.nest[i] = o
        elif k in ("annotate", "unannotate"):
            attr = _attr_id(kw.get("ann_key"))
            v = kw.get("ann_val")
            if isinstance(v, Ref):
                f[9] = _log2p(st.vals.get(v, 0))
                f[10] = st.cat_frac.get(v, 0.0)
            elif isinstance(v, bool):
                f[14] = float(v)
            elif isinstance(v, (int, float)):
                f[14] = _log2p(v)
            elif isinstance(v, list):
                f[14] = _log2p(len(v))
        elif k in ("compute_at", "reverse_compute_at"):
            loop = kw.get("loop", a[1] if len(a) > 1 else None)
            if loop in st.locs:
                d = st.locs[loop]
                if isinstance(d, np.ndarray):
                    f[11], f[12], f[13] = (d == -1) * 1.0, (d == -2) * 1.0, _log2p(np.maximum(d, 0))
                else:
                    f[11], f[12], f[13] = float(d == -1), float(d == -2), _log2p(max(d, 0))
            blk = st.blocks.get(kw.get("block"))
            if blk is not None:
                blk.nest, blk.touched = None, True
        elif k == "bind":
            attr = _attr_id(kw.get("thread_axis"))
        elif k in ("cache_read", "cache_write", "reindex_cache_read", "reindex_cache_write", "set_scope"):
            attr = _attr_id(kw.get("storage_scope"))
            f[14] = _log2p(kw.get("read_buffer_index", kw.get("write_buffer_index", 0)) or 0)
            for o in inst.outs:
                _block(st, o, f"{k}:{o}").touched = True
        elif k in ("compute_inline", "reverse_compute_inline"):
            blk = st.blocks.get(kw.get("block"))
            if blk is not None:
                blk.nest, blk.touched = None, True
        else:
            for o in inst.outs:
                if o.startswith("b"):
                    _block(st, o, f"{k}:{o}")
        self.kinds.append(kid)
        self.attrs.append(attr)
        if self.table is not None:
            for j, x in enumerate(f):
                if isinstance(x, np.ndarray):
                    self.varying.append((len(self.feats), j, x))
                    f[j] = 0.0
        self.feats.append(f)
        self.where.append(inst.index)
