async with websockets.connect(server.url, subprotocols=["nbstream.v1"]) as raw:
    await asyncio.wait_for(raw.recv(), 5)  # the welcome
    await raw.send(json.dumps({"type": "chat", "content": "hi"}))
    answer = []
    while not answer or answer[-1]["type"] != "end":
        answer.append(json.loads(await asyncio.wait_for(raw.recv(), 5)))
print([m["type"] for m in answer][:3], "...", answer[-1]["type"])
"".join(m["data"].get("text", "") for m in answer if m["type"] == "content")
