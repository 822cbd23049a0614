[(m.type, m.data) for m in alice.chat("what is 2**10?") if m.type != "content"]
