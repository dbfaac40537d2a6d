"""Audio for the phone line: G.711 μ-law ↔ PCM16 and streaming resampling."""
