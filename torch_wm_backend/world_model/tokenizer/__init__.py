"""MetaSchedule trace -> action tokens.

One token per scheduling instruction. Pure getters (get_sblock, get_loops, ...) emit no token: they only
name the blocks and loops later instructions act on. Sampling instructions emit no token either: their
decision is folded into the instruction that consumes the sampled value (tile factors into ``split`` as
log2, the categorical *value* into ``annotate``, the compute location into ``compute_at``). Everything
after ``enter_postproc`` is flagged: it holds the final parallel / vectorize / unroll / bind.

There is one path to the tokens: a *structure* (a printed trace, read but for its decisions) and a
table of decision records, one row per trace of that structure (parse.py gives the layout). The
records come from the C++ trace reader (the adapter), from the printed decisions of many traces
(``tokenize_many``), or from one trace's own text (``tokenize``); walk.py makes the tokens.
"""
from __future__ import annotations

import numpy as np

from .parse import (DECISION, Inst, Misread, Ref, clear_cache, decision_records, keyed_insts,
                    parse_trace_text, parsed_lines, record_of)
from .vocab import (ATTR_IDS, ATTRS, GETTERS, KIND_IDS, KINDS, NO_ATTR, NUM_ATTRS, NUM_FEATS,
                    NUM_KINDS, PAD, SAMPLERS, UNK, UNK_ATTR, VERSION, TokenizedTrace)
from .walk import Walk

__all__ = [
    "ATTRS", "ATTR_IDS", "GETTERS", "Inst", "KINDS", "KIND_IDS", "NO_ATTR", "NUM_ATTRS", "NUM_FEATS",
    "NUM_KINDS", "PAD", "Ref", "SAMPLERS", "UNK", "UNK_ATTR", "VERSION", "TokenizedTrace", "clear_cache",
    "decision_records", "parse_trace_text", "tokenize", "tokenize_many", "tokenize_structures",
]


def tokenize(text: str, blocks_info: dict | None = None) -> TokenizedTrace:
    """Tokenize the printed trace ``text``. ``blocks_info`` (from state.task_info) gives the loop
    extents of the unscheduled blocks; without it loop extents are unknown but tokens still form."""
    seq = [(None, parsed) for _, parsed in parsed_lines(text)]   # one structure: no keys
    record = record_of([parsed for _, parsed in seq])[None]
    return _walk_tree([seq], [record], record, np.array([0, 1]), blocks_info)[0][0]


def tokenize_many(texts: list, blocks_info: dict | None = None) -> list:
    """``[tokenize(t, blocks_info) for t in texts]``, computed once per trace *structure*. Traces of
    one task differ mostly in their sampling decisions (tile sizes, unroll, compute location): those
    with the same text but for the decisions share one pass, their decisions as numpy columns."""
    groups: dict = {}
    for i, text in enumerate(texts):
        parts = DECISION.split(text)
        groups.setdefault("\0".join(parts[0::2]), []).append((i, parts[1::2]))
    reps, records, odd = [], [], []
    for members in groups.values():
        try:
            records.append(decision_records([decs for _, decs in members]))
            reps.append(members)
        except Misread:  # decisions the pattern does not read as the parser does: one by one
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


def tokenize_structures(texts: list, records: list, blocks_info: dict | None = None) -> list:
    """Tokens of the traces of several structures: structure s prints as ``texts[s]`` but for its
    traces' decisions, ``records[s]`` ([n_s, D_s], one row per trace, decision_records' layout).
    Returns one list of n_s tokenized traces per structure, None for a structure whose records do
    not match its text's decisions (tokenize those traces one by one from their own text).

    Structures of one task share most of their instructions (they part where a sketch or a
    postprocessor did something else): they are walked as a prefix tree, each shared instruction
    once for all their traces."""
    seqs = [keyed_insts(t) for t in texts]
    sizes = [len(r) for r in records]
    width = max((r.shape[1] for r in records), default=0)
    table = np.zeros((sum(sizes), width), np.int64)
    starts = np.cumsum([0] + sizes)
    for s, r in enumerate(records):
        table[starts[s]:starts[s + 1], :r.shape[1]] = r
    try:
        return _walk_tree(seqs, records, table, starts, blocks_info)
    except Misread:   # a bad record somewhere under a shared prefix: structure by structure
        pass
    out = []
    for seq, rec in zip(seqs, records):
        try:
            out.append(_walk_tree([seq], [rec], rec, np.array([0, len(rec)]), blocks_info)[0])
        except Misread:
            out.append(None)
    return out


def _walk_tree(seqs: list, records: list, table: np.ndarray, starts: np.ndarray, blocks_info) -> list:
    """Walk structures ``seqs`` (keyed_insts of each) whose traces are the rows
    ``starts[s]:starts[s + 1]`` of ``table``: one walk per shared prefix, forked where the
    structures part."""
    out: list = [None] * len(seqs)
    stack = [(Walk(blocks_info, table, np.arange(len(table))), list(range(len(seqs))), 0)]
    while stack:
        walk, ids, depth = stack.pop()
        while True:
            if len(ids) == 1:   # a structure alone from here: no more forks
                seq = seqs[ids[0]]
                for depth in range(depth, len(seq)):
                    walk.step(Inst(*seq[depth][1], depth))
                out[ids[0]] = walk.finish(len(seq), records[ids[0]].shape[1],
                                          np.arange(int(starts[ids[0] + 1] - starts[ids[0]])))
                break
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
