victim = await nbstream.aconnect(proxy.url, reconnect=False)
proxy.add("corrupt", direction="up", match="chat", times=1)
try:
    await victim.achat("hello", timeout=5)
except nbstream.StreamClosed as closed:
    print("StreamClosed, code", closed.code)
