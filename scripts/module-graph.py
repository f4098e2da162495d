#!/usr/bin/env python3
"""Which module of the core imports which (crate::X paths, tests excluded), and whether any import
cycle exists between the top-level modules. `scripts/module-graph.py` from the repository root."""
import os, re, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "core", "src")
# Root re-exports (`pub use config::{Request, ..}`): crate::Request is config's.
lib = open(os.path.join(root, "lib.rs")).read()
reexport = {}
for mod, names in re.findall(r"pub use (\w+)::\{?([\w, :]+)\}?;", lib):
    for n in re.split(r"[,\s]+", names):
        if n:
            reexport[n.split("::")[-1]] = mod
edges = {}
for dirpath, _, files in os.walk(root):
    for f in files:
        if not f.endswith(".rs") or f == "tests.rs":
            continue
        path = os.path.join(dirpath, f)
        rel = os.path.relpath(path, root)
        mod = rel.split(os.sep)[0].removesuffix(".rs")
        if mod == "lib":
            continue
        text = open(path).read()
        # Unit tests at the end of a file may reach anywhere.
        text = text.split("#[cfg(test)]\nmod tests {")[0]
        for m in re.findall(r"crate::(\w+)", text) + [
            n for group in re.findall(r"use crate::\{([^}]*)\}", text) for n in re.split(r"[,\s]+", group) if n
        ]:
            m = reexport.get(m, m)
            if m != mod and m[0].islower():
                edges.setdefault(mod, set()).add(m)
mods = sorted(set(edges) | {m for v in edges.values() for m in v})
for m in mods:
    print(f"{m:10} -> {', '.join(sorted(edges.get(m, ()))) or '-'}")
# Cycle check (DFS).
state = {}
def visit(m, stack):
    state[m] = 1
    for n in edges.get(m, ()):
        if state.get(n) == 1:
            print("cycle:", " -> ".join(stack + [m, n]))
            sys.exit(1)
        if n not in state:
            visit(n, stack + [m])
    state[m] = 2
for m in mods:
    if m not in state:
        visit(m, [])
print("no cycle")
