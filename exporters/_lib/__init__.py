"""Shared code of every collector: specs, label decoders, BPF loading, the scrape-time collector."""
