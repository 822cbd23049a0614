import time

lazy = await nbstream.aserve("agent", batch_max_size=50, batch_max_wait=1.0)
print("frames:", await frames_for_one_chat(lazy))

c = await nbstream.aconnect(lazy)
started = time.perf_counter()
await c.asend("chat", {"text": "tell me about batching"})
first = await c.arecv(timeout=5)
print(f"first message ({first.type}) after {time.perf_counter() - started:.3f} s")
await c.aclose()
print(await lazy.astop())
