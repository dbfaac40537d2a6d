"""Realtime speech-model back-ends and the local GA-compatible server."""
