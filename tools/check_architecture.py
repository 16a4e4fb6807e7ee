#!/usr/bin/env python3
"""Checks that the code's includes follow docs/ARCHITECTURE.md.

The document holds three machine-readable blocks (fenced code blocks whose
info string names them):

  drover-parts       one part a line: `PART: DEP DEP ...` (a `test ` prefix
                     marks a test part). A part is a folder (or one file);
                     a file belongs to the longest part that contains it.
                     A dependency names a part or a folder of parts.
  drover-forbidden   arrows that must never exist:
                     `SRC [SRC...] !-> TGT [TGT...] [except SRC...]`
                     SRC is a folder or file, or `*` for every file; a
                     folder covers its production parts only (test parts
                     are covered when named, or by `*`). TGT is a folder
                     or file, or `<name>` for a third-party header
                     (`<boost>` matches <boost/...>, `<lmdb.h>` itself).
  drover-exceptions  includes that break a rule today and are to be
                     removed: `FILE -> INCLUDE`, one a line.

Every .cpp/.hpp in the repository must lie in a part. Each `#include "..."`
must stay in its part, go to an allowed dependency and break no forbidden
arrow; each `#include <...>` must break no forbidden arrow. An exception
that no longer occurs is an error too (remove it from the document).
Lines starting with `#` in a block are comments.

Exit status 0 when everything holds, 1 with one line per problem
(file:line, the include, the rule), 2 when the document cannot be read.
Standard library only.

  python3 tools/check_architecture.py [--root DIR] [--doc FILE]
"""

import argparse
import os
import re
import subprocess
import sys

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
BLOCK_RE = re.compile(r"^```(drover-[a-z]+)\s*$")
SOURCE_SUFFIXES = (".cpp", ".hpp", ".h", ".cc")


class DocError(Exception):
    pass


