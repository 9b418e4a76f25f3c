"""Scenario analysis: follow one process from user space into the kernel, and show where its time went
as a timeline, a breakdown and flame graphs (`lmp scenario run|attach|compare`)."""
