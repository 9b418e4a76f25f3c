"""LMP's collectors: one folder each (<name>.bpf.c, <name>.yaml, README.md) and the shared code in _lib."""
