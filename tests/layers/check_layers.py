#!/usr/bin/python3
"""The layering rules, checked on the sources (README, "Architecture").

Includes: each folder of src/ may include only the folders listed for it in INCLUDES, so
calls go downward: base <- vm <- linux <- server <- main.c, and cli is read only by the
server layer and main.c; from the engine, linux/ and server/ may include only its API
(API_HEADERS): vm/engine.h and a few headers that show nothing of struct vm.

Opaque engine: struct vm's fields (read from its definition in vm/vm.h) are not named
through a VM pointer outside src/vm ("vm fields" in REACHES), on top of the compiler's own
refusal once vm/vm.h is not included.

Reaches: a few ways one layer can use another's insides without an include (a struct's
members, an ABI constant) are looked for with the patterns in REACHES. What is still there
is listed in ALLOWED, with the reason; the list only shrinks: an entry that no longer matches
fails the check too, so it is removed when the reach is fixed.

Cycles: a module is a .c file with its .h (a header without a .c is one alone); module A
depends on B when A's files include B's header. A cycle of dependencies (a strongly
connected set) fails the check unless it is in KNOWN_CYCLES, exactly, with its reason; a
listed cycle that is gone fails too, so the list only shrinks.

Usage: check_layers.py [SRC_DIR]. Prints one line per violation; exit status 1 if any.
"""
import pathlib
import re
import sys

# folder -> the folders its files may include (its own always).
INCLUDES = {
    "base": set(),
    "guest": {"vm"},                  # the stubs and vDSO share the engine's layout
    "vm": {"base", "guest"},
    "linux": {"base", "vm"},
    "cli": {"base"},
    "server": {"base", "vm", "linux", "cli"},
}

# The engine's public headers: engine.h (the API: create, run, memory, CPU state, snapshot,
# fork, reset, statistics), guest_mem.h (the checked door to guest memory), layout.h (the
# system area's addresses: #defines only), elf.h (the ELF parser), snapfile.h and image.h
# (the snapshot file's container and the engine's sections in it), kvm_stats.h (KVM's own
# counters of a vCPU, for --profile). None shows struct vm.
ENGINE_API = {"engine.h", "guest_mem.h", "layout.h", "elf.h", "snapfile.h", "image.h",
              "kvm_stats.h"}
# folder -> the only headers it may include from a lower layer's folder.
API_HEADERS = {
    "linux": {"vm": ENGINE_API},
    "server": {"vm": ENGINE_API},
}

STRUCT_VM_RE = re.compile(r"^struct vm \{(.*?)^\};", re.M | re.S)
FIELD_RE = re.compile(r"([A-Za-z_][A-Za-z_0-9]*)\s*(?:\[[^\]]*\])?\s*[;,]")


def vm_fields(src):
    """The member names of struct vm, from its definition in vm/vm.h."""
    m = STRUCT_VM_RE.search(COMMENT_RE.sub("", (src / "vm" / "vm.h").read_text()))
    return sorted(set(FIELD_RE.findall(m.group(1)))) if m else []


# name: (folder, pattern, what it means); {vm_fields} is struct vm's member names.
REACHES = {
    "vm fields": ("linux", r"\bvm(?:->|\.)(?:{vm_fields})\b",
                  "struct vm's fields, read outside the engine"),
    "vm fields (server)": ("server", r"\bvm(?:->|\.)(?:{vm_fields})\b",
                           "struct vm's fields, read outside the engine"),
    "fd table": ("server", r"\bfds\.fd\[", "the personality's fd table, read by the server"),
    "kvm_run": ("server", r"\brun->", "the vCPU's kvm_run, written by the server layer"),
    "kvm_run (linux)": ("linux", r"\brun->", "the vCPU's kvm_run, written by the personality"),
    "page tables": ("linux", r"\bvm->pt\b|\bpt_[a-z_]+\(",
                    "the engine's page tables, read directly"),
    "auxv": ("vm", r"\bAT_[A-Z_]+\b", "Linux's auxiliary vector, built in the engine"),
    "syscall numbers": ("guest", r"\$(39|110)\b",
                        "Linux's getpid/getppid numbers, in the engine's entry stubs"),
}

