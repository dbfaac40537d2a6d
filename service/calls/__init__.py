"""The middle: one call worker per call, holding all turn-taking policy."""
