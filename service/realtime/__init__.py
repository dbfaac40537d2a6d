"""Model edges: realtime speech models behind one ``session.ModelSession`` contract.

Rules (checked by ``tests/test_architecture.py``):

* What lives here: ``events.py`` (the neutral model vocabulary), ``session.py`` (the contract
  every edge keeps), ``config.py`` (what a session is asked to be), ``wire.py``,
  ``backends.py`` (which edge a call gets), and one folder per vendor with the same file
  names: ``protocol.py`` (sans-I/O), ``connection.py`` (asyncio), ``setup.py`` if needed.
* An edge may import ``realtime.*``, ``audio`` and ``settings``; never ``telephony``,
  ``calls`` or ``agent``. Servers and peers that *speak* these protocols live in
  ``service.modelserver`` and ``service.peers``, not here.
* A new vendor: copy ``openai/`` or ``gemini/``, keep the file names, add a branch to
  ``backends.open_model_session``.
"""
