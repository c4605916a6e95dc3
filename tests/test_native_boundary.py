"""The boundary between Python and the native core (csrc/bindings, the private ``pyimgcls._core``).

* GIL: a binding converts and checks with the GIL held, takes every pointer and size, allocates its
  outputs, then releases the GIL around the compute: nothing ``py::`` and no Python object (an array
  argument, an output array, a proxy of one) is touched inside the released block. Read from the
  binding sources, since touching an array's fields without the GIL rarely fails where it can be seen.
* Several Python threads may call the bindings at once, while other threads allocate, resize, mutate and
  free unrelated arrays and run the garbage collector: every call gives its single-thread answer.
* Bad arguments given straight to a binding (offsets, lengths, non-finite values, settings) raise a
  ``ValueError`` naming the argument and showing the expected and the actual value; each call runs in a
  child process first (some of these inputs used to read or write out of bounds), then in this one.
"""

from __future__ import annotations

import gc
import re
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from _helpers import native_calls

BINDINGS = Path(__file__).resolve().parents[1] / "csrc" / "bindings"


# --- 1. nothing py:: inside a GIL-released block ---

_LITERAL_OR_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", re.S)
_RELEASE = re.compile(r"\bpy::gil_scoped_release\s+\w+\s*(?:;|\{\s*\}\s*;)")
_FUNC_HEAD = re.compile(r"^(?!namespace\b|template\b|using\b)[A-Za-z_].*$", re.M)
_PY_TYPE = r"(?:const\s+)?(?:carr\s*<|py::(?!ssize_t\b))"  # py::ssize_t is an integer


def _blank(m: re.Match) -> str:
    return re.sub(r"[^\n]", " ", m.group(0))


def _split_top(text: str, sep: str) -> list[str]:
    """Splits at `sep` outside (), {}, [] and <>."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "({[<":
            depth += 1
        elif ch in ")}]>":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _python_names(head: str) -> set[str]:
    """Names the function declares, before the released block, that hold Python objects: parameters and
    locals of type carr<...> / py::..., and `auto` locals initialised from one of them or from py::."""
    sig_end = head.index("{")
    params = head[head.index("(") + 1:head.rindex(")", 0, sig_end)]
    names = set()
    for p in _split_top(params, ","):
        p = p.split("=")[0].strip()
        if re.match(_PY_TYPE, p):
            names.add(re.findall(r"\w+", p)[-1])
    for stmt in re.split(r"[;{}]", head[sig_end + 1:]):
        stmt = stmt.strip()
        m = re.match(_PY_TYPE + r"[\w:]*\s*(?:<[^;]*?>)?\s*&{0,2}\s*(.*)$", stmt, re.S)
        if m:
            for decl in _split_top(m.group(1), ","):
                name = re.match(r"\s*(\w+)", decl)
                if name:
                    names.add(name.group(1))
            continue
        m = re.match(r"(?:const\s+)?auto\s*&{0,2}\s*(\w+)\s*=(.*)$", stmt, re.S)
        if m and ("py::" in m.group(2) or any(re.search(rf"\b{n}\b", m.group(2)) for n in names)):
            names.add(m.group(1))
    return names


def released_block_violations(source: str, filename: str = "<source>") -> tuple[int, list[str]]:
    """(number of released blocks, what each of them touches that it must not)."""
    code = _LITERAL_OR_COMMENT.sub(_blank, source)
    found, bad = 0, []
    for rel in _RELEASE.finditer(code):
        found += 1
        depth, i = 0, rel.end()
        while depth >= 0:  # to the brace that closes the block holding the release
            depth += {"{": 1, "}": -1}.get(code[i], 0)
            i += 1
        block = code[rel.end():i - 1]
        head_start = [m.start() for m in _FUNC_HEAD.finditer(code, 0, rel.start())][-1]
        head = code[head_start:rel.start()]
        line = code.count("\n", 0, rel.start()) + 1
        where = f"{filename}:{line} ({head.split('(')[0].split()[-1]})"
        if "py::" in block:
            bad.append(f"{where}: py:: inside the released block")
        for name in sorted(_python_names(head)):
            if re.search(rf"\b{name}\b", block):
                bad.append(f"{where}: uses the Python object `{name}` without the GIL")
    return found, bad


def test_the_scan_sees_python_objects_in_a_released_block():
    src = """
