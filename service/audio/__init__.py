"""Audio for the phone line: G.711 μ-law ↔ PCM16, streaming resampling, an energy VAD, WAV
helpers and the synthetic voice. The bottom layer: it imports nothing else from ``service``."""
