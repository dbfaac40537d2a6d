"""OpenAI realtime calls: a carrier edge for calls whose audio OpenAI itself carries.

A phone call reaches OpenAI over SIP; OpenAI announces it with a signed ``realtime.call.incoming``
webhook; we accept it with the profile's session (or reject it) over REST and drive it from
our server over a sideband WebSocket (sip-and-outbound.md 1). Our service never touches the
audio, but owns the profile, tools, audit, call record and hang-up like any other carrier.

* ``incoming.py``: sans-I/O, a verified webhook event → ``IncomingCall`` (SIP headers read).
* ``control.py``: accept / reject / refer / hang up through the ``openai`` SDK.
* ``webhook.py``: ``POST /openai/webhook``: verify, dedupe in Redis, accept or reject.
* ``call.py``: one accepted call: start the worker attached by ``call_id``, carry out its
  commands, record its end.

Same rules as every carrier edge (``service/telephony/__init__.py``): no ``realtime``, no
``agent``; the sideband session is built by the call factory (``model_call_id``).
"""
