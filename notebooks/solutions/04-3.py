frame = nbstream.protocol.encode(nbstream.Message("chat", {"text": "x" * 2_000}))
print(f"the frame is {len(frame):,} bytes")
edge = await nbstream.aconnect(server, user="dee")
try:
    await edge.achat("x" * 2_000, timeout=5)
except nbstream.StreamClosed as closed:
    print(closed)
