listener = await ns.aconnect(server.url, timeout=10)
await listener.asay("tell me a story")
async for event in listener.events():
    if event.type == "bidi_audio_delta":
        break
stopping = asyncio.create_task(server.astop(timeout=5))
rest = []
async for event in listener.events():
    rest.append(event)
    if event.type == "bidi_connection_stop":
        break
print("".join(e.delta for e in rest if e.type == "bidi_transcript_delta"))
print([e.type for e in rest][-4:])
print(await stopping)