# (file under src/, reach name): why it is still there. Shrinks to nothing.
ALLOWED = {
}

# The cycles still there: frozenset of modules -> why.
KNOWN_CYCLES = {
    frozenset({"vm/vm", "vm/guest_mem", "vm/memslots", "vm/syscall_sites", "vm/transport"}):
        "vm/vm.h defines struct vm, which these files read, and vm.c calls each of them "
        "when it creates and destroys a VM",
    frozenset({"linux/process", "linux/epoll", "linux/fdtable", "linux/listener", "linux/mm",
               "linux/syscalls", "linux/thread", "linux/wait"}):
        "linux/process.h defines struct lx_proc, which holds each area's state, and "
        "process.c makes and forks each of them",
}

ANY_INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([a-z_]+/[^"]+)\.[hS]"', re.M)


def module_cycles(files, src):
    """The strongly connected sets (over one module) of the module include graph."""
    deps = {}
    for path in files:
        node = str(path.relative_to(src).with_suffix(""))
        for m in ANY_INCLUDE_RE.finditer(path.read_text(errors="replace")):
            if m.group(1) != node:
                deps.setdefault(node, set()).add(m.group(1))
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):                     # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(deps.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.add(w)
                if w == v:
                    break
            if len(scc) > 1:
                found.append(frozenset(scc))

    for v in sorted(deps):
        if v not in index:
            visit(v)
    return found


INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/([^"]+)"', re.M)
COMMENT_RE = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


def main():
    src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                       pathlib.Path(__file__).resolve().parents[2] / "src")
    problems, reached = [], set()
    fields = vm_fields(src)
    if not fields:
        problems.append(f"{src}/vm/vm.h: no definition of struct vm found")
    reaches = {name: (where, re.compile(pattern.replace("{vm_fields}", "|".join(fields) or "$^")),
                      meaning)
               for name, (where, pattern, meaning) in REACHES.items()}
    files = sorted(p for p in src.rglob("*") if p.suffix in (".c", ".h", ".S"))
    if not files:
        problems.append(f"{src}: no sources found")
    for path in files:
        rel = path.relative_to(src)
        folder = rel.parts[0] if len(rel.parts) > 1 else None
        text = path.read_text(errors="replace")
        if folder not in INCLUDES:
            continue                  # main.c may include anything
        allowed = INCLUDES[folder] | {folder}
        for m in INCLUDE_RE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            if m.group(1) not in allowed:
                problems.append(f"src/{rel}:{line}: includes {m.group(1)}/ "
                                f"({folder}/ may include {', '.join(sorted(allowed))})")
            api = API_HEADERS.get(folder, {}).get(m.group(1))
            if api is not None and m.group(2) not in api:
                problems.append(f"src/{rel}:{line}: includes {m.group(1)}/{m.group(2)}, not "
                                f"the engine's API ({', '.join(sorted(api))})")
        code = COMMENT_RE.sub(lambda c: re.sub(r"[^\n]", " ", c.group(0)), text)
        for name, (where, pattern, meaning) in reaches.items():
            if where != folder:
                continue
            for m in pattern.finditer(code):
                key = (str(rel), name)
                if key in ALLOWED:
                    reached.add(key)
                    continue
                line = code.count("\n", 0, m.start()) + 1
                problems.append(f"src/{rel}:{line}: {meaning} ('{m.group(0)}')")
    cycles = module_cycles(files, src)
    for c in cycles:
        if c not in KNOWN_CYCLES:
            problems.append(f"include cycle among {', '.join(sorted(c))}")
    for c in set(KNOWN_CYCLES) - set(cycles):
        problems.append(f"the include cycle among {', '.join(sorted(c))} is listed in "
                        "KNOWN_CYCLES but no longer there: remove it")
    for file, name in sorted(set(ALLOWED) - reached):
        problems.append(f"src/{file}: allowed to reach '{name}' in check_layers.py but no "
                        "longer does: remove it from ALLOWED")
    for p in problems:
        print(p)
    print(f"layer check: {len(files)} files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
