"""Twilio Programmable Voice edge: Media Streams codec, TwiML, webhooks, signatures."""
