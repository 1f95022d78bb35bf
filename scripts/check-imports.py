#!/usr/bin/env python3
# Fails when two source files of a crate import each other (docs/architecture.md: no module pair
# imports each other). Imports are `use crate::…`/`use super::…` lines and `crate::`/`super::`
# paths in code; a mod.rs or lib.rs re-exporting its children (`pub use child::…`) does not count.
#
#   scripts/check-imports.py                  # every crate under crates/
#   scripts/check-imports.py crates/rat-core/src
import os,re,sys

def check(root):
    files={}
    for dp,_,fs in os.walk(root):
        for f in fs:
            if f.endswith('.rs'):
                p=os.path.join(dp,f); rel=os.path.relpath(p,root)[:-3].split('/')
                if rel[-1] in ('mod','lib'): rel=rel[:-1]
                files[tuple(rel)]=p
    def resolve(path):
        for k in range(len(path),0,-1):
            if tuple(path[:k]) in files: return tuple(path[:k])
    def expand(prefix, body):
        # expand use trees a::{b, c::{d}} -> list of paths
        out=[]; depth=0; cur=''; parts=[]
        for ch in body:
            if ch=='{': depth+=1
            if ch=='}': depth-=1
            if ch==',' and depth==0: parts.append(cur); cur=''
            else: cur+=ch
        parts.append(cur)
        for p in parts:
            p=p.strip()
            if not p: continue
            m=re.match(r'([\w:]*?)::\{(.*)\}$',p,re.S)
            if m: out+=expand(prefix+[x for x in m[1].split('::') if x], m[2])
            else: out.append(prefix+[x for x in p.split(' as ')[0].split('::') if x])
        return out
    deps={m:set() for m in files}
    for m,p in files.items():
        is_mod=p.endswith(('mod.rs','lib.rs'))
        here=list(m) if is_mod else list(m[:-1])   # the module whose children are siblings
        src=re.sub(r'//.*','',open(p).read())
        if is_mod: src=re.sub(r'^pub use (self::)?\w+::.*?;\s*$','',src,flags=re.M|re.S)
        paths=[]
        for kw,body in re.findall(r'\buse (crate|super)::([^;]*);',src):
            base=[] if kw=='crate' else list(m[:-1])
            if body.startswith('{'): paths+=expand(base, body[1:-1])
            else: paths+=expand(base, body)
        # A mod.rs or lib.rs importing its own children by a relative path (not a re-export).
        if is_mod:
            for child, rest in re.findall(r'^\s*use (?:self::)?(\w+)((?:::\w+)*)(?:::\{|;)', src, re.M):
                if child not in ('std', 'core', 'alloc', 'crate', 'super') and (*m, child) in files:
                    deps[m].add((*m, child))
        for kw,rest in re.findall(r'\b(crate|super)((?:::\w+)+)',src):
            base=[] if kw=='crate' else list(m[:-1])
            paths.append(base+rest.strip(':').split('::'))
        for q in paths:
            t=resolve(q)
            if t and t!=m: deps[m].add(t)
    pairs=sorted({tuple(sorted((a,b))) for a in deps for b in deps[a] if a in deps.get(b,())})
    for a,b in pairs: print('  ', files[a], '<->', files[b])
    print(f"{root}: {len(pairs)} pairs of files that import each other")
    return len(pairs)

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    roots = sys.argv[1:] or sorted(
        os.path.join(here, "..", "crates", c, "src") for c in os.listdir(os.path.join(here, "..", "crates"))
    )
    sys.exit(1 if sum(check(os.path.normpath(r)) for r in roots) else 0)
