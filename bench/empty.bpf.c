/* The floor: a program that does nothing, on the tracepoint the syscalls collector uses. */
TRACEPOINT_PROBE(raw_syscalls, sys_exit)
{
    return 0;
}
