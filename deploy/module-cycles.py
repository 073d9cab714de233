#!/usr/bin/env python3
"""Import circles between the top-level modules of a crate's src/ (`crate::a` used in b and
`crate::b` in a, or longer), tests aside. Prints each circle; exits 1 if there is one."""
import os, re, sys

def module_of(root, path):
    rel = os.path.relpath(path, root)
    head = rel.split(os.sep)[0]
    return head[:-3] if head.endswith('.rs') else head

def edges(root):
    graph = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            if not name.endswith('.rs'):
                continue
            path = os.path.join(dirpath, name)
            source = open(path, encoding='utf-8').read()
            source = source.split('#[cfg(test)]', 1)[0]  # unit tests may reach anywhere
            source = re.sub(r'//[^\n]*', '', source)
            here = module_of(root, path)
            if here in ('lib', 'main'):
                continue
            for used in re.findall(r'\bcrate::([a-z_][a-z0-9_]*)', source):
                if used != here:
                    graph.setdefault(here, set()).add(used)
    return graph

def cycles(graph):
    found, state, stack = [], {}, []
    def visit(node):
        state[node] = 'open'
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 'open':
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 'done'
    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found

if __name__ == '__main__':
    status = 0
    for root in sys.argv[1:]:
        for circle in cycles(edges(root)):
            print(f'import circle in {root}: ' + ' -> '.join(circle))
            status = 1
    sys.exit(status)
