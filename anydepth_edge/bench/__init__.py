"""Benchmark stage: the paper's Orin Nano table (latency, FPS, peak memory; SDT vs DPT)."""
