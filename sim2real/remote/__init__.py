"""Policies over the network: the openpi websocket protocol (client and ``sim2real serve``).

Protocol: the server sends one binary frame on connect, a msgpack dict of metadata; then each
request is a binary frame holding a msgpack dict (numpy arrays in the msgpack-numpy encoding of
:mod:`sim2real.remote.wire`), answered by a binary frame whose dict holds ``actions`` (chunk, D);
a text frame is the server's error message.
"""
