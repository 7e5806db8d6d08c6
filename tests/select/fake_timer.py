"""A timer the tests program: what each subgraph gains in place, and who wins each race."""
from torch_wm_backend.select import Timing


class FakeTimer:
    """``gains``: subgraph name (or "*") -> seconds it saves in TVM, timed in place (negative:
    slower), or a function of the subgraph's position in the graph; ``wins``: verdicts of successive compare() calls, then ``default_win``; ``busy``:
    the machine was busy. Candidates and references still run once per compare()."""

    def __init__(self, gains=None, wins=(), default_win=False, busy=False, fail=False):
        self.gains = {"*": 1e-3} if gains is None else gains
        self.wins, self.default_win, self.busy, self.fail = list(wins), default_win, busy, fail
        self.compared, self.in_place_calls = [], 0

    def in_place(self, run, subgraphs, modes, rounds):
        self.in_place_calls += 1
        if self.fail:
            raise RuntimeError("timer broke")
        run(modes[0])
        run(modes[1])
        self.names = [s.name for s in subgraphs]
        if callable(self.gains):
            gain = {s.name: self.gains(i) for i, s in enumerate(subgraphs)}
        else:
            gain = {s.name: self.gains.get(s.name, self.gains.get("*", 0.0)) for s in subgraphs}
        return [{n: 1.0 - g for n, g in gain.items()}, {n: 1.0 for n in gain}]

    def compare(self, candidate, reference, device):
        candidate()
        reference()
        win = self.wins.pop(0) if self.wins else self.default_win
        self.compared.append(win)
        return Timing(0.5 if win else 2.0, 1.0, busy=self.busy)
