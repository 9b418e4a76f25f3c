"""LMP, the Linux Microscope: the `lmp` command and what it runs."""
