#!/usr/bin/env python3
"""Import cycles between the modules (files) of each crate: a module may only
import modules that do not import it back, directly or through others.
Reads `use crate::…`, `super::…` and a parent's paths into its own children.
Usage: scripts/import-cycles.py [crates/*/src …]; exits 1 when a cycle exists."""
import glob,os,re,sys,collections

def check(src):
    mods={}
    for root,_,files in os.walk(src):
        for f in files:
            if not f.endswith('.rs'): continue
            p=os.path.join(root,f); rel=os.path.relpath(p,src)[:-3].split(os.sep)
            if rel[-1]=='mod': rel=rel[:-1]
            if rel in (['lib'],['main']): rel=[]
            if rel and rel[-1]=='tests': continue
            mods['::'.join(rel)]=p
    def resolve(path_parts):
        for k in range(len(path_parts),-1,-1):
            cand='::'.join(path_parts[:k])
            if cand in mods: return cand
        return ''
    g=collections.defaultdict(set)
    for m,p in mods.items():
        txt=open(p).read()
        txt=re.split(r'#\[cfg\(test\)\]\s*mod tests',txt)[0]
        txt='\n'.join(l for l in txt.split('\n') if not l.strip().startswith('//'))
        me=m.split('::') if m else []
        # expand use crate::a::{b, c::d}
        for mm in re.finditer(r'crate((?:::[A-Za-z_][A-Za-z0-9_]*)+)(::\{([^}]*)\})?',txt):
            base=mm.group(1).strip(':').split('::')
            if mm.group(3):
                for item in mm.group(3).split(','):
                    item=item.strip().split(' ')[0]
                    if not item: continue
                    t=resolve(base+item.split('::'))
                    if t!=m: g[m].add(t)
            else:
                t=resolve(base)
                if t!=m: g[m].add(t)
        is_modrs=p.endswith('mod.rs') or p.endswith('lib.rs') or p.endswith('main.rs')
        if is_modrs:
            for mm in re.finditer(r'^\s*(?:pub(?:\([a-z]+\))? )?use ([a-z_][a-z0-9_]*)((?:::[A-Za-z_][A-Za-z0-9_]*)*)(::\{([^}]*)\})?',txt,re.M):
                first=mm.group(1)
                if first in ('std','crate','super','self') or ('::'.join(me+[first]) not in mods): continue
                base=me+[first]+[x for x in mm.group(2).split('::') if x]
                if mm.group(4):
                    for item in mm.group(4).split(','):
                        item=item.strip().split(' ')[0]
                        if item: 
                            t=resolve(base+item.split('::'))
                            if t!=m: g[m].add(t)
                else:
                    t=resolve(base)
                    if t!=m: g[m].add(t)
            # bare paths like edge::serve( / tunnel::serve( in expressions
            for mm in re.finditer(r'(?<![:\w])([a-z_][a-z0-9_]*)::([a-z_][a-z0-9_]*)',txt):
                first=mm.group(1)
                if '::'.join(me+[first]) in mods:
                    t=resolve(me+[first,mm.group(2)])
                    if t!=m: g[m].add(t)
        parent=me if is_modrs else me[:-1]
        for mm in re.finditer(r'\bsuper((?:::[A-Za-z_][A-Za-z0-9_]*)+)(::\{([^}]*)\})?',txt):
            base=(me[:-1] if is_modrs else me[:-1])
            # super from file module x (a::b) refers to a
            base=me[:-1]
            parts=base+mm.group(1).strip(':').split('::')
            if mm.group(3):
                for item in mm.group(3).split(','):
                    item=item.strip().split(' ')[0]
                    if not item: continue
                    t=resolve(parts+item.split('::'))
                    if t!=m: g[m].add(t)
            else:
                t=resolve(parts)
                if t!=m: g[m].add(t)
    # remove edges from a parent mod.rs to its own children via 'mod' (not captured) fine
    def sccs(g):
        idx={};low={};st=[];on=set();res=[];c=[0]
        nodes=set(g)|{x for v in g.values() for x in v}
        sys.setrecursionlimit(100000)
        def sc(v):
            idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
            for w in g.get(v,()):
                if w not in idx: sc(w);low[v]=min(low[v],low[w])
                elif w in on: low[v]=min(low[v],idx[w])
            if low[v]==idx[v]:
                comp=[]
                while True:
                    w=st.pop();on.discard(w);comp.append(w)
                    if w==v:break
                if len(comp)>1: res.append(sorted(comp))
        for v in sorted(nodes):
            if v not in idx: sc(v)
        return res
    cyc=sccs(g)
    print(f'{src}: {len(cyc)} import cycle(s)')
    for c in cyc:
        print('  ',[x or 'ROOT' for x in c])
        for a in c:
            print('     ',a or 'ROOT','->',sorted((x or 'ROOT') for x in g[a] if x in c))

    return len(cyc)

if __name__ == "__main__":
    srcs = sys.argv[1:] or sorted(glob.glob("crates/*/src"))
    sys.exit(1 if sum(check(s) for s in srcs) else 0)
