"""A printed trace (``str(trace)``) -> its instructions, and its decisions as integer records.

A decision record lists a trace's sampling decisions in trace_reader's layout: per decision 0,
value (a scalar) or width, values (a list). The walk reads decisions from records only, whether
they come from the C++ reader, from the printed decisions of many traces, or from one trace's
parsed instructions.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .vocab import SAMPLERS

_LINE = re.compile(r"^\s*(?:(?P<outs>[\w, ]+?)\s*=\s*)?sch\.(?P<kind>\w+)\((?P<args>.*)\)\s*$")
_FLOAT_CALL = re.compile(r"^T\.\w+\((.*)\)$")
# One argument: optional keyword, then a flat list, a string or a bare token. Nested lists fall back
# to the slow bracket-counting splitter.
_ARG = re.compile(r'\s*(?:(\w+)=)?(\[[^\[\]]*\]|"[^"]*"|[^,\[\]"]+)\s*(?:,|$)')
# A printed decision: a flat list or an integer
DECISION = re.compile(r"decision=(\[[^\]\[]*\]|-?\d+)")


class Misread(ValueError):
    """Decision records that do not match the decisions of the trace text they come with."""


class Ref(str):
    """A random-variable name (b3, l7, v12) in the trace text."""


@dataclass
class Inst:
    kind: str
    args: list            # positional
    kwargs: dict
    outs: list[str]
    index: int            # position among all instructions of the trace


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


def _fast_value(s: str):
    if s[:1] == "[":
        return [_value(p.strip()) for p in s[1:-1].split(",") if p.strip()]
    return _value(s)


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


def _parse_line(line: str):
    m = _LINE.match(line)
    if m is None:
        return None
    args, kwargs = _parse_args(m.group("args"))
    outs = [o.strip() for o in (m.group("outs") or "").split(",") if o.strip()]
    return m.group("kind"), args, kwargs, outs


# Candidates of one task share most of their lines (the same getters, splits with other
# decisions...), so each distinct line is parsed once. The parsed values are shared between
# traces and must not be changed.
_PARSED: dict = {}  # line -> (kind, args, kwargs, outs) or None
_PARSED_MAX = 200_000


def clear_cache() -> None:
    """Forget the parsed lines (benchmarks time parsing anew)."""
    _PARSED.clear()


def parsed_lines(text: str):
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
    """The trace's instructions."""
    return [Inst(*parsed, i) for i, (_, parsed) in enumerate(parsed_lines(text))]


def keyed_insts(text: str) -> list:
    """(line without its decision values, parsed line) for each instruction of ``text``: traces
    of one structure have the same keys."""
    out = []
    for line, parsed in parsed_lines(text):
        key = DECISION.sub("decision=", line) if "decision=" in line else line
        out.append((key, parsed))
    return out


def is_column(d) -> bool:
    """Whether a parsed decision is read from the decision records: an integer or a list of them."""
    if isinstance(d, list):
        return bool(d) and all(isinstance(x, int) and not isinstance(x, bool) for x in d)
    return isinstance(d, int) and not isinstance(d, bool)


def decision_records(decisions: list) -> np.ndarray:
    """Printed decisions of n traces (n lists of strings, "[4, 16]" or "2") -> records [n, D]."""
    flat = ",".join(",".join(f"{d.count(',') + 1},{d[1:-1]}" if d[0] == "[" else f"0,{d}"
                             for d in decs) for decs in decisions)
    try:
        return np.array(flat.split(","), dtype=np.int64).reshape(len(decisions), -1)
    except ValueError as err:  # not integers, or not the same count in every trace
        raise Misread from err


def record_of(parsed: list) -> np.ndarray:
    """The decision record [D] of one trace's parsed lines (kind, args, kwargs, outs): the
    decisions the walk reads, as the walk reads them."""
    flat: list = []
    for kind, _, kwargs, _ in parsed:
        d = kwargs.get("decision")
        if kind in SAMPLERS and is_column(d):
            flat.extend([len(d), *d] if isinstance(d, list) else [0, d])
    return np.array(flat, np.int64)
