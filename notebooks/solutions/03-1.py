short = await nbstream.aserve(nbstream.Agent(token_delay=0.05))
hurried = await nbstream.aconnect(short, reconnect=nbstream.protocol.Backoff(attempts=2))
chat = asyncio.ensure_future(hurried.achat("tell me a long story, please", timeout=10))
await asyncio.sleep(0.3)  # the reply is streaming now
print(await short.astop(timeout=0.1))
try:
    await chat
except nbstream.StreamClosed as closed:
    print("StreamClosed:", closed.code, closed.reason)
    assert closed.code == 1001, closed
