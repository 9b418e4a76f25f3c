/* `lmp doctor`'s fentry probe: an empty program on a kernel function's entry, through BTF (fentry, which
 * BCC calls KFUNC_PROBE). BCC loads it when it compiles the file; a kernel or a security policy that
 * refuses fentry fails right there. */
KFUNC_PROBE(do_sys_openat2)
{
    return 0;
}