def read_blocks(doc_path):
    blocks = {}
    current = None
    with open(doc_path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if current is None:
                m = BLOCK_RE.match(line)
                if m:
                    current = m.group(1)
                    if current in blocks:
                        raise DocError(f"{doc_path}:{number}: a second {current} block")
                    blocks[current] = []
                continue
            if line.startswith("```"):
                current = None
                continue
            text = line.strip()
            if text and not text.startswith("#"):
                blocks[current].append((number, text))
    for name in ("drover-parts", "drover-forbidden", "drover-exceptions"):
        if name not in blocks:
            raise DocError(f"{doc_path}: no ```{name} block")
    return blocks


def strip_comment(text):
    # A comment runs from " #" to the end of the line.
    i = text.find(" #")
    return text[:i].strip() if i >= 0 else text.strip()


def covers(prefix, path):
    """Whether a folder-or-file prefix contains path."""
    return path == prefix or path.startswith(prefix + "/")


class Architecture:
    def __init__(self, doc_path):
        self.doc = doc_path
        blocks = read_blocks(doc_path)
        self.parts = {}  # part -> (allowed deps, line)
        self.test_parts = set()
        for number, raw in blocks["drover-parts"]:
            text = strip_comment(raw)
            is_test = text.startswith("test ")
            if is_test:
                text = text[len("test "):].strip()
            if ":" not in text:
                raise DocError(f"{doc_path}:{number}: expected 'PART: DEP ...', got '{raw}'")
            part, deps = text.split(":", 1)
            part = part.strip().rstrip("/")
            if part in self.parts:
                raise DocError(f"{doc_path}:{number}: part {part} declared twice")
            self.parts[part] = ([d.rstrip("/") for d in deps.split()], number)
            if is_test:
                self.test_parts.add(part)
        for part, (deps, number) in self.parts.items():
            for d in deps:
                if not any(covers(d, p) for p in self.parts):
                    raise DocError(f"{doc_path}:{number}: {part} depends on {d}, which names no part")
        self.forbidden = []  # (sources, targets, exempt, line, text)
        for number, raw in blocks["drover-forbidden"]:
            text = strip_comment(raw)
            if "!->" not in text:
                raise DocError(f"{doc_path}:{number}: expected 'SRC !-> TGT ...', got '{raw}'")
            left, right = text.split("!->", 1)
            words = right.split()
            exempt = []
            if "except" in words:
                i = words.index("except")
                words, exempt = words[:i], words[i + 1:]
            sources = [s.rstrip("/") for s in left.split()]
            targets = [t if t.startswith("<") else t.rstrip("/") for t in words]
            if not sources or not targets:
                raise DocError(f"{doc_path}:{number}: a rule needs sources and targets: '{raw}'")
            self.forbidden.append((sources, targets, [e.rstrip("/") for e in exempt], number, text))
        self.exceptions = {}  # (file, include) -> line
        for number, raw in blocks["drover-exceptions"]:
            text = strip_comment(raw)
            if "->" not in text:
                raise DocError(f"{doc_path}:{number}: expected 'FILE -> INCLUDE', got '{raw}'")
            src, inc = (s.strip() for s in text.split("->", 1))
            self.exceptions[(src, inc)] = number

    def part_of(self, path):
        best = None
        for part in self.parts:
            if covers(part, path) and (best is None or len(part) > len(best)):
                best = part
        return best

    def allowed(self, src_part, dst_part):
        if dst_part == src_part:
            return True
        return any(covers(d, dst_part) for d in self.parts[src_part][0])

    def rule_applies(self, sources, exempt, path, part):
        if any(covers(e, path) for e in exempt):
            return False
        for s in sources:
            if s == "*":
                return True
            if covers(s, path):
                # A folder rule binds the production parts under it; a test
                # part only when the rule names it (or a folder inside it).
                if part in self.test_parts and not covers(part, s):
                    continue
                return True
        return False

    def broken_rules(self, path, part, include, angle, dst_part):
        out = []
        for sources, targets, exempt, number, text in self.forbidden:
            if not self.rule_applies(sources, exempt, path, part):
                continue
            for t in targets:
                if t.startswith("<"):
                    name = t[1:-1]
                    hit = angle and covers(name, include)
                else:
                    # Within one part an include is that part's own business.
                    hit = (not angle) and dst_part != part and covers(t, include)
                if hit:
                    out.append(f"forbidden '{text}' (docs/ARCHITECTURE.md:{number})")
                    break
        return out

    def cycles(self):
        """Cycles among the production parts' allowed dependencies."""
        graph = {}
        for part, (deps, _) in self.parts.items():
            if part in self.test_parts:
                continue
            graph[part] = sorted(
                {p for d in deps for p in self.parts if covers(d, p) and p != part
                 and p not in self.test_parts})
        found, state = [], {}

        def visit(node, stack):
            state[node] = 1
            stack.append(node)
            for nxt in graph.get(node, ()):
                if state.get(nxt) == 1:
                    found.append(stack[stack.index(nxt):] + [nxt])
                elif state.get(nxt) is None:
                    visit(nxt, stack)
            stack.pop()
            state[node] = 2

        for node in sorted(graph):
            if state.get(node) is None:
                visit(node, [])
        return found


def source_files(root):
    try:
        out = subprocess.run(
            ["git", "-C", root, "ls-files", "-co", "--exclude-standard"],
            check=True, capture_output=True, text=True).stdout.splitlines()
        files = [f for f in out if f.endswith(SOURCE_SUFFIXES)
                 and os.path.isfile(os.path.join(root, f))]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for d, dirs, names in os.walk(root):
            dirs[:] = [x for x in dirs if not x.startswith((".", "build"))]
            for n in names:
                if n.endswith(SOURCE_SUFFIXES):
                    files.append(os.path.relpath(os.path.join(d, n), root))
    return sorted(f.replace(os.sep, "/") for f in files)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.dirname(here))
    ap.add_argument("--doc", default=None)
    args = ap.parse_args()
    root = args.root
    doc = args.doc or os.path.join(root, "docs", "ARCHITECTURE.md")
    try:
        arch = Architecture(doc)
    except (OSError, DocError) as e:
        print(f"check_architecture: {e}", file=sys.stderr)
        return 2

    problems = []
    for cycle in arch.cycles():
        problems.append("docs/ARCHITECTURE.md: the allowed dependencies have a cycle: "
                        + " -> ".join(cycle))
    files = source_files(root)
    includes = 0
    used_exceptions = set()
    for path in files:
        part = arch.part_of(path)
        if part is None:
            problems.append(f"{path}: lies in no part of docs/ARCHITECTURE.md (declare one)")
            continue
        with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
        for number, line in enumerate(lines, 1):
            m = INCLUDE_RE.match(line)
            if not m:
                continue
            angle = m.group(1) == "<"
            include = m.group(2).strip()
            dst_part = None
            if not angle:
                includes += 1
                dst_part = arch.part_of(include)
            elif arch.part_of(include) is not None and "/" in include:
                # A project header included with <...>: check it as one.
                includes += 1
                dst_part = arch.part_of(include)
                angle = False
            broken = []
            if not angle:
                if dst_part is None:
                    broken.append("the include names no part (project headers are included "
                                  "by their path from the repository root)")
                elif not arch.allowed(part, dst_part):
                    broken.append(f"{part} -> {dst_part} is not among {part}'s allowed "
                                  f"dependencies (docs/ARCHITECTURE.md:{arch.parts[part][1]})")
            broken += arch.broken_rules(path, part, include, angle, dst_part)
            if not broken:
                continue
            if (path, include) in arch.exceptions:
                used_exceptions.add((path, include))
                continue
            shown = f"<{include}>" if angle else f'"{include}"'
            problems.append(f"{path}:{number}: #include {shown}: " + "; ".join(broken))
    for key, number in sorted(arch.exceptions.items(), key=lambda kv: kv[1]):
        if key not in used_exceptions:
            problems.append(f"docs/ARCHITECTURE.md:{number}: known exception '{key[0]} -> {key[1]}' "
                            "no longer occurs (or breaks no rule): remove it")

    for p in problems:
        print(p)
    exceptions = len(used_exceptions)
    note = f", {exceptions} known exceptions" if exceptions else ""
    if problems:
        print(f"checked {len(files)} files, {includes} includes{note}: "
              f"{len(problems)} problems (docs/ARCHITECTURE.md)")
        return 1
    print(f"checked {len(files)} files, {includes} includes{note}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
