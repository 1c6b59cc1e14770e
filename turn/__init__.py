"""TURN server and the STUN codec it shares with the router's ICE-lite.

``turn`` never imports ``router``; the router imports ``turn.stun``.
"""