namespace x {
py::tuple f(const carr<float>& boxes, int k, py::array_t<std::int64_t, py::array::c_style> matrix) {
    const py::ssize_t n = boxes.shape(0);
    py::array_t<double> ap(k), auc(k);
    auto pv = boxes.unchecked<1>();
    const float* p = boxes.data();  // boxes.data() in a comment is fine
    {
        py::gil_scoped_release release;
        use(p, "boxes.size()", k, n);
    }
    {
        py::gil_scoped_release r;
        use(boxes.data(), matrix.shape(0), auc.mutable_data(), pv(0));
        py::list l;
    }
    return py::make_tuple(ap, auc);
}
}
"""
    found, bad = released_block_violations(src)
    assert found == 2
    assert [b.split(": ", 1)[1] for b in bad] == [
        "py:: inside the released block", "uses the Python object `auc` without the GIL",
        "uses the Python object `boxes` without the GIL", "uses the Python object `matrix` without the GIL",
        "uses the Python object `pv` without the GIL"], bad


def test_nothing_python_inside_gil_released_blocks():
    files = sorted(BINDINGS.glob("*.cpp")) + sorted(BINDINGS.glob("*.h"))
    if not files:
        pytest.skip("needs the source tree (csrc/bindings)")
    total, bad = 0, []
    for f in files:
        n, b = released_block_violations(f.read_text(encoding="utf-8"), f.name)
        total += n
        bad += b
    assert total >= 10, f"found only {total} released blocks: has the scan gone blind?"
    assert not bad, "\n".join(bad)


# --- 2. several threads at once, while others churn arrays and the GC ---

def _churn(seed: int, stop: threading.Event, errors: list) -> None:
    try:
        rng = np.random.default_rng(seed)
        held: list = []
        k = 0
        while not stop.is_set():
            k += 1
            a = rng.random(int(rng.integers(1, 20000)))
            a[::7] = -1.0                                       # mutate
            held.append(a)
            b = np.zeros(int(rng.integers(1, 5000)))
            b.resize(int(rng.integers(1, 50000)), refcheck=False)  # reallocate (no other reference exists)
            held.append(b[: len(b) // 2])                      # a view keeps it alive
            cycle: list = [np.ones(int(rng.integers(1, 3000)))]
            cycle.append(cycle)                                # only the collector frees it
            if len(held) > 40:
                for _ in range(20):
                    del held[int(rng.integers(0, len(held)))]  # free
            if k % 25 == 0:
                gc.collect()
    except BaseException as e:  # pragma: no cover - reported by the test
        errors.append(repr(e))


def test_native_calls_from_threads_while_others_churn_arrays():
    jobs = native_calls.jobs()
    want = {name: fn() for name, fn in jobs.items()}
    names = sorted(jobs)
    stop = threading.Event()
    errors: list = []

    def caller(offset: int) -> None:
        try:
            for r in range(6):
                for name in names[offset:] + names[:offset]:
                    got = jobs[name]()
                    if not native_calls.same(got, want[name]):
                        errors.append(f"{name}: a different answer in round {r}")
        except BaseException as e:  # pragma: no cover - reported by the test
            errors.append(f"{type(e).__name__}: {e}")

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # hand the GIL over often
    try:
        churners = [threading.Thread(target=_churn, args=(s, stop, errors)) for s in range(2)]
        callers = [threading.Thread(target=caller, args=(i * 3,)) for i in range(4)]
        for t in churners + callers:
            t.start()
        for t in callers:
            t.join(timeout=300)
        stop.set()
        for t in churners:
            t.join(timeout=60)
    finally:
        sys.setswitchinterval(old)
        stop.set()
    assert not any(t.is_alive() for t in callers + churners), "a thread hung"
    assert not errors, "\n".join(errors[:20])


# --- 3. bad arguments ---

@pytest.fixture(scope="module")
def child_outcomes():
    return native_calls.outcomes(sorted(native_calls.BAD_CALLS))


@pytest.mark.parametrize("name", sorted(native_calls.BAD_CALLS))
def test_bad_arguments_to_the_bindings(name, child_outcomes):
    call = native_calls.BAD_CALLS[name]
    out = child_outcomes[name]
    assert out["kind"] != "crashed", f"the call ended its process (exit {out['returncode']}):\n{out['stderr']}"
    if call.error is None:
        assert out["kind"] == "returned", f"{out['type']}: {out['message']}"
        assert out["problem"] is None, out["problem"]
        assert call.check(call.run()) is None  # and here
        return
    assert out["kind"] == "raised", "returned without an error"
    assert out["type"] == "ValueError" and re.search(call.error, out["message"]), f"{out['type']}: {out['message']}"
    with pytest.raises(ValueError, match=call.error):  # safe here now
        call.run()
