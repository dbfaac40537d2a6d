"""The browser softphone as a carrier edge: an operator's page calls the agent.

``codec.py`` is the sans-I/O wire (PCM16 frames and small JSON messages over one WebSocket);
``stream.py`` runs one call. The route that authenticates the operator lives in ``service/ui``.
"""
